"""Decision Transformer (Chen et al. 2021) through ``transformers.DecisionTransformerModel``.

Glossary (paper → code)::

    R̂_t, s_t, a_t      returns_to_go, states, actions   (the three tokens of a step)
    t                  timesteps (learned embedding, max_ep_len rows)
    K                  context_len (steps per window; 3K tokens)
    GPT                Hugging Face's GPT-2 blocks: n_layer, n_head, hidden_size
    π(s_t | R̂, s, a)   action_preds: tanh head on each state token's output

The wrapper fixes the reference hyperparameters (official repo, gym/experiment.py) and exposes
the interface every offline sequence model in this library shares: ``forward`` maps a batch of
DT windows to action predictions, so the trainer and the evaluator never look inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import DecisionTransformerConfig, DecisionTransformerModel


@dataclass(frozen=True)
class SequenceModelConfig:
    """Sizes shared by the offline sequence models (DT and Decision Mamba)."""

    state_dim: int
    act_dim: int
    context_len: int = 20
    hidden_size: int = 128
    n_layer: int = 3
    n_head: int = 1
    dropout: float = 0.1
    max_ep_len: int = 1000


class DecisionTransformer(nn.Module):
    """DT with a tanh action head, ReLU GPT-2 blocks of inner size 4×hidden, learned timesteps."""

    def __init__(self, config: SequenceModelConfig):
        super().__init__()
        self.config = config
        hf_config = DecisionTransformerConfig(
            state_dim=config.state_dim,
            act_dim=config.act_dim,
            hidden_size=config.hidden_size,
            max_ep_len=config.max_ep_len,
            action_tanh=True,
            n_layer=config.n_layer,
            n_head=config.n_head,
            n_inner=4 * config.hidden_size,
            activation_function="relu",
            n_positions=1024,
            resid_pdrop=config.dropout,
            embd_pdrop=config.dropout,
            attn_pdrop=config.dropout,
            bos_token_id=None,
            eos_token_id=None,
        )
        self.model = DecisionTransformerModel(hf_config)

    def forward(
        self, states: Tensor, actions: Tensor, returns_to_go: Tensor, timesteps: Tensor,
        attention_mask: Tensor,
    ) -> Tensor:
        """Action predictions ``[B, K, act_dim]`` for windows of states, actions and RTG."""
        out = self.model(
            states=states,
            actions=actions,
            rewards=torch.zeros_like(returns_to_go),  # unused by DT, required by the HF signature
            returns_to_go=returns_to_go,
            timesteps=timesteps,
            attention_mask=attention_mask,
            return_dict=True,
        )
        return out.action_preds


def count_trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
