"""The reset flags of ``linear_scan``, broadcast against a backend's states."""

from __future__ import annotations

import torch


def expand_reset(reset: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a ``[B, L]`` reset flag so it broadcasts against ``like`` (``[B, L, ...]``), in
    ``like``'s real dtype so that ``1 - reset`` can multiply a complex decay."""
    return reset.to(like.real.dtype if like.is_complex() else like.dtype).reshape(
        *reset.shape, *([1] * (like.dim() - 2))
    )
