"""Which checkpoint of a behavior policy stands for which D4RL level.

D4RL's levels (Fu et al. 2020; replication-targets.md §B): ``medium`` is a policy trained to
about a third of expert performance. We take the evaluated checkpoint whose mean normalized
score is closest to the mean normalized score of D4RL's own ``medium`` dataset
(``D4RL_DATASET_SCORES``), provided it lies within ``MEDIUM_TOLERANCE``. Like D4RL's
early-stopped medium policy, only checkpoints up to the first one above that window count, so
training on towards expert leaves the medium checkpoint where it is. ``expert`` is the best
checkpoint, only if it reached ``EXPERT_LEVEL``. A checkpoint is scored on the actions the
dataset will hold: on its sampled actions when the recipe samples (``ACTION_SAMPLING``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssmrl_lib.data.policy_dir import (
    has_sampled_evaluations,
    read_evaluations,
    task_policy_dir,
)
from ssmrl_lib.envs import MUJOCO_TASKS, LocomotionTask, normalized_score
from ssmrl_lib.errors import SsmrlError, check_choice

# Mean return of the episodes of D4RL's v2 gym datasets (fu2020d4rl), the datasets ours stand
# in for. Computed from D4RL's own v2 hdf5 files, episodes cut at terminals | timeouts (the
# Decision Transformer's split), unfinished last episode dropped: the "Trajectory rewards: mean"
# line of each log in github.com/YuweiYin/UBC_CPSC_533V, Project/log/get_offline_data/
# <env>-<quality>.log at commit 9f2592a660f980272228f4b79a629caa7e6b6ec4 (a course project; D4RL
# itself publishes no such table, see D4RL issue #124). Normalized with D4RL's reference returns
# (``ssmrl_lib.envs``), they give the commonly quoted dataset scores (hopper/halfcheetah/walker2d
# medium 44.3/40.7/62.1), except halfcheetah medium-expert 64.4 (quoted 64.3) and walker2d
# expert 107.1 (quoted 106.9).
D4RL_DATASET_RETURNS: dict[str, dict[str, float]] = {
    "hopper": {"random": 18.40, "medium": 1422.06, "medium-replay": 467.30,
               "medium-expert": 2089.88, "expert": 3511.36},
    "halfcheetah": {"random": -288.80, "medium": 4770.33, "medium-replay": 3093.29,
                    "medium-expert": 7713.38, "expert": 10656.43},
    "walker2d": {"random": 1.87, "medium": 2852.09, "medium-replay": 682.70,
                 "medium-expert": 3796.57, "expert": 4920.51},
}
# The same as normalized scores, to one decimal as D4RL's tables quote them; "medium" is also the
# level the medium checkpoint is chosen at.
D4RL_DATASET_SCORES: dict[str, dict[str, float]] = {
    env: {quality: round(float(normalized_score(MUJOCO_TASKS[env], mean_return)), 1)
          for quality, mean_return in returns.items()}
    for env, returns in D4RL_DATASET_RETURNS.items()
}
# How a checkpoint picks actions while collecting medium and expert episodes. D4RL sampled
# them from its SAC policy (scripts/generation/mujoco/collect_data.py: ``distr.sample()``), and
# so did Minari (scripts/mujoco/create_dataset.py: SB3's ``predict`` with its default
# ``deterministic=False``); so do we. A policy whose evaluations score only its mean actions
# acts by its mean (its checkpoints may not be able to sample): ``recipe_action_sampling``.
SAMPLING_MODES = ("mean", "sample")
ACTION_SAMPLING = "sample"
# A medium checkpoint scores within this fraction of the medium target, by the actions it
# collects with: ±10 % of D4RL's dataset score (issue 13.4b) on 50 sampled episodes; ±25 % for
# mean-action policies, scored on 10 deterministic episodes (SE ≈ 4 points, about as wide as
# ±10 % of 62.1), which keeps the committed policies' medium checkpoints.
MEDIUM_TOLERANCE: dict[str, float] = {"sample": 0.10, "mean": 0.25}
EXPERT_LEVEL = 90.0  # normalized score a checkpoint must reach to be called expert


class NotAvailable(SsmrlError):
    """A recipe's policy or replay transitions do not exist yet (train longer, export)."""


@dataclass(frozen=True)
class Choice:
    """A checkpoint picked for a recipe and the evaluation it was picked on (of its mean or its
    sampled actions: ``action_sampling``)."""

    path: Path
    step: int
    normalized_mean: float
    normalized_std: float
    action_sampling: str = "mean"


def recipe_action_sampling(task: LocomotionTask, policy_dir: Path | None = None) -> str:
    """How the checkpoints of ``task``'s policy act in the recipes: ``ACTION_SAMPLING``, except
    that a policy whose training scored only its mean actions acts by its mean.

    Such a policy (the committed ones, until they are replaced) may hold no log-std head to
    sample with, and its medium checkpoint was chosen on its mean actions; acting by the mean
    keeps its datasets as built.
    """
    if ACTION_SAMPLING == "mean":
        return "mean"
    policy_dir = task_policy_dir(task.name, policy_dir)
    return "sample" if has_sampled_evaluations(read_evaluations(policy_dir)) else "mean"


def score_column(action_sampling: str) -> str:
    """The evaluation column that scores ``action_sampling``'s actions."""
    return "sampled_normalized_mean" if action_sampling == "sample" else "normalized_mean"


def medium_target(task: LocomotionTask) -> float:
    return D4RL_DATASET_SCORES[task.name]["medium"]


def choose_checkpoint(
    task: LocomotionTask,
    quality: str,
    policy_dir: Path | None = None,
    action_sampling: str | None = None,
) -> Choice:
    """The checkpoint behind ``quality`` (``medium`` or ``expert``) from ``evaluations.csv``.

    Checkpoints are scored on the actions they collect with (``action_sampling``, by default
    :func:`recipe_action_sampling`): the ``sampled_*`` evaluation columns when they sample.
    Raises ``SsmrlError`` when no checkpoint reached that level: a policy is never called
    medium or expert that was not evaluated at that level.
    """
    policy_dir = task_policy_dir(task.name, policy_dir)
    rows = read_evaluations(policy_dir)
    if not rows:
        raise NotAvailable(
            f"no evaluated behavior policy in {policy_dir}; train one with "
            f"`ssmrl data train-policy --env {task.name} --steps 1000000`"
        )
    mode = action_sampling or recipe_action_sampling(task, policy_dir)
    check_choice("action sampling", mode, SAMPLING_MODES)
    if mode == "sample" and not has_sampled_evaluations(rows):
        raise SsmrlError(
            f"the evaluations in {policy_dir} score only mean actions (trained before sampled "
            "evaluations were recorded), so no checkpoint can be chosen for sampled collection: "
            "retrain it, or collect with action_sampling='mean'"
        )
    key = score_column(mode)
    best = max(rows, key=lambda row: row[key])
    if quality == "medium":
        target, tolerance = medium_target(task), MEDIUM_TOLERANCE[mode]
        row = min(_until_past_medium(rows, target, key, tolerance),
                  key=lambda row: abs(row[key] - target))
        if abs(row[key] - target) > tolerance * target:
            raise NotAvailable(
                f"no {task.name} checkpoint reached medium level ({target:.0f} "
                f"± {tolerance * target:.0f}, {mode} actions); closest {row[key]:.1f} at "
                f"step {row['step']}, best {best[key]:.1f}: train longer"
            )
    elif quality == "expert":
        row = best
        if row[key] < EXPERT_LEVEL:
            raise NotAvailable(
                f"no {task.name} checkpoint reached expert level ({EXPERT_LEVEL:.0f}, {mode} "
                f"actions); best {row[key]:.1f} at step {row['step']}: train longer"
            )
    else:  # pragma: no cover - internal use only
        raise ValueError(quality)
    std_key = key.replace("normalized_mean", "normalized_std")
    return Choice(policy_dir / row["checkpoint"], row["step"], row[key], row[std_key], mode)


def _until_past_medium(
    rows: list[dict[str, Any]], target: float, key: str, tolerance: float
) -> list[dict[str, Any]]:
    """The evaluations up to the first one whose ``key`` score is above the medium window.

    D4RL stopped its medium policy once it reached medium level, so training on towards expert
    never moves the medium checkpoint (nor the medium-replay transitions cut at it).
    """
    for k, row in enumerate(rows):
        if row[key] > (1 + tolerance) * target:
            return rows[: k + 1]
    return rows


def medium_is_final(task: LocomotionTask, policy_dir: Path | None = None) -> bool:
    """Whether a checkpoint has passed above the medium band, so that training on can no
    longer move the medium checkpoint (nor the replay transitions cut at it)."""
    policy_dir = task_policy_dir(task.name, policy_dir)
    rows = read_evaluations(policy_dir)
    mode = recipe_action_sampling(task, policy_dir)
    key, limit = score_column(mode), (1 + MEDIUM_TOLERANCE[mode]) * medium_target(task)
    return any(row[key] > limit for row in rows)


def sampling_rule(task: LocomotionTask, policy_dir: Path) -> str:
    """Why the recipe's checkpoints act as they do (recorded in the dataset's metadata)."""
    if ACTION_SAMPLING == "mean":
        return "mean: the recipes' setting (recipes.ACTION_SAMPLING)"
    if recipe_action_sampling(task, policy_dir) == "sample":
        return ("sample: as D4RL's and Minari's generation scripts; this policy's evaluations "
                "score sampled actions, and the recipe chooses its checkpoints on them")
    return ("mean: this policy's training scored only its mean actions (trained before "
            "sampled evaluations and log-std heads were recorded)")
