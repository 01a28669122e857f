"""The library's one linear-recurrence primitive.

Every SSM here reduces to ``h_t = a_t * h_{t-1} + b_t`` (elementwise), optionally with a reset
flag that discards the state before step ``t`` (``h_t = b_t``): Mamba's selective scan uses a
data-dependent ``a_t = exp(Δ_t A)``, S5 a fixed complex ``a = Λ̄`` with resets at episode
boundaries (Lu et al. 2023, the ⊕ operator). ``linear_scan`` is the single entry point; the
backends compute the same function with different speed/memory trade-offs.

Shapes (batch first, time on dim 1):
    a:      broadcastable to ``b``, e.g. ``[B, L, D, N]`` or ``[D]`` (time-invariant)
    b:      ``[B, L, *state]``
    h0:     ``[B, *state]`` or None (zeros)
    reset:  ``[B, L]`` bool/float or None; ``reset[:, t] = 1`` makes ``h_t = b_t``
    return: ``[B, L, *state]``, all hidden states
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssmrl_lib.errors import check_choice

ScanBackend = Callable[..., torch.Tensor]

_BACKENDS: dict[str, ScanBackend] = {}


def register_backend(name: str) -> Callable[[ScanBackend], ScanBackend]:
    """Decorator adding a backend under ``name`` to ``linear_scan``'s choices."""

    def decorate(fn: ScanBackend) -> ScanBackend:
        _BACKENDS[name] = fn
        return fn

    return decorate


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
    backend: str = "sequential",
) -> torch.Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (``h_t = b_t`` where ``reset_t``)."""
    check_choice("scan backend", backend, available_backends())
    return _BACKENDS[backend](a, b, h0=h0, reset=reset)


def expand_reset(reset: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a ``[B, L]`` reset flag so it broadcasts against ``like`` (``[B, L, ...]``)."""
    return reset.to(like.real.dtype if like.is_complex() else like.dtype).reshape(
        *reset.shape, *([1] * (like.dim() - 2))
    )


# Backends register themselves on import.
from ssmrl_lib.models.scan import associative as _associative  # noqa: E402,F401
from ssmrl_lib.models.scan import fast as _fast  # noqa: E402,F401
from ssmrl_lib.models.scan import reference as _reference  # noqa: E402,F401
