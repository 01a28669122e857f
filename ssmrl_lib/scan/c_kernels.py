"""Builds and calls ``mamba_kernels.c``: Mamba's gated selective scan and causal conv (+ SiLU)
as C loops (why C: the file's header).

The kernels are compiled on first use by the system's C compiler, loaded through ``ctypes`` and
cached under ``$XDG_CACHE_HOME/ssmrl`` keyed by source, flags and CPU. They split the batch over
OpenMP threads, torch's own pool (see ``_build``). Without a compiler ``load`` returns ``None``
and the dispatch functions (``ssmrl_lib.scan``) use torch ops instead. Results match torch to
float32 rounding (the tests hold them to the float64 definition).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("mamba_kernels.c")

_SIGNATURES = {  # pointer arguments after the leading integer sizes
    "scan_forward": 9,
    "scan_backward": 16,
    "conv_forward": 5,
    "conv_backward": 8,
}


def _flags(openmp: bool) -> list[str]:
    # The parts of -ffast-math that vectorise reductions and fuse multiply-adds, but not
    # -ffast-math itself: linked into a shared library it sets flush-to-zero for the whole
    # process (crtfastmath), changing every other computation. NaN/inf semantics are kept so a
    # diverging run still shows NaNs. Wider vectors pay off on AVX-512 CPUs (gcc defaults to 256).
    flags = [
        "-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
        "-fno-signed-zeros", "-freciprocal-math", "-ffp-contract=fast", "-fPIC", "-shared",
    ]  # fmt: skip
    if platform.machine() in ("x86_64", "AMD64"):
        flags.append("-mprefer-vector-width=512")
    return [*flags, "-fopenmp"] if openmp else flags


def _cpu_signature() -> str:
    """What ``-march=native`` depends on, so a shared cache never serves a foreign binary."""
    try:
        return Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return platform.processor() + platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "ssmrl"


def _build(compiler: str, library: Path) -> bool:
    """Compile the kernels to ``library``, atomically: concurrent builders never see half a file.

    With OpenMP when the compiler has it: the library then needs ``libgomp.so.1``, which the
    dynamic loader resolves to the copy torch already loaded (Linux wheels), so the kernels
    share torch's thread pool and ``torch.set_num_threads``. Without OpenMP the pragmas are
    ignored and the kernels run serially.
    """
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library.parent) as build:
        built = Path(build) / library.name
        for openmp in (True, False):
            command = [compiler, *_flags(openmp), "-o", str(built), str(SOURCE)]
            if subprocess.run(command, capture_output=True).returncode == 0:
                os.replace(built, library)
                return True
    return False


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first use; ``None`` without a working compiler."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    source = SOURCE.read_text()
    key = hashlib.sha256("\0".join([source, *_flags(True), _cpu_signature()]).encode())
    name = f"mamba_kernels_{key.hexdigest()[:16]}.so"
    library = None
    if compiler is not None:
        for directory in (_cache_dir(), Path(tempfile.gettempdir()) / f"ssmrl-{os.getuid()}"):
            try:
                if (directory / name).exists() or _build(compiler, directory / name):
                    library = directory / name
                    break
            except OSError:  # unwritable cache: try the next place
                continue
    if library is None:
        warnings.warn(
            "could not compile ssmrl's Mamba CPU kernels (no working C compiler); "
            "falling back to the slower torch implementation",
            stacklevel=2,
        )
        return None
    kernels = ctypes.CDLL(str(library))
    for function_name, pointers in _SIGNATURES.items():
        function = getattr(kernels, function_name)
        function.argtypes = [ctypes.c_long] * 4 + [ctypes.c_void_p] * pointers
        function.restype = ctypes.c_int
    return kernels


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the kernels built and apply to these tensors (float32, on the CPU)."""
    on_cpu_fp32 = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
    return on_cpu_fp32 and load() is not None


def _run(name: str, sizes: tuple[int, ...], *tensors: torch.Tensor | None) -> None:
    """Call kernel ``name`` on these tensors' data (``None`` passes a NULL pointer)."""
    pointers = [None if t is None else t.data_ptr() for t in tensors]
    if getattr(load(), name)(*sizes, *pointers):
        raise MemoryError(f"Mamba CPU kernel {name} could not allocate its scratch buffers")


class _GatedSelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, z):
        x, dt, a_t, B, C, D, z = (t.contiguous() for t in (x, dt, A.t(), B, C, D, z))
        y, out = torch.empty_like(x), torch.empty_like(x)
        _run("scan_forward", (*x.shape, a_t.shape[0]), x, dt, a_t, B, C, D, z, y, out)
        ctx.save_for_backward(x, dt, a_t, B, C, D, z, y)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, dt, a_t, B, C, D, z, y = ctx.saved_tensors
        grad_x, grad_dt, grad_z = (torch.empty_like(x) for _ in range(3))
        grad_B, grad_C = torch.empty_like(B), torch.empty_like(C)
        grad_a_t, grad_D = torch.zeros_like(a_t), torch.zeros_like(D)
        _run(
            "scan_backward", (*x.shape, a_t.shape[0]),
            x, dt, a_t, B, C, D, z, y, grad_out.contiguous(),
            grad_x, grad_dt, grad_a_t, grad_B, grad_C, grad_D, grad_z,
        )  # fmt: skip
        return grad_x, grad_dt, grad_a_t.t(), grad_B, grad_C, grad_D, grad_z


class _CausalConvSilu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, mask):
        x, w_t, bias = x.contiguous(), weight.t().contiguous(), bias.contiguous()
        mask = None if mask is None else mask.to(x.dtype).contiguous()
        out = torch.empty_like(x)
        _run("conv_forward", (*x.shape, w_t.shape[0]), x, w_t, bias, mask, out)
        ctx.save_for_backward(x, w_t, bias, mask)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w_t, bias, mask = ctx.saved_tensors
        grad_x, grad_w_t, grad_bias = (
            torch.empty_like(x),
            torch.zeros_like(w_t),
            torch.zeros_like(bias),
        )
        _run(
            "conv_backward", (*x.shape, w_t.shape[0]),
            x, w_t, bias, mask, grad_out.contiguous(), grad_x, grad_w_t, grad_bias,
        )  # fmt: skip
        return grad_x, grad_w_t.t(), grad_bias, None


def c_selective_scan(*inputs: torch.Tensor) -> torch.Tensor:
    """``selective_scan``'s function of ``x, dt, A, B, C, D, z`` (``selective.py``) for
    ``usable`` inputs."""
    return _GatedSelectiveScan.apply(*inputs)


def c_causal_conv_silu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """``mask ⊙ silu(causal depthwise conv(x))`` for ``x [B, L, D]``, ``weight [D, kernel]``
    (``usable`` inputs only)."""
    return _CausalConvSilu.apply(x, weight, bias, mask)
