"""The recurrent actor-critic of Lu et al. (2023)'s PPO: encoder MLP, memory core, two heads.

Glossary (paper's Table 3 → code)::

    encoder MLP [128, 256]          NetworkConfig.encoder, ActorCritic.encoder
    memory model, width 256         NetworkConfig.core, .hidden; ActorCritic.core (memory.py)
    S5 layers, state size P         NetworkConfig.s5_layers, .s5_state
    actor / critic MLPs [128, 128]  NetworkConfig.heads; ActorCritic.actor, .critic
    π(a | o_≤t), V(o_≤t)            ActorCritic.distribution(policy_out), values

``forward`` maps observations ``[B, T, obs_dim]``, the core's state and reset flags ``[B, T]``
to policy outputs, values and the next state; acting calls it with ``T = 1``, training on whole
rollouts (``train/ppo.py``). Weights are orthogonally initialised: gain √2 in the encoder, 0.01
for the policy output (a near-uniform first policy), 1 for the value, and ``head_gain`` in the
heads' hidden layers (the authors' popjaxrl: 2; CleanRL: √2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ssmrl_lib.errors import check_choice
from ssmrl_lib.models.memory import make_core
from ssmrl_lib.models.s5 import S5_BLOCKS

CLEANRL_GAIN = float(np.sqrt(2))  # for layers followed by a ReLU-like activation


@dataclass(frozen=True)
class NetworkConfig:
    """Actor-critic sizes; defaults are Lu et al.'s Table 3 (encoder [128, 256], memory 256)."""

    core: str = "s5"
    encoder: tuple = (128, 256)
    hidden: int = 256  # the memory core's width (S5's H)
    heads: tuple = (128, 128)  # actor and critic MLPs, each
    s5_layers: int = 4
    s5_state: int = 256  # P; P/2 complex modes are kept
    scan_backend: str = "associative"
    activation: str = "leaky_relu"  # of the encoder and heads: leaky_relu | relu
    # S5's residual block: "authors" (Lu et al.'s: full GLU, no norms) or "prenorm" (LayerNorm,
    # half GLU), see models/s5.py. Runs recorded before the choice existed ran "prenorm".
    s5_block: str = field(default="authors", metadata={"cache_key_omit_if": "prenorm"})
    # Orthogonal gain of the actor's and critic's hidden layers: popjaxrl's networks use 2 (the
    # paper profiles set it), CleanRL √2, which runs recorded before the field existed used.
    head_gain: float = field(default=CLEANRL_GAIN, metadata={"cache_key_omit_if": CLEANRL_GAIN})

    def __post_init__(self) -> None:
        check_choice("S5 block", self.s5_block, S5_BLOCKS)


ACTIVATIONS = {"leaky_relu": nn.LeakyReLU, "relu": nn.ReLU}


def _mlp(sizes: list[int], activation: str, gain: float = CLEANRL_GAIN) -> nn.Sequential:
    """Linear layers, each followed by ``activation``, orthogonally initialised."""
    layers: list[nn.Module] = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [_linear(d_in, d_out, gain), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


def _linear(d_in: int, d_out: int, gain: float) -> nn.Linear:
    linear = nn.Linear(d_in, d_out)
    nn.init.orthogonal_(linear.weight, gain)
    nn.init.zeros_(linear.bias)
    return linear


class ActorCritic(nn.Module):
    """Encoder MLP -> memory core -> separate actor and critic MLPs.

    Discrete actions get a categorical policy; Box actions a diagonal Gaussian whose mean comes
    from the actor and whose log standard deviation is a learned, state-independent vector.
    """

    def __init__(self, obs_dim: int, action_space: gym.Space, config: NetworkConfig):
        super().__init__()
        self.continuous = isinstance(action_space, gym.spaces.Box)
        n_out = int(np.prod(action_space.shape)) if self.continuous else int(action_space.n)
        check_choice("activation", config.activation, ACTIVATIONS)
        self.encoder = _mlp([obs_dim, *config.encoder], config.activation)
        self.core = make_core(
            config.core, config.encoder[-1], config.hidden, config.s5_layers, config.s5_state,
            config.scan_backend, config.s5_block,
        )
        width = self.core.out_features
        heads = [width, *config.heads]
        self.actor = nn.Sequential(_mlp(heads, config.activation, config.head_gain),
                                   _linear(config.heads[-1], n_out, 0.01))
        self.critic = nn.Sequential(_mlp(heads, config.activation, config.head_gain),
                                    _linear(config.heads[-1], 1, 1.0))
        if self.continuous:
            self.log_std = nn.Parameter(torch.zeros(n_out))

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.core.initial_state(batch_size)

    def forward(
        self, obs: torch.Tensor, state: torch.Tensor, reset: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``obs`` ``[B, T, obs_dim]`` to policy outputs ``[B, T, n]``, values ``[B, T]``, state."""
        # 1. Encode each observation, 2. carry memory through the core: [B, T, hidden].
        features, state = self.core(self.encoder(obs), state, reset)
        # 3. Policy outputs (logits or Gaussian means) [B, T, n] and values [B, T].
        return self.actor(features), self.critic(features).squeeze(-1), state

    def distribution(self, policy_out: torch.Tensor) -> torch.distributions.Distribution:
        if self.continuous:
            normal = torch.distributions.Normal(policy_out, self.log_std.exp(), validate_args=False)
            return torch.distributions.Independent(normal, 1, validate_args=False)
        return torch.distributions.Categorical(logits=policy_out, validate_args=False)
