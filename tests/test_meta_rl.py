"""Meta-RL (Lu et al. 2023, §4.3): projected environments, trial structure, splits, smoke runs."""

from __future__ import annotations

import json
import math
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from ssmrl_lib.env_batch import EnvBatch
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.experiments import meta_rl_cartpole, meta_rl_dmc
from ssmrl_lib.meta_envs import (
    DMC_TASKS,
    HELDOUT_TASKS,
    TRAIN_TASKS,
    DMControlProjectionTask,
    ProjectedStatelessCartPole,
    orthogonal,
)
from ssmrl_lib.report import claims
from ssmrl_lib.report import meta_rl as report
from ssmrl_lib.runs import LocalExecutor, RunStore

torch.set_num_threads(1)


def _episode(env: gym.Env, action, seed: int | None = None) -> list[tuple]:
    """(observation, reward, terminated, truncated, info) of every step, reset included."""
    obs, info = env.reset(seed=seed)
    steps = [(obs, 0.0, False, False, info)]
    while not (steps[-1][2] or steps[-1][3]):
        steps.append(env.step(action))
    return steps


def _check(env: gym.Env) -> list[str]:
    """Run gymnasium's checker (it raises on failure); return the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    return [str(w.message) for w in caught]


# ----------------------------------------------------------------------------------------------
# Projections


@pytest.mark.parametrize(("rows", "cols"), [(4, 2), (12, 9), (1, 2), (2, 2)])
def test_orthogonal_has_orthonormal_columns_or_rows_times_scale(rows: int, cols: int) -> None:
    matrix = orthogonal(np.random.default_rng(0), rows, cols, scale=math.sqrt(2))
    assert matrix.shape == (rows, cols)
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    np.testing.assert_allclose(gram, 2 * np.eye(min(rows, cols)), atol=1e-5)


def test_cartpole_projection_is_new_each_episode_orthogonal_scale_sqrt2_and_seeded() -> None:
    env = ProjectedStatelessCartPole(num_trials=2, trial_length=10)
    projections = []
    for seed in (0, None, None):
        env.reset(seed=seed)
        projections.append(env.projection.copy())
        assert env.projection.shape == (4, 2)
        np.testing.assert_allclose(env.projection.T @ env.projection, 2 * np.eye(2), atol=1e-5)
    assert not np.allclose(projections[0], projections[1])
    assert not np.allclose(projections[1], projections[2])
    env.reset(seed=0)
    np.testing.assert_array_equal(env.projection, projections[0])
    # Same seed, same actions: the same episode, observation for observation.
    first = [s[0] for s in _episode(ProjectedStatelessCartPole(2, 10), 1, seed=7)]
    second = [s[0] for s in _episode(ProjectedStatelessCartPole(2, 10), 1, seed=7)]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))


def test_cartpole_observation_is_projection_previous_action_and_flags() -> None:
    env = ProjectedStatelessCartPole(num_trials=2, trial_length=10)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (8,) and obs.dtype == np.float32
    assert list(obs[4:]) == [0, 0, 0, 1]  # no previous action, no trial done, first step
    # The first four entries lie in the projection's column space, not anywhere in R^4.
    p = env.projection
    np.testing.assert_allclose(p @ np.linalg.lstsq(p, obs[:4], rcond=None)[0], obs[:4], atol=1e-6)
    obs, *_ = env.step(1)
    assert list(obs[4:]) == [0, 1, 0, 0]
    obs, *_ = env.step(0)
    assert list(obs[4:]) == [1, 0, 0, 0]


def test_cartpole_trials_end_at_the_trial_length_and_are_flagged_exactly_there() -> None:
    # Alternating actions keep the pole up for more than 5 steps, so every trial runs 5 steps.
    env = ProjectedStatelessCartPole(num_trials=3, trial_length=5)
    obs, _ = env.reset(seed=0)
    flags, terminated_at, trials = [obs[6]], [], []
    for t in range(15):
        obs, reward, terminated, truncated, info = env.step(t % 2)
        assert not truncated and reward == pytest.approx(1 / 5)
        flags.append(obs[6])
        trials.append(info["trial"])
        if terminated:
            terminated_at.append(t)
        assert obs[7] == 0
    assert [i for i, f in enumerate(flags) if f] == [5, 10, 15]
    assert terminated_at == [14]  # only the last trial ends the episode
    assert trials == [0] * 5 + [1] * 5 + [2] * 5
    assert info["trial_returns"] == pytest.approx([1.0, 1.0, 1.0])


def test_cartpole_failure_ends_a_trial_early_and_the_episode_has_exactly_num_trials() -> None:
    env = ProjectedStatelessCartPole(num_trials=4, trial_length=200)
    steps = _episode(env, 0, seed=1)  # always pushing left: the pole falls within ~10 steps
    ends = [i for i, s in enumerate(steps) if "trial_return" in s[4]]
    assert len(ends) == 4 and ends[-1] == len(steps) - 1
    # The observation a trial-ending step returns (the next trial's first) carries the flag.
    assert [i for i, s in enumerate(steps) if s[0][6]] == ends
    assert not any(s[2] or s[3] for s in steps[:-1])  # no episode end at trial boundaries
    returns = steps[-1][4]["trial_returns"]
    assert len(returns) == 4 and all(0 < r < 1 for r in returns)
    rewards = np.array([s[1] for s in steps[1:]])
    bounds = [0, *ends]
    for k in range(4):
        assert rewards[bounds[k] : bounds[k + 1]].sum() == pytest.approx(returns[k])


def test_cartpole_passes_the_gymnasium_checker_and_vectorizes() -> None:
    assert _check(ProjectedStatelessCartPole(num_trials=2, trial_length=20)) == []
    vector = gym.vector.SyncVectorEnv(
        [lambda: ProjectedStatelessCartPole(num_trials=2, trial_length=20)] * 3
    )
    obs, _ = vector.reset(seed=0)
    assert obs.shape == (3, 8)
    obs, *_ = vector.step(np.array([0, 1, 0]))
    assert obs.shape == (3, 8)
    # The project's own batch: one projection per environment.
    batch = EnvBatch(lambda: ProjectedStatelessCartPole(num_trials=2, trial_length=20), 3, seed=0)
    projections = [env.projection for env in batch.envs]
    assert not np.allclose(projections[0], projections[1])


def test_ppo_sees_a_done_only_at_the_episode_end_so_memory_spans_trials() -> None:
    # PPO resets an agent's memory after a ``done``; trial ends must not produce one.
    batch = EnvBatch(lambda: ProjectedStatelessCartPole(num_trials=3, trial_length=4), 2, seed=0)
    dones, finished = [], []
    for t in range(13):
        _, _, done, returns, lengths = batch.step(np.array([t % 2, t % 2]))
        dones.append(done.copy())
        finished += lengths
    assert [t for t, d in enumerate(dones) if d.any()] == [11]
    assert finished == [12, 12]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ProjectedStatelessCartPole(num_trials=2, trial_length=20),
        lambda: DMControlProjectionTask(("reacher_easy", "point_mass_easy"), 2, trial_length=20),
    ],
)
def test_envs_survive_a_checkpoint_mid_episode(make) -> None:
    # PPO pickles its environments into checkpoints; a resumed run must continue identically.
    env = make()
    env.reset(seed=0)
    action = env.action_space.sample() if isinstance(env, DMControlProjectionTask) else 1
    for _ in range(3):
        env.step(action)
    copy = pickle.loads(pickle.dumps(env))
    terminated, trial_ends = False, 0
    while not terminated:
        ours, theirs = env.step(action), copy.step(action)
        np.testing.assert_array_equal(ours[0], theirs[0])
        assert ours[1:4] == theirs[1:4]
        terminated = ours[2]
        trial_ends += "trial_return" in ours[4]
    assert trial_ends == 2  # the copy went through a new trial's reset too


# ----------------------------------------------------------------------------------------------
# DMControl projection task


def test_train_and_heldout_tasks_are_disjoint_and_known() -> None:
    assert not set(TRAIN_TASKS) & set(HELDOUT_TASKS)
    assert len(TRAIN_TASKS) == 6 and len(HELDOUT_TASKS) == 5
    assert set(TRAIN_TASKS) | set(HELDOUT_TASKS) == set(DMC_TASKS)


def test_dmc_training_env_samples_only_training_tasks_with_new_projections() -> None:
    env = DMControlProjectionTask(num_trials=1, trial_length=2)
    tasks, projections = set(), []
    obs, info = env.reset(seed=0)
    for _ in range(40):
        obs, info = env.reset()
        tasks.add(info["task"])
        projections.append(env.obs_projection.copy())
        assert obs.shape == (14,)
        np.testing.assert_allclose(
            env.obs_projection.T @ env.obs_projection,
            np.eye(env.obs_projection.shape[1]),
            atol=1e-5,
        )
    assert tasks <= set(TRAIN_TASKS) and len(tasks) >= 4
    assert not np.allclose(projections[0][:, :2], projections[1][:, :2])
    env.reset(seed=5)
    task, projection = env.task, env.obs_projection.copy()
    env.reset(seed=5)
    assert env.task == task
    np.testing.assert_array_equal(env.obs_projection, projection)


def test_dmc_actions_map_into_the_task_bounds_and_reward_and_done_are_appended() -> None:
    env = DMControlProjectionTask(("reacher_easy",), num_trials=2, trial_length=3)
    obs, info = env.reset(seed=0)
    assert info == {"trial": 0, "task": "reacher_easy"}
    assert env.action_projection.shape == (2, 2)
    assert list(obs[12:]) == [0, 0]
    done_flags = []
    for t in range(6):
        obs, reward, terminated, truncated, info = env.step(np.array([5.0, -5.0], np.float32))
        control = env._env().physics.data.ctrl
        assert np.all(np.abs(control) <= 1.0)
        assert obs[12] == np.float32(reward)
        done_flags.append(obs[13])
        assert terminated == (t == 5) and not truncated
    assert done_flags == [0, 0, 1, 0, 0, 1]
    assert len(info["trial_returns"]) == 2


def test_dmc_env_passes_the_gymnasium_checker() -> None:
    caught = _check(DMControlProjectionTask(("point_mass_easy",), num_trials=2, trial_length=10))
    # Projected physics observations are unbounded; the checker only warns about that.
    assert all("infinity" in message for message in caught)


def test_bad_names_fail_with_the_valid_choices() -> None:
    with pytest.raises(SsmrlError, match="unknown DMControl task 'walker_walk'.*reacher_hard"):
        DMControlProjectionTask(("walker_walk",))
    with pytest.raises(SsmrlError, match="unknown training task 'reacher_hard'.*reacher_easy"):
        meta_rl_dmc.settings_for("smoke", train_tasks=["reacher_hard"])
    with pytest.raises(SsmrlError, match="unknown held-out task 'reacher_easy'.*reacher_hard"):
        meta_rl_dmc.settings_for("smoke", heldout_tasks=["reacher_easy"])
    with pytest.raises(SsmrlError, match="unknown model 'transformer'.*s5_noreset"):
        meta_rl_cartpole.settings_for("smoke", models=["transformer"])
    with pytest.raises(SsmrlError, match="unknown model 'gpt'.*lstm"):
        meta_rl_dmc.settings_for("smoke", models=["gpt"])
    with pytest.raises(SsmrlError, match="eval_trials"):
        meta_rl_cartpole.settings_for("smoke", num_trials=8, eval_trials=4)
    with pytest.raises(SsmrlError, match="positive"):
        ProjectedStatelessCartPole(num_trials=0)


def test_profiles_keep_the_paper_setup_in_full() -> None:
    full = meta_rl_cartpole.settings_for("full")
    assert (full.num_trials, full.trial_length, full.eval_trials, full.seeds) == (16, 200, 32, 4)
    assert full.models == ("s5", "s5_noreset", "gru", "mlp")
    dmc = meta_rl_dmc.settings_for("full")
    assert dmc.train_tasks == TRAIN_TASKS and dmc.heldout_tasks == HELDOUT_TASKS
    assert (dmc.network.s5_layers, dmc.network.hidden, dmc.lstm_hidden) == (10, 256, 512)
    hidden = {s.config.model: s.config.network.hidden for s in meta_rl_dmc.grid(dmc)}
    assert hidden == {"s5": 256, "lstm": 512, "mlp": 256}


# ----------------------------------------------------------------------------------------------
# Smoke runs end to end


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory) -> tuple[list[dict], list[dict]]:
    executor = LocalExecutor(RunStore(tmp_path_factory.mktemp("meta_runs")))
    cartpole = executor.run_all(meta_rl_cartpole.grid(meta_rl_cartpole.settings_for("smoke")))
    dmc = executor.run_all(meta_rl_dmc.grid(meta_rl_dmc.settings_for("smoke")))
    return cartpole, dmc


def test_cartpole_smoke_run_reports_returns_for_32_trials(smoke_results) -> None:
    cartpole, _ = smoke_results
    assert [r["config"]["model"] for r in cartpole] == ["s5", "gru"]
    for result in cartpole:
        json.dumps(result)
        evaluation = result["evaluation"]
        assert evaluation["trials"] == 32
        assert len(evaluation["mean_return_per_trial"]) == 32
        assert all(0 < r <= 1 for r in evaluation["mean_return_per_trial"])
        assert 0 < result["mmer"] <= result["config"]["num_trials"]
    table = report.cartpole_mmer_table(report.cartpole_frame(cartpole))
    assert list(table["trials × steps"].unique()) == ["2 × 8"]
    mmer_claims = [c for c in claims.ran(claims.meta_rl_claims({"meta_rl_cartpole": cartpole}))
                   if c.claim.startswith("Meta-RL 1:") and "final MMER" in c.claim]
    assert mmer_claims and all(str(c.verdict).startswith("not comparable: 2 trials of 8")
                               for c in mmer_claims)
    beyond = report.beyond_horizon_table(cartpole)
    assert list(beyond.columns[2:4]) == ["trials 1–2 ours", "trials 3–32 ours"]


def test_dmc_smoke_run_evaluates_every_training_and_heldout_task(smoke_results) -> None:
    _, dmc = smoke_results
    settings = meta_rl_dmc.settings_for("smoke")
    for result in dmc:
        json.dumps(result)
        splits = {task: e["split"] for task, e in result["evaluation"].items()}
        assert splits == {
            **dict.fromkeys(settings.train_tasks, "train"),
            **dict.fromkeys(settings.heldout_tasks, "held-out"),
        }
        assert all(e["mean_return"] >= 0 for e in result["evaluation"].values())
    frame = report.dmc_frame(dmc)
    assert set(report.dmc_summary_table(frame)["tasks"]) == {"train", "held-out"}
    assert list(report.dmc_task_table(frame)["split"]) == ["train", "train", "held-out"]
