"""Memory cores for recurrent actor-critics: resettable S5, S5 without resets, GRU, LSTM, none.

Every core has the same interface, so the PPO agent never needs to know which one it holds::

    y, new_state = core(x, state, reset)   # x [B, T, d_in], reset [B, T] bool -> y [B, T, d_out]
    state = core.initial_state(batch_size)

``reset[:, t]`` is true where step ``t`` is the first step of a new episode (the previous step's
``done``); a core that honours it computes step ``t`` as if its state were the initial one, so
no information crosses an episode boundary. Acting calls the core with ``T = 1`` step by step
and training replays whole rollouts with the same flags, which gives the same outputs.

States are one tensor per core with the batch on dim 1 (``[layers, B, ...]``), so a rollout's
start state can be stored and minibatches of environments cut from it with ``state[:, idx]``.

Glossary (Lu et al. 2023 → code)::

    S5 with ⊕ / without ⊕      "s5" / "s5_noreset": S5Core(use_reset=True / False)
    GRU, LSTM, MLP baselines   "gru", "lstm", "mlp": GRUCore, LSTMCore, MLPCore
    d_t (episode start)        reset[:, t] (the previous step's done)
"""

from __future__ import annotations

import torch
from torch import nn

from ssmrl_lib.errors import check_choice
from ssmrl_lib.models.s5 import S5Config, S5Stack

STATE_BATCH_DIM = 1


class S5Core(nn.Module):
    """An ``S5Stack`` over the encoder's features, with (``use_reset``) or without resets.

    Without resets the state runs on across episode boundaries, both when acting and when
    training: the paper's "S5 without ⊕" ablation.
    """

    def __init__(self, d_in: int, config: S5Config, use_reset: bool = True):
        super().__init__()
        self.project = nn.Identity() if d_in == config.d_model else nn.Linear(d_in, config.d_model)
        self.stack = S5Stack(config)
        self.use_reset = use_reset
        self.out_features = config.d_model

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.stack.initial_state(batch_size)  # [n_layers, B, P/2] complex

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, reset: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        reset = reset if self.use_reset else None
        if x.shape[1] == 1:  # acting: the recurrent step, same function as a length-1 scan
            y, state = self.stack.step(self.project(x[:, 0]), state, _first(reset))
            return y[:, None], state
        return self.stack(self.project(x), state, reset)


def _first(reset: torch.Tensor | None) -> torch.Tensor | None:
    return None if reset is None else reset[:, 0]


class _RecurrentCore(nn.Module):
    """Shared logic of the GRU and LSTM cores: ``torch.nn.GRU``/``LSTM`` cut at episode starts.

    The fused ``nn.GRU`` cannot reset a single batch element mid-sequence, so the sequence is
    cut into chunks at every time step where *some* environment starts an episode; before each
    chunk the state of exactly those environments is zeroed, then the whole chunk runs through
    the fused kernel. Exact, and as fast as one call when episodes are long (in the worst case,
    a reset at every step, it is a step-by-step loop).
    """

    rnn: nn.GRU | nn.LSTM

    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.out_features = hidden

    def _pack(self, state: torch.Tensor):
        raise NotImplementedError

    def _unpack(self, state) -> torch.Tensor:
        raise NotImplementedError

    def initial_state(self, batch_size: int) -> torch.Tensor:
        n = 2 if isinstance(self.rnn, nn.LSTM) else 1
        weight = self.rnn.weight_hh_l0
        return torch.zeros(n, batch_size, self.hidden, dtype=weight.dtype, device=weight.device)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, reset: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        length, reset = x.shape[1], reset.bool()
        if length == 1:  # acting: no need to look for reset times
            keep = (~reset[:, 0]).to(state.dtype).view(1, -1, 1)
            y, packed = self.rnn(x, self._pack(state * keep))
            return y, self._unpack(packed)
        starts = torch.nonzero(reset.any(dim=0)).flatten().tolist()
        bounds = sorted({0, *starts, length})
        outputs = []
        for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
            keep = (~reset[:, begin]).to(state.dtype).view(1, -1, 1)
            y, packed = self.rnn(x[:, begin:end], self._pack(state * keep))
            state = self._unpack(packed)
            outputs.append(y)
        return torch.cat(outputs, dim=1), state


class GRUCore(_RecurrentCore):
    """One GRU layer; the state is ``[1, B, hidden]``."""

    def __init__(self, d_in: int, hidden: int):
        super().__init__(d_in, hidden)
        self.rnn = nn.GRU(d_in, hidden, batch_first=True)

    def _pack(self, state: torch.Tensor) -> torch.Tensor:
        return state.contiguous()

    def _unpack(self, state: torch.Tensor) -> torch.Tensor:
        return state


class LSTMCore(_RecurrentCore):
    """One LSTM layer; the state is ``[2, B, hidden]``: ``h`` and ``c`` stacked."""

    def __init__(self, d_in: int, hidden: int):
        super().__init__(d_in, hidden)
        self.rnn = nn.LSTM(d_in, hidden, batch_first=True)

    def _pack(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return state[:1].contiguous(), state[1:].contiguous()

    def _unpack(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.cat(state, dim=0)


class MLPCore(nn.Module):
    """No memory: one LeakyReLU layer in place of the recurrence; the state is a placeholder."""

    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU())
        self.out_features = hidden

    def initial_state(self, batch_size: int) -> torch.Tensor:
        weight = self.layer[0].weight
        return torch.zeros(1, batch_size, 1, dtype=weight.dtype, device=weight.device)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, reset: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layer(x), state


CORES = ("s5", "s5_noreset", "gru", "lstm", "mlp")


def make_core(
    name: str,
    d_in: int,
    hidden: int,
    s5_layers: int = 4,
    s5_state: int = 256,
    scan_backend: str = "associative",
    s5_block: str = "authors",
) -> nn.Module:
    """The memory core ``name`` (one of ``CORES``) mapping ``d_in`` features to ``hidden``;
    ``s5_block`` is S5's residual block (``"authors"`` or ``"prenorm"``, see ``models/s5.py``)."""
    check_choice("memory model", name, CORES)
    if name in ("s5", "s5_noreset"):
        config = S5Config(
            d_model=hidden, d_state=s5_state, n_layers=s5_layers, scan_backend=scan_backend,
            block=s5_block,
        )
        return S5Core(d_in, config, use_reset=name == "s5")
    return {"gru": GRUCore, "lstm": LSTMCore, "mlp": MLPCore}[name](d_in, hidden)
