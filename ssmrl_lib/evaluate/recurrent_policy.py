"""Acting with a recurrent sequence model (Decision Mamba): O(1) work per environment step.

Instead of re-reading the last ``K`` steps like DT, the model carries its state from step to
step. All slots advance together in one batched ``step`` call; a slot starting a new episode
is flagged so the model resets that slot's state (and ignores its stale previous action).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ssmrl_lib.device import module_device
from ssmrl_lib.evaluate.conditioning import ReturnConditioning


class RecurrentPolicy:
    """``BatchedPolicy`` for models with ``init_state(batch)`` and ``step(..., new_episode)``."""

    def __init__(
        self,
        model: nn.Module,
        conditioning: ReturnConditioning,
        n_slots: int,
        state_dim: int,
        act_dim: int,
    ):
        self.model = model
        self.device = device = module_device(model)
        self.conditioning = conditioning
        self.state_dim = state_dim
        self.state = model.init_state(n_slots)
        self.new_episode = torch.ones(n_slots, dtype=torch.bool, device=device)
        self.prev_action = torch.zeros(n_slots, act_dim, device=device)
        self.rtg = np.zeros(n_slots, np.float32)
        self.t = np.zeros(n_slots, np.int64)

    def begin_episode(self, slot: int) -> None:
        self.new_episode[slot] = True
        self.rtg[slot] = self.conditioning.scaled_target
        self.t[slot] = 0

    @torch.no_grad()
    def act(self, slots: np.ndarray, observations: np.ndarray) -> np.ndarray:
        states = np.zeros((len(self.t), self.state_dim), np.float32)
        conditioning, device = self.conditioning, self.device
        states[slots] = conditioning.normalizer(observations)
        actions, self.state = self.model.step(
            self.state,
            return_to_go=torch.from_numpy(self.rtg[:, None].copy()).to(device),
            state_obs=torch.from_numpy(states).to(device),
            prev_action=self.prev_action,
            timestep=torch.from_numpy(np.minimum(self.t, conditioning.max_ep_len - 1)).to(device),
            new_episode=self.new_episode.clone(),
        )
        self.new_episode[:] = False
        self.prev_action = actions
        return actions.cpu().numpy()[slots]

    def observe(self, slots: np.ndarray, rewards: np.ndarray) -> None:
        self.rtg[slots] -= rewards.astype(np.float32) / self.conditioning.rtg_scale
        self.t[slots] += 1
