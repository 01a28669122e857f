"""The SSMs' speed code: one recurrence, one dispatch function per scan, several backends.

Every SSM of the library runs the diagonal linear recurrence ``h_t = a_t ⊙ h_{t-1} + b_t``:

* ``linear_scan(a, b, h0, reset, backend)`` is that recurrence, with Lu et al. (2023)'s resets
  (S5 runs it; backends ``sequential``, ``associative``, ``fast``: ``linear.py``);
* ``selective_scan(x, dt, A, B, C, D, z, backend)`` is Mamba's: the same recurrence with
  ``a_t = exp(Δ_t A)`` and ``b_t = Δ_t x_t B_t``, read out by ``C_t`` and gated (backends
  ``fused``, ``cuda``, ``auto``, or any of ``linear_scan``'s: ``selective.py``);
* ``causal_conv_silu`` is Mamba's convolution, on a C kernel where one applies (``conv.py``).

``scan_provenance`` names the backend a run's selective scan ran on, for its result. The model
definitions (``ssmrl_lib.models``) call these functions and nothing below them; this package
imports nothing from the models.
"""

from ssmrl_lib.scan.conv import causal_conv_silu
from ssmrl_lib.scan.linear import linear_scan, linear_scan_backends
from ssmrl_lib.scan.selective import (
    resolve_scan_backend,
    scan_provenance,
    selective_scan,
    selective_scan_backends,
)

__all__ = [
    "causal_conv_silu",
    "linear_scan",
    "linear_scan_backends",
    "resolve_scan_backend",
    "scan_provenance",
    "selective_scan",
    "selective_scan_backends",
]
