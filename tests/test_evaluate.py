"""The batched evaluator against a plain one-environment loop, and the scores it reports."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from ssmrl_lib.data.windows import StateNormalizer
from ssmrl_lib.envs import get_task, normalized_score
from ssmrl_lib.evaluate.conditioning import ReturnConditioning
from ssmrl_lib.evaluate.dt_policy import ContextWindowPolicy
from ssmrl_lib.evaluate.rollout import rollout

WEIGHTS = np.random.default_rng(0).normal(scale=0.3, size=(11, 3))


def linear_action(obs: np.ndarray) -> np.ndarray:
    return np.tanh(obs @ WEIGHTS).astype(np.float32)


class ScriptedLinearPolicy:
    """A known policy: a fixed linear map of the observation; counts its batched calls."""

    def __init__(self):
        self.calls = 0

    def begin_episode(self, slot):
        pass

    def act(self, slots, observations):
        self.calls += 1
        return linear_action(observations)

    def observe(self, slots, rewards):
        pass


def make_hopper():
    return gym.make("Hopper-v5", max_episode_steps=60)


def reference_returns(n_episodes: int, seed: int) -> list[float]:
    env = make_hopper()
    returns = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(linear_action(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns


@pytest.mark.parametrize("n_envs", [1, 3, 7])
def test_batched_rollout_equals_one_environment_at_a_time(n_envs):
    policy = ScriptedLinearPolicy()
    result = rollout(make_hopper, policy, n_episodes=7, n_envs=n_envs, seed=5)
    np.testing.assert_allclose(result.returns, reference_returns(7, seed=5), rtol=1e-10)
    # one batched call per step of the slowest slot, not one per environment
    if n_envs == 1:
        assert policy.calls == result.lengths.sum()
    elif n_envs == 7:
        assert policy.calls == result.lengths.max()
    else:
        assert result.lengths.max() <= policy.calls < result.lengths.sum()


class RecordingModel(torch.nn.Module):
    """Stands in for DT: records the windows it is given, predicts a constant action."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, states, actions, returns_to_go, timesteps, attention_mask):
        self.inputs.append({k: v.clone() for k, v in locals().items() if k != "self"})
        return torch.full((*states.shape[:2], 3), 0.1)


def test_context_policy_builds_windows_like_the_reference_get_action():
    model = RecordingModel()
    normalizer = StateNormalizer(mean=np.zeros(11), std=np.ones(11))
    conditioning = ReturnConditioning(normalizer, target_return=3600, rtg_scale=1000,
                                      max_ep_len=1000)
    policy = ContextWindowPolicy(model, conditioning, context_len=4, n_slots=1, state_dim=11,
                                 act_dim=3)
    rollout(make_hopper, policy, n_episodes=1, n_envs=1, seed=0)
    third_step = model.inputs[2]
    assert third_step["attention_mask"].tolist() == [[0, 1, 1, 1]]
    assert third_step["timesteps"].tolist() == [[0, 0, 1, 2]]
    rtg = third_step["returns_to_go"][0, :, 0]
    assert rtg[1] == pytest.approx(3.6)
    assert (rtg[1:].diff() < 0).all()  # decremented by each reward / scale
    # earlier actions are the model's, the current one is a zero placeholder
    assert third_step["actions"][0, 1:3].eq(0.1).all() and third_step["actions"][0, 3].eq(0).all()
    later = model.inputs[10]
    assert later["attention_mask"].tolist() == [[1, 1, 1, 1]]
    assert later["timesteps"].tolist() == [[7, 8, 9, 10]]


def test_normalized_score_uses_d4rl_reference_returns():
    hopper = get_task("hopper")
    assert normalized_score(hopper, hopper.ref_min_score) == pytest.approx(0.0)
    assert normalized_score(hopper, hopper.ref_max_score) == pytest.approx(100.0)
    assert normalized_score(hopper, 1607.0) == pytest.approx(
        100 * (1607.0 + 20.272305) / (3234.3 + 20.272305)
    )


def test_peak_memory_sees_a_large_allocation():
    import mmap

    from ssmrl_lib.evaluate.peak_memory import PeakMemory

    size = 64 * 2**20
    with PeakMemory() as memory:
        # Fresh pages from the kernel: a malloc'd block can reuse memory an earlier test freed
        # but the allocator kept resident, which does not raise the peak.
        block = mmap.mmap(-1, size)
        for offset in range(0, size, mmap.PAGESIZE):
            block[offset] = 1  # touch every page
        block.close()
    assert memory.rss_growth_mib is not None and memory.rss_growth_mib >= 60
