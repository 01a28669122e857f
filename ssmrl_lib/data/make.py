"""Make a local Minari dataset by running a policy in a gymnasium environment.

This is what lets everything run offline: tests and the smoke profile make tiny datasets on the
fly, and the datasets chapter builds its D4RL-style datasets the same way from trained
behavior policies. Only complete episodes are stored (a trailing partial episode is dropped,
as in Minari's own MuJoCo datasets); terminations and truncations stay apart.

A made dataset never carries another dataset's name: the smoke profile's stand-ins live in their
own namespace (:func:`smoke_dataset_id`), and ``ssmrl data make`` refuses the ids of the D4RL
recipes (``ssmrl data build`` makes those), of the stand-ins, and of Minari's hosted namespaces
(:func:`check_free_id`). Datasets are written through :func:`local_store.building`, so they
appear whole or not at all.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer
from tqdm.auto import tqdm

from ssmrl_lib.data.local_store import (
    building,
    check_dataset_id,
    dataset_lock,
    local_dataset_ids,
)
from ssmrl_lib.data.minari_write import create_dataset
from ssmrl_lib.envs import LocomotionTask, get_task
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.provenance import git_commit

Policy = Callable[[np.ndarray], np.ndarray]

SMOKE_NAMESPACE = "ssmrl-smoke"
# Farama hosts Minari's remote datasets under these namespaces (minari.farama.org/datasets).
HOSTED_NAMESPACES = ("D4RL", "mujoco", "minigrid", "atari")


def smoke_dataset_id(env: str) -> str:
    """The smoke profile's stand-in for ``env``: a random-policy dataset in its own namespace."""
    return f"{SMOKE_NAMESPACE}/{env}/random-v0"


def check_free_id(dataset_id: str) -> None:
    """Raise ``SsmrlError`` unless ``ssmrl data make`` may write ``dataset_id``: a valid id
    that names no dataset made elsewhere for another purpose."""
    from ssmrl_lib.data.recipes import QUALITIES

    check_dataset_id(dataset_id)
    parts = dataset_id.split("/")
    namespace = parts[0] if len(parts) > 1 else ""
    if namespace == SMOKE_NAMESPACE:
        raise SsmrlError(
            f"dataset id {dataset_id!r} is in the {SMOKE_NAMESPACE}/ namespace, kept for the "
            "smoke profile's stand-ins; choose another namespace, e.g. mine/hopper/random-v0"
        )
    if namespace in HOSTED_NAMESPACES:
        raise SsmrlError(
            f"dataset id {dataset_id!r} is in Minari's hosted namespace {namespace}/; "
            f"download it (`minari download {dataset_id}`) or choose another namespace"
        )
    if namespace == "ssmrl" and len(parts) == 3 and parts[2].rsplit("-v", 1)[0] in QUALITIES:
        raise SsmrlError(
            f"dataset id {dataset_id!r} is a D4RL recipe's; build it with `ssmrl data build "
            f"--env {parts[1]} --quality {parts[2].rsplit('-v', 1)[0]}` (or `make data`)"
        )


def ensure_smoke_dataset(env: str, steps: int) -> str:
    """The smoke stand-in of ``env``, made now (random policy, ``steps`` steps) if missing;
    a process that asks while another makes it waits and uses that one."""
    dataset_id = smoke_dataset_id(env)
    with dataset_lock(dataset_id):
        if dataset_id not in local_dataset_ids():
            make_dataset(get_task(env), dataset_id, steps, seed=0, locked=True)
    return dataset_id


def random_policy(action_space: gym.spaces.Box, seed: int) -> Policy:
    """Uniform random actions from a seeded copy of ``action_space``."""
    space = gym.spaces.Box(action_space.low, action_space.high, dtype=action_space.dtype)
    space.seed(seed)
    return lambda _obs: space.sample()


def sb3_policy(checkpoint: Path, env: gym.Env) -> Policy:
    """Deterministic actions of a stable-baselines3 checkpoint trained on ``env``'s spaces."""
    from stable_baselines3.common.save_util import load_from_zip_file

    from ssmrl_lib.data.sb3 import algorithm_class

    if not checkpoint.is_file():
        raise SsmrlError(f"policy checkpoint {checkpoint} does not exist")
    try:
        data, _, _ = load_from_zip_file(checkpoint, load_data=True)
    except Exception as error:
        raise SsmrlError(f"policy checkpoint {checkpoint} is corrupt ({error})") from error
    obs_shape = data["observation_space"].shape
    if obs_shape != env.observation_space.shape:
        raise SsmrlError(
            f"policy checkpoint {checkpoint} was trained on observations of shape {obs_shape}, "
            f"but {env.spec.id} has {env.observation_space.shape}: wrong environment"
        )
    model = algorithm_class(data).load(checkpoint, device="cpu")
    return lambda obs: model.predict(obs, deterministic=True)[0]


def checkpoint_policy(checkpoint: Path, env: gym.Env) -> Policy:
    """The deterministic policy of ``checkpoint``: an ssmrl actor (``.npz``, written by
    ``ssmrl data train-policy``) or a full stable-baselines3 model (``.zip``)."""
    if checkpoint.suffix == ".npz":
        from ssmrl_lib.data.recipes import load_actor
        from ssmrl_lib.envs import task_for_gym_id

        return load_actor(checkpoint, task_for_gym_id(env.spec.id))
    return sb3_policy(checkpoint, env)


def make_dataset(
    task: LocomotionTask,
    dataset_id: str,
    total_steps: int,
    seed: int,
    policy: str = "random",
    max_episode_steps: int | None = None,
    overwrite: bool = False,
    locked: bool = False,
) -> minari.MinariDataset:
    """Collect complete episodes until at least ``total_steps`` steps and store them locally.

    ``policy`` is ``"random"`` or the path of a policy checkpoint (ssmrl ``.npz`` actor or
    stable-baselines3 ``.zip``). ``ssmrl data build`` makes the D4RL-recipe datasets.
    ``locked``: the caller already holds the id's :func:`local_store.dataset_lock`.
    """
    check_dataset_id(dataset_id)
    if total_steps < 1:
        raise SsmrlError(f"steps must be a positive integer, got {total_steps}")
    if seed < 0:
        raise SsmrlError(f"seed must be a non-negative integer, got {seed}")
    if not locked:
        with dataset_lock(dataset_id):
            return make_dataset(task, dataset_id, total_steps, seed, policy, max_episode_steps,
                                overwrite, locked=True)
    if dataset_id in local_dataset_ids() and not overwrite:
        raise SsmrlError(f"dataset {dataset_id!r} already exists; pass overwrite to replace it")
    env = gym.make(task.gym_id, max_episode_steps=max_episode_steps)
    act = (
        random_policy(env.action_space, seed)
        if policy == "random"
        else checkpoint_policy(Path(policy), env)
    )
    buffers: list[EpisodeBuffer] = []
    steps = 0
    with tqdm(
        total=total_steps, desc=f"collect {dataset_id}", unit="step", mininterval=2.0
    ) as progress:
        while steps < total_steps:
            episode_seed = seed + len(buffers)
            buffers.append(_run_episode(env, act, episode_seed, episode_id=len(buffers)))
            steps += len(buffers[-1].rewards)
            progress.update(len(buffers[-1].rewards))
    with building(dataset_id), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`author", category=UserWarning)
        create_dataset(
            dataset_id,
            buffers,
            env=task.gym_id,
            eval_env=task.gym_id,
            algorithm_name=policy if policy == "random" else f"sb3:{Path(policy).name}",
            code_permalink=f"ssmrl commit {git_commit()}",
            ref_min_score=task.ref_min_score,
            ref_max_score=task.ref_max_score,
            description=f"{len(buffers)} episodes of {task.gym_id} made by ssmrl, "
            f"policy {policy}, seed {seed}",
        )
    env.close()
    return minari.load_dataset(dataset_id)


def _run_episode(env: gym.Env, act: Policy, seed: int, episode_id: int) -> EpisodeBuffer:
    """One complete episode as a Minari buffer (observations include the final one)."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    done = False
    while not done:
        action = np.asarray(act(obs), dtype=env.action_space.dtype)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        truncations.append(bool(truncated))
        done = terminated or truncated
    return EpisodeBuffer(
        id=episode_id,
        seed=seed,
        observations=np.stack(observations),
        actions=np.stack(actions),
        rewards=np.asarray(rewards),
        terminations=np.asarray(terminations),
        truncations=np.asarray(truncations),
    )
