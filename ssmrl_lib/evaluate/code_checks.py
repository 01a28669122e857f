"""Facts the book states about the code, computed from the code when a chapter runs.

``resettable_scan_error``: the largest difference between the resettable parallel scan and the
sequential recurrence on random elements with random resets (Lu et al.'s App. A claim).
``dt_idle_parameters``: which of DT's trainable parameters never take part in training, found by
running one training step (a forward hook on the position table, gradients of the heads).
``parameter_counts``: DT's and Decision Mamba's trainable parameters at a model config (Rezaei &
Patel quote theirs without the sizes behind them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssmrl_lib.models.decision_mamba import DecisionMamba
from ssmrl_lib.models.decision_transformer import (
    DecisionTransformer,
    SequenceModelConfig,
    count_trainable_parameters,
)
from ssmrl_lib.scan import linear_scan
from ssmrl_lib.train.offline import action_loss


def resettable_scan_error(batch: int = 4, length: int = 257, width: int = 8, seed: int = 0
                          ) -> float:
    """Max |associative − sequential| over all states, complex float64, ~20 % resets."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, length, width)

    def complex_normal() -> torch.Tensor:
        real, imag = (torch.randn(shape, generator=generator, dtype=torch.float64)
                      for _ in range(2))
        return torch.complex(real, imag)

    a = 0.95 * complex_normal() / complex_normal().abs()  # |a| < 1, as after discretisation
    b = complex_normal()
    h0 = complex_normal()[:, 0]
    reset = (torch.rand((batch, length), generator=generator) < 0.2).double()
    parallel = linear_scan(a, b, h0=h0, reset=reset, backend="associative")
    sequential = linear_scan(a, b, h0=h0, reset=reset, backend="sequential")
    return float((parallel - sequential).abs().max())


@dataclass(frozen=True)
class IdleParameters:
    """DT's trainable parameters, and those that never take part in a training step."""

    trainable: int
    position_rows: int  # rows of GPT-2's learned position table (wpe)
    position_width: int
    position_rows_read: int  # distinct position ids the model looked up
    state_head: int
    return_head: int
    heads_get_gradients: bool

    @property
    def position_table(self) -> int:
        return self.position_rows * self.position_width

    @property
    def idle(self) -> int:
        """Position rows never read, plus the state and return heads when they get no
        gradient."""
        unread = (self.position_rows - self.position_rows_read) * self.position_width
        heads = 0 if self.heads_get_gradients else self.state_head + self.return_head
        return unread + heads


def dt_idle_parameters(config: SequenceModelConfig, batch: int = 4, seed: int = 0
                       ) -> IdleParameters:
    """One training step of DT on random windows, recording which position ids GPT-2 reads and
    whether the state and return heads receive gradients from the action loss."""
    torch.manual_seed(seed)
    model = DecisionTransformer(config)
    hf = model.model
    read: set[int] = set()
    hook = hf.encoder.wpe.register_forward_hook(
        lambda _module, inputs, _output: read.update(inputs[0].unique().tolist()))
    k = config.context_len
    batch_windows = {
        "states": torch.randn(batch, k, config.state_dim),
        "actions": torch.randn(batch, k, config.act_dim),
        "returns_to_go": torch.randn(batch, k + 1, 1),
        "timesteps": torch.randint(0, config.max_ep_len, (batch, k)),
        "attention_mask": torch.ones(batch, k, dtype=torch.long),
    }
    action_loss(model, batch_windows).backward()  # the trainer's loss, as in training
    hook.remove()
    heads = (hf.predict_state, hf.predict_return)
    return IdleParameters(
        trainable=count_trainable_parameters(model),
        position_rows=hf.encoder.wpe.num_embeddings,
        position_width=hf.encoder.wpe.embedding_dim,
        position_rows_read=len(read),
        state_head=sum(p.numel() for p in hf.predict_state.parameters()),
        return_head=sum(p.numel() for p in hf.predict_return.parameters()),
        heads_get_gradients=any(p.grad is not None and bool(p.grad.abs().sum())
                                for head in heads for p in head.parameters()),
    )


def parameter_counts(config: SequenceModelConfig) -> dict[str, int]:
    """Trainable parameters of DT and Decision Mamba built with ``config``.

    The paper quotes 1.2M (DT) and 900k (Mamba) without sizes; counting with Hugging Face's
    default timestep table (``max_ep_len=4096``) instead of ours (1000) shows which sizes match.
    """
    return {
        "dt": count_trainable_parameters(DecisionTransformer(config)),
        "mamba": count_trainable_parameters(DecisionMamba(config)),
    }
