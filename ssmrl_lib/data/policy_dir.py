"""A behavior policy's directory: what it holds, and reading and writing its files.

A policy directory (by default ``data/policies/<env>/``) holds

* ``training.json``: the algorithm, its hyperparameters, the seed, package versions;
* ``evaluations.csv``: one row per evaluation (every ``eval_every`` steps): mean and std of
  the return and of the D4RL-normalized score over ``eval_episodes`` deterministic episodes
  (SB3's mean action) and, in the ``sampled_*`` columns, over ``sampled_eval_episodes``
  episodes of the exported checkpoint drawing its actions from its tanh-Gaussian, as D4RL's
  and Minari's datasets were collected; the wall and CPU seconds spent so far (on a shared
  machine only the CPU time means much), and the CPU seconds the evaluations took
  (``eval_cpu_seconds``, cumulative);
* ``checkpoints/step_<N>.npz``: the policy's actor at each evaluation (small, committed; see
  :class:`~ssmrl_lib.data.actor.ActorPolicy`): the candidates for the ``medium`` policy;
* ``state/``: the full training state (SB3 model with optimizers, and the replay buffer's
  filled rows, :class:`SavedReplay`), so that rerunning the same training resumes where it
  stopped; a few tens of MB, so a training that spans machines can carry it along;
* ``replay_medium.npz``: after :func:`~ssmrl_lib.data.replay.export_replay`, every transition
  the replay buffer saw up to the medium checkpoint (the ``medium-replay`` dataset's source).

Every file is written atomically and the state is a consistent pair (model, replay buffer)
named by its step, so a training killed at any point resumes from its last evaluation.
Directories written by every version of the training stay readable: a column or state field
a file lacks reads as NaN.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.paths import REPO_ROOT
from ssmrl_lib.runs.store import atomic_write_bytes, atomic_write_json

EVAL_COLUMNS = (
    "step",
    "mean_return",
    "std_return",
    "normalized_mean",
    "normalized_std",
    "mean_length",
    "sampled_mean_return",
    "sampled_std_return",
    "sampled_normalized_mean",
    "sampled_normalized_std",
    "sampled_mean_length",
    "wall_seconds",
    "cpu_seconds",
    "eval_cpu_seconds",
    "checkpoint",
)
# The summary of one evaluation mode: the deterministic columns, and their "sampled_" twins.
SUMMARY_COLUMNS = ("mean_return", "std_return", "normalized_mean", "normalized_std", "mean_length")
SAMPLED_PREFIX = "sampled_"
CHECKPOINT_DIR = "checkpoints"  # the actor at each evaluation: checkpoints/step_<N>.npz


def policies_root() -> Path:
    """Where behavior policies live: ``$SSMRL_POLICIES_DIR`` or ``data/policies``."""
    return Path(os.environ.get("SSMRL_POLICIES_DIR", REPO_ROOT / "data" / "policies"))


def task_policy_dir(task_name: str, policy_dir: Path | None = None) -> Path:
    """``policy_dir`` if given, else the task's directory under :func:`policies_root`."""
    return Path(policy_dir) if policy_dir is not None else policies_root() / task_name


# --------------------------------------------------------------------------------------------
# Evaluation log
# --------------------------------------------------------------------------------------------


def read_evaluations(policy_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``evaluations.csv`` (numbers as floats/ints, NaN for a column the file
    lacks or leaves empty); empty if there is none."""
    path = Path(policy_dir) / "evaluations.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["step"] = int(row["step"])
        for key in EVAL_COLUMNS[1:-1]:
            row[key] = float(row.get(key) or "nan")
    return rows


def write_evaluations(policy_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``evaluations.csv`` with ``rows`` (a value a row lacks is left empty)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=EVAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in EVAL_COLUMNS})
    atomic_write_bytes(Path(policy_dir) / "evaluations.csv", text.getvalue().encode())


def _csv_value(value: Any) -> Any:
    """NaN (a column a row lacks) is written as an empty field, as it is read back."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else value


def has_sampled_evaluations(rows: list[dict[str, Any]]) -> bool:
    """Whether every evaluation also scored sampled actions (the recipes can then choose
    checkpoints on the actions they collect with)."""
    return bool(rows) and all(
        np.isfinite(row.get(f"{SAMPLED_PREFIX}normalized_mean", np.nan)) for row in rows
    )


# --------------------------------------------------------------------------------------------
# The resumable training state
# --------------------------------------------------------------------------------------------


def _state_paths(policy_dir: Path, step: int) -> tuple[Path, Path]:
    state = policy_dir / "state"
    return state / f"model-{step:08d}.zip", state / f"replay-{step:08d}.npz"


# SB3's ReplayBuffer arrays, each (buffer_size, n_envs, ...); next_observations is stored apart.
_REPLAY_ARRAYS = ("observations", "actions", "rewards", "dones", "timeouts")


@dataclass
class SavedReplay:
    """A replay buffer's filled rows, with SB3's field names and (rows, n_envs, ...) shapes.

    SB3 pickles the whole preallocated buffer (200 MB for Hopper's million rows, whatever is
    filled); this keeps the ``rows`` filled ones, and of ``next_observations`` only those that
    are not the next row's observation (episode ends, and the newest row), so a state is about
    a fifth of the pickle at 200k steps and lossless: :meth:`restore` rebuilds the buffer
    exactly.
    """

    observations: np.ndarray
    next_observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    timeouts: np.ndarray
    pos: int
    full: bool
    buffer_size: int

    @classmethod
    def of(cls, buffer: Any) -> SavedReplay:
        rows = buffer.buffer_size if buffer.full else buffer.pos
        return cls(**{name: getattr(buffer, name)[:rows] for name in _REPLAY_ARRAYS},
                    next_observations=buffer.next_observations[:rows], pos=int(buffer.pos),
                    full=bool(buffer.full), buffer_size=int(buffer.buffer_size))

    def to_bytes(self) -> bytes:
        # Row i's next observation is row i + 1's observation within an episode; a full
        # buffer's newest row (pos - 1) is followed by its oldest, so it is always kept.
        differs = np.ones(len(self.observations), dtype=bool)
        differs[:-1] = (self.next_observations[:-1] != self.observations[1:]).reshape(
            len(self.observations) - 1, -1).any(axis=1)
        if self.full:
            differs[self.pos - 1] = True
        kept = np.flatnonzero(differs)
        arrays = {name: getattr(self, name) for name in _REPLAY_ARRAYS}
        text = io.BytesIO()
        np.savez_compressed(
            text, **arrays, kept_rows=kept, kept_next_observations=self.next_observations[kept],
            pos=self.pos, full=self.full, buffer_size=self.buffer_size)
        return text.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SavedReplay:
        with np.load(io.BytesIO(data)) as saved:
            observations = saved["observations"]
            next_observations = np.empty_like(observations)
            next_observations[:-1] = observations[1:]
            next_observations[saved["kept_rows"]] = saved["kept_next_observations"]
            return cls(**{name: saved[name] for name in _REPLAY_ARRAYS},
                       next_observations=next_observations, pos=int(saved["pos"]),
                       full=bool(saved["full"]), buffer_size=int(saved["buffer_size"]))

    def restore(self, buffer: Any) -> Any:
        """Fill SB3's ``buffer`` (allocated by the loaded model) with these rows."""
        if buffer.buffer_size != self.buffer_size:
            raise SsmrlError(f"saved replay holds a buffer of {self.buffer_size} rows, "
                             f"the model's has {buffer.buffer_size}")
        rows = len(self.observations)
        for name in (*_REPLAY_ARRAYS, "next_observations"):
            getattr(buffer, name)[:rows] = getattr(self, name)
        buffer.pos, buffer.full = self.pos, self.full
        return buffer


def save_state(model: Any, policy_dir: Path, wall_seconds: float, cpu_seconds: float) -> None:
    """Save an SB3 model and its replay buffer under names carrying the step, then point to
    them.

    ``state/state.json`` is written last, so it always names a complete pair; older pairs are
    deleted afterwards.
    """
    step = int(model.num_timesteps)
    model_path, replay_path = _state_paths(policy_dir, step)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_model = model_path.with_name(f".{model_path.name}.tmp")
    model.save(tmp_model)
    # SB3 appends ".zip" when the name lacks it.
    written = tmp_model if tmp_model.exists() else Path(f"{tmp_model}.zip")
    os.replace(written, model_path)
    atomic_write_bytes(replay_path, SavedReplay.of(model.replay_buffer).to_bytes())
    atomic_write_json(
        policy_dir / "state" / "state.json",
        {"step": step, "model": model_path.name, "replay": replay_path.name,
         "wall_seconds": wall_seconds, "cpu_seconds": cpu_seconds},
    )
    for old in policy_dir.joinpath("state").glob("*-*.*"):
        if old.name not in (model_path.name, replay_path.name):
            old.unlink(missing_ok=True)


def read_state(policy_dir: Path) -> dict[str, Any] | None:
    """The saved training state's description (``step``, file names, seconds), or None."""
    path = Path(policy_dir) / "state" / "state.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def load_replay_buffer(policy_dir: Path) -> Any:
    """The replay buffer of the saved training state: a :class:`SavedReplay`, or SB3's own
    buffer object for a state saved as a pickle (``replay-<step>.pkl``, before SavedReplay)."""
    state = read_state(policy_dir)
    if state is None:
        raise SsmrlError(f"{policy_dir} holds no training state (state/state.json)")
    path = Path(policy_dir) / "state" / state["replay"]
    try:
        if path.suffix == ".pkl":
            with open(path, "rb") as handle:
                return pickle.load(handle)
        return SavedReplay.from_bytes(path.read_bytes())
    except Exception as error:
        raise SsmrlError(f"replay buffer {path} is missing or corrupt ({error})") from error
