"""Wall time and peak memory of evaluation rollouts: the paper's Table 3, measured fairly.

Episode lengths depend on how well a policy does (a falling Hopper ends early), so costs are
measured on a fixed workload: every episode runs the full time limit (``terminate_when_unhealthy``
off), and the models are compared back to back in one process. On CPU the peak is the process's
resident-memory high-water mark (reset before each measurement through ``/proc/self/clear_refs``),
reported as growth over the resident memory before the rollout; on GPU it is
``torch.cuda.max_memory_allocated`` (see ``peak_memory``).
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import torch

from ssmrl_lib.evaluate.peak_memory import PeakMemory
from ssmrl_lib.evaluate.rollout import BatchedPolicy, rollout


def rollout_cost(
    make_env: Callable[[], gym.Env],
    make_policy: Callable[[int], BatchedPolicy],
    episodes: int,
    n_envs: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> dict[str, float | None]:
    """Seconds, environment steps and peak memory (MiB) of ``episodes`` rollouts whose model
    runs on ``device`` (the GPU's peak is measured when it is a CUDA device)."""
    policy = make_policy(min(n_envs, episodes))
    with PeakMemory(device) as memory:
        result = rollout(make_env, policy, episodes, n_envs, seed, desc="inference cost")
    return {
        "episodes": episodes,
        "env_steps": int(result.lengths.sum()),
        "wall_time_s": result.wall_time_s,
        **memory.as_dict(),
    }
