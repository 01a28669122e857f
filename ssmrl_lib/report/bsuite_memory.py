"""Table and figure of the bsuite memory-length runs beside Lu et al. (2023)'s Figure 2.

The paper gives these results only as a figure, so its numbers here are read off it (≈): S5
keeps a return of 1.0 up to memory length 512 and ≈0.5 at 1024; the LSTM is at 1.0 for short
lengths and degrades from length 16 on (no value per length can be read reliably).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ssmrl_lib.report.labels import MODEL_LABELS


def paper_value(model: str, length: int) -> str | None:
    """The paper's result as read off its Figure 2, or None where it gives none."""
    if model == "s5":
        if length <= 512:
            return "≈1.0"
        return "≈0.5" if length == 1024 else None
    if model == "lstm":
        return "≈1.0" if length < 16 else "< 1 (degrades)"
    return None


def bsuite_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([
        {
            "length": r["config"]["memory_length"],
            "model": r["config"]["model"],
            "seed": r["config"]["seed"],
            "final_return": np.nan if r["final_return"] is None else r["final_return"],
            "episodes": r["config"]["episodes"],
            "train_time_s": r["train_time_s"],
            "peak_memory_mib": _peak_memory_mib(r.get("peak_memory")),
        }
        for r in results
    ])


def _peak_memory_mib(memory: dict[str, float | None] | None) -> float:
    """GPU peak allocation where a GPU ran, else the process's peak resident memory.

    Not the growth over the run: with models this small it is below the allocator's noise (and
    the first run in a process pays for one-off allocations), while the peak is stable.
    """
    if not memory:
        return np.nan
    value = memory["gpu_peak_mib"] if memory["gpu_peak_mib"] is not None else memory[
        "peak_rss_mib"]
    return np.nan if value is None else float(value)


def final_return_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Final return per (memory length, model): ours (mean ± std over seeds) beside the paper."""
    rows = []
    for (length, model), group in frame.groupby(["length", "model"], sort=True):
        values = group["final_return"].to_numpy(dtype=float)
        mean = float(np.nanmean(values))
        rows.append({
            "memory length": int(length),
            "model": MODEL_LABELS.get(model, model),
            "seeds": len(values),
            "episodes": f"{int(group['episodes'].iloc[0]):,}",
            "return ours": f"{mean:.2f} ± {np.nanstd(values):.2f}",
            "return paper": paper_value(model, int(length)) or "—",
            "training time (s)": f"{group['train_time_s'].mean():.0f}",
            "peak memory (MiB)": f"{group['peak_memory_mib'].mean():.0f}",
        })
    return pd.DataFrame(rows)


def plot_memory_length(frame: pd.DataFrame) -> plt.Figure:
    """Final return, training time and peak training memory per run against memory length."""
    fig, (score_ax, time_ax, memory_ax) = plt.subplots(1, 3, figsize=(13.0, 3.6))
    for model, group in frame.groupby("model", sort=False):
        stats = group.groupby("length").agg(
            mean=("final_return", "mean"), std=("final_return", "std"),
            time=("train_time_s", "mean"), memory=("peak_memory_mib", "mean"),
        )
        label = MODEL_LABELS.get(model, model)
        score_ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0.0), marker="o",
                          capsize=3, label=label)
        time_ax.plot(stats.index, stats["time"], marker="o", label=label)
        memory_ax.plot(stats.index, stats["memory"], marker="o", label=label)
    score_ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    score_ax.set(ylabel="final return", ylim=(-1.05, 1.05),
                 title="return of the last 10% of episodes")
    time_ax.set(ylabel="training time per run (s)", title="training time", ylim=(0, None))
    # From zero: the differences are the process's, not the models' (see _peak_memory_mib).
    memory_ax.set(ylabel="MiB", title="peak memory while training", ylim=(0, None))
    lengths = sorted(frame["length"].unique())
    for ax in (score_ax, time_ax, memory_ax):
        ax.set_xscale("log")
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("memory length")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_episode_returns(result: dict[str, Any]) -> np.ndarray:
    """One return per training episode, in order: each update's mean return repeated for the
    episodes that ended in it (an update of 32 steps ends at most a few)."""
    curve = result["curve"]
    means = np.array([np.nan if m is None else m for m in curve["mean_return"]], dtype=float)
    return np.repeat(means, np.asarray(curve["episodes"], dtype=int))


def plot_schedule_curves(results: list[dict[str, Any]], paper_episodes: int,
                         milestones: tuple[int, ...], window: int = 100) -> plt.Figure:
    """Each memory length's training curves over the paper's whole schedule: the return of the
    last ``window`` episodes, mean over seeds (band: the seeds' range), with the milestones."""
    frame = pd.DataFrame([{"length": r["config"]["memory_length"], "model": r["config"]["model"],
                           "returns": training_episode_returns(r)} for r in results])
    lengths = sorted(frame["length"].unique())
    columns = min(len(lengths), 4)
    rows = -(-len(lengths) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.5 * rows), sharey=True,
                             squeeze=False)
    for ax, length in zip(axes.flat, lengths, strict=False):
        for model, group in frame[frame["length"] == length].groupby("model", sort=False):
            episodes = min(len(r) for r in group["returns"])
            width = min(window, episodes)  # a run shorter than the window: its whole mean
            if width == 0:
                continue
            kernel = np.ones(width) / width
            smoothed = np.stack([np.convolve(r[:episodes], kernel, mode="valid")
                                 for r in group["returns"]])
            x = np.arange(width, episodes + 1)
            line, = ax.plot(x, smoothed.mean(axis=0), lw=1.2,
                            label=f"{MODEL_LABELS.get(model, model)} ({len(smoothed)} seeds)")
            ax.fill_between(x, smoothed.min(axis=0), smoothed.max(axis=0), alpha=0.2,
                            color=line.get_color())
        for milestone in milestones:
            ax.axvline(milestone, color="grey", lw=0.6, ls=":")
        ax.axhline(1.0, color="tab:green", lw=0.8, ls="--")
        ax.set(title=f"memory length {length}", xlim=(0, paper_episodes), ylim=(-1.05, 1.05))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    for ax in axes[-1]:
        ax.set_xlabel("training episode")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"return, last {window} episodes")
    for ax in list(axes.flat)[len(lengths):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
