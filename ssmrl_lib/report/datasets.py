"""The Datasets chapter's tables and figures: behavior policies and D4RL-recipe datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import minari
import numpy as np
import pandas as pd

from ssmrl_lib.data.checkpoint_choice import (
    D4RL_DATASET_SCORES,
    EXPERT_LEVEL,
    MEDIUM_TOLERANCE,
    NotAvailable,
    choose_checkpoint,
    recipe_action_sampling,
)
from ssmrl_lib.data.policy_dir import policies_root, read_evaluations
from ssmrl_lib.data.recipes import recipe_dataset_id
from ssmrl_lib.data.sb3 import ALGORITHMS
from ssmrl_lib.data.summary import episode_returns
from ssmrl_lib.envs import MUJOCO_TASKS, get_task, normalized_score
from ssmrl_lib.report.provenance import benchmark_caption


def datasets_frame(names: list[str]) -> pd.DataFrame:
    """Episodes, transitions and normalized score (mean ± std over episodes) beside D4RL."""
    rows = []
    for name in names:
        _, env, version = name.split("/")
        quality = version.rsplit("-v", 1)[0]
        task = get_task(env)
        dataset = minari.load_dataset(name)
        scores = normalized_score(task, episode_returns(name))
        rows.append({
            "dataset": name,
            "stands in for": f"{env}-{quality}",
            "episodes": dataset.total_episodes,
            "transitions": dataset.total_steps,
            "normalized score": f"{scores.mean():.1f} ± {scores.std():.1f}",
            "D4RL": D4RL_DATASET_SCORES[env][quality],
            "actions": collected_actions(dataset.storage.metadata),
        })
    return pd.DataFrame(rows)


def collected_actions(metadata: dict[str, Any]) -> str:
    """How a dataset's actions were chosen: ``mean`` or ``sample`` (of the policy's
    tanh-Gaussian) for medium/expert, from its ``ssmrl`` provenance."""
    if "ssmrl" not in metadata:
        return "not recorded"
    meta = json.loads(metadata["ssmrl"])
    recipe = meta.get("recipe")
    if recipe == "random":
        return "uniform random"
    if recipe == "medium-replay":
        return "replay buffer (exploration samples)"
    parts = [meta["medium"], meta["expert"]] if recipe == "medium-expert" else [meta]
    # Datasets built before the mode was recorded took the mean action.
    return " + ".join(dict.fromkeys(part.get("action_sampling", "mean") for part in parts))


def dataset_source(name: str) -> str:
    """Where a dataset came from, in one line: the recipe's provenance (policy checkpoint or
    replay file, with hashes), or for a dataset made by ``ssmrl data make`` its policy and
    commit as Minari's own metadata records them."""
    metadata = minari.load_dataset(name).storage.metadata
    if "ssmrl" not in metadata:
        return (f"`{name}`: {metadata.get('description', 'no description')} "
                f"({metadata.get('code_permalink', 'code commit not recorded')})")
    meta = json.loads(metadata["ssmrl"])
    if "checkpoint_sha256" in meta:
        source = f"checkpoint `{meta['checkpoint']}` (sha256 `{meta['checkpoint_sha256'][:12]}`)"
    elif "replay_file_sha256" in meta:
        source = (f"replay up to step {meta['replay_until_step']} "
                  f"(sha256 `{meta['replay_file_sha256'][:12]}`)")
    else:
        source = meta["policy"]
    return f"`{name}`: {source}, seed {meta['seed']}, code `{meta['code_commit']}`"


def policies_frame(envs: list[str], policies_dir: Path | None = None) -> pd.DataFrame:
    """Per behavior policy: steps trained, best score, and the medium/expert checkpoints."""
    root = Path(policies_dir) if policies_dir else policies_root()
    rows = []
    for env in envs:
        task = get_task(env)
        evaluations = read_evaluations(root / env)
        row: dict[str, Any] = {"env": env, "algorithm": ALGORITHMS[env]}
        if not evaluations:
            rows.append(row | {"steps trained": 0})
            continue
        best = max(evaluations, key=lambda r: r["normalized_mean"])
        row |= {
            "steps trained": evaluations[-1]["step"],
            "last score": f"{evaluations[-1]['normalized_mean']:.1f}",
            "best score": f"{best['normalized_mean']:.1f} (step {best['step']})",
        }
        row["dataset actions"] = recipe_action_sampling(task, root / env)
        for quality in ("medium", "expert"):
            try:
                choice = choose_checkpoint(task, quality, root / env)
                row[quality] = f"step {choice.step}: {choice.normalized_mean:.1f}"
            except NotAvailable:
                row[quality] = "not reached"
        rows.append(row)
    return pd.DataFrame(rows)


def trainings_apart(envs: list[str], training_dir: Path) -> list[str]:
    """The environments whose training in ``training_dir`` is not the policy in place
    (``data/policies``): still retraining, or trained on since it was swapped in. A swap copies
    the evaluation log, so a training swapped in has a log that begins the policy's: the same,
    or shorter where its committed state is older than the policy (a state is tens of MB, so
    it is not committed at every evaluation)."""
    def log_lines(policy_dir: Path) -> list[str]:
        path = policy_dir / "evaluations.csv"
        return path.read_text().splitlines() if path.is_file() else []

    apart = []
    for env in envs:
        training, in_place = log_lines(training_dir / env), log_lines(policies_root() / env)
        if training and training != in_place[:len(training)]:
            apart.append(env)
    return apart


def plot_behavior_training_curves(envs: list[str], policies_dir: Path | None = None):
    """Normalized score of each behavior policy's evaluations (mean actions, and sampled ones
    where the training scored them), with the medium band of the actions the recipe takes."""
    import matplotlib.pyplot as plt

    root = Path(policies_dir) if policies_dir else policies_root()
    fig, axes = plt.subplots(1, len(envs), figsize=(4 * len(envs), 3), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        evaluations = read_evaluations(root / env)
        target = D4RL_DATASET_SCORES[env]["medium"]
        band = MEDIUM_TOLERANCE[recipe_action_sampling(get_task(env), root / env)]
        ax.axhspan(target * (1 - band), target * (1 + band),
                   color="tab:orange", alpha=0.15, label=f"medium level (±{band:.0%})")
        ax.axhline(EXPERT_LEVEL, color="tab:green", ls="--", lw=1, label="expert level")
        if evaluations:
            steps = np.array([r["step"] for r in evaluations])
            mean = np.array([r["normalized_mean"] for r in evaluations])
            std = np.array([r["normalized_std"] for r in evaluations])
            ax.plot(steps, mean, color="tab:blue", label=f"{ALGORITHMS[env]}, mean action")
            ax.fill_between(steps, mean - std, mean + std, color="tab:blue", alpha=0.2)
            sampled = np.array([r.get("sampled_normalized_mean", np.nan) for r in evaluations])
            if np.isfinite(sampled).any():
                ax.plot(steps, sampled, color="tab:purple", label="sampled actions")
        else:
            ax.text(0.5, 0.5, "no evaluations yet", ha="center", transform=ax.transAxes)
        ax.set_title(MUJOCO_TASKS[env].gym_id)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("normalized score")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_return_histograms(names: list[str]):
    """Histogram of episode normalized scores, one panel per dataset."""
    import matplotlib.pyplot as plt

    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        env = name.split("/")[1]
        scores = normalized_score(get_task(env), episode_returns(name))
        ax.hist(scores, bins=40, color="tab:blue")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("episode normalized score")
    fig.tight_layout()
    return fig


def rebuild_benchmark(path: Path) -> tuple[pd.DataFrame, str] | None:
    """The recorded `make data` benchmark (``benchmarks/dataset_build.py``): a row per dataset
    and a sentence with the total; None if it was never run."""
    path = Path(path)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    frame = pd.DataFrame([
        {
            "dataset": entry["name"],
            "status": entry["status"],
            "episodes": entry["episodes"] or None,
            "transitions": entry["transitions"] or None,
            "seconds": round(entry["seconds"]) if entry["status"] == "built" else None,
            "same arrays as data/minari": entry["same_as_main_store"],
            "why skipped": entry["detail"] if entry["status"] == "skipped" else "",
        }
        for entry in record["datasets"]
    ])
    # Whole numbers, blank where a recipe was skipped (not 44971.000000 and nan).
    frame = frame.astype({"episodes": "Int64", "transitions": "Int64", "seconds": "Int64"})
    minutes, target = record["wall_seconds"] / 60, record["target_seconds"] / 60
    verdict = "within" if minutes <= target else "over"
    built = frame[frame["status"] == "built"]
    busy = built["seconds"].sum() / (record["jobs"] * record["wall_seconds"])
    sentence = (
        f"All {len(built)} available datasets ({built['transitions'].sum() / 1e6:.1f}M "
        f"transitions) were rebuilt in **{minutes:.1f} min** with {record['jobs']} parallel jobs "
        f"({verdict} the {target:.0f}-minute target); the jobs kept the {record['jobs']} "
        f"workers busy {busy:.0%} of that time. {benchmark_caption(record['machine'])}"
    )
    return frame, sentence


def portability_check(path: Path) -> str | None:
    """A sentence: did the datasets rebuilt with another CPU's kernels (``dataset_build.py
    --other-kernels``) come out with the same arrays as ``data/minari``? None if never run."""
    path = Path(path)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    compared = [e for e in record["datasets"] if e["same_as_main_store"] is not None]
    differing = [e["name"] for e in compared if not e["same_as_main_store"]]
    kernels = record["kernels"]
    forced = (f"OpenBLAS's {kernels['OPENBLAS_CORETYPE']} kernel, NumPy's CPU-dispatched "
              f"targets {kernels['NPY_DISABLE_CPU_FEATURES']} switched off")
    outcome = (f"all {len(compared)} have the same arrays as those in `data/minari`"
               if not differing else
               f"{len(differing)} of {len(compared)} differ from those in `data/minari`: "
               + ", ".join(f"`{name}`" for name in differing))
    return (f"Rebuilt with the kernels another CPU would get "
            f"(`benchmarks/dataset_build.py --other-kernels`: {forced}), {outcome}. "
            f"{benchmark_caption(record['machine'])}")


def environment_floor(build_path: Path, step_path: Path) -> str | None:
    """A sentence: how much of the recorded rebuild MuJoCo's physics and the environments'
    steps need (``benchmarks/env_step.py``); None if either benchmark is missing."""
    if not (Path(build_path).is_file() and Path(step_path).is_file()):
        return None
    build = json.loads(Path(build_path).read_text())
    step_record = json.loads(Path(step_path).read_text())
    built = {entry["name"]: entry["transitions"] for entry in build["datasets"]
             if entry["status"] == "built"}
    steps = 0
    minutes = {"physics_us": 0.0, "lockstep_step_us": 0.0, "gymnasium_step_us": 0.0}
    for row in step_record["rows"]:
        # medium-replay and medium-expert step no environment; expert at the medium's rate
        qualities = ("random",) if row["actions"] == "random" else ("medium", "expert")
        for quality in qualities:
            transitions = built.get(recipe_dataset_id(get_task(row["env"]), quality), 0)
            steps += transitions
            for column in minutes:
                minutes[column] += transitions * row[column] / 1e6 / build["jobs"] / 60
    rest = build["wall_seconds"] / 60 - minutes["lockstep_step_us"]
    return (
        f"MuJoCo's physics (`mj_step`) alone takes **{minutes['physics_us']:.1f} min** of it on "
        f"{build['jobs']} cores ({steps / 1e6:.1f}M environment steps, timed one process at a "
        "time by `benchmarks/env_step.py`, expert steps at the medium policy's rate), so no "
        "rebuild here can be faster. The lockstep stepping the recipes use takes "
        f"{minutes['lockstep_step_us']:.1f} min (gymnasium's own `env.step` would take "
        f"{minutes['gymnasium_step_us']:.1f} min). The other {rest:.1f} min are spent on the "
        "two jobs slowing each other down, resets, policy inference, writing the episodes and "
        "the collection loop (not broken down further)."
    )
