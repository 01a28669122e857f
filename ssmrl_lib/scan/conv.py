"""``causal_conv_silu``: Mamba's causal depthwise convolution and SiLU, and where it runs.

On float32 CPU tensors one C kernel (``c_kernels.py``) computes conv, SiLU and the padding mask
in a single pass over ``[B, L, D]``; elsewhere torch's ``conv1d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssmrl_lib.scan import c_kernels
from ssmrl_lib.scan.c_kernels import c_causal_conv_silu


def causal_conv_silu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """``mask ⊙ silu(conv(x))`` for ``x [B, L, D]``, with ``conv`` depthwise and causal (output
    ``t`` sees inputs ``t - K + 1 .. t``, zeros before the start); ``weight [D, 1, K]`` and
    ``bias [D]`` as ``nn.Conv1d`` holds them, ``mask [B, L]`` (1 = real token) or None."""
    if c_kernels.usable(x, weight):
        return c_causal_conv_silu(x, weight.squeeze(1), bias, mask)
    length, kernel = x.shape[1], weight.shape[-1]
    pre = F.conv1d(x.transpose(1, 2), weight, bias, padding=kernel - 1, groups=x.shape[-1])
    out = F.silu(pre[..., :length].transpose(1, 2))  # cut the right padding: causal
    return out if mask is None else out * mask.unsqueeze(-1).to(out.dtype)
