"""Tables and figures of the Mamba-vs-DT chapter (Rezaei & Patel's Tables 2–3, and beyond);
its runs' frame is ``report.tables.offline_frame``, its verdicts ``report.claims.rezaei_claims``,
its parameter counts ``evaluate.code_checks.parameter_counts``."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ssmrl_lib.report.paper_numbers import REZAEI_TABLE2, REZAEI_TABLE3
from ssmrl_lib.report.tables import model_label
from ssmrl_lib.report.verdicts import interval_text, mean_interval


def table2(frame: pd.DataFrame) -> pd.DataFrame:
    """Return over all evaluation episodes (mean ± std) and normalized score with a 95 % t
    interval over seeds (none for one seed), beside the paper's Table 2 (whose reward units the
    paper does not state)."""
    rows = []
    for (env, label), group in frame.groupby(["env", "label"], sort=False):
        returns = np.concatenate([np.asarray(r) for r in group["returns"]])
        per_seed = group["score_mean"].to_numpy()
        paper = REZAEI_TABLE2.get((env, group["model"].iloc[0]))
        rows.append({
            "env": env,
            "model": label,
            "episodes": len(returns),
            "ours: return": f"{returns.mean():.1f} ± {returns.std():.1f}",
            "seeds": len(per_seed),
            "ours: normalized score [95% CI]":
                f"{per_seed.mean():.1f} {interval_text(mean_interval(per_seed), 1)}",
            "paper: reward (units unstated)": f"{paper[0]} ± {paper[1]}" if paper else "—",
        })
    return pd.DataFrame(rows)


def table3(costs: list[dict[str, Any]]) -> pd.DataFrame:
    """Rollout wall time and peak memory on a fixed workload, beside the paper's Table 3."""
    rows = []
    for cost in costs:
        paper = REZAEI_TABLE3.get(cost["model"])
        peak = cost["gpu_peak_mib"] if cost["gpu_peak_mib"] is not None else cost["peak_rss_mib"]
        rows.append({
            "env": cost["env"],
            "model": model_label(cost["model"], cost["mode"]),
            "parameters": f"{cost['parameters']:,}",
            "episodes × steps": f"{cost['episodes']} × {cost['env_steps'] // cost['episodes']}",
            "ours: time (s)": f"{cost['wall_time_s']:.1f}",
            "ours: ms per env step": f"{1000 * cost['wall_time_s'] / cost['env_steps']:.2f}",
            "ours: peak memory (MiB)": "—" if peak is None else f"{peak:.0f}"
            + (" (GPU)" if cost["gpu_peak_mib"] is not None else ""),
            "paper: time (s) / memory (GB)": f"{paper[0]:.0f} / {paper[1]}" if paper else "—",
        })
    return pd.DataFrame(rows)


def plot_context_scaling(benchmark: dict[str, Any]) -> plt.Figure:
    """Per-step inference latency and carried memory against context length (recorded bench)."""
    inference = pd.DataFrame(benchmark["inference"])
    training = pd.DataFrame(benchmark["training"])
    fig, (latency_ax, memory_ax, train_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    for model, group in inference.groupby("model", sort=False):
        latency_ax.plot(group["context_steps"], 1000 * group["median_step_s"], "o-", label=model)
        memory_ax.plot(group["context_steps"], group["carried_bytes"] / 2**20, "o-", label=model)
    for model, group in training.groupby("model", sort=False):
        train_ax.plot(group["context_len"], group["median_step_s"], "o-", label=model)
    latency_ax.set(xscale="log", yscale="log", xlabel="steps of history",
                   ylabel="ms per action", title="inference latency")
    memory_ax.set(xscale="log", yscale="log", xlabel="steps of history",
                  ylabel="MiB carried between steps", title="inference state")
    batch = training["batch_size"].iloc[0]
    train_ax.set(xscale="log", yscale="log", xlabel="context K (steps)",
                 ylabel="s per training step", title=f"training (batch {batch})")
    for ax, ticks in ((latency_ax, inference["context_steps"]), (memory_ax,
                      inference["context_steps"]), (train_ax, training["context_len"])):
        ax.set_xticks(sorted(set(ticks)), [str(t) for t in sorted(set(ticks))])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def crossover(benchmark: dict[str, Any], slower: str, faster: str) -> int | None:
    """Smallest history length from which ``faster`` stays quicker per step than ``slower``."""
    inference = pd.DataFrame(benchmark["inference"])
    a = inference[inference["model"] == slower].set_index("context_steps")["median_step_s"]
    b = inference[inference["model"] == faster].set_index("context_steps")["median_step_s"]
    lengths = sorted(set(a.index) & set(b.index))
    for i, length in enumerate(lengths):
        if all(b[n] < a[n] for n in lengths[i:]):
            return int(length)
    return None
