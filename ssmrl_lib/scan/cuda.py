"""Mamba's selective scan on mamba-ssm's CUDA kernels, when that optional package is installed.

The kernels (Gu & Dao 2023) keep the ``[B, D, N]`` state in on-chip memory and never write the
``[B, L, D, N]`` states out, which no composition of PyTorch ops matches on a GPU. mamba-ssm
needs a CUDA toolchain to build, so it is not a dependency: ``kernels_available`` says whether
it imported, and ``selective_scan``'s ``auto`` backend falls back to ``fused`` otherwise.
"""

from __future__ import annotations

import torch

from ssmrl_lib.errors import SsmrlError

try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
except ImportError:
    selective_scan_fn = None


def version() -> str | None:
    """mamba-ssm's version, or None when it did not import."""
    if selective_scan_fn is None:
        return None
    from importlib import metadata

    try:
        return metadata.version("mamba-ssm")
    except metadata.PackageNotFoundError:  # imported from a source tree
        return "unknown"


def kernels_available() -> bool:
    """True when mamba-ssm imported and a CUDA device is present."""
    return selective_scan_fn is not None and torch.cuda.is_available()


def cuda_selective_scan(*inputs: torch.Tensor) -> torch.Tensor:
    """``selective_scan``'s function of ``x, dt, A, B, C, D, z`` (``selective.py``) on CUDA
    tensors."""
    x, dt, A, B, C, D, z = inputs
    if not (kernels_available() and x.is_cuda):
        raise SsmrlError("scan backend 'cuda' needs CUDA tensors and the mamba-ssm package")
    # The kernels take channels-first [B, D, L] inputs and [B, N, L] B and C.
    out = selective_scan_fn(
        *(t.transpose(1, 2).contiguous() for t in (x, dt)),
        A.contiguous(),
        *(t.transpose(1, 2).contiguous() for t in (B, C)),
        D=D.float(),
        z=z.transpose(1, 2).contiguous(),
        delta_softplus=True,
    )
    return out.transpose(1, 2)
