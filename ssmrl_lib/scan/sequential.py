"""``linear_scan``'s ``sequential`` backend: a plain Python loop over time under autograd.

Slow but obviously correct; every other backend is tested against it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssmrl_lib.scan.resets import expand_reset


def sequential_scan(a: Tensor, b: Tensor, h0: Tensor | None, reset: Tensor | None) -> Tensor:
    """``linear_scan``'s contract (``linear.py``), step by step."""
    a = torch.broadcast_to(a, b.shape)
    if reset is not None:
        a = a * (1 - expand_reset(reset, b))
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    states = []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)
