"""``selective_scan``: Mamba's gated selective scan, and the choice of its backend.

Mamba's SSM (Gu & Dao 2023) is ``linear_scan``'s recurrence with input-dependent coefficients:
``h_t = Ā_t ⊙ h_{t-1} + B̄_t x_t`` with ``Ā_t = exp(Δ_t A)`` and ``B̄_t x_t = Δ_t x_t B_t``, both
``[B, L, D, N]``, read out as ``y_t = C_t · h_t + D x_t`` and gated by ``silu(z_t)``. The
backends compute that one function:

    fused        the recurrence discretised inside the time loop, so no ``[B, L, D, N]`` tensor
                 is ever stored: the C kernels (``c_kernels.py``) on float32 CPU tensors, torch
                 ops (``fused_torch.py``) elsewhere
    cuda         mamba-ssm's CUDA kernels (``cuda.py``), which keep the state on chip
    auto         ``cuda`` on a GPU where mamba-ssm imports, else ``fused``
    sequential, associative, fast
                 ``linear_scan`` itself on the discretised ``[B, L, D, N]`` tensors (for
                 comparison: memory grows with ``D N`` per token)

so every backend runs the library's one recurrence; ``fused`` and ``cuda`` are specialisations
of it to Mamba's coefficients that keep ``Ā`` and ``B̄`` implicit, which ``linear_scan`` cannot.

Shapes: ``x, dt, z [B, L, D]``, ``A [D, N]``, ``B, C [B, L, N]``, ``D [D]``; ``Δ = softplus(dt)``;
the state starts at zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssmrl_lib.errors import check_choice
from ssmrl_lib.scan import c_kernels, cuda
from ssmrl_lib.scan.c_kernels import c_selective_scan
from ssmrl_lib.scan.cuda import cuda_selective_scan
from ssmrl_lib.scan.fused_torch import torch_selective_scan
from ssmrl_lib.scan.linear import linear_scan, linear_scan_backends


def selective_scan_backends() -> list[str]:
    """Valid ``backend`` names of ``selective_scan`` (``MambaConfig.scan_backend``)."""
    return ["auto", "fused", "cuda", *linear_scan_backends()]


def resolve_scan_backend(backend: str, device: torch.device | str) -> str:
    """The ``selective_scan`` backend ``backend`` runs as on ``device``: ``auto`` is ``cuda``
    (mamba-ssm's kernels) on a GPU where mamba-ssm imports, else ``fused``; any other name is
    itself."""
    if backend != "auto":
        return backend
    on_gpu = torch.device(device).type == "cuda"
    return "cuda" if on_gpu and cuda.kernels_available() else "fused"


def scan_provenance(backend: str, device: torch.device | str) -> str:
    """What computes the selective scan of ``backend`` on ``device``, for a run's result."""
    resolved = resolve_scan_backend(backend, device)
    if resolved == "cuda":
        return f"cuda (mamba-ssm {cuda.version()} kernels)"
    if resolved == "fused":
        on_cpu = torch.device(device).type == "cpu" and c_kernels.load() is not None
        where = "C kernels, scan.c_kernels" if on_cpu else "torch ops, scan.fused_torch"
        return f"fused ({where})"
    return f"{resolved} (linear_scan on the discretised tensors)"


def selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """``(C_t · h_t + D x_t) ⊙ silu(z_t)`` from ``h_{-1} = 0`` with ``Δ = softplus(dt)``, on
    ``backend`` (one of ``selective_scan_backends()``)."""
    check_choice("Mamba scan backend", backend, selective_scan_backends())
    inputs = (x, dt, A, B, C, D, z)
    backend = resolve_scan_backend(backend, x.device)
    if backend == "fused":
        fused = c_selective_scan if c_kernels.usable(*inputs) else torch_selective_scan
        return fused(*inputs)
    if backend == "cuda":
        return cuda_selective_scan(*inputs)
    return discretized_selective_scan(*inputs, linear_backend=backend)


def discretized_selective_scan(*inputs: torch.Tensor, linear_backend: str) -> torch.Tensor:
    """``selective_scan`` as ``linear_scan`` on ``Ā`` and ``B̄ x``, materialised."""
    x, dt, A, B, C, D, z = inputs
    delta = F.softplus(dt)  # [B, L, D]
    decay = torch.exp(delta.unsqueeze(-1) * A)  # Ā: [B, L, D, N]
    drive = (delta * x).unsqueeze(-1) * B.unsqueeze(2)  # B̄ x: [B, L, D, N]
    states = linear_scan(decay, drive, backend=linear_backend)  # h: [B, L, D, N]
    y = (states @ C.unsqueeze(-1)).squeeze(-1)  # C · h: [B, L, D]
    return (y + x * D) * F.silu(z)
