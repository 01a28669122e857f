"""Collect complete episodes of a policy in lockstep environments: the one episode collector.

Every dataset (``ssmrl data make``, each recipe of :mod:`recipes`) and every evaluation of a
behavior policy during its training is collected here. ``n_envs`` environments run in lockstep
(:class:`LockstepEnvs`, the same numbers as gymnasium's ``env.step``) and the policy is called
once per step on all their observations; one environment is ``n_envs=1``.

Episode ``k`` is reset with seed ``seed + k`` and episodes are numbered in the order they
start, so the result depends only on (policy, seed, ``n_envs``). A policy that draws random
numbers draws them in step order across the environments, so ``n_envs`` changes its episodes;
with a deterministic policy it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
from minari.data_collector import EpisodeBuffer
from tqdm import tqdm

from ssmrl_lib.data.lockstep import LockstepEnvs
from ssmrl_lib.errors import SsmrlError

# Actions ``(n, act_dim)`` for observations ``(n, obs_dim)``.
BatchPolicy = Callable[[np.ndarray], np.ndarray]


def random_policy(action_space: gym.spaces.Box, seed: int) -> BatchPolicy:
    """Uniform random actions for a batch, from one generator seeded with ``seed``.

    For one environment these are the draws of a ``Box`` space seeded with ``seed``
    (``space.seed(seed); space.sample()``): both take ``act_dim`` uniforms per step from
    ``np.random.default_rng(seed)``'s stream.
    """
    rng = np.random.default_rng(seed)
    low, high = action_space.low, action_space.high

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, size=(len(obs), len(low))).astype(action_space.dtype)

    return act


def collect_episodes(
    gym_id: str,
    act: BatchPolicy,
    seed: int,
    *,
    steps: int | None = None,
    episodes: int | None = None,
    n_envs: int = 1,
    max_episode_steps: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> list[EpisodeBuffer]:
    """Complete episodes of ``act``, in the order they start: until they hold at least
    ``steps`` steps, or exactly ``episodes`` episodes (give one of the two).

    With ``steps``, episodes still running when enough steps are complete are dropped (no
    trailing partial episode). With ``episodes``, no more than that many are started.
    ``max_episode_steps`` overrides the task's time limit.
    """
    if (steps is None) == (episodes is None):
        raise ValueError("give exactly one of steps and episodes")
    if n_envs < 1:
        raise SsmrlError(f"n_envs must be a positive integer, got {n_envs}")
    envs = LockstepEnvs(gym_id, n_envs, max_episode_steps)
    longest = envs.max_episode_steps
    obs_dim, act_dim = envs.observation_space.shape[0], envs.action_space.shape[0]
    # Each slot's running episode, written in place: no per-step lists to stack at the end.
    observations = np.zeros((n_envs, longest + 1, obs_dim), dtype=envs.observation_space.dtype)
    actions = np.zeros((n_envs, longest, act_dim), dtype=np.float32)
    rewards = np.zeros((n_envs, longest))
    terminations = np.zeros((n_envs, longest), dtype=bool)
    truncations = np.zeros((n_envs, longest), dtype=bool)
    lengths = np.zeros(n_envs, dtype=np.int64)
    episode_of_slot = np.zeros(n_envs, dtype=np.int64)
    # A slot whose episode ended when no more may start idles (stepped, its numbers unused).
    running = np.zeros(n_envs, dtype=bool)
    next_episode = 0

    def start(slot: int) -> None:
        nonlocal next_episode
        if episodes is not None and next_episode == episodes:
            running[slot] = False
            return
        episode_of_slot[slot], lengths[slot], running[slot] = next_episode, 0, True
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

    def collecting() -> bool:
        return kept_steps < steps if steps is not None else len(kept) < episodes

    total, unit = (steps, "step") if steps is not None else (episodes, "episode")
    bar = tqdm(total=total, desc=desc or gym_id, unit=unit, disable=None if progress else True)
    while collecting():
        slots = np.flatnonzero(running)
        chosen = act(observations[slots, lengths[slots]])
        if len(slots) < n_envs:  # idle slots get zero actions
            padded = np.zeros((n_envs, act_dim), dtype=chosen.dtype)
            padded[slots] = chosen
            new_obs, reward, terminated, truncated = envs.step(padded)
            new_obs, reward = new_obs[slots], reward[slots]
            terminated, truncated = terminated[slots], truncated[slots]
        else:
            new_obs, reward, terminated, truncated = envs.step(chosen)
        at = lengths[slots]
        actions[slots, at] = chosen
        rewards[slots, at] = reward
        terminations[slots, at] = terminated
        truncations[slots, at] = truncated
        lengths[slots] += 1
        observations[slots, at + 1] = new_obs
        for slot in slots[terminated | truncated]:
            finished[int(episode_of_slot[slot])] = episode(slot)
            start(slot)
        # Keep the contiguous prefix of finished episodes, in start order.
        while len(kept) in finished and collecting():
            done = finished.pop(len(kept))
            kept.append(done)
            kept_steps += len(done.rewards)
            bar.update(min(len(done.rewards), total - bar.n) if steps is not None else 1)
    bar.close()
    envs.close()
    return kept
