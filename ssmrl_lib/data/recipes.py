"""D4RL's dataset recipes, rebuilt from our own behavior policies as Minari datasets.

The recipes (Fu et al. 2020, D4RL; replication-targets.md §B):

* ``random``: a uniformly random policy;
* ``medium``: a policy trained to about a third of expert performance. We take the evaluated
  checkpoint whose mean normalized score is closest to the mean normalized score of D4RL's own
  ``medium`` dataset (``D4RL_DATASET_SCORES``), provided it lies within ``MEDIUM_TOLERANCE``.
  Like D4RL's early-stopped medium policy, only checkpoints up to the first one above that
  window count, so training on towards expert leaves the medium checkpoint where it is. The
  score is that of the actions the dataset will hold: of sampled actions when the recipe
  samples;
* ``medium-replay``: every transition the replay buffer held when the medium checkpoint was
  taken, cut into episodes (:func:`export_replay` stores them next to the checkpoints);
* ``expert``: the best checkpoint, only if it reached ``EXPERT_LEVEL``;
* ``medium-expert``: ``medium`` and ``expert`` together.

``random``/``medium``/``expert`` run 1M steps (fewer with ``steps``) in ``n_envs`` environments
in lockstep, with one batched policy call per step. A checkpoint acts by ``ACTION_SAMPLING``:
``"sample"`` (a draw from its tanh-Gaussian, as D4RL's and Minari's generation scripts did) or
``"mean"`` (its deterministic action). A policy whose training scored only its mean actions
(those trained before sampled evaluations were recorded, whose checkpoints hold no log-std
head) keeps acting by its mean: see :func:`recipe_action_sampling`. Each dataset is
deterministic: the same
checkpoint, seed, ``n_envs`` and code give the same arrays. It is written under a temporary
store and moved into place only when complete, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer
from tqdm import tqdm

from ssmrl_lib.data.behavior import (
    ActorPolicy,
    file_sha256,
    has_sampled_evaluations,
    load_replay_buffer,
    npz_bytes,
    policies_root,
    read_evaluations,
)
from ssmrl_lib.data.local_store import building, dataset_lock, local_dataset_ids
from ssmrl_lib.data.lockstep import LockstepEnvs
from ssmrl_lib.data.minari_write import create_dataset
from ssmrl_lib.envs import MUJOCO_TASKS, LocomotionTask, normalized_score
from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.paths import shown
from ssmrl_lib.provenance import git_commit
from ssmrl_lib.runs.store import atomic_write_bytes

QUALITIES = ("random", "medium", "medium-replay", "medium-expert", "expert")
DEFAULT_STEPS = 1_000_000

# Mean return of the episodes of D4RL's v2 gym datasets (fu2020d4rl), the datasets ours stand
# in for. Computed from D4RL's own v2 hdf5 files, episodes cut at terminals | timeouts (the
# Decision Transformer's split), unfinished last episode dropped: the "Trajectory rewards: mean"
# line of each log in github.com/YuweiYin/UBC_CPSC_533V, Project/log/get_offline_data/
# <env>-<quality>.log at commit 9f2592a660f980272228f4b79a629caa7e6b6ec4 (a course project; D4RL
# itself publishes no such table, see D4RL issue #124). Normalized with D4RL's reference returns
# (``ssmrl_lib.envs``), they give the commonly quoted dataset scores (hopper/halfcheetah/walker2d
# medium 44.3/40.7/62.1), except halfcheetah medium-expert 64.4 (quoted 64.3) and walker2d
# expert 107.1 (quoted 106.9).
D4RL_DATASET_RETURNS: dict[str, dict[str, float]] = {
    "hopper": {"random": 18.40, "medium": 1422.06, "medium-replay": 467.30,
               "medium-expert": 2089.88, "expert": 3511.36},
    "halfcheetah": {"random": -288.80, "medium": 4770.33, "medium-replay": 3093.29,
                    "medium-expert": 7713.38, "expert": 10656.43},
    "walker2d": {"random": 1.87, "medium": 2852.09, "medium-replay": 682.70,
                 "medium-expert": 3796.57, "expert": 4920.51},
}
# The same as normalized scores, to one decimal as D4RL's tables quote them; "medium" is also the
# level the medium checkpoint is chosen at.
D4RL_DATASET_SCORES: dict[str, dict[str, float]] = {
    env: {quality: round(float(normalized_score(MUJOCO_TASKS[env], mean_return)), 1)
          for quality, mean_return in returns.items()}
    for env, returns in D4RL_DATASET_RETURNS.items()
}
# How a checkpoint picks actions while collecting medium and expert episodes. D4RL sampled
# them from its SAC policy (scripts/generation/mujoco/collect_data.py: ``distr.sample()``), and
# so did Minari (scripts/mujoco/create_dataset.py: SB3's ``predict`` with its default
# ``deterministic=False``); so do we. Policies trained before sampled evaluations were recorded
# act by their mean (their checkpoints cannot sample): ``recipe_action_sampling``.
SAMPLING_MODES = ("mean", "sample")
ACTION_SAMPLING = "sample"
# A medium checkpoint scores within this fraction of the medium target, by the actions it
# collects with: ±10 % of D4RL's dataset score (issue 13.4b) on 50 sampled episodes; the older,
# mean-action policies were chosen within ±25 % on 10 deterministic episodes (SE ≈ 4 points,
# about as wide as ±10 % of 62.1), which keeps their checkpoints.
MEDIUM_TOLERANCE: dict[str, float] = {"sample": 0.10, "mean": 0.25}
EXPERT_LEVEL = 90.0  # normalized score a checkpoint must reach to be called expert
EXPERT_SEED_OFFSET = 1_000_000  # expert episode k is reset with seed + EXPERT_SEED_OFFSET + k


class NotAvailable(SsmrlError):
    """A recipe's policy or replay transitions do not exist yet (train longer, export)."""


def dataset_id(task: LocomotionTask, quality: str) -> str:
    return f"ssmrl/{task.name}/{quality}-v0"


# --------------------------------------------------------------------------------------------
# Choosing checkpoints
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A checkpoint picked for a recipe and the evaluation it was picked on (of its mean or its
    sampled actions: ``action_sampling``)."""

    path: Path
    step: int
    normalized_mean: float
    normalized_std: float
    action_sampling: str = "mean"


def recipe_action_sampling(task: LocomotionTask, policy_dir: Path | None = None) -> str:
    """How the checkpoints of ``task``'s policy act in the recipes: ``ACTION_SAMPLING``, except
    that a policy whose training scored only its mean actions acts by its mean.

    Those are the policies trained before sampled evaluations and log-std heads were recorded
    (the committed ones until they are replaced): their checkpoints cannot sample, and their
    medium checkpoint was chosen on its mean actions. So their datasets stay as built.
    """
    if ACTION_SAMPLING == "mean":
        return "mean"
    policy_dir = Path(policy_dir) if policy_dir is not None else policies_root() / task.name
    return "sample" if has_sampled_evaluations(read_evaluations(policy_dir)) else "mean"


def _score_key(action_sampling: str) -> str:
    return "sampled_normalized_mean" if action_sampling == "sample" else "normalized_mean"


def medium_target(task: LocomotionTask) -> float:
    return D4RL_DATASET_SCORES[task.name]["medium"]


def choose_checkpoint(
    task: LocomotionTask,
    quality: str,
    policy_dir: Path | None = None,
    action_sampling: str | None = None,
) -> Choice:
    """The checkpoint behind ``quality`` (``medium`` or ``expert``) from ``evaluations.csv``.

    Checkpoints are scored on the actions they collect with (``action_sampling``, by default
    :func:`recipe_action_sampling`): the ``sampled_*`` evaluation columns when they sample.
    Raises ``SsmrlError`` when no checkpoint reached that level: a policy is never called
    medium or expert that was not evaluated at that level.
    """
    policy_dir = Path(policy_dir) if policy_dir is not None else policies_root() / task.name
    rows = read_evaluations(policy_dir)
    if not rows:
        raise NotAvailable(
            f"no evaluated behavior policy in {policy_dir}; train one with "
            f"`ssmrl data train-policy --env {task.name} --steps 1000000`"
        )
    mode = action_sampling or recipe_action_sampling(task, policy_dir)
    check_choice("action sampling", mode, SAMPLING_MODES)
    if mode == "sample" and not has_sampled_evaluations(rows):
        raise SsmrlError(
            f"the evaluations in {policy_dir} score only mean actions (trained before sampled "
            "evaluations were recorded), so no checkpoint can be chosen for sampled collection: "
            "retrain it, or collect with action_sampling='mean'"
        )
    key = _score_key(mode)
    best = max(rows, key=lambda row: row[key])
    if quality == "medium":
        target, tolerance = medium_target(task), MEDIUM_TOLERANCE[mode]
        row = min(_until_past_medium(rows, target, key, tolerance),
                  key=lambda row: abs(row[key] - target))
        if abs(row[key] - target) > tolerance * target:
            raise NotAvailable(
                f"no {task.name} checkpoint reached medium level ({target:.0f} "
                f"± {tolerance * target:.0f}, {mode} actions); closest {row[key]:.1f} at "
                f"step {row['step']}, best {best[key]:.1f}: train longer"
            )
    elif quality == "expert":
        row = best
        if row[key] < EXPERT_LEVEL:
            raise NotAvailable(
                f"no {task.name} checkpoint reached expert level ({EXPERT_LEVEL:.0f}, {mode} "
                f"actions); best {row[key]:.1f} at step {row['step']}: train longer"
            )
    else:  # pragma: no cover - internal use only
        raise ValueError(quality)
    std_key = key.replace("normalized_mean", "normalized_std")
    return Choice(policy_dir / row["checkpoint"], row["step"], row[key], row[std_key], mode)


def _until_past_medium(
    rows: list[dict[str, Any]], target: float, key: str, tolerance: float
) -> list[dict[str, Any]]:
    """The evaluations up to the first one whose ``key`` score is above the medium window.

    D4RL stopped its medium policy once it reached medium level, so training on towards expert
    never moves the medium checkpoint (nor the medium-replay transitions cut at it).
    """
    for k, row in enumerate(rows):
        if row[key] > (1 + tolerance) * target:
            return rows[: k + 1]
    return rows


def medium_is_final(task: LocomotionTask, policy_dir: Path | None = None) -> bool:
    """Whether a checkpoint has passed above the medium band, so that training on can no
    longer move the medium checkpoint (nor the replay transitions cut at it)."""
    policy_dir = Path(policy_dir) if policy_dir is not None else policies_root() / task.name
    rows = read_evaluations(policy_dir)
    mode = recipe_action_sampling(task, policy_dir)
    key, limit = _score_key(mode), (1 + MEDIUM_TOLERANCE[mode]) * medium_target(task)
    return any(row[key] > limit for row in rows)


def load_actor(path: Path, task: LocomotionTask) -> ActorPolicy:
    """A checkpoint of ``task``'s policy; one for another environment is an ``SsmrlError``."""
    actor = ActorPolicy.load(path)
    env = gym.make(task.gym_id, disable_env_checker=True)
    obs_dim = env.observation_space.shape[0]
    env.close()
    if actor.meta.get("gym_id") != task.gym_id or actor.obs_dim != obs_dim:
        raise SsmrlError(
            f"policy checkpoint {path} was trained on {actor.meta.get('gym_id')} "
            f"(observations {actor.obs_dim}), not {task.gym_id} ({obs_dim}): wrong environment"
        )
    return actor


# --------------------------------------------------------------------------------------------
# Batched collection
# --------------------------------------------------------------------------------------------

BatchPolicy = Callable[[np.ndarray], np.ndarray]


def random_batch_policy(action_space: gym.spaces.Box, seed: int) -> BatchPolicy:
    """Uniform random actions for a batch, from one seeded generator."""
    rng = np.random.default_rng(seed)
    low, high = action_space.low, action_space.high

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, size=(len(obs), len(low))).astype(action_space.dtype)

    return act


def collect_episodes(
    gym_id: str,
    act: BatchPolicy,
    total_steps: int,
    seed: int,
    n_envs: int = 8,
    progress: bool = False,
) -> list[EpisodeBuffer]:
    """Complete episodes, in order, until they hold at least ``total_steps`` steps.

    ``n_envs`` environments run in lockstep (:class:`LockstepEnvs`) and ``act`` is called once
    per step on all their observations. Episode ``k`` is reset with seed ``seed + k`` and
    episodes are numbered in the order they start, so the result depends only on (policy,
    seed, n_envs). Episodes still running when enough steps are complete are dropped (no
    trailing partial episode).
    """
    envs = LockstepEnvs(gym_id, n_envs)
    longest, slots = envs.max_episode_steps, np.arange(n_envs)
    obs_dim, act_dim = envs.observation_space.shape[0], envs.action_space.shape[0]
    # Each slot's running episode, written in place: no per-step lists to stack at the end.
    observations = np.zeros((n_envs, longest + 1, obs_dim), dtype=envs.observation_space.dtype)
    actions = np.zeros((n_envs, longest, act_dim), dtype=np.float32)
    rewards = np.zeros((n_envs, longest))
    terminations = np.zeros((n_envs, longest), dtype=bool)
    truncations = np.zeros((n_envs, longest), dtype=bool)
    lengths = np.zeros(n_envs, dtype=np.int64)
    episode_of_slot = np.zeros(n_envs, dtype=np.int64)
    next_episode = 0

    def start(slot: int) -> None:
        nonlocal next_episode
        episode_of_slot[slot], lengths[slot] = next_episode, 0
        observations[slot, 0] = envs.reset(slot, seed + next_episode)
        next_episode += 1

    def episode(slot: int) -> EpisodeBuffer:
        n, k = lengths[slot], int(episode_of_slot[slot])
        return EpisodeBuffer(
            id=k,
            seed=seed + k,
            observations=observations[slot, : n + 1].copy(),
            actions=actions[slot, :n].copy(),
            rewards=rewards[slot, :n].copy(),
            terminations=terminations[slot, :n].copy(),
            truncations=truncations[slot, :n].copy(),
        )

    for slot in range(n_envs):
        start(slot)
    finished: dict[int, EpisodeBuffer] = {}
    kept: list[EpisodeBuffer] = []
    kept_steps = 0
    bar = tqdm(total=total_steps, desc=gym_id, unit="step", disable=None if progress else True)
    while kept_steps < total_steps:
        chosen = act(observations[slots, lengths])
        new_obs, reward, terminated, truncated = envs.step(chosen)
        actions[slots, lengths] = chosen
        rewards[slots, lengths] = reward
        terminations[slots, lengths] = terminated
        truncations[slots, lengths] = truncated
        lengths += 1
        observations[slots, lengths] = new_obs
        for slot in np.flatnonzero(terminated | truncated):
            finished[int(episode_of_slot[slot])] = episode(slot)
            start(slot)
        # Keep the contiguous prefix of finished episodes, in start order.
        while len(kept) in finished and kept_steps < total_steps:
            done = finished.pop(len(kept))
            kept.append(done)
            kept_steps += len(done.rewards)
            bar.update(min(len(done.rewards), total_steps - bar.n))
    bar.close()
    envs.close()
    return kept


# --------------------------------------------------------------------------------------------
# The replay buffer up to the medium checkpoint
# --------------------------------------------------------------------------------------------

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
    policy_dir = Path(policy_dir) if policy_dir is not None else policies_root() / task.name
    checkpoint = None
    if until_step is None:
        choice = choose_checkpoint(task, "medium", policy_dir)
        until_step, checkpoint = choice.step, choice.path.name
    buffer = load_replay_buffer(policy_dir)
    if buffer.full and buffer.pos != 0:
        raise SsmrlError(f"the replay buffer in {policy_dir} has wrapped; cannot export it")
    # The buffer holds one transition per step, less one per resume of a training saved
    # before the transition was stored (an earlier version of train_policy did so). Exactly
    # full (a training as long as its buffer), it still holds every transition in order.
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


# --------------------------------------------------------------------------------------------
# Building a dataset
# --------------------------------------------------------------------------------------------


def build_dataset(
    task: LocomotionTask,
    quality: str,
    steps: int | None = None,
    seed: int = 0,
    n_envs: int = 8,
    policy_dir: Path | None = None,
    checkpoint: Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    action_sampling: str | None = None,
) -> minari.MinariDataset:
    """Build ``ssmrl/<env>/<quality>-v0`` in the local Minari store by D4RL's recipe.

    ``checkpoint`` overrides the chosen policy for ``medium``/``expert``: its evaluated level
    is recorded (``chosen_by: given``), and an expert checkpoint must still have reached
    ``EXPERT_LEVEL``. ``steps`` shortens the 1M-step collections for quick builds.
    ``action_sampling`` (``SAMPLING_MODES``) is how medium and expert checkpoints act, by
    default :func:`recipe_action_sampling`; it is recorded with the reason.
    """
    check_choice("quality", quality, QUALITIES)
    if action_sampling is not None:
        check_choice("action sampling", action_sampling, SAMPLING_MODES)
    steps = DEFAULT_STEPS if steps is None else steps
    if steps <= 0:
        raise SsmrlError("steps must be positive")
    if seed < 0 or n_envs < 1:
        raise SsmrlError(
            f"seed must be a non-negative integer and n_envs a positive one, got {seed}, {n_envs}"
        )
    name = dataset_id(task, quality)
    with dataset_lock(name):
        if name in local_dataset_ids() and not overwrite:
            raise SsmrlError(f"dataset {name!r} already exists; pass --overwrite to replace it")
        _build_unlocked(task, quality, name, steps, seed, n_envs, policy_dir, checkpoint,
                        progress, action_sampling)
    return minari.load_dataset(name)


def _build_unlocked(
    task: LocomotionTask,
    quality: str,
    name: str,
    steps: int,
    seed: int,
    n_envs: int,
    policy_dir: Path | None,
    checkpoint: Path | None,
    progress: bool,
    action_sampling: str | None,
) -> None:
    policy_dir = Path(policy_dir) if policy_dir is not None else policies_root() / task.name
    sampling_rule = "given" if action_sampling is not None else _sampling_rule(task, policy_dir)
    action_sampling = action_sampling or recipe_action_sampling(task, policy_dir)
    code_commit = git_commit()  # the code that collects, not whatever is checked out after
    buffers, provenance = _collect(
        task, quality, steps, seed, n_envs, policy_dir, checkpoint, progress, action_sampling
    )
    returns = np.array([float(np.sum(b.rewards)) for b in buffers])
    scores = normalized_score(task, returns)
    provenance |= {
        "recipe": quality,
        "seed": seed,
        "n_envs": n_envs,
        "env_id": task.gym_id,
        "gymnasium": gym.__version__,
        "code_commit": code_commit,
        "normalized_score_mean": round(float(scores.mean()), 3),
        "normalized_score_std": round(float(scores.std()), 3),
        "d4rl_dataset_normalized_score": D4RL_DATASET_SCORES[task.name][quality],
    }
    if quality in ("medium", "expert", "medium-expert"):
        provenance["action_sampling_rule"] = sampling_rule
    with building(name), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`author", category=UserWarning)
        dataset = create_dataset(
            name,
            buffers,
            env=task.gym_id,
            eval_env=task.gym_id,
            algorithm_name=provenance["algorithm_name"],
            code_permalink=f"ssmrl commit {provenance['code_commit']}",
            ref_min_score=task.ref_min_score,
            ref_max_score=task.ref_max_score,
            description=f"D4RL-style {quality} dataset of {task.gym_id} rebuilt by ssmrl: "
            f"{provenance['policy']}",
        )
        dataset.storage.update_metadata({"ssmrl": json.dumps(provenance, sort_keys=True)})
        del dataset


def _sampling_rule(task: LocomotionTask, policy_dir: Path) -> str:
    """Why the recipe's checkpoints act as they do (recorded in the dataset's metadata)."""
    if ACTION_SAMPLING == "mean":
        return "mean: the recipes' setting (recipes.ACTION_SAMPLING)"
    if recipe_action_sampling(task, policy_dir) == "sample":
        return ("sample: as D4RL's and Minari's generation scripts; this policy's evaluations "
                "score sampled actions, and the recipe chooses its checkpoints on them")
    return ("mean: this policy's training scored only its mean actions (trained before "
            "sampled evaluations and log-std heads were recorded)")


def outdated_reason(task: LocomotionTask, quality: str, policy_dir: Path | None = None) -> str:
    """Why the stored ``quality`` dataset no longer follows its recipe ("" if it does).

    It does not when the checkpoint the recipe chooses now (or the replay file) is not the one
    it was built from: the policy trained on into a closer medium or a better expert. A recipe
    that is not available now leaves the stored dataset alone.
    """
    policy_dir = Path(policy_dir) if policy_dir is not None else policies_root() / task.name
    try:
        built = json.loads(minari.load_dataset(dataset_id(task, quality)).storage.metadata["ssmrl"])
    except Exception:
        return ""  # not one of ours, or unreadable: loading it reports that
    parts = ([("medium", built.get("medium", {})), ("expert", built.get("expert", {}))]
             if quality == "medium-expert" else [(quality, built)])
    for part, provenance in parts:
        source = _current_source(task, part, policy_dir)
        if source is None:
            continue
        key = "replay_file_sha256" if part == "medium-replay" else "checkpoint_sha256"
        if provenance.get(key) != file_sha256(source):
            was = provenance.get("checkpoint") or "other replay transitions"
            return f"{part} was built from {was}; the recipe now takes {source.name}"
        sampled, wanted = (provenance.get("action_sampling", "mean"),
                           recipe_action_sampling(task, policy_dir))
        if part in ("medium", "expert") and sampled != wanted:
            return (f"{part} was collected with {sampled} actions; the recipe now takes "
                    f"{wanted} actions")
    return ""


def _current_source(task: LocomotionTask, part: str, policy_dir: Path) -> Path | None:
    """The file ``part`` is built from now (None: random, or not available yet)."""
    if part == "random":
        return None
    if part == "medium-replay":
        path = policy_dir / REPLAY_FILE
        return path if path.is_file() else None
    try:
        return choose_checkpoint(task, part, policy_dir).path
    except NotAvailable:
        return None


def _collect(
    task: LocomotionTask,
    quality: str,
    steps: int,
    seed: int,
    n_envs: int,
    policy_dir: Path,
    checkpoint: Path | None,
    progress: bool = False,
    action_sampling: str = "mean",
) -> tuple[list[EpisodeBuffer], dict[str, Any]]:
    """The episodes of one recipe and a description of where they came from."""
    if quality == "random":
        space = gym.make(task.gym_id, disable_env_checker=True).action_space
        act = random_batch_policy(space, seed)
        buffers = collect_episodes(task.gym_id, act, steps, seed, n_envs, progress)
        return buffers, {"algorithm_name": "random", "policy": "uniform random actions"}
    if quality == "medium-replay":
        if checkpoint is not None:
            raise SsmrlError("medium-replay comes from the stored replay transitions, not "
                             "a checkpoint")
        path = policy_dir / REPLAY_FILE
        buffers, meta = replay_episodes(path, task)
        return buffers, {
            "algorithm_name": "replay buffer",
            "policy": f"replay buffer of the behavior policy up to step {meta['until_step']}",
            "replay_file_sha256": file_sha256(path),
            "replay_until_step": meta["until_step"],
        }
    if quality == "medium-expert":
        for part in ("expert", "medium"):  # fail before collecting a million steps, not after
            choose_checkpoint(task, part, policy_dir, action_sampling)
        medium, medium_info = _stored_or_collected(
            task, "medium", steps, seed, n_envs, policy_dir, progress, action_sampling
        )
        expert, expert_info = _stored_or_collected(
            task, "expert", steps, seed, n_envs, policy_dir, progress, action_sampling
        )
        for k, episode in enumerate(expert):
            expert[k] = EpisodeBuffer(**{**episode.__dict__, "id": len(medium) + k})
        return medium + expert, {
            "algorithm_name": f"{medium_info['algorithm_name']} + {expert_info['algorithm_name']}",
            "policy": f"medium ({medium_info['policy']}) and expert ({expert_info['policy']})",
            "medium": medium_info,
            "expert": expert_info,
        }
    # medium or expert: one checkpoint
    if checkpoint is not None:
        path, chosen_by = Path(checkpoint), "given"
    else:
        path = choose_checkpoint(task, quality, policy_dir, action_sampling).path
        chosen_by = "evaluation"
    actor = load_actor(path, task)
    evaluation = actor.meta.get("evaluation", {})
    # The score of the actions collected, where the checkpoint records it.
    score_key = _score_key(action_sampling)
    score_key = score_key if score_key in evaluation else "normalized_mean"
    score = evaluation.get(score_key, float("nan"))
    if quality == "expert" and not score >= EXPERT_LEVEL:
        raise NotAvailable(
            f"checkpoint {path} was evaluated at {score} ({score_key}), below the expert level "
            f"({EXPERT_LEVEL:.0f}); it is not an expert"
        )
    first_seed = _first_episode_seed(quality, seed)
    act = actor if action_sampling == "mean" else actor.sampler(np.random.default_rng(first_seed))
    buffers = collect_episodes(task.gym_id, act, steps, first_seed, n_envs, progress)
    return buffers, {
        "algorithm_name": f"{actor.meta.get('algorithm', '?')} (stable-baselines3)",
        "policy": f"{actor.meta.get('algorithm')} checkpoint {path.name}, step "
        f"{actor.meta.get('step')}, evaluated at normalized score {score:.1f} "
        f"({'sampled' if score_key.startswith('sampled') else 'mean'} actions)",
        "checkpoint": path.name,
        "checkpoint_sha256": file_sha256(path),
        "checkpoint_step": actor.meta.get("step"),
        "checkpoint_normalized_score": score,
        "checkpoint_score_actions": "sample" if score_key.startswith("sampled") else "mean",
        "checkpoint_deterministic_score": evaluation.get("normalized_mean"),
        "chosen_by": chosen_by,
        "first_episode_seed": first_seed,
        "action_sampling": action_sampling,
    }


def _first_episode_seed(quality: str, seed: int) -> int:
    """Expert episodes start from other initial states than medium's (medium-expert holds both)."""
    return seed + EXPERT_SEED_OFFSET if quality == "expert" else seed


def _stored_or_collected(
    task: LocomotionTask,
    part: str,
    steps: int,
    seed: int,
    n_envs: int,
    policy_dir: Path,
    progress: bool,
    action_sampling: str,
) -> tuple[list[EpisodeBuffer], dict[str, Any]]:
    """A half of ``medium-expert``: the stored ``part`` dataset where it holds exactly what
    collecting would give (D4RL's medium-expert is its medium and expert datasets together),
    otherwise collected now. Either way the episodes are the same."""
    stored = _stored_part(task, part, steps, seed, n_envs, policy_dir, action_sampling)
    if stored is not None:
        return stored
    return _collect(task, part, steps, seed, n_envs, policy_dir, None, progress, action_sampling)


_PART_KEYS = ("algorithm_name", "policy", "checkpoint", "checkpoint_sha256", "checkpoint_step",
              "checkpoint_normalized_score", "checkpoint_score_actions",
              "checkpoint_deterministic_score", "chosen_by", "first_episode_seed",
              "action_sampling")


def _stored_part(
    task: LocomotionTask, part: str, steps: int, seed: int, n_envs: int, policy_dir: Path,
    action_sampling: str,
) -> tuple[list[EpisodeBuffer], dict[str, Any]] | None:
    name = dataset_id(task, part)
    if name not in local_dataset_ids():
        return None
    first_seed = _first_episode_seed(part, seed)
    try:
        dataset = minari.load_dataset(name)
        provenance = json.loads(dataset.storage.metadata["ssmrl"])
        same_policy_and_seeds = (
            provenance.get("checkpoint_sha256")
            == file_sha256(choose_checkpoint(task, part, policy_dir, action_sampling).path)
            and provenance.get("seed") == seed
            and provenance.get("n_envs") == n_envs
            # medium datasets built before this key existed started at ``seed`` too
            and provenance.get("first_episode_seed", seed) == first_seed
            # and datasets built before sampling existed took the mean action
            and provenance.get("action_sampling", "mean") == action_sampling
        )
        if not same_policy_and_seeds:
            return None
        episodes = list(dataset.iterate_episodes())
        seeds = [m.get("seed") for m in dataset.storage.get_episode_metadata(
            range(len(episodes)))]
    except Exception:  # a damaged or foreign dataset is simply not reused
        return None
    total, last = sum(len(e.rewards) for e in episodes), len(episodes[-1].rewards)
    if not total - last < steps <= total:  # collection stops at the first episode past steps
        return None
    buffers = [
        EpisodeBuffer(id=e.id, seed=episode_seed, observations=e.observations,
                      actions=e.actions, rewards=e.rewards, terminations=e.terminations,
                      truncations=e.truncations)
        for e, episode_seed in zip(episodes, seeds, strict=True)
    ]
    return buffers, {key: provenance.get(key) for key in _PART_KEYS} | {
        "first_episode_seed": first_seed, "action_sampling": action_sampling, "taken_from": name}
