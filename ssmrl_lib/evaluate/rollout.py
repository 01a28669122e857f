"""Batched evaluation rollouts: N environments, one batched policy call per step.

Episode ``i`` always uses seed ``seed + i`` whatever slot it runs in, so the returns do not
depend on how many environments run side by side. A slot whose episode ends is refilled with
the next episode until ``n_episodes`` have been played.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import gymnasium as gym
import numpy as np
from tqdm import tqdm


class BatchedPolicy(Protocol):
    """A policy acting in ``n_slots`` episodes at once; slots are reused across episodes."""

    def begin_episode(self, slot: int) -> None:
        """Forget whatever the slot remembered: a new episode starts there."""

    def act(self, slots: np.ndarray, observations: np.ndarray) -> np.ndarray:
        """Actions ``[len(slots), act_dim]`` for the current observations of ``slots``."""

    def observe(self, slots: np.ndarray, rewards: np.ndarray) -> None:
        """Rewards the last actions of ``slots`` earned."""


@dataclass
class RolloutResult:
    returns: np.ndarray
    lengths: np.ndarray
    wall_time_s: float


def rollout(
    make_env: Callable[[], gym.Env],
    policy: BatchedPolicy,
    n_episodes: int,
    n_envs: int,
    seed: int,
    desc: str = "evaluate",
) -> RolloutResult:
    """Play ``n_episodes`` episodes with ``policy`` over ``n_envs`` environments in parallel."""
    started = time.perf_counter()
    n_envs = min(n_envs, n_episodes)
    envs = [make_env() for _ in range(n_envs)]
    returns = np.zeros(n_episodes)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    episode_of_slot = np.full(n_envs, -1)
    observations: list[np.ndarray | None] = [None] * n_envs
    next_episode = 0

    def start_episode(slot: int) -> None:
        nonlocal next_episode
        episode_of_slot[slot] = next_episode
        observations[slot], _ = envs[slot].reset(seed=seed + next_episode)
        policy.begin_episode(slot)
        next_episode += 1

    for slot in range(n_envs):
        start_episode(slot)
    with tqdm(total=n_episodes, desc=desc, unit="episode", mininterval=2.0) as progress:
        while (episode_of_slot >= 0).any():
            slots = np.flatnonzero(episode_of_slot >= 0)
            actions = policy.act(slots, np.stack([observations[s] for s in slots]))
            rewards = np.zeros(len(slots))
            finished = []
            for i, slot in enumerate(slots):
                obs, reward, terminated, truncated, _ = envs[slot].step(actions[i])
                episode = episode_of_slot[slot]
                returns[episode] += reward
                lengths[episode] += 1
                rewards[i] = reward
                observations[slot] = obs
                if terminated or truncated:
                    finished.append(slot)
            policy.observe(slots, rewards)
            for slot in finished:
                progress.update(1)
                episode_of_slot[slot] = -1
                if next_episode < n_episodes:
                    start_episode(slot)
    for env in envs:
        env.close()
    return RolloutResult(returns, lengths, time.perf_counter() - started)
