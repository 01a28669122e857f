"""``linear_scan``: the diagonal linear recurrence with resets, and the choice of its backend.

All states of ``h_t = a_t ⊙ h_{t-1} + b_t`` (elementwise), where a reset flag discards the state
before step ``t`` (``h_t = b_t``): Lu et al. (2023)'s resettable scan, the ⊕ operator. S5 runs
it with a fixed complex ``a = Λ̄``; Mamba's ``selective_scan`` with ``a_t = exp(Δ_t A)`` when it
is given one of these backends. The backends compute the same function with different
speed/memory trade-offs:

    sequential   a Python loop under autograd: the definition, the others are tested against it
    associative  the log-depth parallel scan over ⊕ (``associative.py``)
    fast         a time loop without autograd and a hand-written backward (``fast.py``)

Shapes (batch first, time on dim 1):
    a:      broadcastable to ``b``, e.g. ``[B, L, D, N]`` or ``[D]`` (time-invariant)
    b:      ``[B, L, *state]``
    h0:     ``[B, *state]`` or None (zeros)
    reset:  ``[B, L]`` bool/float or None; ``reset[:, t] = 1`` makes ``h_t = b_t``
    return: ``[B, L, *state]``, all states
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssmrl_lib.errors import check_choice
from ssmrl_lib.scan.associative import associative_scan
from ssmrl_lib.scan.fast import fast_scan
from ssmrl_lib.scan.sequential import sequential_scan

LINEAR_SCAN_BACKENDS: dict[str, Callable[..., torch.Tensor]] = {
    "associative": associative_scan,
    "fast": fast_scan,
    "sequential": sequential_scan,
}


def linear_scan_backends() -> list[str]:
    """Valid ``backend`` names of ``linear_scan``."""
    return sorted(LINEAR_SCAN_BACKENDS)


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
    backend: str = "sequential",
) -> torch.Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (``h_t = b_t`` where ``reset_t``)."""
    check_choice("scan backend", backend, linear_scan_backends())
    return LINEAR_SCAN_BACKENDS[backend](a, b, h0, reset)
