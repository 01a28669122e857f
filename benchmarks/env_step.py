"""How long the MuJoCo environments' own ``step()`` takes: the floor under `make data`'s time.

Every dataset recipe collects 1M steps, so a rebuild can be no faster than the environments'
``step()`` calls themselves. This times only those calls (one process, nothing else running),
driven by the actions each recipe uses: uniformly random ones, and the medium behavior policy
(an upright Hopper simulates differently from a falling one). ``summary.environment_floor``
turns it into the minimum wall time of the recorded rebuild.

Usage: ``python benchmarks/env_step.py [--steps 20000]``
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

from ssmrl_lib.data.recipes import choose_checkpoint, load_actor
from ssmrl_lib.envs import TASKS, LocomotionTask
from ssmrl_lib.report.provenance import benchmark_record

RESULTS = Path(__file__).parent / "results"


def step_seconds(
    gym_id: str, act: Callable[[np.ndarray], np.ndarray], steps: int, seed: int = 0
) -> float:
    """Mean seconds per ``env.step`` over ``steps`` steps, resets not counted."""
    env = gym.make(gym_id, disable_env_checker=True)
    obs, _ = env.reset(seed=seed)
    spent, episode = 0.0, 0
    for _ in range(steps):
        action = act(obs)
        started = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        spent += time.perf_counter() - started
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    env.close()
    return spent / steps


def actors_for(task: LocomotionTask) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The actions of the random recipe and of the medium behavior policy."""
    space = gym.make(task.gym_id).action_space
    rng = np.random.default_rng(0)
    medium = load_actor(choose_checkpoint(task, "medium").path, task)
    return {
        "random": lambda _obs: rng.uniform(space.low, space.high).astype(space.dtype),
        "medium policy": lambda obs: medium(obs[None])[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "env_step_cpu.json")
    args = parser.parse_args()

    rows = []
    for name, task in TASKS.items():
        for actions, act in actors_for(task).items():
            seconds = step_seconds(task.gym_id, act, args.steps)
            rows.append({"env": name, "actions": actions, "microseconds_per_step":
                         round(seconds * 1e6, 1)})
            print(f"{task.gym_id:15} {actions:14} {seconds * 1e6:7.1f} µs per step")
    record = {"benchmark": "env_step", "steps": args.steps, "rows": rows,
              "machine": benchmark_record()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
