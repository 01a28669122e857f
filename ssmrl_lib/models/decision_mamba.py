"""Decision Mamba: Decision Transformer's tokens and heads around a Mamba backbone.

Glossary (Rezaei & Patel; Chen et al. 2021 → code)::

    R̂_t, s_t, a_t      returns_to_go, states, actions   (the three tokens of a step)
    t                  timesteps (a learned embedding, embed_timestep)
    K                  context_len (steps per window; 3K tokens)
    the sequence model backbone: MambaBackbone (models/mamba.py)
    π(s_t | R̂, s, a)   predict_action on each state token's output (tanh)

Rezaei & Patel keep everything of DT but the sequence model, so this class mirrors
``DecisionTransformer`` token for token: return-to-go, state and action embeddings plus the
timestep embedding, interleaved ``(R̂_1, s_1, a_1, R̂_2, ...)``, LayerNorm, dropout (GPT-2's
embedding dropout, DT's only dropout outside the blocks), then the action head. The GPT-2 stack
becomes ``config.n_layer`` Mamba blocks of width ``config.hidden_size`` (state 16, expand 2,
conv 4: Hugging Face's defaults). Mamba needs no position embedding: the recurrence is ordered
by construction.

Size. Decision Mamba has the same 3 layers and hidden size as its DT: the paper's counts (1.2M
for DT, 900k for Mamba) are ours (858,767 and 480,899 for Hopper, ``parameter_count``) plus
Hugging Face's default 4096-row timestep table in place of our 1000 rows (+396,288 each), within
5%.

Padding. Windows are left-padded (``attention_mask`` 0 on padded steps). Every Mamba block zeroes
padded positions before its input projection and after its convolution, exactly as Hugging
Face's ``MambaMixer`` does, so they add nothing to the conv window or the SSM state: the real
steps' predictions are those of the unpadded window.

Rollouts. ``init_state`` / ``step`` advance the recurrence three tokens per environment step, in
O(1) time and memory. That conditions on the whole episode so far, like ``forward`` on the full
history; it is not the same as DT's evaluation, which re-reads only the last ``context_len``
steps. Call ``forward`` on the window to evaluate the way DT does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ssmrl_lib.models.decision_transformer import SequenceModelConfig, count_trainable_parameters
from ssmrl_lib.models.mamba import LayerState, MambaBackbone, MambaConfig, MambaState

TOKENS_PER_STEP = 3  # return-to-go, state, action


@dataclass(frozen=True)
class DecisionMambaState:
    """Where a rollout stands: the backbone after the last state token, and that step's
    timestep, whose action token ``step`` feeds next (``None`` before the first step)."""

    backbone: MambaState
    pending_action_timestep: torch.Tensor | None


class DecisionMamba(nn.Module):
    """DT-style offline RL policy with a Mamba backbone; ``forward`` has DT's signature."""

    def __init__(self, config: SequenceModelConfig, scan_backend: str = "auto"):
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        self.embed_timestep = nn.Embedding(config.max_ep_len, hidden)
        self.embed_return = nn.Linear(1, hidden)
        self.embed_state = nn.Linear(config.state_dim, hidden)
        self.embed_action = nn.Linear(config.act_dim, hidden)
        self.embed_ln = nn.LayerNorm(hidden)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.backbone = MambaBackbone(
            MambaConfig(hidden_size=hidden, n_layer=config.n_layer, scan_backend=scan_backend)
        )
        self.predict_action = nn.Sequential(nn.Linear(hidden, config.act_dim), nn.Tanh())

    def _embed(self, tokens: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Input to the backbone for already projected tokens ``[..., hidden]``."""
        return self.embed_dropout(self.embed_ln(tokens + self.embed_timestep(timesteps)))

    def forward(
        self, states: Tensor, actions: Tensor, returns_to_go: Tensor, timesteps: Tensor,
        attention_mask: Tensor,
    ) -> Tensor:
        """Action predictions ``[B, K, act_dim]`` for windows ``[B, K, ·]`` (DT's signature)."""
        batch, context = states.shape[:2]
        # 1. Embed each step's three tokens, add the timestep, normalise: [B, K, 3, hidden].
        tokens = torch.stack(
            [
                self.embed_return(returns_to_go),
                self.embed_state(states),
                self.embed_action(actions),
            ],
            dim=2,
        )  # [B, K, 3, hidden]
        tokens = self._embed(tokens, timesteps.unsqueeze(-1))
        # 2. Interleave (R̂_1, s_1, a_1, R̂_2, ...): [B, 3K, hidden], the mask likewise.
        tokens = tokens.reshape(batch, TOKENS_PER_STEP * context, -1)
        token_mask = attention_mask.repeat_interleave(TOKENS_PER_STEP, dim=1)
        # 3. The Mamba backbone over the token sequence: [B, 3K, hidden].
        hidden = self.backbone(tokens, token_mask)
        # 4. Predict a_t from the output at s_t's token: [B, K, act_dim].
        return self.predict_action(hidden[:, 1::TOKENS_PER_STEP])

    def init_state(self, batch_size: int) -> DecisionMambaState:
        """State before an episode's first step."""
        return DecisionMambaState(self.backbone.init_state(batch_size), None)

    def step(
        self,
        state: DecisionMambaState,
        return_to_go: torch.Tensor,
        state_obs: torch.Tensor,
        prev_action: torch.Tensor | None,
        timestep: torch.Tensor,
        new_episode: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, DecisionMambaState]:
        """One environment step: feed the previous action (ignored on the first step), then
        ``R_t [B, 1]`` and ``s_t [B, state_dim]`` at ``timestep [B]``; return ``a_t [B, act_dim]``.

        ``new_episode [B]`` (bool) marks rows whose episode starts at this step: their state is
        reset and their previous action ignored, so rows of a batched rollout can start episodes
        at different times. Gives the same actions as ``forward`` on the episode so far (in eval
        mode).
        """
        backbone = state.backbone
        if state.pending_action_timestep is not None:
            token = self._embed(self.embed_action(prev_action), state.pending_action_timestep)
            _, stepped = self.backbone.step(token, backbone)
            backbone = stepped if new_episode is None else _reset_rows(stepped, new_episode)
        _, backbone = self.backbone.step(
            self._embed(self.embed_return(return_to_go), timestep), backbone
        )
        out, backbone = self.backbone.step(
            self._embed(self.embed_state(state_obs), timestep), backbone
        )
        return self.predict_action(out), DecisionMambaState(backbone, timestep)

    def parameter_count(self) -> int:
        """Trainable parameters (480,899 for Hopper at the reference sizes; see module doc)."""
        return count_trainable_parameters(self)


def _reset_rows(state: MambaState, rows: torch.Tensor) -> MambaState:
    """``state`` with the rows flagged in ``rows`` set back to the initial (zero) state."""
    keep = ~rows
    return tuple(
        LayerState(*(tensor * keep.view(-1, *[1] * (tensor.dim() - 1)) for tensor in layer))
        for layer in state
    )
