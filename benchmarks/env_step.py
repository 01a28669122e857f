"""How long a MuJoCo environment step takes: the floor under `make data`'s time.

Every dataset recipe collects 1M steps, so a rebuild can be no faster than MuJoCo's physics
itself. For each task and each kind of actions a recipe uses (uniformly random ones, and the
medium behavior policy: an upright Hopper simulates differently from a falling one), this
times, per environment step, one process at a time:

* ``gymnasium_step_us``: gymnasium's ``env.step``, one environment;
* ``lockstep_step_us``: ``LockstepEnvs.step`` with the recipes' 8 environments, which is what
  the collection runs (the policy call is not counted);
* ``physics_us``: of that, MuJoCo's ``mj_step`` alone (timed in the same run; the timer adds
  well under a microsecond per step to both).

Each figure is the median of ``--repeats`` runs: this machine's speed drifts by several
percent from minute to minute.

``report.datasets.environment_floor`` turns the physics time into the least wall time of the
recorded rebuild.

Usage: ``python benchmarks/env_step.py [--steps 20000]``
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np

from ssmrl_lib.data.actor import load_actor
from ssmrl_lib.data.checkpoint_choice import choose_checkpoint
from ssmrl_lib.data.collect import random_policy
from ssmrl_lib.data.lockstep import LockstepEnvs
from ssmrl_lib.envs import MUJOCO_TASKS, LocomotionTask
from ssmrl_lib.provenance import benchmark_record

RESULTS = Path(__file__).parent / "results"
N_ENVS = 8  # the recipes' default

BatchActor = Callable[[np.ndarray], np.ndarray]


def gymnasium_step_seconds(gym_id: str, act: BatchActor, steps: int, seed: int = 0) -> float:
    """Mean seconds per ``env.step`` over ``steps`` steps, resets not counted."""
    env = gym.make(gym_id, disable_env_checker=True)
    obs, _ = env.reset(seed=seed)
    spent, episode = 0.0, 0
    for _ in range(steps):
        action = act(obs[None])[0]
        started = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        spent += time.perf_counter() - started
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    env.close()
    return spent / steps


def lockstep_step_seconds(
    gym_id: str, act: BatchActor, steps: int, seed: int = 0
) -> tuple[float, float]:
    """Mean seconds per environment step of ``LockstepEnvs.step`` over about ``steps``
    environment steps (resets and policy calls not counted), and of that in ``mj_step``."""
    envs = LockstepEnvs(gym_id, N_ENVS)
    obs = np.stack([envs.reset(slot, seed + slot) for slot in range(N_ENVS)])
    spent, episode = 0.0, N_ENVS
    with physics_timer() as physics:
        for _ in range(steps // N_ENVS):
            actions = act(obs)
            started = time.perf_counter()
            obs, _, terminated, truncated = envs.step(actions)
            spent += time.perf_counter() - started
            for slot in np.flatnonzero(terminated | truncated):
                obs[slot] = envs.reset(slot, seed + episode)
                episode += 1
    envs.close()
    stepped = steps // N_ENVS * N_ENVS
    return spent / stepped, physics[0] / stepped


@contextmanager
def physics_timer() -> Iterator[list[float]]:
    """Seconds spent in ``mujoco.mj_step`` while the block runs (the yielded list's one item)."""
    real_step, spent = mujoco.mj_step, [0.0]

    def timed_step(*args, **kwargs) -> None:
        started = time.perf_counter()
        real_step(*args, **kwargs)
        spent[0] += time.perf_counter() - started

    mujoco.mj_step = timed_step
    try:
        yield spent
    finally:
        mujoco.mj_step = real_step


def actors_for(task: LocomotionTask) -> dict[str, BatchActor]:
    """The actions of the random recipe and of the medium behavior policy, for a batch."""
    space = gym.make(task.gym_id).action_space
    medium = load_actor(choose_checkpoint(task, "medium").path, task)
    return {"random": random_policy(space, seed=0), "medium policy": medium}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "env_step_cpu.json")
    args = parser.parse_args()

    rows = []
    for name, task in MUJOCO_TASKS.items():
        for actions, act in actors_for(task).items():
            gymnasium, lockstep, physics = [], [], []
            for _ in range(args.repeats):
                gymnasium.append(gymnasium_step_seconds(task.gym_id, act, args.steps))
                step, in_physics = lockstep_step_seconds(task.gym_id, act, args.steps)
                lockstep.append(step)
                physics.append(in_physics)
            gymnasium_us, lockstep_us, physics_us = (
                float(np.median(times)) * 1e6 for times in (gymnasium, lockstep, physics)
            )
            rows.append({"env": name, "actions": actions,
                         "gymnasium_step_us": round(gymnasium_us, 1),
                         "lockstep_step_us": round(lockstep_us, 1),
                         "physics_us": round(physics_us, 1)})
            print(f"{task.gym_id:15} {actions:14} env.step {gymnasium_us:6.1f}  lockstep "
                  f"{lockstep_us:6.1f}  mj_step {physics_us:6.1f} µs per step")
    record = {"benchmark": "env_step", "steps": args.steps, "repeats": args.repeats,
              "n_envs": N_ENVS, "rows": rows,
              "machine": benchmark_record()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
