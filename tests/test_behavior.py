"""Behavior-policy training: evaluations, small checkpoints, resuming, replay export."""

from __future__ import annotations

import numpy as np
import pytest

from ssmrl_lib import cli
from ssmrl_lib.data.behavior import (
    ActorPolicy,
    load_replay_buffer,
    read_evaluations,
    read_state,
    train_policy,
)
from ssmrl_lib.data.recipes import export_replay, replay_episodes
from ssmrl_lib.envs import get_task
from ssmrl_lib.errors import SsmrlError

TINY = {
    "eval_every": 100,
    "eval_episodes": 1,
    "learning_starts": 50,
    "buffer_size": 2000,
    "extra": {"policy_kwargs": {"net_arch": [8, 8]}, "batch_size": 16},
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


def test_small_checkpoint_acts_like_the_sb3_model(tiny_policy):
    from stable_baselines3 import SAC

    state = read_state(tiny_policy)
    model = SAC.load(tiny_policy / "state" / state["model"], device="cpu")
    actor = ActorPolicy.load(tiny_policy / "checkpoints" / "step_00000200.npz")
    obs = np.random.default_rng(0).normal(size=(6, 11))
    np.testing.assert_allclose(actor(obs), model.predict(obs, deterministic=True)[0], atol=1e-5)
    assert actor.meta["gym_id"] == "Hopper-v5" and actor.meta["step"] == 200


def test_rerunning_resumes_and_closes_the_interrupted_episode(tiny_policy):
    lines = []
    train_policy(get_task("hopper"), 300, tiny_policy, log=lines.append, **TINY)
    assert lines[0] == "resuming Hopper-v5 SAC from step 200"
    assert [row["step"] for row in read_evaluations(tiny_policy)] == [100, 200, 300]
    buffer = load_replay_buffer(tiny_policy)
    assert buffer.pos == 300
    # The episode running at step 200 was cut by the restart: a truncation, not a termination.
    assert buffer.dones[199, 0] == 1 and buffer.timeouts[199, 0] == 1


def test_other_settings_for_an_existing_policy_are_refused(tiny_policy):
    with pytest.raises(SsmrlError, match="holds a training with other settings"):
        train_policy(get_task("hopper"), 400, tiny_policy, seed=5, **TINY)


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
