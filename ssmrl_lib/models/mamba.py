"""Mamba (v1, Gu & Dao 2023) in plain PyTorch: the same model as ``transformers.MambaModel``.

Rezaei & Patel wrapped Hugging Face's ``MambaModel``; this is that network written out so the
selective scan can run on the library's scans and so a rollout can advance it one token at a
time. Hugging Face's own CPU path materialises ``[B, L, D, N]`` tensors and loops over time
under autograd; here the scan and the conv run on fused C kernels on CPU (``scan.cpu_kernel``),
on mamba-ssm's kernels on GPU when installed, or on any ``linear_scan`` backend for comparison
(``MambaConfig.scan_backend``). Parameter names and shapes are Hugging Face's:
an HF ``MambaModel`` state dict loads with ``load_state_dict`` once its token embedding
``embeddings.weight`` is dropped (sequence models here feed embeddings, not token ids).
Initialisation follows ``MambaPreTrainedModel._init_weights``, so training starts where the
paper's did.

Each block: ``x + out_proj(SSM(conv(in_proj(RMSNorm(x)))) ⊙ silu(gate))``. The SSM is diagonal
and input-dependent: ``Δ, B, C`` are projections of the token, ``A`` is a learned ``[D, N]``
matrix, and the state ``h [B, D, N]`` obeys ``h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_t``,
``y_t = C_t · h_t + D x_t``. The recurrent mode carries, per layer, the last ``conv_kernel - 1``
conv inputs and ``h``: O(1) time and memory per token, whatever the context length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ssmrl_lib.errors import check_choice
from ssmrl_lib.models.scan import available_backends, cpu_kernel, linear_scan
from ssmrl_lib.models.scan import cuda as cuda_scan
from ssmrl_lib.models.scan import fast as fast_scan


@dataclass(frozen=True)
class MambaConfig:
    """Sizes of the backbone; defaults match ``transformers.MambaConfig`` where they overlap.

    ``scan_backend``: ``"auto"`` (mamba-ssm's CUDA kernels on GPU when installed, else
    ``"fused"``), ``"fused"`` (``scan.fast.selective_scan``), ``"cuda"``, or the name of any
    ``linear_scan`` backend, which then runs on the discretised ``[B, L, D, N]`` tensors.
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


def scan_backends() -> list[str]:
    """Valid ``MambaConfig.scan_backend`` values."""
    return ["auto", "fused", "cuda", *available_backends()]


def resolve_scan_backend(backend: str, device: torch.device | str) -> str:
    """The backend ``backend`` runs as on ``device``: ``auto`` is ``cuda`` (mamba-ssm's kernels)
    on a GPU where mamba-ssm imports, else ``fused``; any other name is itself."""
    if backend != "auto":
        return backend
    on_gpu = torch.device(device).type == "cuda"
    return "cuda" if on_gpu and cuda_scan.kernels_available() else "fused"


def scan_provenance(backend: str, device: torch.device | str) -> str:
    """What computes the selective scan of ``backend`` on ``device``, for a run's result."""
    resolved = resolve_scan_backend(backend, device)
    if resolved == "cuda":
        return f"cuda (mamba-ssm {cuda_scan.version()} kernels)"
    if resolved == "fused":
        on_cpu = torch.device(device).type == "cpu" and cpu_kernel.load() is not None
        return "fused (C kernels, scan.cpu_kernel)" if on_cpu else "fused (torch ops, scan.fast)"
    return f"{resolved} (linear_scan on the discretised tensors)"


class LayerState(NamedTuple):
    """One block's recurrent state: the last ``conv_kernel - 1`` conv inputs and the SSM state."""

    conv: torch.Tensor  # [B, D, conv_kernel - 1]
    ssm: torch.Tensor  # [B, D, N]


MambaState = tuple[LayerState, ...]


def gated_selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,  # noqa: N803 (the paper's names)
    B: torch.Tensor,  # noqa: N803
    C: torch.Tensor,  # noqa: N803
    D: torch.Tensor,  # noqa: N803
    gate: torch.Tensor,
    backend: str,
) -> torch.Tensor:
    """``(C_t · h_t + D x_t) ⊙ silu(gate_t)`` from ``h_{-1} = 0`` with ``Δ = softplus(dt)``, for
    ``x, dt, gate [B, L, D]``, ``A [D, N]``, ``B, C [B, L, N]``; ``backend`` as in
    ``MambaConfig.scan_backend``."""
    backend = resolve_scan_backend(backend, x.device)
    if backend == "fused":
        return fast_scan.selective_scan(x, dt, A, B, C, D, gate)
    if backend == "cuda":
        return cuda_scan.selective_scan(x, dt, A, B, C, D, gate)
    delta = F.softplus(dt)
    decay = torch.exp(delta.unsqueeze(-1) * A)  # [B, L, D, N]
    drive = (delta * x).unsqueeze(-1) * B.unsqueeze(2)
    states = linear_scan(decay, drive, backend=backend)
    y = (states @ C.unsqueeze(-1)).squeeze(-1)
    return (y + x * D) * F.silu(gate)


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
        dt, B, C = self.x_proj(x).split([rank, n, n], dim=-1)  # noqa: N806
        return self.dt_proj(dt), B, C

    def _conv_silu(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """``silu(conv1d(x))`` on ``[B, L, D]``, causal (left padding, cut to ``L``), padded
        positions zeroed. One fused C kernel on CPU, else the conv op."""
        conv = self.conv1d
        if cpu_kernel.usable(x, conv.weight):
            return cpu_kernel.causal_conv_silu(x, conv.weight.squeeze(1), conv.bias, attention_mask)
        x = conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)
        return _mask_padding(F.silu(x), attention_mask)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, L, hidden]`` -> ``[B, L, hidden]``; positions with mask 0 cannot affect others."""
        hidden = _mask_padding(hidden, attention_mask)
        # in_proj as two products instead of one and a chunk: the halves (and their gradients)
        # then need no copying into contiguous tensors for the kernels.
        inner = self.config.intermediate_size
        x = F.linear(hidden, self.in_proj.weight[:inner])
        gate = F.linear(hidden, self.in_proj.weight[inner:])
        x = self._conv_silu(x, attention_mask)
        dt, B, C = self._ssm_inputs(x)  # noqa: N806
        A = -torch.exp(self.A_log.float())  # noqa: N806
        y = gated_selective_scan(x, dt, A, B, C, self.D, gate, self.config.scan_backend)
        return self.out_proj(y)

    def init_state(self, batch_size: int) -> LayerState:
        weight = self.A_log
        inner, n, k = self.config.intermediate_size, self.config.state_size, self.config.conv_kernel
        return LayerState(
            conv=weight.new_zeros(batch_size, inner, k - 1),
            ssm=weight.new_zeros(batch_size, inner, n),
        )

    def step(self, hidden: torch.Tensor, state: LayerState) -> tuple[torch.Tensor, LayerState]:
        """One token ``[B, hidden]``: the conv sees the stored inputs, the SSM one update."""
        x, gate = self.in_proj(hidden).chunk(2, dim=-1)
        window = torch.cat([state.conv, x.unsqueeze(-1)], dim=-1)  # [B, D, conv_kernel]
        x = F.silu((window * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)
        dt, B, C = self._ssm_inputs(x)  # noqa: N806
        delta = F.softplus(dt)
        A = -torch.exp(self.A_log.float())  # noqa: N806
        ssm = torch.exp(delta.unsqueeze(-1) * A) * state.ssm
        ssm = ssm + (delta * x).unsqueeze(-1) * B.unsqueeze(1)
        y = (ssm @ C.unsqueeze(-1)).squeeze(-1)
        out = self.out_proj((y + x * self.D) * F.silu(gate))
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
        check_choice("Mamba scan backend", config.scan_backend, scan_backends())
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
