"""``EnvBatch``: ``n`` gymnasium environments stepped together for on-policy training (PPO)."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np


class EnvBatch:
    """``n`` environments stepped together; one that finishes is reset in the same step.

    Observations must be flat numeric vectors (they are stored as float32).

    ``step`` returns the next observations (the first observation of a new episode where one
    ended), rewards, ``done`` flags and the returns of the episodes that ended. Environment ``i``
    is seeded once with ``seed * 10_000 + i``; later resets continue its own generator, so a
    batch is deterministic and can be pickled into a checkpoint mid-run.
    """

    def __init__(self, make_env: Callable[[], gym.Env], n: int, seed: int):
        self.envs = [make_env() for _ in range(n)]
        self.obs = np.stack(
            [env.reset(seed=seed * 10_000 + i)[0] for i, env in enumerate(self.envs)]
        ).astype(np.float32)
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, dtype=np.int64)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, list]:
        rewards = np.zeros(len(self.envs))
        dones = np.zeros(len(self.envs), dtype=bool)
        returns, lengths = [], []
        for i, env in enumerate(self.envs):
            action = actions[i] if isinstance(env.action_space, gym.spaces.Box) else int(actions[i])
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards[i] = reward
            self.episode_return[i] += reward
            self.episode_length[i] += 1
            if terminated or truncated:
                dones[i] = True
                returns.append(float(self.episode_return[i]))
                lengths.append(int(self.episode_length[i]))
                self.episode_return[i], self.episode_length[i] = 0.0, 0
                obs, _ = env.reset()
            self.obs[i] = obs
        return self.obs.copy(), rewards, dones, returns, lengths
