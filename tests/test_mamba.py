"""Our Mamba is Hugging Face's Mamba; its recurrent mode is its parallel mode; Decision Mamba
keeps DT's interface, ignores padding and steps like it forwards."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import MambaConfig as HFMambaConfig
from transformers import MambaModel

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.models.decision_mamba import DecisionMamba
from ssmrl_lib.models.decision_transformer import SequenceModelConfig
from ssmrl_lib.models.mamba import MambaBackbone, MambaConfig
from ssmrl_lib.scan import c_kernels, linear_scan_backends

HIDDEN, LAYERS, STATE = 32, 2, 8
CPU_BACKENDS = ["auto", *linear_scan_backends()]  # "auto" is the fused scan on CPU


def _hf_and_ours(scan_backend: str) -> tuple[MambaModel, MambaBackbone]:
    torch.manual_seed(0)
    hf = MambaModel(
        HFMambaConfig(vocab_size=1, hidden_size=HIDDEN, num_hidden_layers=LAYERS, state_size=STATE)
    )
    ours = MambaBackbone(
        MambaConfig(hidden_size=HIDDEN, n_layer=LAYERS, state_size=STATE, scan_backend=scan_backend)
    )
    weights = {k: v for k, v in hf.state_dict().items() if k != "embeddings.weight"}
    ours.load_state_dict(weights)  # strict: every other key and shape is Hugging Face's
    return hf.train(), ours.train()


@pytest.mark.parametrize("scan_backend", CPU_BACKENDS)
def test_matches_hugging_face_outputs_and_parameter_grads(scan_backend: str) -> None:
    hf, ours = _hf_and_ours(scan_backend)
    g = torch.Generator().manual_seed(1)
    embeds = torch.randn(3, 13, HIDDEN, generator=g)
    mask = torch.ones(3, 13)
    mask[1, :5] = 0  # left padding, as in DT windows
    weight = torch.randn(3, 13, HIDDEN, generator=g)

    expected = hf(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    actual = ours(embeds, mask)
    assert (actual - expected).abs().max() <= 1e-5

    hf_params = dict(hf.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    expected_grads = torch.autograd.grad((expected * weight).sum(), [hf_params[n] for n in names])
    actual_grads = torch.autograd.grad((actual * weight).sum(), list(ours.parameters()))
    for name, grad, expected_grad in zip(names, actual_grads, expected_grads, strict=True):
        assert expected_grad.abs().max() > 0, name  # the comparison means something
        assert (grad - expected_grad).abs().max() <= 1e-5, name


def test_recurrent_steps_equal_full_sequence() -> None:
    _, ours = _hf_and_ours("auto")
    ours.eval()
    embeds = torch.randn(2, 9, HIDDEN, generator=torch.Generator().manual_seed(2))
    state = ours.init_state(batch_size=2)
    outputs = []
    for t in range(embeds.shape[1]):
        out, state = ours.step(embeds[:, t], state)
        outputs.append(out)
    torch.testing.assert_close(torch.stack(outputs, dim=1), ours(embeds), rtol=1e-5, atol=1e-5)
    # O(1) state: one conv window and one [D, N] SSM state per layer, whatever the length.
    assert [tuple(s.conv.shape) for s in state] == [(2, 2 * HIDDEN, 3)] * LAYERS
    assert [tuple(s.ssm.shape) for s in state] == [(2, 2 * HIDDEN, STATE)] * LAYERS


def test_unknown_scan_backend_is_rejected() -> None:
    with pytest.raises(SsmrlError, match="unknown Mamba scan backend 'nope'"):
        MambaBackbone(MambaConfig(scan_backend="nope"))


HOPPER = SequenceModelConfig(state_dim=11, act_dim=3, context_len=8, hidden_size=32, n_layer=2)


def _windows(batch: int, context: int, seed: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "states": torch.randn(batch, context, HOPPER.state_dim, generator=g),
        "actions": torch.rand(batch, context, HOPPER.act_dim, generator=g) * 2 - 1,
        "returns_to_go": torch.randn(batch, context, 1, generator=g),
        "timesteps": torch.randint(0, 900, (batch, 1), generator=g) + torch.arange(context),
        "attention_mask": torch.ones(batch, context),
    }


def _model() -> DecisionMamba:
    torch.manual_seed(0)
    return DecisionMamba(HOPPER).eval()


def test_forward_shape_and_range() -> None:
    actions = _model()(**_windows(4, HOPPER.context_len))
    assert actions.shape == (4, HOPPER.context_len, HOPPER.act_dim)
    assert actions.abs().max() < 1  # tanh head


def test_left_padding_does_not_change_real_steps() -> None:
    model, real = _model(), _windows(2, 5)
    expected = model(**real)
    g = torch.Generator().manual_seed(4)
    pad = 3
    padded = {
        key: torch.cat([100 * torch.randn(value[:, :pad].shape, generator=g), value], dim=1)
        for key, value in real.items()
        if key not in ("timesteps", "attention_mask")
    }
    padded["timesteps"] = torch.cat(
        [torch.randint(0, 999, (2, pad), generator=g), real["timesteps"]], 1
    )
    padded["attention_mask"] = torch.cat([torch.zeros(2, pad), real["attention_mask"]], dim=1)
    torch.testing.assert_close(model(**padded)[:, pad:], expected, rtol=1e-6, atol=1e-6)


def test_steps_give_the_forward_actions() -> None:
    model, w = _model(), _windows(3, HOPPER.context_len)
    expected = model(**w)
    state, actions = model.init_state(batch_size=3), []
    for t in range(HOPPER.context_len):
        action, state = model.step(
            state,
            return_to_go=w["returns_to_go"][:, t],
            state_obs=w["states"][:, t],
            prev_action=w["actions"][:, t - 1] if t > 0 else None,
            timestep=w["timesteps"][:, t],
        )
        actions.append(action)
    torch.testing.assert_close(torch.stack(actions, dim=1), expected, rtol=1e-5, atol=1e-5)


def test_new_episode_resets_only_its_row() -> None:
    """Row 1 abandons its episode at step 3 and starts ``fresh``; row 0 carries on."""
    model, w, fresh = _model(), _windows(2, 6), _windows(1, 3, seed=9)
    expected_row0, expected_fresh = model(**w)[0], model(**fresh)[0]

    def inputs(key: str, t: int) -> torch.Tensor:
        row1 = fresh[key][0, t - 3] if t >= 3 else w[key][1, t]
        return torch.stack([w[key][0, t], row1])

    state, actions = model.init_state(batch_size=2), []
    for t in range(6):
        action, state = model.step(
            state,
            return_to_go=inputs("returns_to_go", t),
            state_obs=inputs("states", t),
            prev_action=inputs("actions", t - 1) if t > 0 else None,
            timestep=inputs("timesteps", t),
            new_episode=torch.tensor([False, t == 3]),
        )
        actions.append(action)
    actions = torch.stack(actions, dim=1)
    torch.testing.assert_close(actions[0], expected_row0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(actions[1, 3:], expected_fresh, rtol=1e-5, atol=1e-5)


def test_without_a_compiler_the_torch_path_gives_the_same_actions(monkeypatch) -> None:
    model, w = _model().train(), _windows(3, HOPPER.context_len)
    torch.manual_seed(5)
    expected = model(**w)  # compiled kernels (dropout seeded alike below)
    expected_grads = torch.autograd.grad(expected.sum(), list(model.parameters()))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(shutil, "which", lambda _: None)
    c_kernels.load.cache_clear()
    try:
        with pytest.warns(UserWarning, match="falling back to the slower torch"):
            assert c_kernels.load() is None
        torch.manual_seed(5)
        actual = model(**w)
        grads = torch.autograd.grad(actual.sum(), list(model.parameters()))
    finally:
        c_kernels.load.cache_clear()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads, expected_grads, rtol=1e-4, atol=1e-5)


def test_parameter_count_documented_for_hopper() -> None:
    reference = SequenceModelConfig(state_dim=11, act_dim=3)
    assert DecisionMamba(reference).parameter_count() == 480_899
