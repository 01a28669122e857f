"""Lockstep stepping gives exactly what each environment's own ``env.step`` gives."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ssmrl_lib.data.lockstep import LockstepEnvs
from ssmrl_lib.errors import SsmrlError

# HalfCheetah never terminates, so it runs past its 1000-step time limit; the other two fall.
STEPS = {"Hopper-v5": 300, "Walker2d-v5": 300, "HalfCheetah-v5": 1100}


@pytest.mark.parametrize("gym_id", sorted(STEPS))
@pytest.mark.parametrize("action_dtype", [np.float32, np.float64])
def test_lockstep_matches_gymnasium_step_bit_for_bit(gym_id, action_dtype):
    n_envs = 3
    lockstep = LockstepEnvs(gym_id, n_envs)
    reference = [gym.make(gym_id) for _ in range(n_envs)]
    space = reference[0].action_space
    rng = np.random.default_rng(0)
    next_seed = 0
    for slot, env in enumerate(reference):
        first, _ = env.reset(seed=next_seed)
        np.testing.assert_array_equal(lockstep.reset(slot, next_seed), first)
        next_seed += 1
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(STEPS[gym_id]):
        actions = rng.uniform(space.low, space.high, (n_envs, *space.shape)).astype(action_dtype)
        observations, rewards, terminated, truncated = lockstep.step(actions)
        for slot, env in enumerate(reference):
            observation, reward, env_terminated, env_truncated, _ = env.step(actions[slot])
            np.testing.assert_array_equal(observations[slot], observation)
            assert rewards[slot] == reward  # exact: the same formulas in the same order
            assert (terminated[slot], truncated[slot]) == (env_terminated, env_truncated)
            ends["terminated"] += env_terminated
            ends["truncated"] += env_truncated
            if env_terminated or env_truncated:
                first, _ = env.reset(seed=next_seed)
                np.testing.assert_array_equal(lockstep.reset(slot, next_seed), first)
                next_seed += 1
    lockstep.close()
    # The comparison went through episode ends of the kind each task has.
    kind = "truncated" if gym_id == "HalfCheetah-v5" else "terminated"
    assert ends[kind] >= n_envs


def test_lockstep_names_the_supported_environments():
    with pytest.raises(SsmrlError, match="Hopper-v5"):
        LockstepEnvs("Ant-v5", 2)
