"""Loading and making Minari datasets, and the errors bad datasets give."""

import time

import minari
import numpy as np
import pytest

from ssmrl_lib import cli
from ssmrl_lib.data import load_trajectories
from ssmrl_lib.data.make import make_dataset
from ssmrl_lib.envs import get_task
from ssmrl_lib.errors import SsmrlError


def test_made_dataset_loads_with_minari_and_by_id(tiny_hopper_id):
    dataset = minari.load_dataset(tiny_hopper_id)
    trajectories = load_trajectories(tiny_hopper_id)
    assert dataset.total_steps == trajectories.lengths.sum() >= 300
    assert trajectories.gym_id == "Hopper-v5"
    assert trajectories.ref_min_score == pytest.approx(-20.272305)
    assert trajectories.ref_max_score == pytest.approx(3234.3)
    assert trajectories.state_dim == 11 and trajectories.act_dim == 3


def test_only_complete_episodes_are_stored_with_terminations_and_truncations_apart(tiny_hopper_id):
    trajectories = load_trajectories(tiny_hopper_id)
    for terminated, truncated in zip(
        trajectories.terminations, trajectories.truncations, strict=True
    ):
        assert terminated[-1] or truncated[-1]
        assert not (terminated[:-1] | truncated[:-1]).any()
        assert not (terminated & truncated).any()
    assert any(t[-1] for t in trajectories.truncations)  # 40-step time limit was hit somewhere


def test_loading_by_path_equals_loading_by_id(tiny_hopper_id, isolated_store):
    by_id = load_trajectories(tiny_hopper_id)
    by_path = load_trajectories(str(isolated_store / "test" / "hopper" / "tiny-random-v0"))
    assert by_id.fingerprint() == by_path.fingerprint()


def test_making_is_deterministic_for_a_seed():
    task = get_task("walker2d")
    make_dataset(task, "test/walker2d/a-v0", total_steps=100, seed=7)
    make_dataset(task, "test/walker2d/b-v0", total_steps=100, seed=7)
    first = load_trajectories("test/walker2d/a-v0")
    second = load_trajectories("test/walker2d/b-v0")
    assert first.fingerprint() == second.fingerprint()
    np.testing.assert_array_equal(first.lengths, second.lengths)


def test_unknown_dataset_id_names_the_local_choices(tiny_hopper_id):
    with pytest.raises(SsmrlError, match="unknown dataset 'nope/nothing-v0'.*tiny-random-v0"):
        load_trajectories("nope/nothing-v0")


@pytest.mark.parametrize("dataset_id, how", [
    ("ssmrl/hopper/expert-v0",
     "build it with `make data` (or `ssmrl data build --env hopper --quality expert`)"),
    ("ssmrl/walker2d/mine-v0",
     "make it with `ssmrl data make --env walker2d --id ssmrl/walker2d/mine-v0`"),
    ("ssmrl-smoke/hopper/random-v0", "it is the smoke profile's stand-in"),
])
def test_a_missing_dataset_of_our_own_namespaces_fails_at_once_without_a_hub(
    dataset_id, how, monkeypatch, capsys
):
    def hub(*args, **kwargs):
        raise AssertionError(f"looked up {args} on a hub, which retries for half a minute")

    monkeypatch.setattr(minari, "load_dataset", hub)
    started = time.monotonic()
    with pytest.raises(SsmrlError) as error:
        load_trajectories(dataset_id, download=True)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "\n" not in message and how in message
    assert message.startswith(f"dataset {dataset_id!r} is not in the local Minari store")
    assert cli.main(["data", "info", dataset_id]) == 2
    assert capsys.readouterr().err.strip() == f"ssmrl: error: {message}"


def test_other_namespaces_are_still_looked_up_remotely(monkeypatch):
    asked = []

    def offline_hub(dataset_id, download=False):
        asked.append((dataset_id, download))
        raise ConnectionError("no network")

    monkeypatch.setattr(minari, "load_dataset", offline_hub)
    with pytest.raises(SsmrlError, match="not local and not downloadable .*no network"):
        load_trajectories("mujoco/hopper/medium-v0", download=True)
    assert asked == [("mujoco/hopper/medium-v0", True)]


def test_corrupt_dataset_file_is_reported(tmp_path, tiny_hopper_id, isolated_store):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(isolated_store / "test" / "hopper" / "tiny-random-v0", copy)
    data_file = copy / "data" / "main_data.hdf5"
    data_file.write_bytes(data_file.read_bytes()[:2000])
    with pytest.raises(SsmrlError, match="corrupt or truncated"):
        load_trajectories(str(copy))


def test_directory_without_metadata_is_not_a_dataset(tmp_path):
    with pytest.raises(SsmrlError, match="not a Minari dataset"):
        load_trajectories(str(tmp_path))


def test_existing_dataset_is_not_overwritten_silently(tiny_hopper_id):
    with pytest.raises(SsmrlError, match="already exists"):
        make_dataset(get_task("hopper"), tiny_hopper_id, total_steps=10, seed=0)


def test_sb3_checkpoint_for_another_environment_is_rejected(tmp_path):
    import gymnasium as gym
    from stable_baselines3 import SAC

    policy_path = tmp_path / "cheetah_sac.zip"
    SAC("MlpPolicy", gym.make("HalfCheetah-v5"), device="cpu").save(policy_path)
    with pytest.raises(SsmrlError, match="wrong environment"):
        make_dataset(get_task("hopper"), "test/hopper/sb3-v0", 10, seed=0, policy=str(policy_path))
    assert "test/hopper/sb3-v0" not in minari.list_local_datasets()


def test_sb3_checkpoint_policy_makes_a_dataset(tmp_path):
    import gymnasium as gym
    from stable_baselines3 import SAC

    policy_path = tmp_path / "hopper_sac.zip"
    SAC("MlpPolicy", gym.make("Hopper-v5"), device="cpu", seed=0).save(policy_path)
    make_dataset(get_task("hopper"), "test/hopper/sb3-v0", 50, seed=0, policy=str(policy_path))
    assert load_trajectories("test/hopper/sb3-v0").lengths.sum() >= 50


def test_dataset_source_of_a_data_make_dataset(tiny_hopper_id):
    from ssmrl_lib.report.datasets import dataset_source

    source = dataset_source(tiny_hopper_id)
    assert source.startswith(f"`{tiny_hopper_id}`") and "policy random" in source
