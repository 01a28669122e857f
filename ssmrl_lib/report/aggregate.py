"""Results at a glance: interquartile mean and performance profile over tasks (Agarwal et al.
2021, "Deep RL at the Edge of the Statistical Precipice"), with stratified bootstrap intervals.

Input is a long frame with one score per (model, task, seed). The stratified bootstrap
resamples seeds with replacement within each task, independently across tasks, which is what
``scipy.stats.bootstrap`` does when each task's scores are passed as a separate sample. The
``rliable`` package implements the same methods but depends on ``arch`` < 8, which does not
import under the pinned pandas 3; scipy's bootstrap is used instead.

A model whose tasks all have a single seed gets point estimates and no interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from ssmrl_lib.report.verdicts import CONFIDENCE

RESAMPLES = 2_000


@dataclass(frozen=True)
class Aggregate:
    """One model's IQM and performance profile, with intervals where the seeds allow."""

    model: str
    tasks: int
    seeds: tuple[int, int]  # fewest and most seeds of any task
    iqm: float
    iqm_interval: tuple[float, float] | None
    taus: np.ndarray
    profile: np.ndarray
    profile_low: np.ndarray | None
    profile_high: np.ndarray | None
    unit: str = "task"  # what a task is in this chapter: an environment, a memory length

    @property
    def seeds_text(self) -> str:
        low, high = self.seeds
        count = f"{low}" if low == high else f"{low}–{high}"
        tasks = f"{self.tasks} {self.unit}{'s' if self.tasks != 1 else ''}"
        return f"{count} seed{'s' if high != 1 else ''} × {tasks}"


def _pooled(samples: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.concatenate(samples, axis=-1)


def iqm(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean of all runs of all tasks (the middle 50 % of the pooled scores)."""
    return stats.trim_mean(_pooled(samples), 0.25, axis=-1)


def _profile_statistic(taus: np.ndarray):
    def profile(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        # Per task the fraction of runs scoring above tau, then the mean over tasks:
        # shape (taus, ...) as scipy expects of a vector-valued statistic.
        per_task = [(s[..., None, :] > taus[:, None]).mean(axis=-1) for s in samples]
        return np.moveaxis(np.mean(per_task, axis=0), -1, 0)
    return profile


def aggregate(frame: pd.DataFrame, taus: np.ndarray, task: str = "task", score: str = "score",
              model: str = "model", labels: dict[str, str] | None = None,
              unit: str = "task", seed: int = 0) -> list[Aggregate]:
    """Per model: IQM and performance profile over tasks, 95 % stratified bootstrap intervals
    (percentile, ``RESAMPLES`` resamples, seeded) where every task has at least two seeds.

    ``frame`` has one row per run: its ``model``, ``task`` and ``score`` columns (named by the
    arguments); ``labels`` renames models for the figure; ``unit`` names what a task is."""
    results = []
    for name, group in frame.groupby(model, sort=False):
        samples = tuple(
            task_group[score].to_numpy(dtype=float) for _, task_group in group.groupby(task)
        )
        samples = tuple(s[np.isfinite(s)] for s in samples)
        samples = tuple(s for s in samples if len(s))
        if not samples:
            continue
        counts = [len(s) for s in samples]
        profile_fn = _profile_statistic(taus)
        point_iqm = float(iqm(*samples))
        point_profile = profile_fn(*samples)
        iqm_interval, low, high = None, None, None
        if min(counts) >= 2:
            rng = np.random.default_rng(seed)
            boot = stats.bootstrap(samples, iqm, n_resamples=RESAMPLES, method="percentile",
                                   confidence_level=CONFIDENCE, rng=rng)
            iqm_interval = (float(boot.confidence_interval.low),
                            float(boot.confidence_interval.high))
            boot = stats.bootstrap(samples, profile_fn, n_resamples=RESAMPLES,
                                   method="percentile", confidence_level=CONFIDENCE, rng=rng)
            low, high = boot.confidence_interval.low, boot.confidence_interval.high
        label = (labels or {}).get(str(name), str(name))
        results.append(Aggregate(label, len(samples), (min(counts), max(counts)),
                                 point_iqm, iqm_interval, taus, point_profile, low, high,
                                 unit))
    return results


def aggregate_table(aggregates: list[Aggregate], digits: int = 2) -> pd.DataFrame:
    """IQM per model with its interval and the runs it rests on."""
    return pd.DataFrame([
        {
            "model": a.model,
            "IQM": f"{a.iqm:.{digits}f}",
            "95 % CI (stratified bootstrap)": "none: a single seed" if a.iqm_interval is None
            else f"[{a.iqm_interval[0]:.{digits}f}, {a.iqm_interval[1]:.{digits}f}]",
            "runs": a.seeds_text,
        }
        for a in aggregates
    ])


def plot_aggregate(aggregates: list[Aggregate], score_label: str,
                   title: str = "") -> plt.Figure:
    """Left: IQM per model with its interval; right: the performance profile with its band."""
    fig, (iqm_ax, profile_ax) = plt.subplots(1, 2, figsize=(11.0, 3.4),
                                             gridspec_kw={"width_ratios": [1, 1.4]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (a, color) in enumerate(zip(aggregates, colors * 4, strict=False)):
        if a.iqm_interval is not None:
            iqm_ax.plot(a.iqm_interval, [row, row], color=color, lw=6, alpha=0.35,
                        solid_capstyle="butt")
        iqm_ax.plot([a.iqm], [row], "o", color=color)
        label = f"{a.model} ({a.seeds_text})"
        profile_ax.step(a.taus, a.profile, where="post", color=color, label=label)
        if a.profile_low is not None:
            profile_ax.fill_between(a.taus, a.profile_low, a.profile_high, step="post",
                                    color=color, alpha=0.2)
    iqm_ax.set_yticks(range(len(aggregates)), [f"{a.model}\n{a.seeds_text}" for a in aggregates],
                      fontsize=8)
    iqm_ax.set_ylim(len(aggregates) - 0.5, -0.5)
    iqm_ax.set(xlabel=f"IQM of {score_label}", title="interquartile mean, 95 % CI")
    profile_ax.set(xlabel=f"{score_label} τ", ylabel="fraction of runs > τ",
                   title="performance profile", ylim=(-0.02, 1.02))
    profile_ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def caption(aggregates: list[Aggregate]) -> str:
    """What the figure's intervals rest on, in one sentence."""
    if not aggregates:
        return "No runs to aggregate."
    with_ci = [a for a in aggregates if a.iqm_interval is not None]
    runs = "; ".join(f"{a.model}: {a.seeds_text}" for a in aggregates)
    if not with_ci:
        return (f"Point estimates only: every {aggregates[0].unit} has a single seed, so no "
                f"interval is shown ({runs}).")
    unit = aggregates[0].unit
    return (f"Bands and bars: 95 % stratified bootstrap intervals ({RESAMPLES:,} percentile "
            f"resamples of the seeds within each {unit}); a model with a single seed on any {unit} "
            f"gets none. Runs: {runs}. With two or three seeds per {unit} these intervals are "
            "coarse.")
