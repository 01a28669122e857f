"""The Datasets chapter's numbers: its settings, the datasets it shows (built here where
missing), and their episodes' returns. Its tables and figures are in
:mod:`ssmrl_lib.report.datasets`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import minari
import numpy as np

from ssmrl_lib.data.rebuild import rebuild_datasets
from ssmrl_lib.data.recipes import DEFAULT_STEPS, RECIPES, build_dataset, recipe_dataset_id
from ssmrl_lib.data.replay import export_replay
from ssmrl_lib.envs import MUJOCO_TASKS, get_task
from ssmrl_lib.errors import check_choice
from ssmrl_lib.profiles import NON_EMPTY, POSITIVE, allowed, resolve


@allowed(envs=NON_EMPTY, steps=POSITIVE)
@dataclass(frozen=True)
class DatasetsChapterSettings:
    """The datasets chapter's knobs: which environments, and steps per policy dataset."""

    envs: tuple = tuple(MUJOCO_TASKS)
    steps: int = DEFAULT_STEPS


PROFILES = {
    "smoke": DatasetsChapterSettings(envs=("hopper",), steps=300),
    "quick": DatasetsChapterSettings(),
    "full": DatasetsChapterSettings(),
}


def settings_for(profile: str, **overrides: Any) -> DatasetsChapterSettings:
    """Resolve the chapter's profile and overrides, checking environment names."""
    settings = resolve(PROFILES, profile, **overrides)
    for env in settings.envs:
        check_choice("environment", env, MUJOCO_TASKS)
    return settings


def ensure_recipe_datasets(
    envs: list[str],
    qualities: tuple[str, ...] = tuple(RECIPES),
    steps: int | None = None,
    policies_dir: Path | None = None,
    jobs: int = 1,
) -> dict[str, str]:
    """Build every missing (or outdated) recipe dataset of ``envs`` whose recipe is available,
    and remove outdated ones whose recipe is not; ``{id: what happened}``."""
    outcomes = rebuild_datasets(
        envs, qualities, jobs=jobs, steps=steps, policies_dir=policies_dir, log=lambda _: None
    )
    said = {"kept": "found in the local store", "built": "built now"}
    # The chapter reads every status that starts with "not built" as no dataset to show.
    not_built = {"skipped": "not built", "removed": "not built (outdated copy removed)"}
    return {o.name: said.get(o.status) or f"{not_built[o.status]}: {o.detail}"
            for o in outcomes}


def build_smoke_recipe_datasets(envs: list[str], steps: int, workdir: Path) -> dict[str, str]:
    """Offline, in seconds: a tiny policy per env (200 steps, 8-unit networks) in ``workdir``
    and its random/medium/medium-replay datasets of ``steps`` steps in the current store.

    Only the code paths are real here: the "medium" policy is whatever 200 steps give.
    """
    from ssmrl_lib.data.behavior import train_policy  # imports SB3 and torch

    status = {}
    for env in envs:
        task = get_task(env)
        policy_dir = Path(workdir) / env
        train_policy(
            task, 200, policy_dir, eval_every=100, eval_episodes=1, learning_starts=50,
            buffer_size=1000, extra={"policy_kwargs": {"net_arch": [8, 8]}, "batch_size": 16},
            sampled_eval_episodes=1, log=lambda _line: None,  # so its medium samples, as D4RL
        )
        export_replay(task, policy_dir, until_step=200)
        checkpoint = policy_dir / "checkpoints" / "step_00000200.npz"
        for quality in ("random", "medium", "medium-replay"):
            build_dataset(
                task, quality, steps=steps, n_envs=4, policy_dir=policy_dir,
                checkpoint=checkpoint if quality == "medium" else None, overwrite=True,
            )
            status[recipe_dataset_id(task, quality)] = "built now (smoke: tiny policy)"
    return status


def episode_returns(name: str) -> np.ndarray:
    """The return of each episode of the stored dataset ``name``."""
    dataset = minari.load_dataset(name)
    return np.array([float(np.sum(e.rewards)) for e in dataset.iterate_episodes()])
