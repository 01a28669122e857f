"""Fast backend: a time loop with a hand-written backward, plus Mamba's fused selective scan.

Autograd through a Python loop (the ``sequential`` backend) records every step's ops and keeps
one intermediate per op; here the forward runs without autograd, writing each state into one
preallocated time-major buffer, and the backward is the reverse recurrence

    dh_t = g_t + conj(a_{t+1}) dh_{t+1},   grad b_t = dh_t,   grad a_t = dh_t conj(h_{t-1}),

(``conj`` is a no-op for real dtypes; PyTorch's complex gradients are conjugate Wirtinger).
Each step touches one ``[B, *state]`` slice, small enough to stay in cache, which is why a loop
of in-place ops beats a few whole-sequence ops that stream ``[B, L, *state]`` through memory.

``selective_scan`` is the same recurrence specialised to Mamba, where ``a_t = exp(Δ_t A)`` and
``b_t = Δ_t x_t B_t`` are ``[B, L, D, N]`` but are built from ``[B, L, D]`` and ``[B, L, N]``
inputs: it discretises inside the loop and contracts with ``C_t`` on the fly, so no
``[B, L, D, N]`` tensor is materialised for autograd. Same arithmetic as discretising first and
calling ``linear_scan``, so the result is exact, not an approximation. On float32 CPU tensors
it runs on ``cpu_kernel``'s C loops (which also fuse the softplus of ``Δ``, Mamba's ``D`` skip
and its gate), elsewhere (GPU, float64, no C compiler) on torch ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssmrl_lib.models.scan import cpu_kernel, expand_reset, register_backend


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


@register_backend("fast")
def fast_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
) -> torch.Tensor:
    """``linear_scan``'s contract (package docstring); any dtype, real or complex."""
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


class _SelectiveScan(torch.autograd.Function):
    """Mamba's ``y_t = C_t · h_t`` with ``h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_t``, ``h_{-1} = 0``,
    in torch ops (any device and dtype; on CPU ``cpu_kernel`` is faster).

    Internally time-major with the state laid out ``[B, N, D]`` (channels last), so the
    contractions are ``[1, N] @ [N, D]`` and ``[1, D] @ [D, N]`` products with a long contiguous
    inner dimension. States are kept as one tensor per step rather than one ``[L, B, N, D]``
    block: blocks that large are fresh, page-faulting memory on every call, while step-sized
    ones are recycled by malloc. The decays are cheaper to recompute than to store.
    """

    @staticmethod
    def forward(ctx, x, delta, A, B, C):
        delta_t = delta.transpose(0, 1).contiguous()  # [L, B, D]
        delta_x = (delta * x).transpose(0, 1).contiguous()  # [L, B, D]
        B_t = B.transpose(0, 1).contiguous()  # [L, B, N]
        C_t = C.transpose(0, 1).contiguous()
        A_t = A.t().contiguous()  # [N, D]
        length, batch, channels = delta_x.shape
        y = delta_x.new_empty(length, batch, 1, channels)
        decay = delta_x.new_empty(batch, A_t.shape[0], channels)
        states = []
        for t in range(length):
            h = torch.mul(B_t[t].unsqueeze(-1), delta_x[t].unsqueeze(1))
            if t > 0:
                torch.mul(delta_t[t].unsqueeze(1), A_t, out=decay).exp_()
                h.addcmul_(decay, states[-1])
            torch.bmm(C_t[t].unsqueeze(1), h, out=y[t])
            states.append(h)
        ctx.save_for_backward(x, delta, A_t, B_t, C_t, delta_t, delta_x, *states)
        return y.squeeze(2).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_y):
        x, delta, A_t, B_t, C_t, delta_t, delta_x, *states = ctx.saved_tensors
        grad_y_t = grad_y.transpose(0, 1).contiguous()  # [L, B, D]
        grad_delta_x = torch.empty_like(delta_x).unsqueeze(2)  # [L, B, 1, D]
        grad_exponent_sum = torch.zeros_like(delta_x)  # Σ_n ∂/∂(Δ A)_{nd} · A_{nd}
        grad_B = torch.empty_like(B_t).unsqueeze(2)  # [L, B, 1, N]
        grad_C = torch.empty_like(C_t).unsqueeze(2)
        grad_A_t = torch.zeros_like(states[0])  # summed over time here, over batch at the end
        grad_h = torch.empty_like(states[0])
        carried = torch.zeros_like(states[0])  # exp(Δ_{t+1} A) ⊙ dh_{t+1}
        grad_exponent = torch.empty_like(states[0])
        for t in range(len(states) - 1, -1, -1):
            torch.bmm(grad_y_t[t].unsqueeze(1), states[t].transpose(1, 2), out=grad_C[t])
            torch.addcmul(carried, C_t[t].unsqueeze(-1), grad_y_t[t].unsqueeze(1), out=grad_h)
            torch.bmm(B_t[t].unsqueeze(1), grad_h, out=grad_delta_x[t])
            torch.bmm(delta_x[t].unsqueeze(1), grad_h.transpose(1, 2), out=grad_B[t])
            if t > 0:
                torch.mul(delta_t[t].unsqueeze(1), A_t, out=carried).exp_()
                carried.mul_(grad_h)
                torch.mul(carried, states[t - 1], out=grad_exponent)
                grad_A_t.addcmul_(grad_exponent, delta_t[t].unsqueeze(1))
                grad_exponent.mul_(A_t)
                torch.sum(grad_exponent, dim=1, out=grad_exponent_sum[t])
        grad_delta_x = grad_delta_x.squeeze(2).transpose(0, 1)
        return (
            grad_delta_x * delta,
            grad_delta_x * x + grad_exponent_sum.transpose(0, 1),
            grad_A_t.sum(0).t(),
            grad_B.squeeze(2).transpose(0, 1),
            grad_C.squeeze(2).transpose(0, 1),
        )


def selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor,
    compiled: bool = True,
) -> torch.Tensor:
    """Mamba's gated scan from a zero state, ``(C_t · h_t + D x_t) ⊙ silu(z_t)`` with
    ``Δ = softplus(dt)``, for ``x, dt, z [B, L, D]``, ``A [D, N]``, ``B, C [B, L, N]``, ``D [D]``.

    Float32 CPU inputs run on the compiled kernel when it builds (``compiled=False`` forces
    the torch implementation, e.g. to compare the two); anything else on torch ops.
    """
    if compiled and cpu_kernel.usable(x, dt, A, B, C, D, z):
        return cpu_kernel.gated_selective_scan(x, dt, A, B, C, D, z)
    y = _SelectiveScan.apply(x, F.softplus(dt), A, B, C)
    return (y + x * D) * F.silu(z)
