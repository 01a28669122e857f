"""Mamba (v1, Gu & Dao 2023) in plain PyTorch: the same model as ``transformers.MambaModel``.

Glossary (paper → code)::

    D, E           hidden_size, expand;   E·D (the SSM's channels) intermediate_size
    N              state_size
    R              dt_rank (rank of Δ's projection)
    x              the SSM's input [B, L, E·D]: in_proj's first half after conv1d and SiLU
    z              the gate [B, L, E·D]: in_proj's second half
    conv           conv1d (depthwise, causal, kernel conv_kernel)
    A              -exp(A_log) [E·D, N]   (S4D-real start: A = -(1, ..., N))
    Δ              softplus(dt): dt = dt_proj(x_proj(x)[..., :R])   [B, L, E·D]
    B, C           x_proj(x)[..., R:R+N], x_proj(x)[..., R+N:]     [B, L, N] each
    D (the skip)   D [E·D]
    Ā_t, B̄_t       exp(Δ_t A), Δ_t B_t   (zero-order hold for A, B̄ ≈ Δ B as mamba-ssm computes it)
    h              LayerState.ssm [B, E·D, N]

One block is ``x + out_proj(SSM(silu(conv(in_proj_x(RMSNorm(x))))) ⊙ silu(z))``, with the
selective SSM of the paper's equations (2) and Algorithm 2::

    h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t,        y_t = C_t h_t + D x_t.

``selective_scan_reference`` is that loop, written out; training runs the same function on
``ssmrl_lib.scan.selective_scan`` (fused C kernels on CPU, mamba-ssm's kernels on GPU, or any
``linear_scan`` backend: ``MambaConfig.scan_backend``), which the tests hold to the reference.
Acting advances one token at a time (``step``): per layer the last ``conv_kernel - 1`` conv
inputs and ``h``, O(1) time and memory per token whatever the context length.

Rezaei & Patel wrapped Hugging Face's ``MambaModel``; parameter names and shapes here are
Hugging Face's, so an HF state dict loads with ``load_state_dict`` once its token embedding
``embeddings.weight`` is dropped (sequence models here feed embeddings, not token ids), and the
initialisation is ``MambaPreTrainedModel._init_weights``', so training starts where theirs did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmrl_lib.errors import check_choice
from ssmrl_lib.scan import causal_conv_silu, selective_scan, selective_scan_backends


@dataclass(frozen=True)
class MambaConfig:
    """Sizes of the backbone; defaults match ``transformers.MambaConfig`` where they overlap.

    ``scan_backend``: one of ``ssmrl_lib.scan.selective_scan_backends()``: ``"auto"``
    (mamba-ssm's CUDA kernels on GPU when installed, else ``"fused"``), ``"fused"``, ``"cuda"``,
    or the name of any ``linear_scan`` backend, which then runs on the discretised
    ``[B, L, E·D, N]`` tensors.
    """

    hidden_size: int = 128
    n_layer: int = 3
    state_size: int = 16
    expand: int = 2
    conv_kernel: int = 4
    time_step_rank: int | None = None  # None: ceil(hidden_size / 16), as Hugging Face's "auto"
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.1
    time_step_min: float = 0.001
    time_step_max: float = 0.1
    time_step_floor: float = 1e-4
    scan_backend: str = "auto"

    @property
    def intermediate_size(self) -> int:
        return self.expand * self.hidden_size

    @property
    def dt_rank(self) -> int:
        return self.time_step_rank or math.ceil(self.hidden_size / 16)


class LayerState(NamedTuple):
    """One block's recurrent state: the last ``conv_kernel - 1`` conv inputs and the SSM state."""

    conv: torch.Tensor  # [B, E·D, conv_kernel - 1]
    ssm: torch.Tensor  # h: [B, E·D, N]


MambaState = tuple[LayerState, ...]


def selective_ssm_step(
    h: Tensor, x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor
) -> tuple[Tensor, Tensor]:
    """One step of the selective SSM: ``h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t`` and
    ``y_t = C_t h_t + D x_t``, for ``h [B, E·D, N]``, ``x, Δ [B, E·D]``, ``A [E·D, N]``,
    ``B, C [B, N]``, ``D [E·D]``; returns ``y_t [B, E·D]`` and ``h_t``."""
    decay = torch.exp(delta.unsqueeze(-1) * A)  # Ā_t: [B, E·D, N]
    h = decay * h + (delta * x).unsqueeze(-1) * B.unsqueeze(1)  # [B, E·D, N]
    y = (h @ C.unsqueeze(-1)).squeeze(-1) + x * D  # [B, E·D]
    return y, h


def selective_scan_reference(
    x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor
) -> Tensor:
    """The selective SSM over a sequence as the paper writes it, one step at a time from
    ``h_{-1} = 0``: ``x, Δ [B, L, E·D]``, ``A [E·D, N]``, ``B, C [B, L, N]`` to ``y [B, L, E·D]``.

    The definition ``ssmrl_lib.scan.selective_scan``'s backends are tested against (they also
    apply ``Δ = softplus(dt)`` and the gate, which this leaves to the caller).
    """
    h = x.new_zeros(x.shape[0], x.shape[2], A.shape[1])  # [B, E·D, N]
    outputs = []
    for t in range(x.shape[1]):
        y, h = selective_ssm_step(h, x[:, t], delta[:, t], A, B[:, t], C[:, t], D)
        outputs.append(y)
    return torch.stack(outputs, dim=1)  # [B, L, E·D]


def _mask_padding(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero padded positions (mask 0) so they neither drive the conv nor the SSM state."""
    if attention_mask is None:
        return hidden
    return hidden * attention_mask.unsqueeze(-1).to(hidden.dtype)


class RMSNorm(nn.Module):
    """``x / rms(x) * weight``, computed in float32 like Hugging Face's ``MambaRMSNorm``."""

    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        normed = F.rms_norm(hidden.float(), self.weight.shape, self.weight.float(), self.eps)
        return normed.to(hidden.dtype)


class MambaMixer(nn.Module):
    """The selective SSM with its input/output projections, causal conv and gate."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.config = config
        inner, rank, n = config.intermediate_size, config.dt_rank, config.state_size
        self.in_proj = nn.Linear(config.hidden_size, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(
            inner, inner, config.conv_kernel, groups=inner, padding=config.conv_kernel - 1
        )
        self.x_proj = nn.Linear(inner, rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(rank, inner)
        self.A_log = nn.Parameter(torch.empty(inner, n))
        self.D = nn.Parameter(torch.empty(inner))
        self.out_proj = nn.Linear(inner, config.hidden_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Hugging Face's Mamba init: S4D-real ``A = -[1..N]``, ``D = 1``, and ``Δ`` starting
        log-uniform in ``[time_step_min, time_step_max]`` (so memory spans many time scales)."""
        config = self.config
        nn.init.normal_(self.in_proj.weight, std=config.initializer_range)
        nn.init.normal_(self.x_proj.weight, std=config.initializer_range)
        nn.init.kaiming_uniform_(self.conv1d.weight, a=math.sqrt(5))
        nn.init.zeros_(self.conv1d.bias)
        nn.init.kaiming_uniform_(self.out_proj.weight, a=math.sqrt(5))
        n = config.state_size
        self.A_log.copy_(
            torch.log(torch.arange(1, n + 1, dtype=torch.float32)).expand_as(self.A_log)
        )
        nn.init.ones_(self.D)
        bound = config.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        log_min, log_max = math.log(config.time_step_min), math.log(config.time_step_max)
        dt = torch.exp(torch.rand(config.intermediate_size) * (log_max - log_min) + log_min)
        dt = dt.clamp(min=config.time_step_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus

    def _ssm_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``dt`` (``Δ`` before its softplus), ``B``, ``C``: projections of the conv output."""
        rank, n = self.config.dt_rank, self.config.state_size
        dt, B, C = self.x_proj(x).split([rank, n, n], dim=-1)  # [..., R], [..., N], [..., N]
        return self.dt_proj(dt), B, C  # dt: [..., E·D]

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, L, D]`` -> ``[B, L, D]``; positions with mask 0 cannot affect others."""
        # 1. Padded positions are zeroed, so they drive neither the conv nor the state.
        hidden = _mask_padding(hidden, attention_mask)
        # 2. Input and gate projections, as two products instead of one and a chunk: the halves
        #    (and their gradients) then need no copying into contiguous tensors for the kernels.
        inner = self.config.intermediate_size
        x = F.linear(hidden, self.in_proj.weight[:inner])  # [B, L, E·D]
        z = F.linear(hidden, self.in_proj.weight[inner:])  # [B, L, E·D]
        # 3. Causal depthwise conv and SiLU (padded positions zeroed again).
        x = causal_conv_silu(x, self.conv1d.weight, self.conv1d.bias, attention_mask)
        # 4. Input-dependent Δ, B, C; the fixed A.
        dt, B, C = self._ssm_inputs(x)  # [B, L, E·D], [B, L, N], [B, L, N]
        A = -torch.exp(self.A_log.float())  # [E·D, N]
        # 5. The selective scan with the D skip and the gate: (y + D x) ⊙ silu(z).
        y = selective_scan(x, dt, A, B, C, self.D, z, self.config.scan_backend)  # [B, L, E·D]
        # 6. Back to the model width.
        return self.out_proj(y)  # [B, L, D]

    def init_state(self, batch_size: int) -> LayerState:
        weight = self.A_log
        inner, n, k = self.config.intermediate_size, self.config.state_size, self.config.conv_kernel
        return LayerState(
            conv=weight.new_zeros(batch_size, inner, k - 1),
            ssm=weight.new_zeros(batch_size, inner, n),
        )

    def step(self, hidden: torch.Tensor, state: LayerState) -> tuple[torch.Tensor, LayerState]:
        """One token ``[B, D]``: ``forward``'s steps for one position, from the stored state."""
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # [B, E·D] each
        window = torch.cat([state.conv, x.unsqueeze(-1)], dim=-1)  # [B, E·D, conv_kernel]
        x = F.silu((window * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)
        dt, B, C = self._ssm_inputs(x)  # [B, E·D], [B, N], [B, N]
        A = -torch.exp(self.A_log.float())  # [E·D, N]
        y, ssm = selective_ssm_step(state.ssm, x, F.softplus(dt), A, B, C, self.D)
        out = self.out_proj(y * F.silu(z))  # [B, D]
        return out, LayerState(conv=window[..., 1:], ssm=ssm)


class MambaBlock(nn.Module):
    """Pre-norm residual block (Hugging Face keeps the residual in float32; so do we)."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.norm = RMSNorm(config.hidden_size, config.layer_norm_epsilon)
        self.mixer = MambaMixer(config)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return hidden.float() + self.mixer(self.norm(hidden), attention_mask)

    def step(self, hidden: torch.Tensor, state: LayerState) -> tuple[torch.Tensor, LayerState]:
        out, state = self.mixer.step(self.norm(hidden), state)
        return hidden.float() + out, state


class MambaBackbone(nn.Module):
    """Stack of Mamba blocks and a final RMSNorm: embeddings in, contextual features out."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        check_choice("Mamba scan backend", config.scan_backend, selective_scan_backends())
        self.config = config
        self.layers = nn.ModuleList(MambaBlock(config) for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.hidden_size, config.layer_norm_epsilon)

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, L, hidden]`` -> ``[B, L, hidden]``, causal; ``attention_mask`` 1 = real token."""
        hidden = inputs_embeds
        for layer in self.layers:
            hidden = layer(hidden, attention_mask)
        return self.norm_f(hidden)

    def init_state(self, batch_size: int) -> MambaState:
        """The state before the first token (all zeros, as the full-sequence forward assumes)."""
        return tuple(layer.mixer.init_state(batch_size) for layer in self.layers)

    def step(self, token: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """Advance by one token ``[B, hidden]``; returns its output and the new state."""
        new_state = []
        hidden = token
        for layer, layer_state in zip(self.layers, state, strict=True):
            hidden, layer_state = layer.step(hidden, layer_state)
            new_state.append(layer_state)
        return self.norm_f(hidden), tuple(new_state)
