"""Tables and figures of the meta-RL runs (Lu et al. 2023, §4.3) beside the paper's numbers.

The paper shows these results only as figures, so every paper number here is read off one (≈,
``ssmrl_lib.report.paper_numbers``). The verdicts, which compare only where our setup matches
the paper's (trials per episode, trial length), are ``report.claims.meta_rl_claims``.
"""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ssmrl_lib.meta_envs import DMC_STEP_LIMIT
from ssmrl_lib.report.labels import MODEL_LABELS
from ssmrl_lib.report.paper_numbers import (
    LU2023_META_CARTPOLE_BEYOND,
    LU2023_META_CARTPOLE_GRU_OVER_S5_TIME,
    LU2023_META_CARTPOLE_MMER,
    LU2023_META_CARTPOLE_TRIAL_LENGTH,
    LU2023_META_CARTPOLE_TRIALS,
    LU2023_META_DMC_FAILED,
    LU2023_META_DMC_HELDOUT,
    LU2023_META_DMC_TRAIN,
)


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _mean_std(values: np.ndarray, digits: int = 2) -> str:
    values = values[np.isfinite(values)]
    if not len(values):
        return "—"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


# ----------------------------------------------------------------------------------------------
# Meta-RL 1: randomly projected StatelessCartPole


def cartpole_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: model, seed, trials, MMER, steps, times, speed."""
    return pd.DataFrame(
        [
            {
                "model": r["config"]["model"],
                "seed": r["config"]["seed"],
                "num_trials": r["config"]["num_trials"],
                "trial_length": r["config"]["trial_length"],
                "mmer": np.nan if r["mmer"] is None else r["mmer"],
                "steps": r["curve"]["steps"][-1],
                "train_time_s": r["train_time_s"],
                "env_steps_per_s": r["env_steps_per_s"],
                "parameters": r["parameters"],
            }
            for r in results
        ]
    )


def _paper_setup(num_trials: int, trial_length: int) -> bool:
    return (num_trials, trial_length) == (
        LU2023_META_CARTPOLE_TRIALS,
        LU2023_META_CARTPOLE_TRIAL_LENGTH,
    )


def cartpole_mmer_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Final MMER per model (mean ± std over seeds) and per trial, beside the paper's (≈)."""
    rows = []
    for model, group in frame.groupby("model", sort=False):
        mmer = group["mmer"].to_numpy(dtype=float)
        trials, length = int(group["num_trials"].iloc[0]), int(group["trial_length"].iloc[0])
        paper = LU2023_META_CARTPOLE_MMER.get(model)
        steps = int(group["steps"].max())
        rows.append(
            {
                "model": _label(model),
                "seeds": len(mmer),
                "trials × steps": f"{trials} × {length}",
                "env steps": f"{steps:,}",
                "MMER ours": _mean_std(mmer),
                "MMER paper": f"≈{paper:.1f}" if paper is not None else "—",
                "per trial ours": _mean_std(mmer / trials),
                "per trial paper": f"≈{paper / LU2023_META_CARTPOLE_TRIALS:.2f}"
                if paper is not None
                else "—",
            }
        )
    return pd.DataFrame(rows)


def trial_return_curves(
    results: list[dict[str, Any]],
) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Model -> (mean over seeds of the return per trial index, std over seeds, horizon)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(result["config"]["model"], []).append(result)
    curves = {}
    for model, runs in groups.items():
        stacked = np.array([r["evaluation"]["mean_return_per_trial"] for r in runs])
        curves[model] = (stacked.mean(axis=0), stacked.std(axis=0), runs[0]["config"]["num_trials"])
    return curves


def beyond_horizon_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Return per trial within and past the training horizon, beside the paper's range (≈)."""
    rows = []
    for model, (mean, _, horizon) in trial_return_curves(results).items():
        within, beyond = mean[:horizon], mean[horizon:]
        paper = LU2023_META_CARTPOLE_BEYOND.get(model)
        ours_beyond = float(beyond.mean()) if len(beyond) else np.nan
        rows.append(
            {
                "model": _label(model),
                "trials evaluated": len(mean),
                f"trials 1–{horizon} ours": f"{within.mean():.2f}",
                f"trials {horizon + 1}–{len(mean)} ours": f"{ours_beyond:.2f}",
                "past trial 16, paper": f"≈{paper[0]:.2f}–{paper[1]:.2f}" if paper else "—",
            }
        )
    return pd.DataFrame(rows)


def plot_trial_returns(results: list[dict[str, Any]]) -> plt.Figure:
    """Return per trial index (mean ± std over seeds), a line at the training horizon."""
    curves = trial_return_curves(results)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for model, (mean, std, _) in curves.items():
        trials = np.arange(1, len(mean) + 1)
        ax.plot(trials, mean, marker=".", label=_label(model))
        ax.fill_between(trials, mean - std, mean + std, alpha=0.2)
    horizon = results[0]["config"]["num_trials"]
    ax.axvline(horizon + 0.5, color="grey", linestyle="--", label="training horizon")
    ax.set(
        xlabel="trial",
        ylabel="return per trial",
        ylim=(0, 1.05),
        title="Projected StatelessCartPole: return per trial",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _curves_by_model(
    results: list[dict[str, Any]], accumulate: bool, scale: float = 1.0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Model -> (steps, mean over seeds, std over seeds) of the per-update mean return."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(result["config"]["model"], []).append(result)
    curves = {}
    for model, runs in groups.items():
        length = min(len(r["curve"]["steps"]) for r in runs)
        stacked = []
        for run in runs:
            values = (
                np.array(
                    [np.nan if v is None else v for v in run["curve"]["mean_return"]], dtype=float
                )[:length]
                * scale
            )
            stacked.append(np.fmax.accumulate(values) if accumulate else values)
        stacked = np.stack(stacked)
        with warnings.catch_warnings():  # updates in which no episode ended stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(stacked, axis=0), np.nanstd(stacked, axis=0)
        curves[model] = (np.asarray(runs[0]["curve"]["steps"][:length]), mean, std)
    return curves


def _plot_curves(ax: plt.Axes, curves: dict) -> None:
    for model, (steps, mean, std) in curves.items():
        ax.plot(steps, mean, label=_label(model))
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.legend(fontsize=8)


def plot_cartpole_learning_curves(results: list[dict[str, Any]]) -> plt.Figure:
    """MMER so far against environment steps, mean ± std over seeds, paper's final MMER (≈)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    _plot_curves(ax, _curves_by_model(results, accumulate=True))
    trials = results[0]["config"]["num_trials"]
    if _paper_setup(trials, results[0]["config"]["trial_length"]):
        for model, value in LU2023_META_CARTPOLE_MMER.items():
            ax.axhline(value, linestyle=":", linewidth=0.8, color="grey")
            ax.annotate(f"paper {_label(model)}", (0, value), fontsize=7, va="bottom")
    ax.set(
        xlabel="environment steps",
        ylabel=f"MMER so far (max {trials})",
        title="Projected StatelessCartPole: learning curves",
    )
    fig.tight_layout()
    return fig


def cartpole_time_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Training time per model and the GRU-to-model time ratio, beside the paper's ≈2× for S5."""
    per_model = frame.groupby("model", sort=False).agg(
        runs=("seed", "size"),
        train_time_s=("train_time_s", "mean"),
        steps_per_s=("env_steps_per_s", "mean"),
        parameters=("parameters", "first"),
    )
    gru_time = per_model["train_time_s"].get("gru", np.nan)
    return pd.DataFrame(
        [
            {
                "model": _label(model),
                "parameters": f"{int(row['parameters']):,}",
                "runs": int(row["runs"]),
                "training time per run (s)": f"{row['train_time_s']:.0f}",
                "env steps / s": f"{row['steps_per_s']:.0f}",
                "GRU time / this model's": f"{gru_time / row['train_time_s']:.2f}×",
                "paper": f"≈{LU2023_META_CARTPOLE_GRU_OVER_S5_TIME:.0f}× (GPU)"
                if model == "s5"
                else "—",
            }
            for model, row in per_model.iterrows()
        ]
    )


# ----------------------------------------------------------------------------------------------
# Meta-RL 2: multi-task DMControl behind random projections


def dmc_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (run, task): mean return per trial, and the same per 1000 steps."""
    rows = []
    for result in results:
        config = result["config"]
        scale = DMC_STEP_LIMIT / config["trial_length"]
        for task, evaluation in result["evaluation"].items():
            rows.append(
                {
                    "model": config["model"],
                    "seed": config["seed"],
                    "task": task,
                    "split": evaluation["split"],
                    "mean_return": evaluation["mean_return"],
                    "return_per_1000": evaluation["mean_return"] * scale,
                    "trial_length": config["trial_length"],
                    "steps": result["curve"]["steps"][-1],
                }
            )
    return pd.DataFrame(rows)


def dmc_task_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Return per 1000 steps per task (rows) and model (columns), mean ± std over seeds."""
    rows = []
    keys = sorted(
        dict.fromkeys(zip(frame["split"], frame["task"], strict=True)),
        key=lambda key: key[0] != "train",
    )  # stable: training tasks first
    for split, task in keys:
        group = frame[(frame["split"] == split) & (frame["task"] == task)]
        row = {"split": split, "task": task}
        for model, per_model in group.groupby("model", sort=False):
            row[_label(model)] = _mean_std(per_model["return_per_1000"].to_numpy(), digits=0)
        row["paper"] = "fails for all models" if task in LU2023_META_DMC_FAILED else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def _dmc_paper(model: str, split: str) -> tuple[float, float] | None:
    if split == "train":
        value = LU2023_META_DMC_TRAIN.get(model)
        return None if value is None else (value, value)
    return LU2023_META_DMC_HELDOUT.get(model)


def dmc_summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over training and over held-out tasks per model, with its rank, beside the paper."""
    per_seed = frame.groupby(["split", "model", "seed"], sort=False)["return_per_1000"].mean()
    rows = []
    for split in ("train", "held-out"):
        if split not in per_seed.index.get_level_values(0):
            continue
        means = per_seed[split].groupby(level="model", sort=False).mean()
        ranks = means.rank(ascending=False, method="min").astype(int)
        paper_means = {
            m: float(np.mean(_dmc_paper(m, split)))
            for m in means.index
            if _dmc_paper(m, split) is not None
        }
        paper_ranks = pd.Series(paper_means).rank(ascending=False, method="min").astype(int)
        for model in means.index:
            paper = _dmc_paper(model, split)
            rows.append(
                {
                    "tasks": split,
                    "model": _label(model),
                    "seeds": int(per_seed[split][model].size),
                    "ours (per 1000 steps)": _mean_std(per_seed[split][model].to_numpy(), digits=0),
                    "paper (Muesli, ≈)": "—"
                    if paper is None
                    else (
                        f"{paper[0]:.0f}"
                        if paper[0] == paper[1]
                        else f"{paper[0]:.0f}–{paper[1]:.0f}"
                    ),
                    "rank ours / paper": f"{ranks[model]} / {paper_ranks.get(model, '—')}",
                    }
            )
    return pd.DataFrame(rows)


def plot_dmc_returns(frame: pd.DataFrame) -> plt.Figure:
    """Bars: return per 1000 steps per task and model (mean over seeds); paper means dashed."""
    splits = [s for s in ("train", "held-out") if s in set(frame["split"])]
    models = list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(1, len(splits), figsize=(6.0 * len(splits), 3.8), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        part = frame[frame["split"] == split]
        tasks = list(dict.fromkeys(part["task"]))
        width = 0.8 / len(models)
        for k, model in enumerate(models):
            means = [
                part[(part["task"] == t) & (part["model"] == model)]["return_per_1000"].mean()
                for t in tasks
            ]
            bars = ax.bar(np.arange(len(tasks)) + k * width, means, width, label=_label(model))
            paper = _dmc_paper(model, split)
            if paper is not None:
                ax.axhline(
                    np.mean(paper),
                    linestyle="--",
                    linewidth=0.8,
                    color=bars.patches[0].get_facecolor(),
                )
        ax.set_xticks(
            np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=30, ha="right", fontsize=8
        )
        ax.set(
            title=f"{split} tasks (dashed: paper's mean)",
            ylabel="return per 1000 steps",
            ylim=(0, 1000),
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_dmc_learning_curves(results: list[dict[str, Any]]) -> plt.Figure:
    """Mean training-episode return per update (per 1000 steps of trial), ± std over seeds."""
    config = results[0]["config"]
    scale = DMC_STEP_LIMIT / (config["trial_length"] * config["num_trials"])
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    _plot_curves(ax, _curves_by_model(results, accumulate=False, scale=scale))
    ax.set(
        xlabel="environment steps",
        ylabel="return per 1000 steps",
        title="Projected DMControl: training tasks",
    )
    fig.tight_layout()
    return fig
