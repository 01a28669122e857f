"""The associative backend computes exactly what the sequential loop does, and ⊕ is associative."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmrl_lib.scan import linear_scan, linear_scan_backends
from ssmrl_lib.scan.associative import reset_combine


def _inputs(length: int, dtype: torch.dtype, time_invariant: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a_shape = (4,) if time_invariant else (3, length, 4)
    a = (0.9 * torch.rand(a_shape, generator=g, dtype=torch.float64)).to(dtype)
    if dtype.is_complex:
        a = a * torch.exp(1j * torch.rand(a_shape, generator=g, dtype=torch.float64))
    b = torch.randn(3, length, 4, generator=g, dtype=torch.float64).to(dtype)
    h0 = torch.randn(3, 4, generator=g, dtype=torch.float64).to(dtype)
    reset = torch.rand(3, length, generator=g) < 0.2
    return a, b, h0, reset


def test_registered() -> None:
    assert "associative" in linear_scan_backends()


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("length", [1, 2, 7, 16, 33])
@pytest.mark.parametrize("time_invariant", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("with_reset", [False, True])
def test_matches_sequential_forward_and_grad(
    dtype: torch.dtype, length: int, time_invariant: bool, with_h0: bool, with_reset: bool
) -> None:
    a, b, h0, reset = _inputs(length, dtype, time_invariant, seed=length)
    h0 = h0 if with_h0 else None
    reset = reset if with_reset else None
    leaves = [x for x in (a, b, h0) if x is not None]
    weight = torch.randn(3, length, 4, dtype=dtype)  # loss: a random projection of the states

    results = []
    for backend in ("sequential", "associative"):
        for x in leaves:
            x.requires_grad_(True).grad = None
        states = linear_scan(a, b, h0, reset, backend)
        loss = (weight * states).sum().real
        grads = torch.autograd.grad(loss, leaves, materialize_grads=True)
        results.append((states.detach(), grads))

    (ref, ref_grads), (out, grads) = results
    torch.testing.assert_close(out, ref)
    for g, ref_g in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, ref_g)


def test_reset_discards_initial_state() -> None:
    a, b, h0, _ = _inputs(5, torch.float64, time_invariant=False)
    reset = torch.zeros(3, 5, dtype=torch.bool)
    reset[:, 0] = True
    states = linear_scan(a, b, h0, reset, "associative")
    torch.testing.assert_close(states, linear_scan(a, b, None, None, "associative"))


def _element(draw: st.DrawFn, complex_: bool):
    values = st.floats(-2, 2, allow_nan=False, allow_infinity=False, width=64)

    def vector() -> torch.Tensor:
        return torch.tensor(draw(st.lists(values, min_size=4, max_size=4)), dtype=torch.float64)

    a, b = vector(), vector()
    if complex_:
        a, b = torch.complex(a, vector()), torch.complex(b, vector())
    flags = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=4, max_size=4))
    d = torch.tensor(flags, dtype=torch.float64)
    return a, b, d


@st.composite
def _triple(draw: st.DrawFn):
    complex_ = draw(st.booleans())
    return tuple(_element(draw, complex_) for _ in range(3))


@settings(max_examples=200, deadline=None)
@given(_triple())
def test_reset_combine_is_associative(triple) -> None:
    x, y, z = triple
    left = reset_combine(reset_combine(x, y), z)
    right = reset_combine(x, reset_combine(y, z))
    for u, v in zip(left, right, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-9)


def test_reset_combine_cases() -> None:
    """d_j = 0 composes the affine maps; d_j = 1 returns the later element unchanged."""
    a_i, b_i, a_j, b_j = (torch.tensor([v], dtype=torch.float64) for v in (0.5, 2.0, 3.0, -1.0))
    zero, one = torch.tensor([0.0]), torch.tensor([1.0])
    a, b, d = reset_combine((a_i, b_i, zero), (a_j, b_j, zero))
    assert (a.item(), b.item(), d.item()) == (1.5, 5.0, 0.0)
    a, b, d = reset_combine((a_i, b_i, zero), (a_j, b_j, one))
    assert (a.item(), b.item(), d.item()) == (3.0, -1.0, 1.0)
