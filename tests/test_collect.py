"""The one episode collector: one environment is gymnasium's own loop, more environments in
lockstep change nothing for a deterministic policy, and both stopping rules hold."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ssmrl_lib.data.collect import collect_episodes, random_policy
from ssmrl_lib.errors import SsmrlError


def gymnasium_episodes(gym_id, seed, steps, max_episode_steps=None):
    """What `ssmrl data make` collected before it shared the collector: one environment, a
    seeded ``Box.sample()`` per step, episode ``k`` reset with ``seed + k``."""
    env = gym.make(gym_id, max_episode_steps=max_episode_steps)
    space = gym.spaces.Box(env.action_space.low, env.action_space.high,
                           dtype=env.action_space.dtype)
    space.seed(seed)
    episodes, total = [], 0
    while total < steps:
        obs, _ = env.reset(seed=seed + len(episodes))
        observations, actions, rewards, ends = [obs], [], [], []
        done = False
        while not done:
            action = space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            ends.append((terminated, truncated))
            done = terminated or truncated
        episodes.append((np.stack(observations), np.stack(actions), np.array(rewards),
                         np.array(ends)))
        total += len(rewards)
    return episodes


@pytest.mark.parametrize("gym_id", ["Hopper-v5", "HalfCheetah-v5"])
def test_one_environment_gives_exactly_gymnasiums_loop(gym_id):
    space = gym.make(gym_id).action_space
    got = collect_episodes(gym_id, random_policy(space, 3), 3, steps=400, max_episode_steps=150)
    expected = gymnasium_episodes(gym_id, 3, 400, max_episode_steps=150)
    assert len(got) == len(expected) > 1
    for episode, (observations, actions, rewards, ends) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(episode.observations, observations)
        np.testing.assert_array_equal(episode.actions, actions)
        np.testing.assert_array_equal(episode.rewards, rewards)
        np.testing.assert_array_equal(episode.terminations, ends[:, 0])
        np.testing.assert_array_equal(episode.truncations, ends[:, 1])
    assert [e.seed for e in got] == [3 + k for k in range(len(got))]


def pushing(act_dim: int):
    """A deterministic policy that depends on the observation."""
    return lambda obs: np.tanh(obs[:, :act_dim]).astype(np.float32)


@pytest.mark.parametrize("n_envs", [2, 5])
def test_lockstep_environments_give_a_deterministic_policy_the_same_episodes(n_envs):
    for target in ({"steps": 300}, {"episodes": 4}):
        one = collect_episodes("Hopper-v5", pushing(3), 7, n_envs=1, **target)
        many = collect_episodes("Hopper-v5", pushing(3), 7, n_envs=n_envs, **target)
        assert len(one) == len(many)
        for a, b in zip(one, many, strict=True):
            assert a.id == b.id and a.seed == b.seed
            np.testing.assert_array_equal(a.observations, b.observations)
            np.testing.assert_array_equal(a.rewards, b.rewards)


def test_stopping_rules_and_time_limit():
    by_episodes = collect_episodes("HalfCheetah-v5", pushing(6), 0, episodes=3, n_envs=5,
                                   max_episode_steps=20)
    assert [len(e.rewards) for e in by_episodes] == [20, 20, 20]
    assert all(e.truncations[-1] and not e.terminations.any() for e in by_episodes)
    by_steps = collect_episodes("HalfCheetah-v5", pushing(6), 0, steps=45, max_episode_steps=20)
    assert [len(e.rewards) for e in by_steps] == [20, 20, 20]  # complete episodes only


def test_bad_collection_requests():
    with pytest.raises(ValueError, match="exactly one of steps and episodes"):
        collect_episodes("Hopper-v5", pushing(3), 0, steps=10, episodes=1)
    with pytest.raises(SsmrlError, match="n_envs must be a positive integer"):
        collect_episodes("Hopper-v5", pushing(3), 0, steps=10, n_envs=0)
