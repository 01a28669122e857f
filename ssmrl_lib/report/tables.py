"""Tables of finished runs: ours beside the papers' (verdicts: ``report.claims``)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ssmrl_lib.profiles import setting_values
from ssmrl_lib.report.paper_numbers import CORL_DT, DT_PAPER
from ssmrl_lib.report.verdicts import interval_text, mean_interval

PAPER_QUALITY = "medium"


def dataset_quality(dataset_id: str) -> str:
    """``medium`` from ``ssmrl/hopper/medium-v0`` (the part after the environment)."""
    match = re.match(r"^(?:.*/)?[^/]+/([a-z\-]+?)(?:-v\d+)?$", dataset_id)
    return match.group(1) if match else dataset_id


def model_label(model: str, mode: str) -> str:
    """``dt``, ``mamba (recurrent)``, ``mamba (window)``: DT only acts one way."""
    return model if model == "dt" else f"{model} ({mode})"


def offline_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (offline run, acting mode, return target) with its final evaluation: every
    episode's return, their mean and the mean normalized score."""
    rows = []
    for result in results:
        config = result["config"]
        for evaluation in result["evaluations"]:
            rows.append({
                "model": config["model_name"],
                "label": model_label(config["model_name"], evaluation.get("mode", "window")),
                "env": config["env"],
                "dataset": config["dataset"],
                "seed": config["seed"],
                "train_steps": config["train"]["steps"],
                "target": evaluation["target"],
                "returns": evaluation["returns"],
                "return_mean": evaluation["return_mean"],
                "score_mean": evaluation["score_mean"],
                "final_loss": result["final_loss"],
                "parameters": result["parameters"],
                "wall_time_s": result["wall_time_s"],
            })
    return pd.DataFrame(rows)


def dt_score_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalized score per (model, env, dataset, target): ours over seeds (mean ± std, and a
    95 % t interval over seeds, none for one seed) beside DT's and CORL's.

    The paper columns are the paper's own dataset of the same quality; when our dataset is of
    another quality the row still shows the medium-dataset numbers (the data column says so).
    """
    rows = []
    for (model, env, dataset, target), group in frame.groupby(
        ["model", "env", "dataset", "target"], sort=False
    ):
        per_seed = group["score_mean"].to_numpy()
        quality = dataset_quality(dataset)
        key = (env, quality if (env, quality) in DT_PAPER else PAPER_QUALITY)
        paper, corl = DT_PAPER.get(key), CORL_DT.get(key)
        rows.append({
            "model": model,
            "env": env,
            "target": f"{target:g}",
            "data: ours / paper": f"{quality} / {key[1]}",
            "ours (seeds)": f"{per_seed.mean():.1f} ± {per_seed.std():.1f} ({len(per_seed)})",
            "ours 95% CI": interval_text(mean_interval(per_seed), 1),
            "paper: DT": f"{paper[0]:.1f} ± {paper[1]:.1f}" if paper else "—",
            "paper: CORL last / best": f"{corl[0]:.1f} / {corl[1]:.1f}" if corl else "—",
        })
    return pd.DataFrame(rows)


def mean_over_seeds(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std across seeds of equally long curves."""
    stacked = np.stack(values)
    return stacked.mean(axis=0), stacked.std(axis=0)


def dataset_markdown(results: list[dict[str, Any]]) -> str:
    """A bullet per dataset: its size, and whether it is of the paper's quality."""
    sizes = {r["config"]["dataset"]: (r["dataset_episodes"], r["dataset_steps"]) for r in results}
    lines = []
    for dataset in sorted(sizes):
        quality = dataset_quality(dataset)
        if quality != PAPER_QUALITY:
            relation = (f"**not** the paper's D4RL medium data ({quality!r}), so the verdicts "
                        "below cannot confirm or refute the paper")
        elif dataset.startswith("ssmrl/"):
            relation = ("the paper's quality, rebuilt by D4RL's medium recipe from this "
                        "project's own behavior policy on the gymnasium v5 environment (see the "
                        "Datasets chapter): a stand-in for D4RL's file, not the file itself")
        else:
            relation = "the same quality as the paper's D4RL dataset"
        episodes, steps = sizes[dataset]
        lines.append(f"- `{dataset}`: {episodes} episodes, {steps} steps; {relation}.")
    return "\n".join(lines)


def absent_envs_markdown(envs: tuple | list, dataset_pattern: str) -> str:
    """A bullet per locomotion task left out of this execution, saying why: its dataset is not
    built (for our D4RL recipes: the reason the recipe is unavailable) or it was not asked for."""
    from ssmrl_lib.data.checkpoint_choice import NotAvailable, choose_checkpoint
    from ssmrl_lib.data.local_store import local_dataset_ids
    from ssmrl_lib.envs import MUJOCO_TASKS

    lines, local = [], set(local_dataset_ids())
    for env in (env for env in MUJOCO_TASKS if env not in envs):
        dataset = dataset_pattern.format(env=env)
        why = "not asked for in this execution (add it with `-p envs`)"
        if dataset not in local:
            why = f"`{dataset}` is not built"
            if dataset.startswith("ssmrl/") and dataset_quality(dataset) == "medium":
                try:
                    choose_checkpoint(MUJOCO_TASKS[env], "medium")
                    why += " yet (run `make data`)"
                except NotAvailable as reason:
                    why += f": {reason}"
        lines.append(f"- **{env}** is left out: {why}.")
    return "\n".join(lines)


def settings_table(settings: Any, paper: Any) -> pd.DataFrame:
    """The settings of this execution that differ from the paper-scale (``full``) profile, by
    their dotted names (``ppo.learning_rate``)."""
    ours, papers = setting_values(settings), setting_values(paper)
    rows = [
        {"setting": name, "this run": _setting_text(value),
         "paper scale (full)": _setting_text(papers[name])}
        for name, value in ours.items() if value != papers[name]
    ]
    return pd.DataFrame(rows, columns=["setting", "this run", "paper scale (full)"])


def _setting_text(value: Any) -> str:
    """A setting as written in a config: 0.002 and 5e-05, not 0.002000 and 0.000050."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def primary_target(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows at each environment's highest return target (the paper's first): one per run
    and mode, as the aggregate over tasks and the Claims page read them."""
    return frame[frame["target"] == frame.groupby("env")["target"].transform("max")]
