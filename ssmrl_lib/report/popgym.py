"""Tables and figures of the POPGym PPO runs, beside Lu et al. (2023)'s published numbers.

Paper numbers are Lu et al.'s Table 5 (MMER on the Hard tasks, mean ± std over 8 seeds, 15M
steps) and their end-to-end training times (≈1,750 s for S5 and ≈11,800 s for GRU on one A40),
from ``report.paper_numbers``. They only ever appear in columns labelled "paper"; the verdicts
are ``report.claims.popgym_claims``.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ssmrl_lib.report.labels import MODEL_LABELS, THROUGHPUT_WORKLOADS
from ssmrl_lib.report.paper_numbers import LU2023_PAPER_STEPS, LU2023_TABLE5, LU2023_WALL_TIME_S


def popgym_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: task, model, seed, MMER, steps, training time, speed."""
    rows = []
    for result in results:
        config = result["config"]
        rows.append({
            "env": config["env"],
            "model": config["model"],
            "seed": config["seed"],
            "mmer": np.nan if result["mmer"] is None else result["mmer"],
            "steps": result["curve"]["steps"][-1],
            "train_time_s": result["train_time_s"],
            "env_steps_per_s": result["env_steps_per_s"],
            "parameters": result["parameters"],
        })
    return pd.DataFrame(rows)


def budget_fraction(steps: int) -> float:
    return steps / LU2023_PAPER_STEPS


def mmer_table(frame: pd.DataFrame) -> pd.DataFrame:
    """MMER per (task, model): ours (mean ± std over seeds) beside Lu et al.'s Table 5."""
    rows = []
    for (env, model), group in frame.groupby(["env", "model"], sort=False):
        per_seed = group["mmer"].to_numpy(dtype=float)
        paper = LU2023_TABLE5.get((model, env))
        steps = int(group["steps"].max())
        mean = float(np.nanmean(per_seed)) if np.isfinite(per_seed).any() else math.nan
        rows.append({
            "task": env,
            "model": MODEL_LABELS.get(model, model),
            "seeds": len(per_seed),
            "steps": f"{steps:,}",
            "MMER ours": f"{mean:.2f} ± {np.nanstd(per_seed):.2f}" if np.isfinite(mean) else "—",
            "MMER paper": f"{paper[0]:.2f} ± {paper[1]:.2f}" if paper else "—",
        })
    return pd.DataFrame(rows)


def _running_max(values: list[float | None]) -> np.ndarray:
    """MMER so far after every update: running max of per-update mean returns (NaN-aware)."""
    array = np.array([np.nan if v is None else v for v in values], dtype=float)
    return np.fmax.accumulate(array)


def mmer_curves(results: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[np.ndarray, ...]]:
    """(task, model) -> (steps, MMER-so-far mean over seeds, std over seeds)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result["config"]["env"], result["config"]["model"]), []).append(result)
    curves = {}
    for key, runs in groups.items():
        length = min(len(r["curve"]["steps"]) for r in runs)
        stacked = np.stack([_running_max(r["curve"]["mean_return"])[:length] for r in runs])
        steps = np.asarray(runs[0]["curve"]["steps"][:length])
        curves[key] = (steps, stacked.mean(axis=0), stacked.std(axis=0))
    return curves


def normalized_mmer_curves(
    results: list[dict[str, Any]],
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Per model, MMER-so-far divided by the best model's final MMER on each task, task-averaged.

    Lu et al. do not state the normalisation of their Figure 3; dividing each task's MMER by
    the best model's is the one that turns their Table 5 into the figure's end points (S5 0.98,
    GRU 0.68, MLP 0.32 against ≈0.96, ≈0.68, ≈0.32). Tasks where the best final MMER is not
    positive cannot be normalised this way and are left out; their names are returned.
    """
    curves = mmer_curves(results)
    tasks = sorted({env for env, _ in curves})
    models = sorted({model for _, model in curves}, key=list(MODEL_LABELS).index)
    kept, skipped = [], []
    for task in tasks:
        best = max(curves[(task, m)][1][-1] for m in models if (task, m) in curves)
        (kept if np.isfinite(best) and best > 0 else skipped).append((task, best))
    normalized = {}
    for model in models:
        per_task = [
            (curves[(task, model)][0], curves[(task, model)][1] / best)
            for task, best in kept if (task, model) in curves
        ]
        if not per_task:
            continue
        length = min(len(c) for _, c in per_task)
        normalized[model] = (per_task[0][0][:length], np.mean([c[:length] for _, c in per_task],
                                                              axis=0))
    return normalized, [task for task, _ in skipped]


def paper_normalized_endpoints() -> dict[str, float]:
    """Lu et al.'s Table 5 normalised as in ``normalized_mmer_curves`` (S5, GRU, MLP)."""
    models = ("s5", "gru", "mlp")
    tasks = sorted({task for _, task in LU2023_TABLE5})
    best = {t: max(LU2023_TABLE5[(m, t)][0] for m in models) for t in tasks}
    return {m: float(np.mean([LU2023_TABLE5[(m, t)][0] / best[t] for t in tasks])) for m in models}


def plot_learning_curves(results: list[dict[str, Any]], schedule: int | None = None,
                         milestones: tuple[int, ...] = ()) -> plt.Figure:
    """Left: normalized MMER averaged over tasks; right: MMER so far per task, ± std over seeds.
    ``schedule``: draw the x-axes over that many steps (the paper's), with ``milestones``."""
    curves = mmer_curves(results)
    normalized, skipped = normalized_mmer_curves(results)
    tasks = sorted({env for env, _ in curves})
    fig, axes = plt.subplots(1, 1 + len(tasks), figsize=(4.0 * (1 + len(tasks)), 3.6),
                             squeeze=False)
    ax = axes[0, 0]
    for model, (steps, curve) in normalized.items():
        ax.plot(steps, curve, label=MODEL_LABELS.get(model, model))
    title = "normalized MMER" + (f"\n(without {', '.join(skipped)})" if skipped else "")
    ax.set(title=title, xlabel="environment steps", ylabel="MMER / best final MMER")
    ax.legend(fontsize=8)
    for column, task in enumerate(tasks, start=1):
        ax = axes[0, column]
        for (env, model), (steps, mean, std) in curves.items():
            if env != task:
                continue
            ax.plot(steps, mean, label=MODEL_LABELS.get(model, model))
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        ax.set(title=task, xlabel="environment steps", ylabel="MMER so far")
    if schedule:
        for ax in axes.flat:
            ax.set_xlim(0, schedule)
            for milestone in milestones:
                ax.axvline(milestone, color="grey", lw=0.6, ls=":")
    fig.tight_layout()
    return fig


def wall_time_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Training time per run and speed per model, with the ratio to GRU beside the paper's."""
    per_model = frame.groupby("model", sort=False).agg(
        runs=("seed", "size"), train_time_s=("train_time_s", "mean"),
        steps_per_s=("env_steps_per_s", "mean"), parameters=("parameters", "first"),
    )
    gru_time = per_model["train_time_s"].get("gru", math.nan)
    paper_gru = LU2023_WALL_TIME_S["gru"]
    rows = []
    for model, row in per_model.iterrows():
        paper = LU2023_WALL_TIME_S.get(model)
        rows.append({
            "model": MODEL_LABELS.get(model, model),
            "parameters": f"{int(row['parameters']):,}",
            "runs": int(row["runs"]),
            "training time per run (s)": f"{row['train_time_s']:.0f}",
            "env steps / s": f"{row['steps_per_s']:.0f}",
            "GRU time / this model's": f"{gru_time / row['train_time_s']:.2f}×",
            "paper time (s)": f"{paper:,.0f}" if paper else "—",
            "paper GRU time / this model's": f"{paper_gru / paper:.1f}×" if paper else "—",
        })
    return pd.DataFrame(rows)


def plot_scan_benchmark(benchmark: dict[str, Any]) -> plt.Figure:
    """Median time against sequence length per model, forward and forward+backward, log-log
    (``benchmarks/scan_vs_rnn.py``'s recorded result)."""
    rows = benchmark["results"]
    lengths = sorted({r["length"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, mode in zip(axes, ("forward", "forward+backward"), strict=True):
        for model in dict.fromkeys(r["model"] for r in rows):
            points = sorted(
                (r["length"], r["median_ms"]) for r in rows
                if r["model"] == model and r["mode"] == mode
            )
            ax.plot(*zip(*points, strict=True), marker="o", label=model)
        ax.set(xscale="log", yscale="log", xlabel="sequence length", title=mode)
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median wall-clock (ms)")
    axes[1].legend(fontsize=8)
    fig.suptitle(
        f"batch {benchmark['batch']}, H = P = {benchmark['hidden']}, "
        f"{benchmark['machine']['threads']} torch thread(s)"
    )
    fig.tight_layout()
    return fig


def throughput_table(benchmark: dict[str, Any]) -> pd.DataFrame:
    """End-to-end PPO environment steps per second per core and workload
    (``benchmarks/ppo_throughput.py``), by CPU time and wall clock, each core's speed relative
    to the GRU's, the share of time spent acting, and the paper's S5/GRU figure beside S5."""
    paper = benchmark["paper_claim"]["s5_over_gru_speed"]
    rows = []
    for name, workload in benchmark["workloads"].items():
        cores = workload["cores"]
        for core, entry in cores.items():
            gru = cores.get("gru")
            rows.append({
                "workload": THROUGHPUT_WORKLOADS.get(name, name),
                "model": MODEL_LABELS.get(core, core),
                "env steps / s (CPU time)": round(entry["steps_per_s_cpu"]),
                "env steps / s (wall clock)": round(entry["steps_per_s_wall"]),
                "speed / GRU (CPU time)":
                    f"{entry['steps_per_s_cpu'] / gru['steps_per_s_cpu']:.2f}×" if gru else "",
                "time acting": f"{100 * entry['acting_share_cpu']:.0f}%",
                "paper: speed / GRU (A40 GPU)":
                    f"≈{paper:.1f}×" if core == "s5" and name == "paper" else "",
            })
    return pd.DataFrame(rows)


def throughput_workload_note(benchmark: dict[str, Any]) -> str:
    """One sentence per workload: its rollout shape, what was timed, and the load meanwhile."""
    notes = []
    for name, w in benchmark["workloads"].items():
        timed = (
            "every epoch timed" if w["timed_epochs"] >= w["epochs"]
            else f"the first {w['timed_epochs']} of its {w['epochs']} epochs timed and the "
                 "median one counted for the rest"
        )
        updates = "one update" if w["updates"] == 1 else f"{w['updates']} updates"
        label = THROUGHPUT_WORKLOADS.get(name, name)
        notes.append(
            f"{label[0].upper() + label[1:]} workload: {updates} of {w['num_envs']} "
            f"environments × {w['unroll']} steps, {w['epochs']} epochs of {w['minibatches']} "
            f"minibatches ({timed}), median of {w['repeats']} run(s) per model."
        )
    start, end = benchmark["load_average_at_start"][0], benchmark["load_average_at_end"][0]
    notes.append(
        f"The machine was shared with other jobs: 1-minute load average {start:.1f} at the start "
        f"and {end:.1f} at the end, on {benchmark['machine']['logical_cpus']} logical CPUs."
    )
    return " ".join(notes)
