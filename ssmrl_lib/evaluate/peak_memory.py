"""Peak memory of a block of work, the same way on every machine the book runs on.

On CPU it is the process's resident-memory high-water mark, reset on entry through
``/proc/self/clear_refs`` and reported both as the peak and as growth over the resident memory
on entry (the interpreter and libraries are not the workload's). Before the baseline is read,
glibc is asked to hand the heap memory it keeps after frees back to the OS (``malloc_trim``):
otherwise the block reuses pages that earlier work left resident, and its growth reads near
zero however much it allocates. On GPU it is
``torch.cuda.max_memory_allocated`` (the tensors' peak, as the papers report it). Where
``/proc`` cannot be written (not Linux) the CPU figures are ``None``, never a guess.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache
from pathlib import Path

import torch

from ssmrl_lib.device import default_device, synchronize

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mib(field: str) -> float | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


@cache
def _libc() -> ctypes.CDLL | None:
    """The C library where it offers ``malloc_trim`` (glibc), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def _release_free_heap() -> None:
    """Return the heap pages freed memory occupies to the OS (glibc only; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """``with PeakMemory() as memory: ...`` then ``memory.as_dict()``.

    ``device``: where the measured work runs (default ``ssmrl_lib.device.default_device()``);
    the GPU figures are taken only when it is a CUDA device: ``gpu_peak_mib`` (everything
    allocated at the peak, the model included, as the papers report it) and ``gpu_growth_mib``
    (the peak above what was allocated on entry: the block's own work).
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else default_device()
        self._on_gpu = self.device.type == "cuda"

    def __enter__(self) -> PeakMemory:
        gc.collect()
        _release_free_heap()
        if self._on_gpu:
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._gpu_baseline = torch.cuda.memory_allocated(self.device) / 2**20
        self._baseline = _status_mib("VmRSS")
        self._tracking = _reset_peak_rss()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.peak_rss_mib = _status_mib("VmHWM") if self._tracking else None
        self.rss_growth_mib = (
            None if self.peak_rss_mib is None or self._baseline is None
            else self.peak_rss_mib - self._baseline
        )
        if self._on_gpu:
            synchronize(self.device)
        self.gpu_peak_mib = (
            torch.cuda.max_memory_allocated(self.device) / 2**20 if self._on_gpu else None
        )
        self.gpu_growth_mib = (
            self.gpu_peak_mib - self._gpu_baseline if self.gpu_peak_mib is not None else None
        )

    def as_dict(self) -> dict[str, float | None]:
        return {
            "peak_rss_mib": self.peak_rss_mib,
            "rss_growth_mib": self.rss_growth_mib,
            "gpu_peak_mib": self.gpu_peak_mib,
        }
