"""Every backend of each scan computes its definition, values and gradients: ``linear_scan``'s
the sequential loop, ``selective_scan``'s the Mamba paper's equations as ``models/mamba.py``
writes them; the C kernels build from their ``.c`` file."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.models.mamba import selective_scan_reference
from ssmrl_lib.scan import (
    c_kernels,
    causal_conv_silu,
    linear_scan,
    linear_scan_backends,
    selective_scan,
    selective_scan_backends,
)
from ssmrl_lib.scan.c_kernels import c_causal_conv_silu, c_selective_scan
from ssmrl_lib.scan.cuda import kernels_available
from ssmrl_lib.scan.fused_torch import torch_selective_scan

FAST_BACKENDS = [b for b in linear_scan_backends() if b != "sequential"]


def _scan_inputs(dtype: torch.dtype, a_shape: tuple[int, ...], seed: int):
    g = torch.Generator().manual_seed(seed)
    real = torch.float64
    a = 0.95 * torch.rand(a_shape, generator=g, dtype=real)
    b = torch.randn(3, 9, 4, 2, generator=g, dtype=real)
    h0 = torch.randn(3, 4, 2, generator=g, dtype=real)
    if dtype.is_complex:
        a = a * torch.exp(1j * torch.rand(a_shape, generator=g, dtype=real))
        b = b + 1j * torch.randn(b.shape, generator=g, dtype=real)
        h0 = h0 + 1j * torch.randn(h0.shape, generator=g, dtype=real)
    reset = torch.rand(3, 9, generator=g) < 0.25
    weight = torch.randn(b.shape, generator=g, dtype=real)
    return a.to(dtype), b.to(dtype), h0.to(dtype), reset, weight


def _value_and_grads(backend, a, b, h0, reset, weight):
    leaves = [t.clone().requires_grad_() for t in (a, b) + ((h0,) if h0 is not None else ())]
    states = linear_scan(*leaves[:2], leaves[2] if h0 is not None else None, reset, backend)
    loss = (states * weight).real.sum() if states.is_complex() else (states * weight).sum()
    return states.detach(), torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.float32])
@pytest.mark.parametrize(
    "a_shape", [(3, 9, 4, 2), (4, 2), (1, 9, 4, 1)], ids=["full", "lti", "bcast"]
)
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("with_reset", [False, True])
def test_backend_matches_sequential(backend, dtype, a_shape, with_h0, with_reset) -> None:
    a, b, h0, reset, weight = _scan_inputs(dtype, a_shape, seed=len(a_shape))
    args = (a, b, h0 if with_h0 else None, reset if with_reset else None, weight)
    expected, expected_grads = _value_and_grads("sequential", *args)
    actual, grads = _value_and_grads(backend, *args)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        assert grad.shape == expected_grad.shape
        torch.testing.assert_close(grad, expected_grad, rtol=tol, atol=tol)


def test_reset_discards_the_state() -> None:
    a, b = torch.full((1, 4, 1), 0.5), torch.ones(1, 4, 1)
    reset = torch.tensor([[False, False, True, False]])
    for backend in linear_scan_backends():
        states = linear_scan(a, b, torch.full((1, 1), 10.0), reset, backend)
        assert states.flatten().tolist() == [6.0, 4.0, 1.0, 1.5], backend


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(SsmrlError, match="unknown scan backend 'nope'"):
        linear_scan(torch.ones(1, 2, 1), torch.ones(1, 2, 1), backend="nope")


def _selective_inputs(dtype: torch.dtype, seed: int = 0):
    """Mamba-shaped inputs; a few large ``Δ`` push ``Δ A`` below exp's float32 range."""
    g = torch.Generator().manual_seed(seed)
    batch, length, channels, nstate = 3, 11, 20, 5
    x = torch.randn(batch, length, channels, generator=g, dtype=dtype)
    dt = 3 * torch.randn(batch, length, channels, generator=g, dtype=dtype) - 2  # Δ = softplus(dt)
    dt[0, 3, :4] = 30.0
    A = -torch.exp(torch.randn(channels, nstate, generator=g, dtype=dtype))  # noqa: N806
    A[:, 0] = -4.0  # with Δ = 30: exp(-120), which underflows float32
    B = torch.randn(batch, length, nstate, generator=g, dtype=dtype)  # noqa: N806
    C = torch.randn(batch, length, nstate, generator=g, dtype=dtype)  # noqa: N806
    D = torch.randn(channels, generator=g, dtype=dtype)  # noqa: N806
    z = 3 * torch.randn(batch, length, channels, generator=g, dtype=dtype)
    grad_out = torch.randn(batch, length, channels, generator=g, dtype=dtype)
    return (x, dt, A, B, C, D, z), grad_out


def _selective_reference(x, dt, A, B, C, D, z):  # noqa: N803
    """The paper's loop (``models/mamba.py``) with ``Δ = softplus(dt)`` and the gate."""
    return selective_scan_reference(x, F.softplus(dt), A, B, C, D) * F.silu(z)


def _value_and_input_grads(fn, inputs, grad_out):
    leaves = [t.clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    return out.detach(), torch.autograd.grad(out, leaves, grad_out)


@pytest.mark.parametrize("backend", selective_scan_backends())
def test_every_selective_backend_matches_the_reference(backend: str) -> None:
    """float64: ``fused`` runs its torch ops, the ``linear_scan`` names the discretised path."""
    if backend == "cuda":
        pytest.skip("mamba-ssm's kernels take CUDA tensors (benchmarks/gpu_check.py runs them)")
    inputs, grad_out = _selective_inputs(torch.float64)
    expected = _value_and_input_grads(_selective_reference, inputs, grad_out)
    actual = _value_and_input_grads(lambda *t: selective_scan(*t, backend), inputs, grad_out)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not kernels_available(), reason="needs mamba-ssm and a CUDA GPU")
def test_cuda_backend_matches_the_reference() -> None:
    inputs, grad_out = _selective_inputs(torch.float32)
    inputs = [t.cuda() for t in inputs]
    expected, expected_grads = _value_and_input_grads(_selective_reference, inputs, grad_out.cuda())
    actual, grads = _value_and_input_grads(
        lambda *t: selective_scan(*t, "cuda"), inputs, grad_out.cuda()
    )
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads, expected_grads, rtol=1e-3, atol=1e-3)


def test_unknown_selective_backend_is_rejected() -> None:
    inputs, _ = _selective_inputs(torch.float64)
    with pytest.raises(SsmrlError, match="unknown Mamba scan backend 'nope'"):
        selective_scan(*inputs, "nope")


def test_selective_scan_torch_path_gradcheck() -> None:
    inputs, _ = _selective_inputs(torch.float64)
    small = [t[:2, :5, :6] if t.dim() == 3 else t[:6] for t in inputs]
    small[1] = small[1].clamp(max=0.0)
    leaves = [t.clone().requires_grad_() for t in small]
    assert torch.autograd.gradcheck(torch_selective_scan, leaves)


needs_kernel = pytest.mark.skipif(c_kernels.load() is None, reason="no C compiler")


def _in_float32(fn, inputs, grad_out, threads: int):
    """``fn``'s value and input gradients on float32 copies, with ``threads`` torch threads
    (the kernels split the batch into that many chunks and sum shared gradients across them)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _value_and_input_grads(fn, [t.float() for t in inputs], grad_out.float())
    finally:
        torch.set_num_threads(previous)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("scan", [c_selective_scan, selective_scan], ids=["kernel", "dispatch"])
def test_selective_scan_kernel_matches_definition(threads: int, scan) -> None:
    """float32 CPU tensors: the dispatch's ``auto`` runs the C kernel too."""
    inputs, grad_out = _selective_inputs(torch.float64)
    expected, expected_grads = _value_and_input_grads(_selective_reference, inputs, grad_out)
    actual, grads = _in_float32(scan, inputs, grad_out, threads)
    assert torch.isfinite(actual).all()
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-5)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-5, atol=1e-5)


def _conv_reference(x, weight, bias, mask):
    """``mask ⊙ silu(conv1d)`` exactly as Hugging Face's Mamba computes it."""
    conv = torch.nn.functional.conv1d(
        x.transpose(1, 2), weight.unsqueeze(1), bias, padding=weight.shape[1] - 1,
        groups=x.shape[-1],
    )  # fmt: skip
    return torch.nn.functional.silu(conv[..., : x.shape[1]].transpose(1, 2)) * mask.unsqueeze(-1)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_causal_conv_kernel_matches_conv1d(threads: int) -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 7, 10, generator=g, dtype=torch.float64)
    weight = torch.randn(10, 4, generator=g, dtype=torch.float64)
    bias = torch.randn(10, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 7, dtype=torch.float64)
    mask[1, :3] = 0
    grad_out = torch.randn(3, 7, 10, generator=g, dtype=torch.float64)
    expected, expected_grads = _value_and_input_grads(
        lambda *t: _conv_reference(*t, mask), (x, weight, bias), grad_out
    )
    actual, grads = _in_float32(
        lambda *t: c_causal_conv_silu(*t, mask.float()),
        (x, weight, bias),
        grad_out,
        threads,
    )
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-5)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-5, atol=1e-5)


def test_causal_conv_dispatch_off_the_kernel_is_conv1d() -> None:
    """float64 (no kernel): torch's ``conv1d`` with ``nn.Conv1d``'s weight layout."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 6, 5, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 1, 4, generator=g, dtype=torch.float64)
    bias = torch.randn(5, generator=g, dtype=torch.float64)
    mask = torch.ones(2, 6, dtype=torch.float64)
    mask[0, :2] = 0
    expected = _conv_reference(x, weight.squeeze(1), bias, mask)
    torch.testing.assert_close(causal_conv_silu(x, weight, bias, mask), expected)


@needs_kernel
def test_kernels_build_from_the_c_file(tmp_path, monkeypatch) -> None:
    """The library is compiled from ``mamba_kernels.c`` into the cache, keyed by its text."""
    source = tmp_path / "mamba_kernels.c"
    shutil.copy(c_kernels.SOURCE, source)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(c_kernels, "SOURCE", source)
    built = []
    try:
        for comment in ("", "/* changed */\n"):
            source.write_text(c_kernels.SOURCE.read_text() + comment)
            c_kernels.load.cache_clear()
            kernels = c_kernels.load()
            assert kernels is not None and callable(kernels.scan_forward)
            built.append(sorted(p.name for p in (tmp_path / "cache" / "ssmrl").glob("*.so")))
    finally:
        c_kernels.load.cache_clear()
    assert len(built[0]) == 1 and len(built[1]) == 2  # a changed source is a new library
