"""S5: HiPPO initialisation, scan/step agreement, and resets that really cut the past."""

from __future__ import annotations

import pytest
import torch

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.models.s5 import (
    S5Config,
    S5Layer,
    S5Stack,
    hippo_eigendecomposition,
    hippo_legs_normal,
)

CONFIG = S5Config(d_model=8, d_state=16, n_layers=2)


def _model(cls: type[torch.nn.Module], **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = S5Config(**{**CONFIG.__dict__, **overrides})
    return cls(config).double()  # float64 so agreement tests can be tight


def _episode_data(batch: int = 3, length: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    u = torch.randn(batch, length, CONFIG.d_model, generator=g, dtype=torch.float64)
    reset = torch.rand(batch, length, generator=g) < 0.15
    return u, reset


def test_hippo_eigenvalues_stable_conjugate_half() -> None:
    n = 16
    lam, v = hippo_eigendecomposition(n)
    assert lam.shape == (n // 2,) and v.shape == (n, n // 2)
    assert (lam.real < 0).all() and (lam.imag > 0).all()
    # The kept half plus its conjugates is the full spectrum of the normal HiPPO-LegS part.
    full = torch.linalg.eigvals(hippo_legs_normal(n))
    ours = torch.cat([lam, lam.conj()])
    torch.testing.assert_close(ours[ours.imag.argsort()], full[full.imag.argsort()])
    # V holds orthonormal eigenvectors, so V⁻¹ = Vᴴ is what B̃ = V⁻¹B uses.
    torch.testing.assert_close(hippo_legs_normal(n).to(v.dtype) @ v, v * lam)
    torch.testing.assert_close(v.conj().T @ v, torch.eye(n // 2, dtype=v.dtype))


def test_initialisation_ranges() -> None:
    layer = _model(S5Layer)
    step = layer.log_step.exp()
    assert ((step >= 0.001) & (step <= 0.1)).all()
    lam_bar, b_bar = layer.discretize()
    assert (lam_bar.abs() < 1).all()  # ZOH of a stable Λ is a contraction
    assert b_bar.shape == (CONFIG.d_state // 2, CONFIG.d_model)


def test_odd_state_size_rejected() -> None:
    with pytest.raises(SsmrlError, match="even"):
        S5Config(d_state=7)


@pytest.mark.parametrize("cls", [S5Layer, S5Stack])
def test_step_matches_scan(cls: type[torch.nn.Module]) -> None:
    model = _model(cls)
    u, reset = _episode_data()
    state0 = torch.randn_like(model.initial_state(u.shape[0]))
    y_scan, final_scan = model(u, state0, reset)

    state, outputs = state0, []
    for t in range(u.shape[1]):
        y, state = model.step(u[:, t], state, reset[:, t])
        outputs.append(y)
    torch.testing.assert_close(torch.stack(outputs, dim=1), y_scan)
    torch.testing.assert_close(state, final_scan)


def test_backends_agree() -> None:
    u, reset = _episode_data()
    y_assoc, h_assoc = _model(S5Stack, scan_backend="associative")(u, None, reset)
    y_seq, h_seq = _model(S5Stack, scan_backend="sequential")(u, None, reset)
    torch.testing.assert_close(y_assoc, y_seq)
    torch.testing.assert_close(h_assoc, h_seq)


def test_state_carries_across_chunks() -> None:
    """Running a rollout in two pieces, passing the state on, equals running it whole."""
    model = _model(S5Stack)
    u, reset = _episode_data()
    y_whole, h_whole = model(u, None, reset)
    y_a, h_a = model(u[:, :7], None, reset[:, :7])
    y_b, h_b = model(u[:, 7:], h_a, reset[:, 7:])
    torch.testing.assert_close(torch.cat([y_a, y_b], dim=1), y_whole)
    torch.testing.assert_close(h_b, h_whole)


def test_reset_cuts_information_flow() -> None:
    """After a reset, outputs (and their gradients) do not depend on anything before it."""
    model = _model(S5Stack)
    u, _ = _episode_data(batch=2, length=16)
    cut = 9
    reset = torch.zeros(2, 16, dtype=torch.bool)
    reset[:, cut] = True
    state0 = torch.randn_like(model.initial_state(2))

    u.requires_grad_(True)
    y, _ = model(u, state0, reset)
    (grad,) = torch.autograd.grad(y[:, cut:].sum(), u)
    assert grad[:, :cut].abs().max() == 0
    assert grad[:, cut:].abs().max() > 0

    u_changed = u.detach().clone()
    u_changed[:, :cut] = torch.randn_like(u_changed[:, :cut])
    y_changed, _ = model(u_changed, None, reset)  # different past and no initial state
    torch.testing.assert_close(y_changed[:, cut:], y[:, cut:].detach())
    assert not torch.allclose(y_changed[:, :cut], y[:, :cut].detach())


def test_without_reset_memory_spans_the_boundary() -> None:
    """Control for the test above: with no reset the past does reach later outputs."""
    model = _model(S5Stack)
    u, _ = _episode_data(batch=2, length=16)
    u.requires_grad_(True)
    y, _ = model(u)
    (grad,) = torch.autograd.grad(y[:, 9:].sum(), u)
    assert grad[:, :9].abs().max() > 0


def test_trains_float32() -> None:
    """A default-precision stack runs forward and backward to finite gradients of every param."""
    torch.manual_seed(0)
    model = S5Stack(CONFIG)
    u, reset = _episode_data()
    y, state = model(u.float(), None, reset)
    assert y.dtype == torch.float32 and state.dtype == torch.complex64
    y.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
