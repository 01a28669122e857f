"""Arithmetic that gives the same bits on every x86-64 CPU, for the behavior policies' actors.

A dataset's runs are keyed by its content (:meth:`Trajectories.fingerprint`), so a dataset
must come out bit for bit the same on every machine that builds it, or a campaign run carried
to another machine would not find its dataset again. MuJoCo's physics is portable (the random
datasets are identical on Intel and AMD hosts); a policy's NumPy forward pass was not: the
matrix product goes to OpenBLAS, which picks a kernel for the CPU it finds (Haswell, SkylakeX,
Zen: each sums in its own order), and ``np.tanh``/``np.exp`` dispatch to SIMD code of their own
accuracy (AVX2, AVX-512). One last bit of difference in an action is enough: the physics
amplifies it and the episodes part ways.

So an actor here computes without BLAS and without NumPy's transcendental functions:

* a linear layer is one ``np.einsum`` in float64 (where the product of two float32 numbers is
  exact): without ``optimize``, einsum sums by its own loops, which NumPy compiles once for its
  baseline instruction set instead of dispatching them by CPU, so the order of the sums is
  the same everywhere (and it is three times faster than a product-and-reduce here);
* ``tanh`` and ``exp`` come from the C library (Python's ``math``), elementwise: only the
  actions and log-stds (a few numbers per environment) go through them.

``tests/test_portable.py`` checks that the results do not change when OpenBLAS's kernel or
NumPy's SIMD level is forced to another one.
"""

from __future__ import annotations

import math

import numpy as np

# Recorded in every dataset a policy collects: a dataset collected by another arithmetic is
# outdated (another CPU would not rebuild it) and ``make data`` rebuilds it.
ACTOR_ARITHMETIC = "portable-float64-v1"

_tanh = np.vectorize(math.tanh, otypes=[np.float64])
_exp = np.vectorize(math.exp, otypes=[np.float64])


def linear(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ weight_t + bias`` in float64 without BLAS: ``x (n, d_in)``, ``weight_t (d_in,
    d_out)``, ``bias (d_out,)`` -> ``(n, d_out)``."""
    return np.einsum("ni,io->no", np.asarray(x, dtype=np.float64),
                     np.asarray(weight_t, dtype=np.float64), optimize=False) + bias


def other_kernels() -> dict[str, str]:
    """Environment settings under which OpenBLAS and NumPy pick other kernels than this CPU's
    own (OpenBLAS's for an SSE3-era CPU; NumPy with every target it dispatches to at run time
    switched off): what another CPU would compute with. They act on processes started with
    them."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    return {"OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__)}


def tanh(x: np.ndarray) -> np.ndarray:
    """Elementwise ``tanh`` of the C library, in float64."""
    return _tanh(x)


def exp(x: np.ndarray) -> np.ndarray:
    """Elementwise ``exp`` of the C library, in float64."""
    return _exp(x)
