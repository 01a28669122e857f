"""D4RL recipes as Minari datasets: format, determinism, checkpoint choice, bad input."""

from __future__ import annotations

import json
import os
import shutil
import threading

import minari
import numpy as np
import pytest

from ssmrl_lib import cli
from ssmrl_lib.data import checkpoint_choice, rebuild, recipes
from ssmrl_lib.data.actor import load_actor
from ssmrl_lib.data.behavior import train_policy
from ssmrl_lib.data.checkpoint_choice import (
    D4RL_DATASET_SCORES,
    NotAvailable,
    choose_checkpoint,
    medium_is_final,
)
from ssmrl_lib.data.files import file_sha256
from ssmrl_lib.data.local_store import dataset_lock, local_dataset_ids
from ssmrl_lib.data.policy_dir import EVAL_COLUMNS
from ssmrl_lib.data.portable import ACTOR_ARITHMETIC
from ssmrl_lib.data.rebuild import rebuild_datasets
from ssmrl_lib.data.recipes import RECIPES, build_dataset, recipe_dataset_id
from ssmrl_lib.data.replay import REPLAY_FILE, export_replay
from ssmrl_lib.envs import get_task
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.paths import environment, shown
from ssmrl_lib.report.datasets import dataset_source

HOPPER = get_task("hopper")


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    """A Minari store of this test's own (the shared one would hold other tests' datasets)."""
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path


@pytest.fixture(scope="module")
def hopper_policy(tmp_path_factory):
    """A Hopper SAC policy trained for 200 steps with tiny networks, its replay exported."""
    policy_dir = tmp_path_factory.mktemp("policies") / "hopper"
    train_policy(
        HOPPER, 200, policy_dir, eval_every=100, eval_episodes=1, learning_starts=50,
        buffer_size=1000, extra={"policy_kwargs": {"net_arch": [8, 8]}, "batch_size": 16},
        log=lambda _line: None,
    )
    export_replay(HOPPER, policy_dir, until_step=200)
    return policy_dir


def episodes(dataset_id):
    return list(minari.load_dataset(dataset_id).iterate_episodes())


def arrays(dataset_id):
    return [
        (e.observations, e.actions, e.rewards, e.terminations, e.truncations)
        for e in episodes(dataset_id)
    ]


def ssmrl_metadata(dataset_id):
    return json.loads(minari.load_dataset(dataset_id).storage.metadata["ssmrl"])


def test_random_recipe_is_a_minari_dataset_with_d4rl_reference_scores(store):
    dataset = build_dataset(HOPPER, "random", steps=300, n_envs=4)
    assert (store / "ssmrl" / "hopper" / "namespace_metadata.json").is_file()
    assert "ssmrl/hopper/random-v0" in minari.list_local_datasets()
    loaded = minari.load_dataset("ssmrl/hopper/random-v0")
    assert loaded.total_steps == dataset.total_steps >= 300
    assert loaded.storage.metadata["ref_min_score"] == pytest.approx(HOPPER.ref_min_score)
    assert loaded.storage.metadata["ref_max_score"] == pytest.approx(HOPPER.ref_max_score)
    for episode in loaded.iterate_episodes():  # complete episodes, end flags apart
        assert episode.terminations[-1] or episode.truncations[-1]
        assert not (episode.terminations[:-1] | episode.truncations[:-1]).any()
        assert len(episode.observations) == len(episode.rewards) + 1
    meta = ssmrl_metadata("ssmrl/hopper/random-v0")
    assert meta["env_id"] == "Hopper-v5" and meta["seed"] == 0 and meta["code_commit"]
    assert meta["d4rl_dataset_normalized_score"] == D4RL_DATASET_SCORES["hopper"]["random"]


def test_same_seed_gives_the_same_dataset_and_n_envs_does_not_drop_steps(store):
    build_dataset(HOPPER, "random", steps=250, seed=3, n_envs=3)
    path = store / "ssmrl" / "hopper" / "random-v0" / "data"
    first_bytes = (path / "main_data.hdf5").read_bytes()
    first = arrays("ssmrl/hopper/random-v0")
    build_dataset(HOPPER, "random", steps=250, seed=3, n_envs=3, overwrite=True)
    second = arrays("ssmrl/hopper/random-v0")
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert (path / "main_data.hdf5").read_bytes() == first_bytes
    build_dataset(HOPPER, "random", steps=250, seed=4, n_envs=3, overwrite=True)
    assert not np.array_equal(arrays("ssmrl/hopper/random-v0")[0][1], first[0][1])


def test_medium_from_a_checkpoint_records_its_hash_and_score(hopper_policy):
    checkpoint = hopper_policy / "checkpoints" / "step_00000200.npz"
    build_dataset(HOPPER, "medium", steps=200, n_envs=2, checkpoint=checkpoint)
    meta = ssmrl_metadata("ssmrl/hopper/medium-v0")
    assert meta["checkpoint_sha256"] == file_sha256(checkpoint)
    assert meta["checkpoint_step"] == 200 and meta["chosen_by"] == "given"
    assert np.isfinite(meta["checkpoint_normalized_score"])
    assert sum(len(e.rewards) for e in episodes("ssmrl/hopper/medium-v0")) >= 200
    source = dataset_source("ssmrl/hopper/medium-v0")
    assert "step_00000200.npz" in source and meta["checkpoint_sha256"][:12] in source
    with pytest.raises(SsmrlError, match="it is not an expert"):
        build_dataset(HOPPER, "expert", steps=50, n_envs=2, checkpoint=checkpoint)


def test_sampled_collection_is_seeded_recorded_and_refused_without_a_log_std(
    hopper_policy, tmp_path, store
):
    checkpoint = hopper_policy / "checkpoints" / "step_00000200.npz"
    settings = dict(steps=120, n_envs=2, checkpoint=checkpoint, overwrite=True)
    # named, not left to the committed policies' evaluations (which decide the default)
    build_dataset(HOPPER, "medium", action_sampling="mean", **settings)
    mean = arrays("ssmrl/hopper/medium-v0")
    build_dataset(HOPPER, "medium", action_sampling="sample", **settings)
    sampled = arrays("ssmrl/hopper/medium-v0")
    assert ssmrl_metadata("ssmrl/hopper/medium-v0")["action_sampling"] == "sample"
    assert not np.allclose(sampled[0][1][0], mean[0][1][0])  # same first state, new action
    build_dataset(HOPPER, "medium", action_sampling="sample", **settings)
    assert_same_arrays(arrays("ssmrl/hopper/medium-v0"), sampled)

    with np.load(checkpoint) as data:  # a checkpoint exported before log-stds were
        old = {key: data[key] for key in data.files if "log_std" not in key}
    older = tmp_path / "older.npz"
    np.savez(older, **old)
    with pytest.raises(SsmrlError, match="holds no log-std head"):
        build_dataset(HOPPER, "medium", action_sampling="sample",
                      **(settings | {"checkpoint": older}))
    with pytest.raises(SsmrlError, match="unknown action sampling"):
        build_dataset(HOPPER, "medium", action_sampling="mode", **settings)


def test_the_recipe_samples_exactly_when_the_policy_was_evaluated_sampling(
    hopper_policy, tmp_path
):
    policy_dir = labelled_policies(hopper_policy, tmp_path)  # evaluated on mean actions only
    build_dataset(HOPPER, "medium", steps=60, n_envs=2, policy_dir=policy_dir)
    meta = ssmrl_metadata("ssmrl/hopper/medium-v0")
    assert meta["action_sampling"] == "mean" and meta["checkpoint_score_actions"] == "mean"
    assert meta["action_sampling_rule"].startswith("mean: this policy's training scored only")
    assert recipes.outdated_reason(HOPPER, "medium", policy_dir) == ""

    # The same policy, now with sampled scores (a retrained one): its mean dataset is outdated.
    write_evaluations(policy_dir, [44.0, 95.0], sampled=[43.0, 92.0])
    assert recipes.outdated_reason(HOPPER, "medium", policy_dir) == (
        "medium was collected with mean actions; the recipe now takes sample actions")
    build_dataset(HOPPER, "medium", steps=60, n_envs=2, policy_dir=policy_dir, overwrite=True)
    meta = ssmrl_metadata("ssmrl/hopper/medium-v0")
    assert meta["action_sampling"] == "sample" and meta["action_sampling_rule"].startswith(
        "sample: as D4RL's and Minari's")
    assert meta["checkpoint"] == "step_00010000.npz"
    assert recipes.outdated_reason(HOPPER, "medium", policy_dir) == ""

    # A dataset whose actions were computed by the CPU-dependent arithmetic of before.
    assert meta.pop("actor_arithmetic") == ACTOR_ARITHMETIC
    assert RECIPES["medium"].outdated_reason(meta, HOPPER, policy_dir) == (
        "medium's actions were computed by numpy-float32 (CPU-dependent) arithmetic; the "
        f"recipe now computes them by {ACTOR_ARITHMETIC}, the same on every CPU")


def test_medium_replay_holds_the_exported_transitions(hopper_policy):
    build_dataset(HOPPER, "medium-replay", policy_dir=hopper_policy)
    stored = np.load(hopper_policy / REPLAY_FILE)
    built = episodes("ssmrl/hopper/medium-replay-v0")
    assert sum(len(e.rewards) for e in built) == len(stored["rewards"])
    np.testing.assert_allclose(np.concatenate([e.actions for e in built]), stored["actions"])
    assert ssmrl_metadata("ssmrl/hopper/medium-replay-v0")["replay_until_step"] == 200


def write_evaluations(policy_dir, scores, sampled=None):
    """Evaluations every 10k steps; ``sampled`` scores fill the sampled columns (else empty,
    as in trainings made before they were recorded)."""
    policy_dir.mkdir(parents=True, exist_ok=True)
    lines = [",".join(EVAL_COLUMNS)]
    for k, score in enumerate(scores, start=1):
        row = dict.fromkeys(EVAL_COLUMNS, "1.0") | {
            "step": str(k * 10000), "normalized_mean": str(score),
            "checkpoint": f"checkpoints/step_{k * 10000:08d}.npz",
        }
        row |= {column: "" for column in EVAL_COLUMNS if column.startswith("sampled_")}
        if sampled is not None:
            row |= {"sampled_normalized_mean": str(sampled[k - 1]),
                    "sampled_normalized_std": "1.0"}
        lines.append(",".join(row[column] for column in EVAL_COLUMNS))
    (policy_dir / "evaluations.csv").write_text("\n".join(lines) + "\n")


def test_medium_is_closest_to_d4rl_medium_before_passing_it_and_expert_must_be_reached(tmp_path):
    write_evaluations(tmp_path, [5.0, 30.0, 47.0, 70.0, 95.0])
    medium = choose_checkpoint(HOPPER, "medium", tmp_path)
    assert medium.step == 30000 and medium.normalized_mean == 47.0  # D4RL hopper-medium: 44.3
    assert choose_checkpoint(HOPPER, "expert", tmp_path).step == 50000
    # Training on past medium level (55.4 for Hopper) never moves the medium checkpoint.
    write_evaluations(tmp_path, [5.0, 47.0, 80.0, 44.5])
    assert choose_checkpoint(HOPPER, "medium", tmp_path).step == 20000
    write_evaluations(tmp_path, [5.0, 12.0, 80.0])
    with pytest.raises(SsmrlError, match="no hopper checkpoint reached medium level"):
        choose_checkpoint(HOPPER, "medium", tmp_path)
    with pytest.raises(SsmrlError, match="no hopper checkpoint reached expert level.*80.0"):
        choose_checkpoint(HOPPER, "expert", tmp_path)


def test_a_policy_with_sampled_evaluations_is_chosen_on_them_within_10_percent(
    tmp_path, monkeypatch
):
    # Deterministic scores run ahead of the sampled ones, as a SAC policy's do.
    write_evaluations(tmp_path, [5.0, 45.0, 60.0, 80.0, 99.0],
                      sampled=[4.0, 30.0, 42.0, 60.0, 92.0])
    assert checkpoint_choice.recipe_action_sampling(HOPPER, tmp_path) == "sample"
    medium = choose_checkpoint(HOPPER, "medium", tmp_path)  # D4RL hopper-medium: 44.3
    assert (medium.step, medium.normalized_mean, medium.action_sampling) == (30000, 42.0, "sample")
    assert choose_checkpoint(HOPPER, "expert", tmp_path).step == 50000
    assert medium_is_final(HOPPER, tmp_path)  # 60.0 is above the band: medium stays
    write_evaluations(tmp_path, [5.0, 45.0, 60.0], sampled=[4.0, 30.0, 42.0])
    assert not medium_is_final(HOPPER, tmp_path)  # a later checkpoint may come closer
    # Within ±25 % but not ±10 % of 44.3 (39.9 ... 48.7): not medium for a sampled policy.
    write_evaluations(tmp_path, [5.0, 45.0, 80.0], sampled=[4.0, 38.0, 60.0])
    with pytest.raises(SsmrlError, match=r"medium level \(44 ± 4, sample actions\); closest 38.0"):
        choose_checkpoint(HOPPER, "medium", tmp_path)
    # Collecting by the mean chooses on the deterministic scores, with the older band.
    assert choose_checkpoint(HOPPER, "medium", tmp_path, action_sampling="mean").step == 20000
    monkeypatch.setattr(checkpoint_choice, "ACTION_SAMPLING", "mean")
    assert checkpoint_choice.recipe_action_sampling(HOPPER, tmp_path) == "mean"
    assert choose_checkpoint(HOPPER, "medium", tmp_path).step == 20000


def test_a_policy_evaluated_on_its_mean_actions_only_keeps_collecting_by_its_mean(tmp_path):
    """The committed policies, trained before sampled scores were recorded: their datasets stay."""
    write_evaluations(tmp_path, [5.0, 30.0, 47.0, 70.0, 95.0])
    assert checkpoint_choice.ACTION_SAMPLING == "sample"
    assert checkpoint_choice.recipe_action_sampling(HOPPER, tmp_path) == "mean"
    medium = choose_checkpoint(HOPPER, "medium", tmp_path)
    assert (medium.step, medium.action_sampling) == (30000, "mean")
    with pytest.raises(SsmrlError, match="score only mean actions"):
        choose_checkpoint(HOPPER, "medium", tmp_path, action_sampling="sample")


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) <= 1, err
    return code, err


def assert_nothing_written(store, name):
    assert not (store / name).exists()
    assert not list(store.glob(".building-*")) if store.exists() else True


def test_wrong_environment_checkpoint_is_one_line_and_writes_nothing(
    capsys, hopper_policy, store
):
    checkpoint = hopper_policy / "checkpoints" / "step_00000100.npz"
    code, err = run_cli(capsys, "data", "build", "--env", "walker2d", "--quality", "medium",
                        "--steps", "50", "--checkpoint", str(checkpoint))
    assert code == 2 and "wrong environment" in err and "Hopper-v5" in err
    assert_nothing_written(store, "ssmrl/walker2d/medium-v0")


def test_missing_and_truncated_checkpoints(capsys, hopper_policy, tmp_path, store):
    code, err = run_cli(capsys, "data", "build", "--env", "hopper", "--quality", "medium",
                        "--steps", "50", "--checkpoint", str(tmp_path / "none.npz"))
    assert code == 2 and "does not exist" in err
    truncated = tmp_path / "truncated.npz"
    data = (hopper_policy / "checkpoints" / "step_00000100.npz").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    code, err = run_cli(capsys, "data", "build", "--env", "hopper", "--quality", "medium",
                        "--steps", "50", "--checkpoint", str(truncated))
    assert code == 2 and "corrupt or truncated" in err
    assert_nothing_written(store, "ssmrl/hopper/medium-v0")


def test_missing_and_truncated_replay(capsys, hopper_policy, tmp_path, store):
    copy = tmp_path / "policies" / "hopper"
    shutil.copytree(hopper_policy, copy, ignore=shutil.ignore_patterns("state"))
    replay = copy / REPLAY_FILE
    data = replay.read_bytes()
    replay.write_bytes(data[: len(data) // 3])
    args = ["data", "build", "--env", "hopper", "--quality", "medium-replay",
            "--policies-dir", str(tmp_path / "policies")]
    code, err = run_cli(capsys, *args)
    assert code == 2 and "corrupt or truncated" in err
    replay.unlink()
    code, err = run_cli(capsys, *args)
    assert code == 2 and "do not exist" in err and "export-replay" in err
    assert_nothing_written(store, "ssmrl/hopper/medium-replay-v0")


def test_unknown_quality_env_and_unreached_levels(capsys, tmp_path):
    code, err = run_cli(capsys, "data", "build", "--env", "hopper", "--quality", "good")
    assert code == 2 and "unknown quality 'good'; valid choices: random, medium" in err
    code, err = run_cli(capsys, "data", "build", "--env", "ant", "--quality", "random")
    assert code == 2 and "unknown environment 'ant'" in err
    write_evaluations(tmp_path / "hopper", [3.0])
    code, err = run_cli(capsys, "data", "build", "--env", "hopper", "--quality", "expert",
                        "--policies-dir", str(tmp_path))
    assert code == 2 and "no hopper checkpoint reached expert level" in err
    code, err = run_cli(capsys, "data", "build", "--env", "hopper", "--quality", "expert",
                        "--policies-dir", str(tmp_path), "--if-available")
    assert code == 0


def test_a_failure_while_writing_leaves_nothing(monkeypatch, store):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(recipes.minari, "create_dataset_from_buffers", broken)
    with pytest.raises(OSError, match="disk full"):
        build_dataset(HOPPER, "random", steps=20, n_envs=2)
    assert_nothing_written(store, "ssmrl/hopper/random-v0")


def test_existing_dataset_is_kept_without_overwrite(capsys):
    build_dataset(HOPPER, "random", steps=20, n_envs=2)
    with pytest.raises(SsmrlError, match="already exists"):
        build_dataset(HOPPER, "random", steps=20, n_envs=2)
    code, _ = run_cli(capsys, "data", "build", "--env", "hopper", "--quality", "random",
                      "--steps", "20", "--if-missing")
    assert code == 0


def test_data_make_accepts_an_actor_checkpoint(hopper_policy):
    from ssmrl_lib.data.make import make_dataset

    checkpoint = hopper_policy / "checkpoints" / "step_00000200.npz"
    dataset = make_dataset(HOPPER, "test/hopper/actor-v0", 60, seed=0, policy=str(checkpoint))
    assert dataset.total_steps >= 60
    with pytest.raises(SsmrlError, match="wrong environment"):
        make_dataset(get_task("walker2d"), "test/walker2d/actor-v0", 60, seed=0,
                     policy=str(checkpoint))


def test_parallel_rebuild_equals_serial_and_keeps_or_skips_with_reasons(
    hopper_policy, store, monkeypatch, tmp_path
):
    """Two worker processes give the same datasets as one; unreached recipes say why."""
    wanted = ["random", "medium", "medium-replay"]
    settings = {"steps": 200, "n_envs": 3, "policies_dir": hopper_policy.parent}
    outcomes = rebuild_datasets(["hopper"], wanted, jobs=2, log=lambda _: None, **settings)
    assert [o.status for o in outcomes] == ["built", "skipped", "built"]
    assert "no hopper checkpoint reached medium level" in outcomes[1].detail
    parallel = {o.name: arrays(o.name) for o in outcomes if o.status == "built"}
    again = rebuild_datasets(["hopper"], wanted, jobs=2, log=lambda _: None, **settings)
    assert [o.status for o in again] == ["kept", "skipped", "kept"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "serial"))
    rebuild_datasets(["hopper"], wanted, jobs=1, log=lambda _: None, **settings)
    for name, episodes_in_parallel in parallel.items():
        for a, b in zip(episodes_in_parallel, arrays(name), strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
    with pytest.raises(NotAvailable, match="medium level"):
        rebuild_datasets(["hopper"], ["medium"], jobs=1, if_available=False, **settings)


def test_medium_expert_without_an_expert_fails_before_collecting(monkeypatch, tmp_path, store):
    write_evaluations(tmp_path / "hopper", [44.0])  # medium reached, expert not

    def never(*args, **kwargs):
        raise AssertionError("collected steps for a recipe that cannot be built")

    monkeypatch.setattr(recipes, "collect_episodes", never)
    with pytest.raises(NotAvailable, match="expert level"):
        build_dataset(HOPPER, "medium-expert", steps=100, policy_dir=tmp_path / "hopper")
    assert_nothing_written(store, "ssmrl/hopper/medium-expert-v0")


def test_rebuild_workers_get_one_blas_thread_and_the_environment_is_restored(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    with environment(rebuild._ONE_THREAD):
        assert os.environ["OPENBLAS_NUM_THREADS"] == os.environ["OMP_NUM_THREADS"] == "1"
    assert "OPENBLAS_NUM_THREADS" not in os.environ and os.environ["OMP_NUM_THREADS"] == "4"


def test_medium_expert_starts_once_its_halves_are_built_not_after_every_other_job(monkeypatch):
    """Two workers: hopper medium-expert must wait for hopper medium and expert, and then runs
    on the first free worker while the slow walker2d job is still going."""
    from concurrent.futures import ThreadPoolExecutor

    events, gate = [], threading.Event()

    def fake_run(job, store, progress=False):
        events.append(("start", job.name))
        if job.env == "walker2d":
            gate.wait(timeout=10)  # finishes only once medium-expert has started
        if job.quality == "medium-expert":
            gate.set()
        events.append(("end", job.name))
        return rebuild.BuildOutcome(job.name, "built")

    monkeypatch.setattr(rebuild, "_run", fake_run)
    todo = [rebuild.BuildJob("walker2d", "random"), rebuild.BuildJob("hopper", "medium-expert"),
            rebuild.BuildJob("hopper", "medium"), rebuild.BuildJob("hopper", "expert")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        names = [o.name for o in rebuild._scheduled(pool, todo, "unused", workers=2)]
    assert sorted(names) == sorted(job.name for job in todo)
    start = events.index(("start", "ssmrl/hopper/medium-expert-v0"))
    assert ("end", "ssmrl/hopper/medium-v0") in events[:start]
    assert ("end", "ssmrl/hopper/expert-v0") in events[:start]
    assert ("end", "ssmrl/walker2d/random-v0") not in events[:start]


def labelled_policies(hopper_policy, tmp_path):
    """The tiny test policy twice: evaluated at medium level (44) and, relabelled, expert (95)."""
    policy_dir = tmp_path / "labelled" / "hopper"
    (policy_dir / "checkpoints").mkdir(parents=True)
    source = hopper_policy / "checkpoints" / "step_00000200.npz"
    shutil.copy(source, policy_dir / "checkpoints" / "step_00010000.npz")
    with np.load(source) as data:
        relabelled = {key: data[key] for key in data.files}
    meta = json.loads(str(relabelled["meta"])) | {"evaluation": {"normalized_mean": 95.0}}
    relabelled["meta"] = np.asarray(json.dumps(meta))
    np.savez(policy_dir / "checkpoints" / "step_00020000.npz", **relabelled)
    write_evaluations(policy_dir, [44.0, 95.0])
    return policy_dir


def assert_same_arrays(got, expected):
    assert len(got) == len(expected)
    for episode, expected_episode in zip(got, expected, strict=True):
        for array, expected_array in zip(episode, expected_episode, strict=True):
            np.testing.assert_array_equal(array, expected_array)


def test_medium_expert_is_the_medium_and_expert_datasets_together(
    hopper_policy, tmp_path, store, monkeypatch
):
    settings = dict(steps=60, n_envs=2, policy_dir=labelled_policies(hopper_policy, tmp_path))
    build_dataset(HOPPER, "medium", **settings)
    build_dataset(HOPPER, "expert", **settings)
    medium, expert = arrays("ssmrl/hopper/medium-v0"), arrays("ssmrl/hopper/expert-v0")
    assert ssmrl_metadata("ssmrl/hopper/expert-v0")["first_episode_seed"] == 1_000_000

    collect = recipes.collect_episodes
    calls = []
    monkeypatch.setattr(recipes, "collect_episodes", lambda *a, **k: calls.append(a) or collect(
        *a, **k))
    build_dataset(HOPPER, "medium-expert", **settings)
    assert calls == []  # both halves taken from the stored datasets
    assert_same_arrays(arrays("ssmrl/hopper/medium-expert-v0"), medium + expert)
    meta = ssmrl_metadata("ssmrl/hopper/medium-expert-v0")
    assert meta["medium"]["taken_from"] == "ssmrl/hopper/medium-v0"
    assert meta["expert"]["checkpoint"] == "step_00020000.npz"

    # In an empty store both halves are collected, and come out the same.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    build_dataset(HOPPER, "medium-expert", **settings)
    assert len(calls) == 2
    assert_same_arrays(arrays("ssmrl/hopper/medium-expert-v0"), medium + expert)


def test_make_data_rebuilds_a_dataset_whose_recipe_now_takes_another_checkpoint(
    hopper_policy, tmp_path
):
    policy_dir = labelled_policies(hopper_policy, tmp_path)
    settings = dict(steps=60, n_envs=2, policies_dir=policy_dir.parent)
    logged = []
    first = rebuild_datasets(["hopper"], ["medium"], jobs=1, log=logged.append, **settings)
    assert first[0].status == "built"
    assert recipes.outdated_reason(HOPPER, "medium", policy_dir) == ""
    assert rebuild_datasets(["hopper"], ["medium"], jobs=1, log=logged.append,
                            **settings)[0].status == "kept"

    write_evaluations(policy_dir, [38.0, 44.0])  # trained on: step 20000 is closer to medium
    reason = recipes.outdated_reason(HOPPER, "medium", policy_dir)
    assert reason == "medium was built from step_00010000.npz; the recipe now takes " \
        "step_00020000.npz"
    again = rebuild_datasets(["hopper"], ["medium"], jobs=1, log=logged.append, **settings)
    assert again[0].status == "built" and f"outdated ssmrl/hopper/medium-v0: {reason}" in logged
    assert ssmrl_metadata("ssmrl/hopper/medium-v0")["checkpoint"] == "step_00020000.npz"


def swap_in_retrained(policy_dir, hopper_policy, scores):
    """A retrained policy replaces ``policy_dir``'s: other actors under the same file names,
    evaluated at ``scores``."""
    for name in ("step_00010000.npz", "step_00020000.npz"):
        shutil.copy(hopper_policy / "checkpoints" / "step_00000100.npz",
                    policy_dir / "checkpoints" / name)
    write_evaluations(policy_dir, scores)


def test_make_data_removes_a_dataset_whose_checkpoint_was_swapped_out_and_cannot_be_rebuilt(
    hopper_policy, tmp_path, store
):
    policy_dir = labelled_policies(hopper_policy, tmp_path)
    wanted = ["medium", "medium-expert", "expert"]
    settings = dict(steps=60, n_envs=2, policies_dir=policy_dir.parent)
    logged = []
    built = rebuild_datasets(["hopper"], wanted, jobs=1, log=logged.append, **settings)
    assert [o.status for o in built] == ["built", "built", "built"]
    expert_hash = ssmrl_metadata("ssmrl/hopper/expert-v0")["checkpoint_sha256"]

    # Expert level not reached any more, but its checkpoint is still there: nothing changes.
    write_evaluations(policy_dir, [44.0, 80.0])
    assert recipes.outdated_reason(HOPPER, "expert", policy_dir) == ""
    kept = rebuild_datasets(["hopper"], wanted, jobs=1, log=logged.append, **settings)
    assert [o.status for o in kept] == ["kept", "kept", "kept"]
    assert recipes.outdated_reason(HOPPER, "expert", tmp_path / "no-policy") == ""

    # A retrained policy under the same file names, short of expert level: medium is rebuilt
    # from its checkpoint, and the datasets only the old policy could make leave the store.
    swap_in_retrained(policy_dir, hopper_policy, [44.0, 80.0])
    gone = (f"expert was built from step_00020000.npz (sha256 {expert_hash[:12]}), which "
            f"{shown(policy_dir)} no longer holds")
    assert recipes.outdated_reason(HOPPER, "expert", policy_dir) == gone
    assert recipes.outdated_reason(HOPPER, "medium", policy_dir) == (
        "medium was built from step_00010000.npz; the recipe now takes step_00010000.npz "
        "(another file of that name)")
    logged.clear()
    after = rebuild_datasets(["hopper"], wanted, jobs=1, log=logged.append, **settings)
    assert [o.status for o in after] == ["built", "removed", "removed"]
    unreached = "no hopper checkpoint reached expert level (90, mean actions); best 80.0"
    assert any(line.startswith(f"removed ssmrl/hopper/expert-v0: {gone}, and {unreached}")
               for line in logged), logged
    assert local_dataset_ids() == ["ssmrl/hopper/medium-v0"]
    assert not list(store.glob(".building-*"))
    medium = ssmrl_metadata("ssmrl/hopper/medium-v0")["checkpoint_sha256"]
    assert medium == file_sha256(policy_dir / "checkpoints" / "step_00010000.npz")
    again = rebuild_datasets(["hopper"], wanted, jobs=1, log=logged.append, **settings)
    assert [o.status for o in again] == ["kept", "skipped", "skipped"]


def _rebuild_while_another_builds(store, monkeypatch, quality, policy_dir=None):
    """The outcome of a rebuild of ``quality`` planned while its dataset is missing or outdated,
    which then waits for the lock that another build holds while it writes the dataset."""
    waiting = threading.Event()

    def announced(dataset_id):
        waiting.set()
        return dataset_lock(dataset_id)

    monkeypatch.setattr(rebuild, "dataset_lock", announced)
    settings = dict(steps=40, n_envs=2)
    policies = {"policies_dir": policy_dir.parent} if policy_dir else {}
    name = recipe_dataset_id(HOPPER, quality)
    outcomes = []
    with dataset_lock(name):
        thread = threading.Thread(target=lambda: outcomes.extend(rebuild_datasets(
            ["hopper"], [quality], jobs=1, log=lambda _: None, **settings, **policies)))
        thread.start()
        assert waiting.wait(60) and not outcomes
        build_dataset(HOPPER, quality, policy_dir=policy_dir, overwrite=True, locked=True,
                      **settings)
        written = (store / name / "data" / "main_data.hdf5").stat()
    thread.join(120)
    assert not thread.is_alive() and len(outcomes) == 1
    now = (store / name / "data" / "main_data.hdf5").stat()
    assert (now.st_ino, now.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # not rebuilt
    return outcomes[0]


def test_a_rebuild_that_waited_for_another_build_of_its_dataset_keeps_what_that_one_wrote(
    hopper_policy, tmp_path, store, monkeypatch
):
    # Missing when planned: kept, not an "already exists" failure.
    outcome = _rebuild_while_another_builds(store, monkeypatch, "random")
    assert outcome.line() == "ssmrl/hopper/random-v0 exists; kept (another build wrote it " \
        "meanwhile)"

    # Outdated when planned (the policy trained on): kept, not rebuilt a second time.
    policy_dir = labelled_policies(hopper_policy, tmp_path)
    build_dataset(HOPPER, "medium", steps=40, n_envs=2, policy_dir=policy_dir)
    write_evaluations(policy_dir, [38.0, 44.0])
    outcome = _rebuild_while_another_builds(store, monkeypatch, "medium", policy_dir)
    assert outcome.status == "kept"
    assert ssmrl_metadata("ssmrl/hopper/medium-v0")["checkpoint"] == "step_00020000.npz"


def test_writing_the_same_replay_or_policy_again_gives_the_same_bytes(hopper_policy):
    before = (hopper_policy / REPLAY_FILE).read_bytes()
    export_replay(HOPPER, hopper_policy, until_step=200)
    assert (hopper_policy / REPLAY_FILE).read_bytes() == before
    checkpoint = hopper_policy / "checkpoints" / "step_00000200.npz"
    assert load_actor(checkpoint, HOPPER).to_bytes() == checkpoint.read_bytes()


def test_recorded_rebuild_benchmark_shows_each_dataset_and_the_verdict(tmp_path):
    from ssmrl_lib.provenance import benchmark_record
    from ssmrl_lib.report.datasets import environment_floor, rebuild_benchmark

    entry = dict(detail="", seconds=500.0, episodes=10, transitions=1_000_000, fingerprint="ab",
                 same_as_main_store=True)
    record = {"jobs": 2, "wall_seconds": 960.0, "target_seconds": 900, "machine":
              benchmark_record(), "datasets": [
                  entry | {"name": "ssmrl/hopper/random-v0", "status": "built"},
                  entry | {"name": "ssmrl/hopper/expert-v0", "status": "skipped", "seconds": 0,
                           "detail": "no hopper checkpoint reached expert level"}]}
    path = tmp_path / "dataset_build.json"
    path.write_text(json.dumps(record))
    frame, sentence = rebuild_benchmark(path)
    assert frame["why skipped"].tolist() == ["", "no hopper checkpoint reached expert level"]
    assert frame["seconds"].tolist()[0] == 500
    assert "All 1 available datasets (1.0M transitions) were rebuilt in **16.0 min**" in sentence
    assert "busy 26% of that time" in sentence  # 500 s of work for 2 workers in 960 s
    assert "over the 15-minute target" in sentence
    assert rebuild_benchmark(tmp_path / "missing.json") is None

    steps = tmp_path / "env_step.json"
    steps.write_text(json.dumps({"rows": [
        {"env": "hopper", "actions": "random", "gymnasium_step_us": 360.0,
         "lockstep_step_us": 300.0, "physics_us": 240.0},
        {"env": "hopper", "actions": "medium policy", "gymnasium_step_us": 1.0,
         "lockstep_step_us": 1.0, "physics_us": 1.0}]}))
    floor = environment_floor(path, steps)  # 1M random steps at 240 µs on 2 workers: 2 min
    assert "alone takes **2.0 min** of it on 2 cores (1.0M environment steps" in floor
    assert "recipes use takes 2.5 min (gymnasium's own `env.step` would take 3.0 min)" in floor
    assert "The other 13.5 min" in floor
    assert environment_floor(path, tmp_path / "missing.json") is None


def test_the_other_kernels_rebuild_says_which_datasets_kept_their_arrays(tmp_path):
    from ssmrl_lib.provenance import benchmark_record
    from ssmrl_lib.report.datasets import portability_check

    kernels = {"OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4"}
    entries = [{"name": "ssmrl/hopper/random-v0", "same_as_main_store": True},
               {"name": "ssmrl/hopper/medium-v0", "same_as_main_store": True},
               {"name": "ssmrl/hopper/expert-v0", "same_as_main_store": None}]  # skipped
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"kernels": kernels, "datasets": entries,
                                "machine": benchmark_record()}))
    sentence = portability_check(path)
    assert "OpenBLAS's Prescott kernel, NumPy's CPU-dispatched targets X86_V3 X86_V4 " \
        "switched off)" in sentence
    assert "all 2 have the same arrays as those in `data/minari`" in sentence
    entries[1]["same_as_main_store"] = False
    path.write_text(json.dumps({"kernels": kernels, "datasets": entries,
                                "machine": benchmark_record()}))
    assert "1 of 2 differ from those in `data/minari`: `ssmrl/hopper/medium-v0`" in \
        portability_check(path)
    assert portability_check(tmp_path / "missing.json") is None


def labelled_with_replay(hopper_policy, tmp_path):
    """``labelled_policies`` with the exported replay too: every recipe is available."""
    policy_dir = labelled_policies(hopper_policy, tmp_path)
    shutil.copy(hopper_policy / REPLAY_FILE, policy_dir / REPLAY_FILE)
    return policy_dir


# What every recipe's dataset records (the Datasets chapter reads these), and what those whose
# episodes come from a checkpoint or the replay file record besides.
COMMON_KEYS = {"recipe", "seed", "n_envs", "env_id", "gymnasium", "code_commit",
               "normalized_score_mean", "normalized_score_std", "d4rl_dataset_normalized_score",
               "algorithm_name", "policy"}
CHECKPOINT_KEYS = {"checkpoint", "checkpoint_sha256", "checkpoint_step",
                   "checkpoint_normalized_score", "checkpoint_score_actions",
                   "checkpoint_deterministic_score", "chosen_by", "first_episode_seed",
                   "action_sampling", "action_sampling_rule", "actor_arithmetic"}
REPLAY_KEYS = {"replay_file_sha256", "replay_until_step"}


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_builds_a_complete_deterministic_dataset_that_follows_it(
    name, hopper_policy, tmp_path, store, monkeypatch
):
    """Registry-driven: each recipe in the table, on a policy that reached every level."""
    recipe = RECIPES[name]
    assert recipe.name == name and recipe.description and recipe.build_cost > 0
    assert all(isinstance(RECIPES[part], recipes.CheckpointRecipe) for part in recipe.parts)
    for env_scores in D4RL_DATASET_SCORES.values():
        assert name in env_scores
    policy_dir = labelled_with_replay(hopper_policy, tmp_path)
    settings = dict(steps=80, n_envs=2, policy_dir=policy_dir)
    build_dataset(HOPPER, name, **settings)
    dataset_id = recipe_dataset_id(HOPPER, name)
    built = arrays(dataset_id)
    assert built and sum(len(rewards) for _, _, rewards, _, _ in built) >= (
        80 if name != "medium-replay" else 1)
    for observations, actions, rewards, terminations, truncations in built:
        assert len(observations) == len(actions) + 1 == len(rewards) + 1
        assert terminations[-1] or truncations[-1]
        assert not (terminations[:-1] | truncations[:-1]).any()

    meta = ssmrl_metadata(dataset_id)
    expected = COMMON_KEYS | {
        recipes.RandomRecipe: set(),
        recipes.CheckpointRecipe: CHECKPOINT_KEYS,
        recipes.ReplayRecipe: REPLAY_KEYS,
        recipes.CombinedRecipe: set(recipe.parts) | {"action_sampling_rule"},
    }[type(recipe)]
    assert set(meta) == expected
    assert meta["recipe"] == name
    for part in recipe.parts:
        assert set(meta[part]) >= CHECKPOINT_KEYS - {"action_sampling_rule"}
    assert recipes.outdated_reason(HOPPER, name, policy_dir) == ""

    # The same request in an empty store gives the same arrays.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "again"))
    build_dataset(HOPPER, name, **settings)
    assert_same_arrays(arrays(dataset_id), built)


def test_the_recipe_table_is_what_data_build_offers_and_data_make_keeps_off(capsys):
    from ssmrl_lib.data.make import check_free_id

    assert list(RECIPES) == ["random", "medium", "medium-replay", "medium-expert", "expert"]
    code, err = run_cli(capsys, "data", "build", "--env", "hopper", "--quality", "nope")
    assert code == 2 and f"valid choices: {', '.join(RECIPES)}" in err
    for name in RECIPES:
        with pytest.raises(SsmrlError, match=f"--quality {name}"):
            check_free_id(recipe_dataset_id(HOPPER, name))
    check_free_id("ssmrl/hopper/other-v0")  # not a recipe's: free
