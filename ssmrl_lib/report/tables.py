"""Tables of finished runs: ours beside the papers', with a verdict per row."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ssmrl_lib.evaluate.scores import bootstrap_ci
from ssmrl_lib.report.paper_numbers import CORL_DT, DT_PAPER, DT_PAPER_TRAIN_STEPS

PAPER_QUALITY = "medium"


def dataset_quality(dataset_id: str) -> str:
    """``medium`` from ``ssmrl/hopper/medium-v0`` (the part after the environment)."""
    match = re.match(r"^(?:.*/)?[^/]+/([a-z\-]+?)(?:-v\d+)?$", dataset_id)
    return match.group(1) if match else dataset_id


def runs_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (run, return target) with its final evaluation."""
    rows = []
    for result in results:
        config = result["config"]
        for evaluation in result["evaluations"]:
            rows.append({
                "model": config["model_name"],
                "env": config["env"],
                "dataset": config["dataset"],
                "seed": config["seed"],
                "train_steps": config["train"]["steps"],
                "target": evaluation["target"],
                "return_mean": evaluation["return_mean"],
                "score_mean": evaluation["score_mean"],
                "final_loss": result["final_loss"],
                "wall_time_s": result["wall_time_s"],
            })
    return pd.DataFrame(rows)


def verdict(
    ours_ci: tuple[float, float],
    paper: tuple[float, float] | None,
    same_data: bool,
    train_steps: int = DT_PAPER_TRAIN_STEPS,
) -> str:
    """Reproduced when our 95% CI over seeds overlaps the paper's mean ± std.

    Below it after fewer training steps than the paper's is "not reached": the paper's budget
    was not spent, so the run neither confirms nor refutes the number.
    """
    if paper is None:
        return "no paper number"
    if not same_data:
        return "not comparable: other data"
    low, high = paper[0] - paper[1], paper[0] + paper[1]
    if ours_ci[1] < low:
        if train_steps < DT_PAPER_TRAIN_STEPS:
            budget = 100 * train_steps / DT_PAPER_TRAIN_STEPS
            return f"not reached (budget {budget:.2g}% of paper's)"
        return "below paper"
    if ours_ci[0] > high:
        return "above paper"
    return "reproduced"


def dt_score_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalized score per (model, env, dataset, target): ours over seeds beside DT's and CORL's.

    The paper columns are the paper's own dataset of the same quality; when our dataset is of
    another quality the row still shows the medium-dataset numbers, marked not comparable.
    """
    rows = []
    for (model, env, dataset, target), group in frame.groupby(
        ["model", "env", "dataset", "target"], sort=False
    ):
        per_seed = group["score_mean"].to_numpy()
        quality = dataset_quality(dataset)
        key = (env, quality if (env, quality) in DT_PAPER else PAPER_QUALITY)
        paper, corl = DT_PAPER.get(key), CORL_DT.get(key)
        ci = bootstrap_ci(per_seed)
        rows.append({
            "model": model,
            "env": env,
            "target": f"{target:g}",
            "data: ours / paper": f"{quality} / {key[1]}",
            "ours (seeds)": f"{per_seed.mean():.1f} ± {per_seed.std():.1f} ({len(per_seed)})",
            "ours 95% CI": f"[{ci[0]:.1f}, {ci[1]:.1f}]",
            "paper: DT": f"{paper[0]:.1f} ± {paper[1]:.1f}" if paper else "—",
            "paper: CORL last / best": f"{corl[0]:.1f} / {corl[1]:.1f}" if corl else "—",
            "verdict": verdict(
                ci, paper, same_data=key[1] == quality, train_steps=int(group["train_steps"].min())
            ),
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
    from ssmrl_lib.data.local_store import local_dataset_ids
    from ssmrl_lib.data.recipes import NotAvailable, choose_checkpoint
    from ssmrl_lib.envs import TASKS

    lines, local = [], set(local_dataset_ids())
    for env in (env for env in TASKS if env not in envs):
        dataset = dataset_pattern.format(env=env)
        why = "not asked for in this execution (add it with `-p envs`)"
        if dataset not in local:
            why = f"`{dataset}` is not built"
            if dataset.startswith("ssmrl/") and dataset_quality(dataset) == "medium":
                try:
                    choose_checkpoint(TASKS[env], "medium")
                    why += " yet (run `make data`)"
                except NotAvailable as reason:
                    why += f": {reason}"
        lines.append(f"- **{env}** is left out: {why}.")
    return "\n".join(lines)


def settings_table(settings: Any, paper: Any) -> pd.DataFrame:
    """The settings of this execution that differ from the paper-scale (``full``) profile."""
    import dataclasses

    rows = [
        {"setting": field.name, "this run": _setting_text(getattr(settings, field.name)),
         "paper scale (full)": _setting_text(getattr(paper, field.name))}
        for field in dataclasses.fields(settings)
        if getattr(settings, field.name) != getattr(paper, field.name)
    ]
    return pd.DataFrame(rows, columns=["setting", "this run", "paper scale (full)"])


def _setting_text(value: Any) -> str:
    """A setting as written in a config: 0.002 and 5e-05, not 0.002000 and 0.000050."""
    return f"{value:g}" if isinstance(value, float) else str(value)
