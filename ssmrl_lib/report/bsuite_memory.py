"""Table and figure of the bsuite memory-length runs beside Lu et al. (2023)'s Figure 2.

The paper gives these results only as a figure, so its numbers here are read off it (≈): S5
keeps a return of 1.0 up to memory length 512 and ≈0.5 at 1024; the LSTM is at 1.0 for short
lengths and degrades from length 16 on (no value per length can be read reliably). Its runtime
and memory against self-attention (≈, whole training runs) sit beside
``benchmarks/bsuite_scaling.py``'s one training pass per core (``scaling_table``).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ssmrl_lib.report.labels import MODEL_LABELS
from ssmrl_lib.report.paper_numbers import (
    LU2023_BSUITE_MEMORY_4096_GIB,
    LU2023_BSUITE_RUNTIME_2048_S,
)


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


def scaling_table(result: dict[str, Any]) -> pd.DataFrame:
    """``benchmarks/bsuite_scaling.py``'s recorded JSON as one row per (memory length, core):
    one training pass's median time and memory, each as a multiple of S5's at that length,
    beside the paper's Figure 2 on the lengths it reports (runtime at 2048, memory at 4096).

    The paper's figures are of whole training runs and ours of one pass, so only the multiples
    of S5 compare; the paper's own multiple is given with each of its numbers.
    """
    on_gpu = result["device"].startswith("cuda")
    memory_column = "peak GPU memory (MiB)" if on_gpu else "peak memory growth (MiB)"
    ratios = {row["memory_length"]: row for row in result["ratios_to_s5"]}
    rows = []
    for cell in result["cells"]:
        core, length = cell["core"], cell["memory_length"]
        ok = cell["status"] == "ok"
        rows.append({
            "memory length": length,
            "model": MODEL_LABELS.get(core, core),
            "one pass (s)": f"{cell['median_s']:.3g}" if ok else cell["status"],
            "time × S5": _times_s5(ratios[length], "time", cell),
            memory_column: _mib(cell["memory_mib"]) if ok else cell["status"],
            "memory × S5": _times_s5(ratios[length], "memory", cell),
            "paper: runtime of a run": _paper(LU2023_BSUITE_RUNTIME_2048_S, core, "s")
            if length == 2048 else "—",
            "paper: memory": _paper(LU2023_BSUITE_MEMORY_4096_GIB, core, "GiB")
            if length == 4096 else "—",
        })
    return pd.DataFrame(rows).sort_values(["memory length"], kind="stable", ignore_index=True)


def _times_s5(ratios: dict[str, Any], measure: str, cell: dict[str, Any]) -> str:
    """The cell's multiple of S5 in ``measure`` ("time" or "memory"; S5's own is 1), or —
    where either figure is missing (out of memory, or no memory figure on this platform)."""
    if cell["core"] == "s5":
        own = cell.get("median_s" if measure == "time" else "memory_mib")
        value = 1.0 if own else None
    else:
        value = ratios.get(f"{measure}_{cell['core']}_over_s5")
    return "—" if value is None else f"{value:.2f}"


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _paper(numbers: dict[str, float], core: str, unit: str) -> str:
    """The paper's figure for ``core`` and its multiple of S5's, or — where it gives none."""
    if core not in numbers:
        return "—"
    return f"≈{numbers[core]:,g} {unit} ({numbers[core] / numbers['s5']:.2f} × S5)"


def plot_scaling(result: dict[str, Any]) -> plt.Figure:
    """One training pass's time and memory against memory length per core (log-log), from
    ``benchmarks/bsuite_scaling.py``'s recorded JSON; a core's missing cells (out of memory)
    end its line."""
    on_gpu = result["device"].startswith("cuda")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, figure, label in ((axes[0], "median_s", "seconds per training pass"),
                              (axes[1], "memory_mib", "peak GPU memory (MiB)" if on_gpu
                               else "peak memory growth (MiB)")):
        for core in dict.fromkeys(cell["core"] for cell in result["cells"]):
            cells = [c for c in result["cells"] if c["core"] == core and c["status"] == "ok"
                     and c.get(figure)]
            ax.plot([c["memory_length"] for c in cells], [c[figure] for c in cells], "o-",
                    label=MODEL_LABELS.get(core, core))
        ax.set(xscale="log", yscale="log", xlabel="memory length", ylabel=label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig
