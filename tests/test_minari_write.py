"""The fast episode writer makes the same Minari dataset as Minari's own writer."""

from __future__ import annotations

import warnings

import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from ssmrl_lib.data.minari_write import MAIN_FILE, append_episodes, create_dataset


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    warnings.filterwarnings("ignore", category=UserWarning, module="minari")


def make_episodes(count: int, first_id: int = 0, seed: int = 0) -> list[EpisodeBuffer]:
    """Hopper-shaped episodes of varied length; the last one ends by truncation."""
    rng = np.random.default_rng(seed)
    episodes = []
    for k in range(count):
        steps = int(rng.integers(1, 30))
        ended_by_time = k == count - 1
        episodes.append(EpisodeBuffer(
            id=first_id + k,
            seed=100 + first_id + k,
            observations=rng.normal(size=(steps + 1, 11)),
            actions=rng.uniform(-1, 1, size=(steps, 3)).astype(np.float32),
            rewards=rng.normal(size=steps),
            terminations=np.arange(steps) == steps - 1 if not ended_by_time else np.zeros(
                steps, dtype=bool),
            truncations=np.arange(steps) == steps - 1 if ended_by_time else np.zeros(
                steps, dtype=bool),
        ))
    return episodes


SETTINGS = dict(env="Hopper-v5", algorithm_name="random", ref_min_score=-20.3,
                ref_max_score=3234.3)


def file_contents(dataset: minari.MinariDataset) -> dict:
    """Every group's attributes and every dataset's dtype, shape, maxshape and values."""
    contents = {}
    with h5py.File(dataset.storage.data_path / MAIN_FILE, "r") as file:
        for name, group in file.items():
            contents[name] = {"attrs": {k: v.item() for k, v in group.attrs.items()}}
            for field, data in group.items():
                if isinstance(data, h5py.Group):  # infos
                    contents[name][field] = ("group", sorted(data), None, None)
                else:
                    contents[name][field] = (data.dtype, data.shape, data.maxshape, data[()])
    return contents


def assert_same_contents(ours: dict, minaris: dict) -> None:
    assert ours.keys() == minaris.keys()
    for name in minaris:
        assert ours[name].keys() == minaris[name].keys(), name
        assert ours[name]["attrs"] == minaris[name]["attrs"], name
        for field in minaris[name].keys() - {"attrs"}:
            *layout, values = ours[name][field]
            *expected_layout, expected = minaris[name][field]
            assert layout == expected_layout, (name, field)
            np.testing.assert_array_equal(values, expected)


def test_same_file_and_metadata_as_minaris_writer():
    episodes = make_episodes(40)
    ours = create_dataset("test/hopper/ours-v0", episodes, **SETTINGS)
    minaris = minari.create_dataset_from_buffers(
        dataset_id="test/hopper/minari-v0", buffer=episodes, **SETTINGS
    )
    assert_same_contents(file_contents(ours), file_contents(minaris))
    ours_meta, minari_meta = dict(ours.storage.metadata), dict(minaris.storage.metadata)
    assert ours_meta.pop("dataset_id") == "test/hopper/ours-v0"
    minari_meta.pop("dataset_id")
    assert ours_meta == minari_meta
    assert (ours.total_episodes, ours.total_steps) == (40, sum(len(e.rewards) for e in episodes))

    loaded = minari.load_dataset("test/hopper/ours-v0")
    for episode, original in zip(loaded.iterate_episodes(), episodes, strict=True):
        assert episode.id == original.id
        for field in ("observations", "actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(episode, field), getattr(original, field))
    assert [m["seed"] for m in loaded.storage.get_episode_metadata(range(3))] == [100, 101, 102]


def test_appending_continues_the_ids_like_minari():
    ours = create_dataset("test/hopper/ours-v0", make_episodes(5), **SETTINGS)
    append_episodes(ours.storage, make_episodes(3, first_id=5, seed=1))
    minaris = minari.create_dataset_from_buffers(
        dataset_id="test/hopper/minari-v0", buffer=make_episodes(5), **SETTINGS
    )
    minaris.storage.update_episodes(make_episodes(3, first_id=5, seed=1))
    assert_same_contents(file_contents(ours), file_contents(minaris))
    assert minari.load_dataset("test/hopper/ours-v0").total_episodes == 8


def test_ids_must_follow_on():
    dataset = create_dataset("test/hopper/ours-v0", make_episodes(2), **SETTINGS)
    with pytest.raises(ValueError, match="got 7, expected 2"):
        append_episodes(dataset.storage, make_episodes(1, first_id=7))


def test_episodes_with_infos_go_through_minaris_writer():
    episodes = make_episodes(3)
    episodes[1] = EpisodeBuffer(**{**episodes[1].__dict__,
                                   "infos": {"x_position": np.zeros(len(episodes[1].rewards))}})
    ours = create_dataset("test/hopper/ours-v0", episodes, **SETTINGS)
    minaris = minari.create_dataset_from_buffers(
        dataset_id="test/hopper/minari-v0", buffer=episodes, **SETTINGS
    )
    assert list(file_contents(ours)["episode_1"]) == list(file_contents(minaris)["episode_1"])
    loaded = list(minari.load_dataset("test/hopper/ours-v0").iterate_episodes())
    np.testing.assert_array_equal(loaded[1].infos["x_position"], np.zeros(len(loaded[1].rewards)))
