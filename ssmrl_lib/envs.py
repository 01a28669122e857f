"""The MuJoCo locomotion tasks of the offline-RL chapters and their reference numbers.

D4RL's min/max scores turn a raw return into a normalized score
(100 · (R − min) / (max − min)) comparable with the papers; the return targets are the ones
the Decision Transformer paper conditions on (replication-targets.md, §B).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import mujoco
import numpy as np

from ssmrl_lib.errors import check_choice


def _mujoco_warning(text: str) -> None:
    """MuJoCo's C-level warnings as Python warnings: shown once per place, and filterable,
    instead of raw lines on stderr that land in every chapter's output."""
    warnings.warn(f"MuJoCo: {text}", RuntimeWarning, stacklevel=2)


mujoco.set_mju_user_warning(_mujoco_warning)
# Gymnasium's own HalfCheetah XML still uses this attribute; nothing here can change it.
warnings.filterwarnings("ignore", message="MuJoCo: compiler attribute 'settotalmass'")


@dataclass(frozen=True)
class LocomotionTask:
    """A MuJoCo task with D4RL's reference returns for normalized scores (``REF_MIN_SCORE`` and
    ``REF_MAX_SCORE`` of the ``<env>-random-v0`` keys in D4RL's ``d4rl/infos.py``, which its v2
    datasets use too) and the Decision Transformer's two return-to-go targets."""

    name: str
    gym_id: str
    ref_min_score: float
    ref_max_score: float
    return_targets: tuple[float, ...]


MUJOCO_TASKS: dict[str, LocomotionTask] = {
    task.name: task
    for task in (
        LocomotionTask("hopper", "Hopper-v5", -20.272305, 3234.3, (3600.0, 1800.0)),
        LocomotionTask("halfcheetah", "HalfCheetah-v5", -280.178953, 12135.0, (12000.0, 6000.0)),
        LocomotionTask("walker2d", "Walker2d-v5", 1.629008, 4592.3, (5000.0, 2500.0)),
    )
}


def get_task(name: str) -> LocomotionTask:
    """The task called ``name`` (``hopper``, ``halfcheetah``, ``walker2d``)."""
    check_choice("environment", name, MUJOCO_TASKS)
    return MUJOCO_TASKS[name]


def task_for_gym_id(gym_id: str) -> LocomotionTask:
    """The task whose gymnasium id is ``gym_id`` (e.g. ``Hopper-v5``)."""
    by_id = {task.gym_id: task for task in MUJOCO_TASKS.values()}
    check_choice("gymnasium environment", gym_id, by_id)
    return by_id[gym_id]


def normalized_score(task: LocomotionTask, returns: np.ndarray | float) -> np.ndarray:
    """D4RL-normalized score: 0 is a random policy, 100 the D4RL expert."""
    span = task.ref_max_score - task.ref_min_score
    return 100.0 * (np.asarray(returns, dtype=np.float64) - task.ref_min_score) / span
