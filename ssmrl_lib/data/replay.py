"""The replay buffer of a behavior policy's training up to its medium checkpoint: D4RL's
``medium-replay`` recipe. :func:`export_replay` stores the transitions next to the checkpoints
(the training state holding the buffer is git-ignored); :func:`replay_episodes` cuts them into
the dataset's episodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from minari.data_collector import EpisodeBuffer

from ssmrl_lib.data.checkpoint_choice import NotAvailable, choose_checkpoint
from ssmrl_lib.data.files import npz_bytes
from ssmrl_lib.data.policy_dir import load_replay_buffer, task_policy_dir
from ssmrl_lib.envs import LocomotionTask
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.paths import shown
from ssmrl_lib.runs.store import atomic_write_bytes

REPLAY_FILE = "replay_medium.npz"


def export_replay(
    task: LocomotionTask, policy_dir: Path | None = None, until_step: int | None = None
) -> Path:
    """Store the replay buffer's first ``until_step`` transitions (default: up to the medium
    checkpoint), cut at the last complete episode, as ``replay_medium.npz``.

    Arrays: ``observations`` (float32, N × obs), ``actions``, ``rewards``, ``terminations``,
    ``truncations`` (N), ``final_observations`` (one per episode: the observation after its
    last step) and a JSON ``meta``.
    """
    policy_dir = task_policy_dir(task.name, policy_dir)
    checkpoint = None
    if until_step is None:
        choice = choose_checkpoint(task, "medium", policy_dir)
        until_step, checkpoint = choice.step, choice.path.name
    buffer = load_replay_buffer(policy_dir)
    if buffer.full and buffer.pos != 0:
        raise SsmrlError(f"the replay buffer in {policy_dir} has wrapped; cannot export it")
    # The buffer holds one transition per step, or fewer where a training's state was saved
    # before a step's transition was stored (so ``until_step`` caps, not counts). Exactly full
    # (a training as long as its buffer), it still holds every transition in order.
    n = min(until_step, buffer.buffer_size if buffer.full else buffer.pos)
    obs = buffer.observations[:n, 0]
    next_obs = buffer.next_observations[:n, 0]
    dones = buffer.dones[:n, 0] > 0.5
    truncations = (buffer.timeouts[:n, 0] > 0.5) & dones
    terminations = dones & ~truncations
    ends = np.flatnonzero(dones)
    if len(ends) == 0:
        raise SsmrlError(f"the first {n} replay transitions hold no complete episode")
    n = int(ends[-1]) + 1
    # Inside an episode the next observation is the next step's observation; check it.
    inside = ~dones[: n - 1]
    if not np.array_equal(next_obs[: n - 1][inside], obs[1:n][inside]):
        raise SsmrlError("replay buffer transitions are not in episode order")
    meta = {
        "gym_id": task.gym_id,
        "until_step": until_step,
        "transitions": n,
        "episodes": len(ends),
        "checkpoint": checkpoint,
    }
    payload = npz_bytes(
        observations=obs[:n].astype(np.float32),
        actions=buffer.actions[:n, 0].astype(np.float32),
        rewards=buffer.rewards[:n, 0].astype(np.float32),
        terminations=terminations[:n],
        truncations=truncations[:n],
        final_observations=next_obs[ends].astype(np.float32),
        meta=np.asarray(json.dumps(meta, sort_keys=True)),
    )
    path = policy_dir / REPLAY_FILE
    atomic_write_bytes(path, payload)
    return path


def replay_episodes(path: Path, task: LocomotionTask) -> tuple[list[EpisodeBuffer], dict]:
    """The episodes of a ``replay_medium.npz`` and its metadata."""
    if not Path(path).is_file():
        raise NotAvailable(
            f"replay transitions {shown(path)} do not exist; export them with "
            f"`ssmrl data export-replay --env {task.name}`"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as error:
        raise SsmrlError(f"replay transitions {path} are corrupt or truncated ({error})") from error
    if meta.get("gym_id") != task.gym_id:
        raise SsmrlError(
            f"replay transitions {path} come from {meta.get('gym_id')}, not {task.gym_id}: "
            "wrong environment"
        )
    ends = np.flatnonzero(arrays["terminations"] | arrays["truncations"])
    episodes, start = [], 0
    for k, end in enumerate(ends):
        observations = np.concatenate(
            [arrays["observations"][start : end + 1], arrays["final_observations"][k : k + 1]]
        ).astype(np.float64)
        episodes.append(
            EpisodeBuffer(
                id=k,
                seed=None,
                observations=observations,
                actions=arrays["actions"][start : end + 1],
                rewards=arrays["rewards"][start : end + 1].astype(np.float64),
                terminations=arrays["terminations"][start : end + 1],
                truncations=arrays["truncations"][start : end + 1],
            )
        )
        start = end + 1
    return episodes, meta
