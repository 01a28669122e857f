"""Make a local Minari dataset by running a policy in a gymnasium environment.

This is what lets everything run offline: tests and the smoke profile make tiny datasets on the
fly. Episodes are collected in one environment by the collector the D4RL recipes use
(:func:`collect.collect_episodes`, ``n_envs=1``). Only complete episodes are stored (a trailing
partial episode is dropped, as in Minari's own MuJoCo datasets); terminations and truncations
stay apart.

A made dataset never carries another dataset's name: the smoke profile's stand-ins live in their
own namespace (:func:`smoke_dataset_id`), and ``ssmrl data make`` refuses the ids of the D4RL
recipes (``ssmrl data build`` makes those), of the stand-ins, and of Minari's hosted namespaces
(:func:`check_free_id`). Datasets are written through :func:`local_store.building`, so they
appear whole or not at all.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import minari

from ssmrl_lib.data.actor import load_actor
from ssmrl_lib.data.collect import BatchPolicy, collect_episodes, random_policy
from ssmrl_lib.data.local_store import (
    building,
    check_dataset_id,
    dataset_lock,
    local_dataset_ids,
)
from ssmrl_lib.data.minari_write import create_dataset
from ssmrl_lib.data.recipes import RECIPES
from ssmrl_lib.data.sb3 import load_sb3_policy
from ssmrl_lib.envs import LocomotionTask, get_task
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.provenance import git_commit

SMOKE_NAMESPACE = "ssmrl-smoke"
# The namespaces of the datasets made here (recipes, ``data make``, stand-ins): no hub hosts them.
OWN_NAMESPACES = ("ssmrl", SMOKE_NAMESPACE)
# Farama hosts Minari's remote datasets under these namespaces (minari.farama.org/datasets).
HOSTED_NAMESPACES = ("D4RL", "mujoco", "minigrid", "atari")


def smoke_dataset_id(env: str) -> str:
    """The smoke profile's stand-in for ``env``: a random-policy dataset in its own namespace."""
    return f"{SMOKE_NAMESPACE}/{env}/random-v0"


def check_free_id(dataset_id: str) -> None:
    """Raise ``SsmrlError`` unless ``ssmrl data make`` may write ``dataset_id``: a valid id
    that names no dataset made elsewhere for another purpose."""
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
    if recipe := _recipe_of(dataset_id):
        env, quality = recipe
        raise SsmrlError(
            f"dataset id {dataset_id!r} is a D4RL recipe's; build it with `ssmrl data build "
            f"--env {env} --quality {quality}` (or `make data`)"
        )


def _recipe_of(dataset_id: str) -> tuple[str, str] | None:
    """``(env, quality)`` of a D4RL recipe's id, ``ssmrl/<env>/<quality>-vN``; else None."""
    parts = dataset_id.split("/")
    if len(parts) == 3 and parts[0] == "ssmrl" and parts[2].rsplit("-v", 1)[0] in RECIPES:
        return parts[1], parts[2].rsplit("-v", 1)[0]
    return None


def own_dataset_hint(dataset_id: str) -> str | None:
    """How to make ``dataset_id`` here if it is in one of :data:`OWN_NAMESPACES` (no hub has
    it, so it is made locally or not at all); None for an id in any other namespace."""
    parts = dataset_id.split("/")
    if len(parts) < 2 or parts[0] not in OWN_NAMESPACES:
        return None
    if recipe := _recipe_of(dataset_id):
        env, quality = recipe
        return f"build it with `make data` (or `ssmrl data build --env {env} --quality {quality}`)"
    if parts[0] == SMOKE_NAMESPACE:
        return ("it is the smoke profile's stand-in, made when a run at that profile needs it "
                "(`ssmrl notebook NOTEBOOK -p profile smoke`)")
    env = parts[1] if len(parts) == 3 else "ENV"
    return f"make it with `ssmrl data make --env {env} --id {dataset_id}`"


def ensure_smoke_dataset(env: str, steps: int) -> str:
    """The smoke stand-in of ``env``, made now (random policy, ``steps`` steps) if missing;
    a process that asks while another makes it waits and uses that one."""
    dataset_id = smoke_dataset_id(env)
    with dataset_lock(dataset_id):
        if dataset_id not in local_dataset_ids():
            make_dataset(get_task(env), dataset_id, steps, seed=0, locked=True)
    return dataset_id


def collection_policy(policy: str, task: LocomotionTask, seed: int) -> BatchPolicy:
    """The policy ``ssmrl data make --policy`` names: ``"random"`` (seeded with ``seed``), an
    ssmrl actor checkpoint (``.npz``, written by ``ssmrl data train-policy``; its mean action)
    or a full stable-baselines3 model (``.zip``; its deterministic action)."""
    env = gym.make(task.gym_id, disable_env_checker=True)
    try:
        if policy == "random":
            return random_policy(env.action_space, seed)
        if Path(policy).suffix == ".npz":
            return load_actor(Path(policy), task)
        return load_sb3_policy(Path(policy), env)
    finally:
        env.close()


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
    """Collect complete episodes (in one environment) until at least ``total_steps`` steps and
    store them locally.

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
    act = collection_policy(policy, task, seed)
    buffers = collect_episodes(task.gym_id, act, seed, steps=total_steps,
                               max_episode_steps=max_episode_steps, progress=True,
                               desc=f"collect {dataset_id}")
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
    return minari.load_dataset(dataset_id)
