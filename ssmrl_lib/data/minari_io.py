"""Load an offline dataset in Minari format: by id from the local store, by download, or a path.

Everything downstream works on ``Trajectories``, plain numpy arrays per episode, so the
window sampler and the tests need neither Minari nor HDF5.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import minari
import numpy as np

from ssmrl_lib.data.local_store import check_dataset_id, local_dataset_ids, store_root
from ssmrl_lib.data.make import own_dataset_hint
from ssmrl_lib.errors import SsmrlError

OFFLINE_ENV_VAR = "SSMRL_OFFLINE"


@dataclass
class Trajectories:
    """Episodes of one dataset; ``states[i]`` excludes the final observation (length T_i)."""

    dataset_id: str
    gym_id: str
    states: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[np.ndarray]
    terminations: list[np.ndarray]
    truncations: list[np.ndarray]
    ref_min_score: float | None = None
    ref_max_score: float | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(r) for r in self.rewards], dtype=np.int64)

    @property
    def returns(self) -> np.ndarray:
        return np.array([float(r.sum()) for r in self.rewards])

    @property
    def state_dim(self) -> int:
        return self.states[0].shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions[0].shape[1]

    def fingerprint(self) -> str:
        """Content hash, so a run cached on one dataset is never reused for another."""
        digest = hashlib.sha256()
        for array_list in (self.states, self.actions, self.rewards):
            for array in array_list:
                digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]


def load_trajectories(source: str, download: bool | None = None) -> Trajectories:
    """Load ``source``: a Minari dataset id (local store, else remote) or a dataset directory.

    ``download`` defaults to true unless the ``SSMRL_OFFLINE`` environment variable is set.
    """
    path = Path(source).expanduser()
    if path.exists():
        dataset = _open_path(path)
    else:
        dataset = _open_id(source, download=_downloads_allowed(download))
    return _to_trajectories(dataset, source)


def _downloads_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(OFFLINE_ENV_VAR, "") in ("", "0")


def _open_path(path: Path) -> minari.MinariDataset:
    data_dir = path / "data" if (path / "data").is_dir() else path
    if not (data_dir / "metadata.json").exists():
        raise SsmrlError(f"{path} is not a Minari dataset: no metadata.json in {data_dir}")
    try:
        return minari.MinariDataset(data_dir)
    except Exception as error:  # h5py/json raise many types for damaged files
        raise SsmrlError(f"dataset at {data_dir} is corrupt or truncated ({error})") from error


def _open_id(dataset_id: str, download: bool) -> minari.MinariDataset:
    check_dataset_id(dataset_id)
    local = local_dataset_ids()
    if dataset_id in local:
        try:
            return minari.load_dataset(dataset_id)
        except Exception as error:
            raise SsmrlError(
                f"dataset {dataset_id!r} in the local Minari store is corrupt or truncated "
                f"({error}); delete it and rebuild it"
            ) from error
    own = own_dataset_hint(dataset_id)
    if own is not None:  # a hub lookup would only fail, after retrying for half a minute
        raise SsmrlError(
            f"dataset {dataset_id!r} is not in the local Minari store ({store_root()}), and no "
            f"hub hosts the {dataset_id.split('/')[0]}/ namespace: {own}"
        )
    hint = (
        f"local datasets: {', '.join(local) or 'none'} "
        f"(store: {store_root()}); build the D4RL recipes with `make data` "
        "(`ssmrl data build --env ENV --quality QUALITY`), make one with `ssmrl data make`, "
        "or download a hosted one (unset SSMRL_OFFLINE)"
    )
    if not download:
        raise SsmrlError(f"unknown dataset {dataset_id!r} (not local, downloads off); {hint}")
    try:
        return minari.load_dataset(dataset_id, download=True)
    except Exception as error:
        raise SsmrlError(
            f"unknown dataset {dataset_id!r}: not local and not downloadable ({error}); {hint}"
        ) from error


def _to_trajectories(dataset: minari.MinariDataset, source: str) -> Trajectories:
    try:
        episodes = list(dataset.iterate_episodes())
    except Exception as error:
        raise SsmrlError(f"dataset {source!r} is corrupt or truncated ({error})") from error
    if not episodes:
        raise SsmrlError(f"dataset {source!r} holds no episodes")
    metadata = dataset.storage.metadata
    spec = dataset.spec.env_spec
    return Trajectories(
        dataset_id=metadata.get("dataset_id", source),
        gym_id=spec.id if spec is not None else "",
        states=[np.asarray(e.observations[:-1], dtype=np.float32) for e in episodes],
        actions=[np.asarray(e.actions, dtype=np.float32) for e in episodes],
        rewards=[np.asarray(e.rewards, dtype=np.float32) for e in episodes],
        terminations=[np.asarray(e.terminations, dtype=bool) for e in episodes],
        truncations=[np.asarray(e.truncations, dtype=bool) for e in episodes],
        ref_min_score=metadata.get("ref_min_score"),
        ref_max_score=metadata.get("ref_max_score"),
    )
