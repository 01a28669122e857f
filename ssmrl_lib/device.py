"""Which device the models run on: ``$SSMRL_DEVICE`` = ``auto`` | ``cpu`` | ``cuda``.

``ssmrl --device`` sets the variable, so papermill's kernels and executor workers started from
the command inherit it. ``auto`` (the default) is the first CUDA GPU when torch sees one, else the
CPU. Each run records the device it used in its result (provenance), but the device is never
part of a run's cache key: a config says what is computed, not where. On the CPU every number
is the same whichever way the device was chosen.
"""

from __future__ import annotations

import os

import torch

from ssmrl_lib.errors import SsmrlError, check_choice

DEVICE_VARIABLE = "SSMRL_DEVICE"
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def device_choice() -> str:
    """``$SSMRL_DEVICE`` (``auto`` when unset), checked against ``DEVICE_CHOICES``."""
    choice = os.environ.get(DEVICE_VARIABLE, "auto") or "auto"
    check_choice(f"device (${DEVICE_VARIABLE})", choice, DEVICE_CHOICES)
    return choice


def default_device() -> torch.device:
    """The device ``$SSMRL_DEVICE`` asks for; ``cuda`` without a visible GPU is an error."""
    choice = device_choice()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise SsmrlError(
            f"device 'cuda' asked for (${DEVICE_VARIABLE} or --device) but torch sees no CUDA "
            f"GPU (torch {torch.__version__}); valid choices here: auto, cpu"
        )
    return torch.device(choice)


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU): call before reading a
    clock or a peak-memory counter."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s parameters (or buffers) live; the CPU for a module with neither."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")
