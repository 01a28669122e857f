"""Wall time and peak memory of evaluation rollouts: the paper's Table 3, measured fairly.

Episode lengths depend on how well a policy does (a falling Hopper ends early), so costs are
measured on a fixed workload: every episode runs the full time limit (``terminate_when_unhealthy``
off), and the models are compared back to back in one process. On CPU the peak is the process's
resident-memory high-water mark (reset before each measurement through ``/proc/self/clear_refs``),
reported as growth over the resident memory before the rollout; on GPU it is
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import torch

from ssmrl_lib.evaluate.rollout import BatchedPolicy, rollout

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mib(field: str) -> float | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def _reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def rollout_cost(
    make_env: Callable[[], gym.Env],
    make_policy: Callable[[int], BatchedPolicy],
    episodes: int,
    n_envs: int,
    seed: int,
) -> dict[str, float | None]:
    """Seconds, environment steps and peak memory (MiB) of ``episodes`` rollouts."""
    gc.collect()
    policy = make_policy(min(n_envs, episodes))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    baseline = _status_mib("VmRSS")
    can_track_rss = _reset_peak_rss()
    result = rollout(make_env, policy, episodes, n_envs, seed, desc="inference cost")
    peak = _status_mib("VmHWM") if can_track_rss else None
    return {
        "episodes": episodes,
        "env_steps": int(result.lengths.sum()),
        "wall_time_s": result.wall_time_s,
        "peak_rss_mib": peak,
        "rss_growth_mib": None if peak is None or baseline is None else peak - baseline,
        "gpu_peak_mib": (
            torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
        ),
    }
