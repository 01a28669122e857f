"""DT windows must match the reference get_batch: RTG, padding, normalization, sampling."""

import numpy as np
import pytest
from conftest import make_trajectories

from ssmrl_lib.data.windows import ACTION_PAD, DTWindowSampler, StateNormalizer, returns_to_go


def test_returns_to_go_is_undiscounted_suffix_sum():
    np.testing.assert_allclose(returns_to_go(np.array([1.0, 2.0, 3.0])), [6.0, 5.0, 3.0])


def test_window_inside_episode_has_no_padding_and_k_plus_one_rtg():
    sampler = DTWindowSampler(make_trajectories([30]), context_len=5, rtg_scale=10.0)
    window = sampler.window(episode=0, start=10)
    assert window["attention_mask"].tolist() == [1] * 5
    assert window["timesteps"].tolist() == [10, 11, 12, 13, 14]
    # rewards are all 1, so rtg[t] = 30 - t, scaled by 1/10, K + 1 entries
    np.testing.assert_allclose(window["returns_to_go"][:, 0], (30 - np.arange(10, 16)) / 10)


def test_window_at_episode_end_is_left_padded_like_the_reference():
    trajectories = make_trajectories([12])
    sampler = DTWindowSampler(trajectories, context_len=5, rtg_scale=1.0)
    window = sampler.window(episode=0, start=9)  # only 3 real steps remain
    assert window["attention_mask"].tolist() == [0, 0, 1, 1, 1]
    assert (window["actions"][:2] == ACTION_PAD).all()
    assert (window["actions"][2:] == 0.5).all()
    assert window["timesteps"].tolist() == [0, 0, 9, 10, 11]
    # padded states are zeros *before* normalization, as in the reference
    normalizer = sampler.normalizer
    np.testing.assert_allclose(window["states"][0], (0 - normalizer.mean) / normalizer.std)
    # rtg: two zeros of padding, the 3 real values, and a zero appended past the end
    np.testing.assert_allclose(window["returns_to_go"][:, 0], [0, 0, 3, 2, 1, 0])


def test_timesteps_are_clipped_to_max_episode_length():
    sampler = DTWindowSampler(make_trajectories([30]), context_len=5, max_ep_len=12)
    assert sampler.window(0, 10)["timesteps"].tolist() == [10, 11, 11, 11, 11]


def test_state_normalizer_uses_std_plus_epsilon():
    trajectories = make_trajectories([4, 4])
    normalizer = StateNormalizer.fit(trajectories)
    states = np.concatenate(trajectories.states)
    np.testing.assert_allclose(normalizer.std, states.std(axis=0) + 1e-6)


def test_trajectories_are_sampled_in_proportion_to_length():
    sampler = DTWindowSampler(make_trajectories([10, 30]), context_len=4)
    batch = sampler.sample(4000, np.random.default_rng(0))
    raw_first_state = (
        batch["states"][:, -1, 0].numpy() * sampler.normalizer.std[0] + sampler.normalizer.mean[0]
    )
    share_of_long_episode = (raw_first_state >= 100).mean()
    assert share_of_long_episode == pytest.approx(0.75, abs=0.03)


def test_batches_are_deterministic_for_a_seed():
    sampler = DTWindowSampler(make_trajectories([10, 20, 7]), context_len=4)
    first = sampler.sample(16, np.random.default_rng(3))
    second = sampler.sample(16, np.random.default_rng(3))
    for key in first:
        assert (first[key] == second[key]).all()
