"""Mamba's two elementwise-heavy ops as small C kernels, compiled on first use by the system's C
compiler: the gated selective scan and the causal depthwise convolution (+ SiLU).

Why C: per element and step the scan is an ``exp``, two multiply-adds and a dot product, and a
loop of torch ops pays a pass through memory for each (about fifteen per step with the
backward). One C loop per sequence keeps the ``[N, D]`` state in L1 cache and vectorises the
``exp`` (a polynomial, below): several times faster than the best torch version. Fusing the
softplus of ``Δ``, the ``D`` skip, the SiLU gate and the padding mask into the same loops
removes a dozen more ``[B, L, D]`` passes per layer. The backward does not keep the
``[B, L, N, D]`` states from the forward: each sequence's are recomputed into a per-thread
buffer and walked in reverse, so training memory stays ``O(B L D)``.

The kernels are plain C99 with a C ABI, loaded through ``ctypes`` (no torch headers, so they
build in about a second) and cached under ``$XDG_CACHE_HOME/ssmrl`` keyed by source and CPU.
They split the batch over OpenMP threads, torch's own pool (see ``_build``). Without a
compiler ``load`` returns ``None`` and callers use their torch implementation. Results match
torch to float32 rounding (the tests hold them to the float64 definition).
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

_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* exp(v) = 2^k exp(r) with |r| <= ln2/2 and a degree-7 Taylor polynomial for exp(r), within
   2 ulp of expf and written so the compiler vectorises it. v < -87 gives exactly 0, so no
   denormals (~100x slower) enter the recurrence. */
static inline float exp_approx(float v) {
    float clamped = v < -87.0f ? -87.0f : (v > 88.0f ? 88.0f : v);
    float k = __builtin_rintf(clamped * 1.44269504088896341f);
    float r = __builtin_fmaf(k, -0.693145751953125f, clamped);
    r = __builtin_fmaf(k, -1.42860682030941723e-06f, r);
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return v < -87.0f ? 0.0f : p * scale;
}

static inline float sigmoid(float v) { return 1.0f / (1.0f + exp_approx(-v)); }

/* d silu(v) / dv with s = sigmoid(v) */
static inline float silu_grad(float v, float s) { return s * (1.0f + v * (1.0f - s)); }

/* softplus(v) = max(v, 0) + log1p(exp(-|v|)), with log1p(u) = 2 atanh(u / (2 + u)) summed as
   its odd series (u / (2 + u) <= 1/3, so seven terms reach float precision; within 2 ulp). */
static inline float softplus(float v) {
    float u = exp_approx(v < 0.0f ? v : -v);
    float s = u / (2.0f + u), s2 = s * s;
    float p = 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return (v > 0.0f ? v : 0.0f) + 2.0f * s * p;
}

/* Layouts (row-major, one batch chunk): x, dt, z, y, out and their gradients
   [batch][length][channels]; a_t (A transposed) [nstate][channels]; b, c [batch][length][nstate];
   w_t (conv weight transposed) [kernel][channels]; mask [batch][length] or NULL.
   Gradients of parameters shared across the batch (a_t, d_skip, w_t, bias) are accumulated
   (+=), every other output is written. Batch rows are shared out over OpenMP threads (when
   compiled with it), each with its own scratch. Each function returns 0, or 1 if out of
   memory. */

/* y_t = C_t . h_t + D x_t with h_t = exp(delta_t A) h_{t-1} + delta_t x_t B_t, h_{-1} = 0 and
   delta = softplus(dt); out_t = y_t silu(z_t). */
int scan_forward(long batch, long length, long channels, long nstate, const float *x,
                 const float *dt, const float *a_t, const float *b, const float *c,
                 const float *d_skip, const float *z, float *y, float *out) {
    int failed = 0;
#pragma omp parallel
    {
        float *h = malloc(sizeof(float) * nstate * channels);
        float *delta = malloc(sizeof(float) * channels);
        if (!h || !delta) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (long i = 0; i < batch; i++) {
            if (!h || !delta) continue;
            memset(h, 0, sizeof(float) * nstate * channels);
            for (long t = 0; t < length; t++) {
                long row = i * length + t;
                const float *dtt = dt + row * channels, *xt = x + row * channels;
                const float *zt = z + row * channels, *bt = b + row * nstate;
                const float *ct = c + row * nstate;
                float *yt = y + row * channels, *ot = out + row * channels;
                for (long d = 0; d < channels; d++) {
                    delta[d] = softplus(dtt[d]);
                    yt[d] = d_skip[d] * xt[d];
                }
                for (long n = 0; n < nstate; n++) {
                    float *hn = h + n * channels;
                    const float *an = a_t + n * channels;
                    const float bn = bt[n], cn = ct[n];
                    for (long d = 0; d < channels; d++) {
                        hn[d] = exp_approx(delta[d] * an[d]) * hn[d] + delta[d] * xt[d] * bn;
                        yt[d] += cn * hn[d];
                    }
                }
                for (long d = 0; d < channels; d++) ot[d] = yt[d] * zt[d] * sigmoid(zt[d]);
            }
        }
        free(h);
        free(delta);
    }
    return failed;
}

/* One sequence's delta_t [channels], states h_t and decays exp(delta_t A) [nstate][channels]. */
static void recompute_states(long length, long channels, long nstate, const float *x,
                             const float *dt, const float *a_t, const float *b, float *delta,
                             float *states, float *decays) {
    long size = nstate * channels;
    for (long t = 0; t < length; t++) {
        const float *xt = x + t * channels, *bt = b + t * nstate;
        float *deltat = delta + t * channels;
        for (long d = 0; d < channels; d++) deltat[d] = softplus(dt[t * channels + d]);
        for (long n = 0; n < nstate; n++) {
            const float *an = a_t + n * channels;
            float *hn = states + t * size + n * channels;
            float *decayn = decays + t * size + n * channels;
            for (long d = 0; d < channels; d++) {
                decayn[d] = exp_approx(deltat[d] * an[d]);
                hn[d] = deltat[d] * xt[d] * bt[n];
            }
            if (t > 0) {
                const float *prevn = hn - size;
                for (long d = 0; d < channels; d++) hn[d] += decayn[d] * prevn[d];
            }
        }
    }
}

/* Reverse recurrence dh_t = C_t gy_t + exp(delta_{t+1} A) dh_{t+1}, gy = grad_out silu(z). */
int scan_backward(long batch, long length, long channels, long nstate, const float *x,
                  const float *dt, const float *a_t, const float *b, const float *c,
                  const float *d_skip, const float *z, const float *y, const float *grad_out,
                  float *grad_x, float *grad_dt, float *grad_a_t, float *grad_b,
                  float *grad_c, float *grad_d_skip, float *grad_z) {
    long size = nstate * channels;
    int failed = 0;
#pragma omp parallel
    {
        float *delta = malloc(sizeof(float) * length * channels);
        float *states = malloc(sizeof(float) * length * size);
        float *decays = malloc(sizeof(float) * length * size);
        float *carried = malloc(sizeof(float) * size); /* exp(delta_{t+1} A) dh_{t+1} */
        float *zeros = calloc(size, sizeof(float));    /* h_{-1} */
        float *grad_y = malloc(sizeof(float) * channels);
        float *grad_dx = malloc(sizeof(float) * channels);       /* w.r.t. delta_t x_t */
        float *grad_exponent = malloc(sizeof(float) * channels); /* via exp(delta_t A) */
        int ok = delta && states && decays && carried && zeros && grad_y && grad_dx &&
                 grad_exponent;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static) reduction(+ : grad_a_t[:size], grad_d_skip[:channels])
        for (long i = 0; i < batch; i++) {
            if (!ok) continue;
            long base = i * length;
            const float *xi = x + base * channels, *dti = dt + base * channels;
            const float *bi = b + base * nstate, *ci = c + base * nstate;
            recompute_states(length, channels, nstate, xi, dti, a_t, bi, delta, states, decays);
            memset(carried, 0, sizeof(float) * size);
            for (long t = length - 1; t >= 0; t--) {
                long row = base + t;
                const float *deltat = delta + t * channels, *xt = xi + t * channels;
                const float *zt = z + row * channels, *yt = y + row * channels;
                const float *go = grad_out + row * channels;
                const float *h = states + t * size, *prev = t > 0 ? h - size : zeros;
                const float *decay = decays + t * size;
                float *gz = grad_z + row * channels;
                for (long d = 0; d < channels; d++) {
                    float s = sigmoid(zt[d]);
                    grad_y[d] = go[d] * zt[d] * s;
                    gz[d] = go[d] * yt[d] * silu_grad(zt[d], s);
                    grad_d_skip[d] += grad_y[d] * xt[d];
                    grad_dx[d] = 0.0f;
                    grad_exponent[d] = 0.0f;
                }
                for (long n = 0; n < nstate; n++) {
                    const float bn = bi[t * nstate + n], cn = ci[t * nstate + n];
                    const float *an = a_t + n * channels, *hn = h + n * channels;
                    const float *prevn = prev + n * channels, *decayn = decay + n * channels;
                    float *carriedn = carried + n * channels, *grad_an = grad_a_t + n * channels;
                    float grad_bn = 0.0f, grad_cn = 0.0f;
                    for (long d = 0; d < channels; d++) {
                        float dh = cn * grad_y[d] + carriedn[d];
                        grad_dx[d] += bn * dh;
                        grad_bn += deltat[d] * xt[d] * dh;
                        grad_cn += grad_y[d] * hn[d];
                        carriedn[d] = decayn[d] * dh;
                        float grad_decay_exponent = carriedn[d] * prevn[d];
                        grad_exponent[d] += grad_decay_exponent * an[d];
                        grad_an[d] += grad_decay_exponent * deltat[d];
                    }
                    grad_b[row * nstate + n] = grad_bn;
                    grad_c[row * nstate + n] = grad_cn;
                }
                const float *dtt = dti + t * channels;
                float *gx = grad_x + row * channels, *gdt = grad_dt + row * channels;
                for (long d = 0; d < channels; d++) {
                    gx[d] = grad_dx[d] * deltat[d] + grad_y[d] * d_skip[d];
                    gdt[d] = (grad_dx[d] * xt[d] + grad_exponent[d]) * sigmoid(dtt[d]);
                }
            }
        }
        free(delta);
        free(states);
        free(decays);
        free(carried);
        free(zeros);
        free(grad_y);
        free(grad_dx);
        free(grad_exponent);
    }
    return failed;
}

/* Causal depthwise convolution of row t: bias + sum_j w_j x_{t-kernel+1+j} (zeros before 0). */
static void conv_row(long t, long channels, long kernel, const float *x, const float *w_t,
                     const float *bias, float *pre) {
    for (long d = 0; d < channels; d++) pre[d] = bias[d];
    for (long j = 0; j < kernel; j++) {
        long source = t - (kernel - 1) + j;
        if (source < 0) continue;
        const float *xs = x + source * channels, *wj = w_t + j * channels;
        for (long d = 0; d < channels; d++) pre[d] += wj[d] * xs[d];
    }
}

/* out = mask * silu(conv(x)) */
int conv_forward(long batch, long length, long channels, long kernel, const float *x,
                 const float *w_t, const float *bias, const float *mask, float *out) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < batch; i++) {
        const float *xi = x + i * length * channels;
        for (long t = 0; t < length; t++) {
            float *o = out + (i * length + t) * channels;
            float m = mask ? mask[i * length + t] : 1.0f;
            conv_row(t, channels, kernel, xi, w_t, bias, o);
            for (long d = 0; d < channels; d++) o[d] = m * o[d] * sigmoid(o[d]);
        }
    }
    return 0;
}

int conv_backward(long batch, long length, long channels, long kernel, const float *x,
                  const float *w_t, const float *bias, const float *mask,
                  const float *grad_out, float *grad_x, float *grad_w_t, float *grad_bias) {
    int failed = 0;
#pragma omp parallel
    {
        float *grad_pre = malloc(sizeof(float) * length * channels);
        if (!grad_pre) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static) reduction(+ : grad_w_t[:kernel * channels], grad_bias[:channels])
        for (long i = 0; i < batch; i++) {
            if (!grad_pre) continue;
            const float *xi = x + i * length * channels, *gi = grad_out + i * length * channels;
            float *gxi = grad_x + i * length * channels;
            for (long t = 0; t < length; t++) {
                float *gp = grad_pre + t * channels;
                float m = mask ? mask[i * length + t] : 1.0f;
                conv_row(t, channels, kernel, xi, w_t, bias, gp); /* pre-activation first */
                for (long d = 0; d < channels; d++) {
                    float s = sigmoid(gp[d]);
                    gp[d] = m * gi[t * channels + d] * silu_grad(gp[d], s);
                    grad_bias[d] += gp[d];
                }
            }
            memset(gxi, 0, sizeof(float) * length * channels);
            for (long t = 0; t < length; t++) {
                const float *gp = grad_pre + t * channels;
                for (long j = 0; j < kernel; j++) {
                    long source = t - (kernel - 1) + j;
                    if (source < 0) continue;
                    const float *xs = xi + source * channels, *wj = w_t + j * channels;
                    float *gxs = gxi + source * channels, *gwj = grad_w_t + j * channels;
                    for (long d = 0; d < channels; d++) {
                        gxs[d] += wj[d] * gp[d];
                        gwj[d] += gp[d] * xs[d];
                    }
                }
            }
        }
        free(grad_pre);
    }
    return failed;
}
"""

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
        source = Path(build) / "mamba_kernels.c"
        source.write_text(_SOURCE)
        built = Path(build) / library.name
        for openmp in (True, False):
            command = [compiler, *_flags(openmp), "-o", str(built), str(source)]
            if subprocess.run(command, capture_output=True).returncode == 0:
                os.replace(built, library)
                return True
    return False


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first use; ``None`` without a working compiler."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    key = hashlib.sha256("\0".join([_SOURCE, *_flags(True), _cpu_signature()]).encode())
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


def gated_selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor,
) -> torch.Tensor:
    """``(C_t · h_t + D x_t) ⊙ silu(z_t)`` with ``Δ = softplus(dt)``: Mamba's scan with its
    skip and gate, for ``usable`` inputs ``x, dt, z [B, L, D]``, ``A [D, N]``,
    ``B, C [B, L, N]``, ``D [D]``."""
    return _GatedSelectiveScan.apply(x, dt, A, B, C, D, z)


def causal_conv_silu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """``mask ⊙ silu(causal depthwise conv(x))`` for ``x [B, L, D]``, ``weight [D, kernel]``
    (``usable`` inputs only)."""
    return _CausalConvSilu.apply(x, weight, bias, mask)
