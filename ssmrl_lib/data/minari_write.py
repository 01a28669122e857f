"""Create a Minari dataset, writing its episodes in one pass: about 3x faster than Minari.

Minari's ``HDF5Storage.update_episodes`` costs about 3.6 ms per episode on the 2-core machine
here: it goes through h5py's high-level API, guesses a chunk shape and counts the file's groups
once per episode. D4RL's random recipe holds about 45k episodes, so that alone took almost three
minutes per dataset. :func:`append_episodes` writes the same groups, datasets, dtypes and
attributes through h5py's low-level API, making HDF5's type and property objects once rather
than per array (about 1.0 ms per episode). ``tests/test_minari_write.py``
checks that the file matches the one Minari's own writer makes, and every dataset is read back
with ``minari.load_dataset``. Minari itself still writes the metadata; episodes this fast path
does not cover (reset options, infos, non-array observations) go through Minari's writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage

MAIN_FILE = "main_data.hdf5"  # Minari's HDF5 file inside a dataset's data directory
FIELDS = ("observations", "actions", "rewards", "terminations", "truncations")


def create_dataset(
    dataset_id: str, episodes: Sequence[EpisodeBuffer], **metadata: Any
) -> minari.MinariDataset:
    """``minari.create_dataset_from_buffers(dataset_id, episodes, **metadata)``, faster."""
    dataset = minari.create_dataset_from_buffers(dataset_id=dataset_id, buffer=[], **metadata)
    append_episodes(dataset.storage, episodes)
    return minari.MinariDataset(dataset.storage.data_path)


def append_episodes(storage: MinariStorage, episodes: Sequence[EpisodeBuffer]) -> None:
    """Append ``episodes`` to ``storage`` and update its step and episode counts, as Minari's
    ``storage.update_episodes`` does."""
    if storage.FORMAT != "hdf5" or not all(_is_plain(episode) for episode in episodes):
        storage.update_episodes(episodes)
        return
    first_id = storage.total_episodes
    with h5py.File(Path(storage.data_path) / MAIN_FILE, "a") as file:
        for offset, episode in enumerate(episodes):
            episode_id = first_id + offset
            if episode.id is not None and episode.id != episode_id:
                raise ValueError(
                    f"episode ids must be sequential: got {episode.id}, expected {episode_id}"
                )
            _write_episode(file.id, episode_id, episode)
    storage.update_metadata({
        "total_steps": storage.total_steps + sum(len(e.rewards) for e in episodes),
        "total_episodes": first_id + len(episodes),
        "dataset_size": storage.get_size(),
    })


def _is_plain(episode: EpisodeBuffer) -> bool:
    """Flat arrays only: what Minari stores as five datasets and three attributes."""
    return (
        episode.options is None
        and not episode.infos
        and all(isinstance(getattr(episode, field), np.ndarray) for field in FIELDS)
    )


def _write_episode(file_id: h5py.h5f.FileID, episode_id: int, episode: EpisodeBuffer) -> None:
    group = h5py.h5g.create(file_id, f"episode_{episode_id}".encode())
    _write_int_attribute(group, b"id", episode_id)
    if episode.seed is not None:
        _write_int_attribute(group, b"seed", episode.seed)
    _write_int_attribute(group, b"total_steps", len(episode.rewards))
    for field in FIELDS:
        _write_array(group, field.encode(), np.ascontiguousarray(getattr(episode, field)))


@cache
def _file_type(dtype: np.dtype) -> h5py.h5t.TypeID:
    """HDF5's type for ``dtype``, made once: making it costs as much as writing a small array."""
    return h5py.h5t.py_create(dtype, logical=True)


@cache
def _scalar_space() -> h5py.h5s.SpaceID:
    return h5py.h5s.create(h5py.h5s.SCALAR)


@cache
def _chunked_layout() -> h5py.h5p.PropDCID:
    """One dataset-creation property list, its chunk shape set per array before each use."""
    layout = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    layout.set_obj_track_times(False)  # no time stamps: the same episodes give the same bytes
    return layout


def _write_int_attribute(group: h5py.h5g.GroupID, name: bytes, value: int) -> None:
    data = np.asarray(value, dtype=np.int64)
    h5py.h5a.create(group, name, _file_type(data.dtype), _scalar_space()).write(data)


def _write_array(group: h5py.h5g.GroupID, name: bytes, data: np.ndarray) -> None:
    """A dataset resizable along its first axis, in a single chunk (as Minari's small ones)."""
    space = h5py.h5s.create_simple(data.shape, (h5py.h5s.UNLIMITED, *data.shape[1:]))
    layout = _chunked_layout()
    layout.set_chunk(tuple(max(1, n) for n in data.shape))
    dataset = h5py.h5d.create(group, name, _file_type(data.dtype), space, dcpl=layout)
    if data.size:
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
