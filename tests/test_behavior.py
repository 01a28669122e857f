"""Behavior-policy training: evaluations, small checkpoints, resuming, replay export."""

from __future__ import annotations

import numpy as np
import pytest

from ssmrl_lib import cli
from ssmrl_lib.data.actor import ActorPolicy
from ssmrl_lib.data.behavior import SAMPLED_EVAL_SEED, evaluate_policy_returns, train_policy
from ssmrl_lib.data.policy_dir import (
    SavedReplay,
    has_sampled_evaluations,
    load_replay_buffer,
    read_evaluations,
    read_state,
)
from ssmrl_lib.data.replay import export_replay, replay_episodes
from ssmrl_lib.envs import get_task
from ssmrl_lib.errors import SsmrlError

TINY = {
    "eval_every": 100,
    "eval_episodes": 1,
    "learning_starts": 50,
    "buffer_size": 2000,
    "extra": {"policy_kwargs": {"net_arch": [8, 8]}, "batch_size": 16},
    "sampled_eval_episodes": 2,
}


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """A Hopper SAC policy trained for 200 steps with tiny networks (a few seconds)."""
    policy_dir = tmp_path_factory.mktemp("policies") / "hopper"
    train_policy(get_task("hopper"), 200, policy_dir, log=lambda _line: None, **TINY)
    return policy_dir


def test_training_writes_evaluations_checkpoints_and_state(tiny_policy):
    rows = read_evaluations(tiny_policy)
    assert [row["step"] for row in rows] == [100, 200]
    for row in rows:
        assert (tiny_policy / row["checkpoint"]).is_file()
        assert np.isfinite(row["normalized_mean"])
    assert read_state(tiny_policy)["step"] == 200
    assert (tiny_policy / "training.json").is_file()


def test_evaluations_score_the_checkpoints_sampled_actions_too(tiny_policy):
    rows = read_evaluations(tiny_policy)
    assert has_sampled_evaluations(rows)
    row = rows[-1]
    actor = ActorPolicy.load(tiny_policy / row["checkpoint"])
    assert actor.can_sample
    assert actor.meta["evaluation"]["sampled_normalized_mean"] == row["sampled_normalized_mean"]
    # The sampled columns are the exported actor's sampler on the recorded seeds.
    step = row["step"]
    sampler = actor.sampler(np.random.default_rng(SAMPLED_EVAL_SEED + step))
    returns, lengths = evaluate_policy_returns(sampler, "Hopper-v5", 2, SAMPLED_EVAL_SEED + step)
    assert row["sampled_mean_return"] == pytest.approx(returns.mean(), abs=1e-3)
    assert row["sampled_mean_length"] == pytest.approx(lengths.mean())
    # Both evaluations' CPU time is logged, cumulative; the process's CPU time, taken before each
    # evaluation, includes the earlier ones.
    assert 0 <= rows[0]["eval_cpu_seconds"] <= rows[1]["eval_cpu_seconds"]
    assert rows[0]["eval_cpu_seconds"] <= rows[1]["cpu_seconds"]


def test_evaluations_written_before_sampled_scores_read_as_nan(tmp_path):
    old_columns = ("step,mean_return,std_return,normalized_mean,normalized_std,mean_length,"
                   "wall_seconds,cpu_seconds,checkpoint")
    (tmp_path / "evaluations.csv").write_text(
        f"{old_columns}\n10000,17.5,0.2,1.2,0.0,37.5,29.0,,checkpoints/step_00010000.npz\n")
    rows = read_evaluations(tmp_path)
    assert rows[0]["normalized_mean"] == 1.2 and np.isnan(rows[0]["sampled_normalized_mean"])
    assert not has_sampled_evaluations(rows) and not has_sampled_evaluations([])


def test_small_checkpoint_acts_like_the_sb3_model(tiny_policy):
    from stable_baselines3 import SAC

    state = read_state(tiny_policy)
    model = SAC.load(tiny_policy / "state" / state["model"], device="cpu")
    actor = ActorPolicy.load(tiny_policy / "checkpoints" / "step_00000200.npz")
    obs = np.random.default_rng(0).normal(size=(6, 11))
    np.testing.assert_allclose(actor(obs), model.predict(obs, deterministic=True)[0], atol=1e-5)
    assert actor.meta["gym_id"] == "Hopper-v5" and actor.meta["step"] == 200


def test_sampled_actions_are_the_sb3_actors_squashed_gaussian(tiny_policy):
    import torch
    from stable_baselines3 import SAC

    state = read_state(tiny_policy)
    model = SAC.load(tiny_policy / "state" / state["model"], device="cpu")
    actor = ActorPolicy.load(tiny_policy / "checkpoints" / "step_00000200.npz")
    assert actor.can_sample
    obs = np.random.default_rng(1).normal(size=(6, 11)).astype(np.float32)
    with torch.no_grad():
        mean, log_std, _ = model.actor.get_action_dist_params(torch.from_numpy(obs))
    rng = np.random.default_rng(7)
    noise = np.random.default_rng(7).standard_normal((6, 3)).astype(np.float32)
    expected = model.policy.unscale_action(
        np.tanh(mean.numpy() + np.exp(log_std.numpy()) * noise))  # SB3's sample, same noise
    np.testing.assert_allclose(actor.sampler(rng)(obs), expected, atol=1e-5)
    # Draws differ from the mean action, and successive calls draw new noise.
    act = actor.sampler(np.random.default_rng(0))
    first, second = act(obs), act(obs)
    assert not np.allclose(first, actor(obs)) and not np.allclose(first, second)


def test_a_checkpoint_without_a_log_std_head_acts_but_cannot_sample(tiny_policy, tmp_path):
    actor = ActorPolicy.load(tiny_policy / "checkpoints" / "step_00000200.npz")
    with np.load(tiny_policy / "checkpoints" / "step_00000200.npz") as data:
        old = {key: data[key] for key in data.files if "log_std" not in key}
    path = tmp_path / "old.npz"
    np.savez(path, **old)
    older = ActorPolicy.load(path)
    obs = np.zeros((2, 11), np.float32)
    np.testing.assert_array_equal(older(obs), actor(obs))
    assert not older.can_sample
    with pytest.raises(SsmrlError, match="holds no log-std head"):
        older.sampler(np.random.default_rng(0))


def test_rerunning_resumes_and_closes_the_interrupted_episode(tiny_policy):
    lines = []
    train_policy(get_task("hopper"), 300, tiny_policy, log=lines.append, **TINY)
    assert lines[0] == "resuming Hopper-v5 SAC from step 200"
    assert [row["step"] for row in read_evaluations(tiny_policy)] == [100, 200, 300]
    buffer = load_replay_buffer(tiny_policy)
    assert buffer.pos == 300
    # The episode running at step 200 was cut by the restart: a truncation, not a termination.
    assert buffer.dones[199, 0] == 1 and buffer.timeouts[199, 0] == 1


@pytest.mark.parametrize("steps", [70, 130])  # part-filled, and wrapped past its 100 rows
def test_a_saved_replay_restores_the_buffer_exactly(steps):
    import gymnasium as gym
    from stable_baselines3.common.buffers import ReplayBuffer

    env = gym.make("Hopper-v5")
    spaces = (env.observation_space, env.action_space)
    buffer, restored = ReplayBuffer(100, *spaces), ReplayBuffer(100, *spaces)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)  # extra episode ends: next_observations stored apart
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated or rng.random() < 0.1
        buffer.add(obs, next_obs, action, reward, np.array([done]), [{}])
        obs = env.reset()[0] if done else next_obs
    saved = SavedReplay.from_bytes(SavedReplay.of(buffer).to_bytes())
    saved.restore(restored)
    assert (restored.pos, restored.full) == (buffer.pos, buffer.full)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(buffer, name), name)


def test_other_settings_for_an_existing_policy_are_refused(tiny_policy):
    with pytest.raises(SsmrlError, match="holds a training with other settings: seed 0"):
        train_policy(get_task("hopper"), 400, tiny_policy, seed=5, **TINY)


def test_a_training_recorded_before_sampled_evaluations_resumes_without_them(tmp_path):
    """Its training.json lacks the field: it stands for 0, and asking for more is refused."""
    import json

    settings = TINY | {"sampled_eval_episodes": 0}
    train_policy(get_task("hopper"), 100, tmp_path, log=lambda _line: None, **settings)
    record = json.loads((tmp_path / "training.json").read_text())
    del record["config"]["sampled_eval_episodes"]
    (tmp_path / "training.json").write_text(json.dumps(record))
    with pytest.raises(SsmrlError, match="sampled_eval_episodes 0 \\(asked: 2\\)"):
        train_policy(get_task("hopper"), 200, tmp_path, **TINY)
    train_policy(get_task("hopper"), 200, tmp_path, log=lambda _line: None, **settings)
    rows = read_evaluations(tmp_path)
    assert [row["step"] for row in rows] == [100, 200] and not has_sampled_evaluations(rows)


def test_replay_export_keeps_complete_episodes_in_order(tiny_policy):
    path = export_replay(get_task("hopper"), tiny_policy, until_step=200)
    episodes, meta = replay_episodes(path, get_task("hopper"))
    assert meta["until_step"] == 200 and meta["episodes"] == len(episodes)
    assert 0 < sum(len(e.rewards) for e in episodes) <= 200
    buffer = load_replay_buffer(tiny_policy)
    first = episodes[0]
    np.testing.assert_allclose(
        first.observations[:-1], buffer.observations[: len(first.rewards), 0], rtol=1e-6
    )
    for episode in episodes:
        assert episode.terminations[-1] or episode.truncations[-1]
        assert not (episode.terminations[:-1] | episode.truncations[:-1]).any()


def test_train_policy_cli_bad_input(capsys, tmp_path):
    code = cli.main(["data", "train-policy", "--env", "ant", "--steps", "10"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("ssmrl: error: unknown environment 'ant'")
    with pytest.raises(SystemExit) as exit_:  # argparse rejects it before any work
        cli.main(["data", "train-policy", "--env", "hopper", "--steps", "0",
                  "--dir", str(tmp_path / "p")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert err == ("ssmrl data train-policy: error: argument --steps: must be a positive "
                   "integer, got '0'")


def test_evaluation_returns_are_gymnasiums_own_episode_sums(tiny_policy):
    """Evaluations go through the lockstep collector; a running training's rows, written by a
    plain gymnasium loop, stay comparable only if the numbers are exactly those."""
    import gymnasium as gym

    actor = ActorPolicy.load(tiny_policy / "checkpoints" / "step_00000200.npz")
    returns, lengths = evaluate_policy_returns(actor, "Hopper-v5", 3, seed=11)
    env = gym.make("Hopper-v5", disable_env_checker=True)
    for k in range(3):
        obs, _ = env.reset(seed=11 + k)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(actor(obs[None])[0])
            total += float(reward)
            length += 1
            done = terminated or truncated
        assert (returns[k], lengths[k]) == (total, length)


def test_algorithms_are_found_by_name_and_by_a_saved_models_policy():
    from stable_baselines3 import SAC
    from stable_baselines3.sac.policies import SACPolicy

    from ssmrl_lib.data.sb3 import algorithm_class, checkpoint_algorithm

    assert algorithm_class("SAC") is SAC and algorithm_class("TQC").__name__ == "TQC"
    assert checkpoint_algorithm({"policy_class": SACPolicy}) == "SAC"
    with pytest.raises(SsmrlError, match="unknown algorithm 'XYZ'; valid choices: SAC"):
        algorithm_class("XYZ")
    with pytest.raises(SsmrlError, match="cannot tell the algorithm"):
        checkpoint_algorithm({"policy_class": dict})
