"""S5: HiPPO initialisation, both residual blocks, scan/step agreement, and resets that really
cut the past."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.models.s5 import (
    S5_BLOCKS,
    FullGLU,
    HalfGLU,
    S5Config,
    S5Layer,
    S5Stack,
    hippo_eigendecomposition,
    hippo_legs_normal,
    lecun_normal,
)

CONFIG = S5Config(d_model=8, d_state=16, n_layers=2)


def _model(cls: type[torch.nn.Module], **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = dataclasses.replace(CONFIG, **overrides)
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


def test_bad_config_rejected() -> None:
    with pytest.raises(SsmrlError, match="even"):
        S5Config(d_state=7)
    with pytest.raises(SsmrlError, match="unknown S5 block 'postnorm'; valid choices: authors, "):
        S5Config(block="postnorm")


def test_authors_block_has_no_norm_and_a_full_glu() -> None:
    """Lu et al.'s block: ``x + W₁ z ⊙ σ(W₂ z)``, ``z = GELU(S5(x))``, no LayerNorm anywhere."""
    stack = _model(S5Stack, block="authors")
    assert not any(isinstance(m, nn.LayerNorm) for m in stack.modules())
    block = stack.blocks[0]
    assert isinstance(block.glu, FullGLU)
    for linear in (block.glu.out1, block.glu.out2):
        assert linear.bias.abs().max() == 0  # flax's Dense starts with zero biases
    u, reset = _episode_data()
    y, _ = block.ssm(u, None, reset)
    z = F.gelu(y, approximate="tanh")  # flax's default GELU
    expected = u + block.glu.out1(z) * torch.sigmoid(block.glu.out2(z))
    torch.testing.assert_close(block(u, None, reset)[0], expected)
    # The stack is the blocks in sequence and nothing after them.
    x = u
    for blk in stack.blocks:
        x = blk(x, None, reset)[0]
    torch.testing.assert_close(stack(u, None, reset)[0], x)


def test_prenorm_block_structure() -> None:
    """``x + z ⊙ σ(W z)``, ``z = GELU(S5(LayerNorm(x)))``, and a LayerNorm after the stack."""
    stack = _model(S5Stack, block="prenorm")
    block = stack.blocks[0]
    assert isinstance(block.norm, nn.LayerNorm) and isinstance(block.glu, HalfGLU)
    assert isinstance(stack.norm, nn.LayerNorm)
    u, reset = _episode_data()
    y, _ = block.ssm(block.norm(u), None, reset)
    z = F.gelu(y)
    torch.testing.assert_close(block(u, None, reset)[0], u + z * torch.sigmoid(block.glu.gate(z)))


def test_lecun_normal_is_flax_truncated_normal() -> None:
    torch.manual_seed(0)
    draw = lecun_normal((200, 100), fan_in=400)
    assert draw.std().item() == pytest.approx(1 / 20, rel=0.03)
    assert draw.abs().max().item() <= 2 / (0.8796 * 20)  # cut at two standard normal deviations


@pytest.mark.parametrize(
    ("block", "b_std", "c_std"),
    [("authors", lambda h, p: 1 / math.sqrt(p), lambda h, p: 1 / math.sqrt(h * p)),
     ("prenorm", lambda h, p: 1 / math.sqrt(h), lambda h, p: 1 / math.sqrt(p))],
)
def test_input_and_output_matrix_scales(block: str, b_std, c_std) -> None:
    """B̃ = V⁻¹B and C̃ = CV keep B's and C's scale (V is unitary); H ≠ P tells the blocks apart.

    C̃'s real and imaginary parts each have C's per-part standard deviation; B̃'s entries have
    mean square B's variance. 8,192 entries each: sampling error about 1 %.
    """
    h, p = 64, 256
    torch.manual_seed(0)
    layer = S5Layer(S5Config(d_model=h, d_state=p, n_layers=1, block=block))
    for part in (layer.c_re, layer.c_im):
        assert part.std().item() == pytest.approx(c_std(h, p), rel=0.05)
    b_tilde_sq = layer.b_re.double().square() + layer.b_im.double().square()
    assert b_tilde_sq.mean().sqrt().item() == pytest.approx(b_std(h, p), rel=0.05)


@pytest.mark.parametrize("block", S5_BLOCKS)
@pytest.mark.parametrize("cls", [S5Layer, S5Stack])
def test_step_matches_scan(cls: type[torch.nn.Module], block: str) -> None:
    model = _model(cls, block=block)
    u, reset = _episode_data()
    state0 = torch.randn_like(model.initial_state(u.shape[0]))
    y_scan, final_scan = model(u, state0, reset)

    state, outputs = state0, []
    for t in range(u.shape[1]):
        y, state = model.step(u[:, t], state, reset[:, t])
        outputs.append(y)
    torch.testing.assert_close(torch.stack(outputs, dim=1), y_scan)
    torch.testing.assert_close(state, final_scan)


@pytest.mark.parametrize("block", S5_BLOCKS)
def test_backends_agree(block: str) -> None:
    u, reset = _episode_data()
    y_assoc, h_assoc = _model(S5Stack, scan_backend="associative", block=block)(u, None, reset)
    y_seq, h_seq = _model(S5Stack, scan_backend="sequential", block=block)(u, None, reset)
    torch.testing.assert_close(y_assoc, y_seq)
    torch.testing.assert_close(h_assoc, h_seq)


@pytest.mark.parametrize("block", S5_BLOCKS)
def test_state_carries_across_chunks(block: str) -> None:
    """Running a rollout in two pieces, passing the state on, equals running it whole."""
    model = _model(S5Stack, block=block)
    u, reset = _episode_data()
    y_whole, h_whole = model(u, None, reset)
    y_a, h_a = model(u[:, :7], None, reset[:, :7])
    y_b, h_b = model(u[:, 7:], h_a, reset[:, 7:])
    torch.testing.assert_close(torch.cat([y_a, y_b], dim=1), y_whole)
    torch.testing.assert_close(h_b, h_whole)


@pytest.mark.parametrize("block", S5_BLOCKS)
def test_reset_cuts_information_flow(block: str) -> None:
    """After a reset, outputs (and their gradients) do not depend on anything before it."""
    model = _model(S5Stack, block=block)
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


@pytest.mark.parametrize("block", S5_BLOCKS)
def test_without_reset_memory_spans_the_boundary(block: str) -> None:
    """Control for the test above: with no reset the past does reach later outputs."""
    model = _model(S5Stack, block=block)
    u, _ = _episode_data(batch=2, length=16)
    u.requires_grad_(True)
    y, _ = model(u)
    (grad,) = torch.autograd.grad(y[:, 9:].sum(), u)
    assert grad[:, :9].abs().max() > 0


@pytest.mark.parametrize("block", S5_BLOCKS)
def test_trains_float32(block: str) -> None:
    """A default-precision stack runs forward and backward to finite gradients of every param."""
    torch.manual_seed(0)
    model = S5Stack(dataclasses.replace(CONFIG, block=block))
    u, reset = _episode_data()
    y, state = model(u.float(), None, reset)
    assert y.dtype == torch.float32 and state.dtype == torch.complex64
    y.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


EXPERIMENTS = ("popgym_ppo", "bsuite_memory", "meta_rl_cartpole", "meta_rl_dmc")


def _networks(experiment: str, profile: str) -> list:
    import importlib

    module = importlib.import_module(f"ssmrl_lib.experiments.{experiment}")
    return [spec.config.network for spec in module.grid(module.settings_for(profile))]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_paper_profiles_run_the_authors_block(experiment: str) -> None:
    assert {n.s5_block for n in _networks(experiment, "full")} == {"authors"}
    for profile in ("smoke", "quick"):
        assert {n.s5_block for n in _networks(experiment, profile)} == {"prenorm"}


def _config_hash_honours_omit_if() -> bool:
    from ssmrl_lib.runs.store import config_hash

    @dataclasses.dataclass(frozen=True)
    class Before:
        a: int = 1

    @dataclasses.dataclass(frozen=True)
    class After:
        a: int = 1
        b: str = dataclasses.field(default="new", metadata={"cache_key_omit_if": "old"})

    return config_hash(After(b="old")) == config_hash(Before())


@pytest.mark.skipif(
    not _config_hash_honours_omit_if(), reason="config_hash does not yet honour cache_key_omit_if"
)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_quick_runs_keep_their_recorded_cache_keys(experiment: str) -> None:
    """The pre-norm block is what the committed quick runs ran, so they are still found."""
    import importlib

    from ssmrl_lib.paths import REPO_ROOT
    from ssmrl_lib.runs.store import config_hash

    module = importlib.import_module(f"ssmrl_lib.experiments.{experiment}")
    for spec in module.grid(module.settings_for("quick")):
        key = config_hash(spec.config)
        assert (REPO_ROOT / "data" / "runs" / experiment / key / "result.json").exists(), key
