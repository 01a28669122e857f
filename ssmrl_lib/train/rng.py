"""The torch random-number states a checkpoint carries, so that a resumed run draws what an
uninterrupted one would: the CPU generator's, and each CUDA device's where CUDA is in use
(dropout and action sampling on a GPU draw from those)."""

from __future__ import annotations

from typing import Any

import torch


def torch_rng_states() -> dict[str, Any]:
    """``torch_rng`` (the CPU generator) and ``cuda_rng`` (every device's, or None when this
    process has not used CUDA: reading them would start it)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": cuda}


def restore_torch_rng_states(checkpoint: dict[str, Any]) -> None:
    """Set the generators saved by :func:`torch_rng_states` (checkpoints from before CUDA
    states were saved, or saved on a CPU, restore the CPU generator only)."""
    torch.set_rng_state(checkpoint["torch_rng"])
    cuda = checkpoint.get("cuda_rng")
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
