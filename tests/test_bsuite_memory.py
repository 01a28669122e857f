"""bsuite memory length: the MemoryChain adapter, the score, the grid and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.experiments import bsuite_memory
from ssmrl_lib.experiments.bsuite_memory import MemoryChainEnv, final_return
from ssmrl_lib.runs import LocalExecutor, RunStore
from ssmrl_lib.train.ppo import PPOHistory

torch.set_num_threads(1)


def _episode(env: MemoryChainEnv, action: int, seed: int | None = None):
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    while True:
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            return np.array(observations), rewards


def test_memory_chain_shows_context_first_and_rewards_only_at_the_end() -> None:
    env = MemoryChainEnv(memory_length=5)
    observations, rewards = _episode(env, action=0, seed=0)
    assert len(rewards) == 6 and rewards[:-1] == [0.0] * 5 and rewards[-1] in (-1.0, 1.0)
    assert observations[0, 2] in (-1.0, 1.0)
    assert np.all(observations[2:, 2] == 0)  # the bit is gone after the start
    # Repeating the bit wins, the other action loses; a seeded reset replays the same context.
    for seed in range(4):
        correct = int(env.reset(seed=seed)[0][2] > 0)
        assert _episode(env, action=correct, seed=seed)[1][-1] == 1.0
        assert _episode(env, action=1 - correct, seed=seed)[1][-1] == -1.0


def test_final_return_weights_last_episodes() -> None:
    history = PPOHistory(mean_return=[-1.0, 0.0, float("nan"), 1.0], episodes=[10, 10, 0, 10])
    assert final_return(history, fraction=0.1) == 1.0
    assert final_return(history, fraction=0.5) == pytest.approx(0.5)


def test_smoke_grid_runs_and_is_cached(tmp_path) -> None:
    settings = bsuite_memory.settings_for("smoke", episodes=10)
    specs = bsuite_memory.grid(settings)
    assert [s.config.model for s in specs] == ["s5", "lstm"]
    assert specs[0].config.a2c.epochs == 1 and specs[0].config.a2c.total_steps >= 10 * 5
    executor = LocalExecutor(RunStore(tmp_path))
    results = executor.run_all(specs)
    assert all(r["episodes_finished"] >= 10 for r in results)
    assert all(-1.0 <= r["final_return"] <= 1.0 for r in results)
    for r in results:  # peak memory is measured (Linux /proc) and is at least the growth
        memory = r["peak_memory"]
        assert memory["peak_rss_mib"] > 0 and memory["rss_growth_mib"] >= 0
        assert memory["peak_rss_mib"] >= memory["rss_growth_mib"]
    assert executor.run_all(specs) == results


def test_bad_settings_fail_with_choices() -> None:
    with pytest.raises(SsmrlError, match="unknown model 'transformer'; valid choices: s5"):
        bsuite_memory.settings_for("smoke", models=["transformer"])
    with pytest.raises(SsmrlError, match=r"'lengths' = \[0\]: must be a non-empty list"):
        bsuite_memory.settings_for("smoke", lengths=[0])
    with pytest.raises(SsmrlError, match="unknown profile"):
        bsuite_memory.settings_for("huge")
