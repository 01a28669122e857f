"""Acting with a context-window model (DT) the way the reference ``get_action`` does.

Each slot keeps its episode's normalized states, actions, returns-to-go and timesteps; at each
step the last ``K`` of them, left-padded with zeros, go through the model in one batch, and the
target return shrinks by each reward (divided by the RTG scale).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ssmrl_lib.device import module_device
from ssmrl_lib.evaluate.conditioning import ReturnConditioning


class ContextWindowPolicy:
    """``BatchedPolicy`` for models with the shared ``forward(states, actions, rtg, ...)``."""

    def __init__(
        self,
        model: nn.Module,
        conditioning: ReturnConditioning,
        context_len: int,
        n_slots: int,
        state_dim: int,
        act_dim: int,
    ):
        self.model = model
        self.device = module_device(model)
        self.conditioning = conditioning
        self.K = context_len
        horizon = conditioning.max_ep_len + 1
        self.states = np.zeros((n_slots, horizon, state_dim), np.float32)
        self.actions = np.zeros((n_slots, horizon, act_dim), np.float32)
        self.rtg = np.zeros((n_slots, horizon), np.float32)
        self.t = np.zeros(n_slots, np.int64)

    def begin_episode(self, slot: int) -> None:
        self.t[slot] = 0
        self.rtg[slot, 0] = self.conditioning.scaled_target
        self.actions[slot] = 0.0

    @torch.no_grad()
    def act(self, slots: np.ndarray, observations: np.ndarray) -> np.ndarray:
        K, conditioning = self.K, self.conditioning
        n = len(slots)
        states = np.zeros((n, K, self.states.shape[2]), np.float32)
        actions = np.zeros((n, K, self.actions.shape[2]), np.float32)
        rtg = np.zeros((n, K, 1), np.float32)
        timesteps = np.zeros((n, K), np.int64)
        mask = np.zeros((n, K), np.int64)
        for i, slot in enumerate(slots):
            t = self.t[slot]
            self.states[slot, t] = conditioning.normalizer(observations[i])
            first = max(0, t + 1 - K)
            length = t + 1 - first
            states[i, K - length :] = self.states[slot, first : t + 1]
            actions[i, K - length :] = self.actions[slot, first : t + 1]
            rtg[i, K - length :, 0] = self.rtg[slot, first : t + 1]
            timesteps[i, K - length :] = np.minimum(np.arange(first, t + 1),
                                                  conditioning.max_ep_len - 1)
            mask[i, K - length :] = 1
        device = self.device
        predictions = self.model(
            states=torch.from_numpy(states).to(device),
            actions=torch.from_numpy(actions).to(device),
            returns_to_go=torch.from_numpy(rtg).to(device),
            timesteps=torch.from_numpy(timesteps).to(device),
            attention_mask=torch.from_numpy(mask).to(device),
        )
        chosen = predictions[:, -1].cpu().numpy()
        for i, slot in enumerate(slots):
            self.actions[slot, self.t[slot]] = chosen[i]
        return chosen

    def observe(self, slots: np.ndarray, rewards: np.ndarray) -> None:
        conditioning = self.conditioning
        for slot, reward in zip(slots, rewards, strict=True):
            t = self.t[slot]
            if t + 1 < self.rtg.shape[1]:
                self.rtg[slot, t + 1] = self.rtg[slot, t] - reward / conditioning.rtg_scale
            self.t[slot] = min(t + 1, conditioning.max_ep_len)
