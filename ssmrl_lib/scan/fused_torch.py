"""Mamba's selective scan in torch ops, discretising inside the time loop.

The recurrence is ``linear_scan``'s with ``a_t = exp(Δ_t A)`` and ``b_t = Δ_t x_t B_t``, both
``[B, L, D, N]`` but built from ``[B, L, D]`` and ``[B, L, N]`` inputs: this loop discretises one
step at a time and contracts with ``C_t`` on the fly, so no ``[B, L, D, N]`` tensor is
materialised for autograd. Same arithmetic as discretising first and calling ``linear_scan``, so
the result is exact, not an approximation. The ``fused`` backend of ``selective_scan`` runs it
where the C kernels do not apply (a GPU without mamba-ssm, float64, no C compiler).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _SelectiveScan(torch.autograd.Function):
    """Mamba's ``y_t = C_t · h_t`` with ``h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_t``, ``h_{-1} = 0``,
    in torch ops (any device and dtype; on a float32 CPU the C kernels are faster).

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


def torch_selective_scan(*inputs: torch.Tensor) -> torch.Tensor:
    """``selective_scan``'s function of ``x, dt, A, B, C, D, z`` (``selective.py``); any device
    and dtype."""
    x, dt, A, B, C, D, z = inputs
    y = _SelectiveScan.apply(x, F.softplus(dt), A, B, C)
    return (y + x * D) * F.silu(z)
