"""Decision Transformer training windows, cut exactly as the reference implementation does.

Reference: ``get_batch`` in the official repo's ``gym/experiment.py`` (Chen et al. 2021):
trajectories sampled with probability proportional to their length, a uniform start inside
the trajectory, windows of ``K`` steps left-padded to ``K`` (states 0 before normalization,
actions −10, returns-to-go 0, timesteps 0, mask 0), returns-to-go as undiscounted reward-to-go
divided by ``rtg_scale``, and states normalized by the dataset's mean and std (+1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssmrl_lib.data.minari_io import Trajectories

ACTION_PAD = -10.0


@dataclass(frozen=True)
class StateNormalizer:
    """Dataset state mean and std (std + 1e-6), used both in training and at evaluation."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, trajectories: Trajectories) -> StateNormalizer:
        states = np.concatenate(trajectories.states, axis=0)
        return cls(mean=states.mean(axis=0), std=states.std(axis=0) + 1e-6)

    def __call__(self, states: np.ndarray) -> np.ndarray:
        return (states - self.mean) / self.std


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """Undiscounted reward-to-go: ``rtg[t] = sum(rewards[t:])``."""
    return np.cumsum(rewards[::-1])[::-1].astype(np.float32)


class DTWindowSampler:
    """Samples batches of left-padded windows of length ``context_len`` from ``trajectories``."""

    def __init__(
        self,
        trajectories: Trajectories,
        context_len: int,
        rtg_scale: float = 1000.0,
        max_ep_len: int = 1000,
    ):
        self.trajectories = trajectories
        self.context_len = context_len
        self.rtg_scale = rtg_scale
        self.max_ep_len = max_ep_len
        self.normalizer = StateNormalizer.fit(trajectories)
        lengths = trajectories.lengths
        self.sample_probs = lengths / lengths.sum()
        self._rtg = [returns_to_go(r) for r in trajectories.rewards]

    def window(self, episode: int, start: int) -> dict[str, np.ndarray]:
        """The window of episode ``episode`` starting at step ``start``, padded on the left."""
        traj = self.trajectories
        K = self.context_len
        stop = start + K
        states = traj.states[episode][start:stop]
        actions = traj.actions[episode][start:stop]
        rewards = traj.rewards[episode][start:stop]
        length = len(states)
        timesteps = np.arange(start, start + length)
        timesteps[timesteps >= self.max_ep_len] = self.max_ep_len - 1
        # K + 1 returns-to-go as in the reference; a zero is appended past the episode's end.
        rtg = self._rtg[episode][start : stop + 1]
        if len(rtg) < length + 1:
            rtg = np.concatenate([rtg, np.zeros(1, dtype=np.float32)])
        pad = K - length
        state_dim, act_dim = traj.state_dim, traj.act_dim
        states = np.concatenate([np.zeros((pad, state_dim), np.float32), states])
        return {
            "states": self.normalizer(states).astype(np.float32),
            "actions": np.concatenate([np.full((pad, act_dim), ACTION_PAD, np.float32), actions]),
            "rewards": np.concatenate([np.zeros(pad, np.float32), rewards])[:, None],
            "returns_to_go": (
                np.concatenate([np.zeros(pad, np.float32), rtg]) / self.rtg_scale
            )[:, None].astype(np.float32),
            "timesteps": np.concatenate([np.zeros(pad, np.int64), timesteps]),
            "attention_mask": np.concatenate([np.zeros(pad, np.int64), np.ones(length, np.int64)]),
        }

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A batch of windows; ``returns_to_go`` has ``K + 1`` entries like the reference."""
        episodes = rng.choice(len(self.sample_probs), size=batch_size, p=self.sample_probs)
        windows = []
        for episode in episodes:
            start = int(rng.integers(0, self.trajectories.lengths[episode]))
            windows.append(self.window(int(episode), start))
        return {key: torch.from_numpy(np.stack([w[key] for w in windows])) for key in windows[0]}
