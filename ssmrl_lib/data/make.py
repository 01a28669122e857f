"""Make a local Minari dataset by running a policy in a gymnasium environment.

This is what lets everything run offline: tests and the smoke profile make tiny datasets on the
fly, and the datasets chapter builds its D4RL-style datasets the same way from trained
behavior policies. Only complete episodes are stored (a trailing partial episode is dropped,
as in Minari's own MuJoCo datasets); terminations and truncations stay apart.
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

from ssmrl_lib.data.minari_write import create_dataset
from ssmrl_lib.envs import LocomotionTask
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.report.provenance import git_commit

Policy = Callable[[np.ndarray], np.ndarray]


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
) -> minari.MinariDataset:
    """Collect complete episodes until at least ``total_steps`` steps and store them locally.

    ``policy`` is ``"random"`` or the path of a policy checkpoint (ssmrl ``.npz`` actor or
    stable-baselines3 ``.zip``). ``ssmrl data build`` makes the D4RL-recipe datasets.
    """
    if dataset_id in minari.list_local_datasets():
        if not overwrite:
            raise SsmrlError(f"dataset {dataset_id!r} already exists; pass overwrite to replace it")
        minari.delete_dataset(dataset_id)
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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`author", category=UserWarning)
        dataset = create_dataset(
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
    return dataset


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
