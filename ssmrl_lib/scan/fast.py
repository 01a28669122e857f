"""``linear_scan``'s ``fast`` backend: a time loop with a hand-written backward.

Autograd through a Python loop (the ``sequential`` backend) records every step's ops and keeps
one intermediate per op; here the forward runs without autograd, writing each state into one
preallocated time-major buffer, and the backward is the reverse recurrence

    dh_t = g_t + conj(a_{t+1}) dh_{t+1},   grad b_t = dh_t,   grad a_t = dh_t conj(h_{t-1}),

(``conj`` is a no-op for real dtypes; PyTorch's complex gradients are conjugate Wirtinger).
Each step touches one ``[B, *state]`` slice, small enough to stay in cache, which is why a loop
of in-place ops beats a few whole-sequence ops that stream ``[B, L, *state]`` through memory.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssmrl_lib.scan.resets import expand_reset


class _LinearScan(torch.autograd.Function):
    """``h_t = a_t h_{t-1} + b_t`` on time-major ``a`` (may be an expanded view), ``b``, ``h0``."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
        states = torch.empty_like(b)
        previous = h0
        for t in range(b.shape[0]):
            if previous is None:
                states[t].copy_(b[t])
            else:
                torch.addcmul(b[t], a[t], previous, out=states[t])
            previous = states[t]
        ctx.save_for_backward(a, h0, states)
        return states

    @staticmethod
    def backward(ctx, grad_states: torch.Tensor):
        a, h0, states = ctx.saved_tensors
        grad_b = torch.empty_like(states)
        grad_b[-1].copy_(grad_states[-1])
        for t in range(states.shape[0] - 2, -1, -1):
            torch.addcmul(grad_states[t], a[t + 1].conj(), grad_b[t + 1], out=grad_b[t])
        grad_a = grad_h0 = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.zeros_like(states)
            torch.mul(grad_b[1:], states[:-1].conj(), out=grad_a[1:])
            if h0 is not None:
                torch.mul(grad_b[0], h0.conj(), out=grad_a[0])
        if h0 is not None and ctx.needs_input_grad[2]:
            grad_h0 = a[0].conj() * grad_b[0]
        return grad_a, grad_b, grad_h0


def fast_scan(a: Tensor, b: Tensor, h0: Tensor | None, reset: Tensor | None) -> Tensor:
    """``linear_scan``'s contract (``linear.py``); any dtype, real or complex."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    if h0 is not None:
        dtype = torch.promote_types(dtype, h0.dtype)
        h0 = h0.to(dtype)
    a, b = a.to(dtype), b.to(dtype)
    if reset is not None:
        a = a * (1 - expand_reset(reset, b))
    # Time-major so that each step's slice is contiguous; `a` stays a broadcast view.
    a_steps = torch.broadcast_to(a, b.shape).movedim(1, 0)
    states = _LinearScan.apply(a_steps, b.movedim(1, 0).contiguous(), h0)
    return states.movedim(0, 1)
