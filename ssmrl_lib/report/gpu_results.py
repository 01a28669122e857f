"""The GPU check's recorded results (``benchmarks/gpu_check.py``), beside the CPU figures.

The chapters show each ``benchmarks/results/<name>_gpu.json`` next to its CPU counterpart,
labelled with the GPU it ran on, or say that it has not been recorded yet. A dry run's files
(CI, ``"dry_run": true``) are never shown as results.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ssmrl_lib.paths import REPO_ROOT
from ssmrl_lib.report.labels import MODEL_LABELS, THROUGHPUT_WORKLOADS
from ssmrl_lib.report.provenance import benchmark_caption

RESULTS = REPO_ROOT / "benchmarks" / "results"


def load_gpu_result(name: str) -> dict[str, Any] | None:
    """``benchmarks/results/<name>_gpu.json``, or None when it is absent or a dry run's."""
    path = RESULTS / f"{name}_gpu.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    return None if result.get("dry_run") else result


def gpu_caption(result: dict[str, Any]) -> str:
    """Where a GPU result was recorded: the GPU, Decision Mamba's scan, the code commit."""
    return (
        f"**On the GPU ({result['gpu_name']})**, Decision Mamba's selective scan: "
        f"{result['mamba_scan']}. {benchmark_caption(result['machine'])}"
    )


def missing(names: list[str]) -> str:
    """The line saying which of ``names`` have no GPU result yet (empty when none)."""
    absent = [f"`benchmarks/results/{name}_gpu.json`" for name in names
              if load_gpu_result(name) is None]
    if not absent:
        return ""
    return (
        f"**GPU figures not recorded yet**: {', '.join(absent)} missing (no GPU check has run "
        "on this code). `make gpu-check` on a GPU machine writes them; see the README's "
        "\"On a GPU\"."
    )


def train_step_table(gpu: dict[str, Any], cpu: dict[str, Any] | None) -> pd.DataFrame:
    """Training-step time per model on the GPU, beside the recorded CPU time."""
    cpu_ms = {row["model"]: 1e3 * row["median_s"] for row in cpu["results"]} if cpu else {}
    return pd.DataFrame([
        {
            "model": row["model"],
            "GPU: ms per step": f"{row['median_ms']:.2f}",
            "GPU: vs DT": f"{row['ratio_to_dt']:.2f}×",
            "CPU: ms per step": f"{cpu_ms[row['model']]:.1f}" if row["model"] in cpu_ms else "—",
        }
        for row in gpu["results"]
    ])


def full_runs_table(gpu: dict[str, Any]) -> pd.DataFrame:
    """How far the full profile's training got on the GPU, and what the whole run would take."""
    return pd.DataFrame([
        {
            "model": run["model"],
            "steps": f"{run['steps_done']:,} of {run['steps_full']:,}",
            "ms per step": f"{1e3 * run['s_per_step']:.1f}",
            "whole run (min, projected)": f"{run['projected_full_train_s'] / 60:.0f}",
            "final loss": f"{run['final_loss']:.4f}",
        }
        for run in gpu["runs"]
    ])


def gpu_throughput_table(gpu: dict[str, Any]) -> pd.DataFrame:
    """PPO end to end on the GPU per core, by the wall clock (on a GPU the host's CPU time
    counts waiting, not work), with the paper's S5/GRU figure beside S5."""
    paper = gpu["paper_claim"]["s5_over_gru_speed"]
    rows = []
    for name, workload in gpu["workloads"].items():
        cores = workload["cores"]
        gru = cores.get("gru")
        for core, entry in cores.items():
            rows.append({
                "workload": THROUGHPUT_WORKLOADS.get(name, name),
                "model": MODEL_LABELS.get(core, core),
                "env steps / s (wall clock)": round(entry["steps_per_s_wall"]),
                "speed / GRU": (f"{entry['steps_per_s_wall'] / gru['steps_per_s_wall']:.2f}×"
                                if gru else ""),
                "time acting": f"{100 * entry['acting_share_wall']:.0f}%",
                "paper: speed / GRU (A40 GPU)":
                    f"≈{paper:.1f}×" if core == "s5" and name == "paper" else "",
            })
    return pd.DataFrame(rows)
