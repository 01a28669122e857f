"""Gymnasium's MuJoCo locomotion tasks stepped in lockstep, with the same numbers as ``env.step``.

Why: a D4RL dataset is a million environment steps, and on the 2-core machine here about a
quarter of each Hopper ``env.step`` is gymnasium's per-environment Python (observation, reward,
two health checks, the time-limit and order wrappers) on top of MuJoCo's physics
(``benchmarks/env_step.py``). Here each
environment is still gymnasium's own: its model and data, reset by its own ``reset(seed=...)``,
and advanced by the same ``mj_step(model, data, nstep=frame_skip)`` call as ``env.step``. Only
what ``step`` computes from the new state (observation, reward, termination, the 1000-step
time limit) is done once for all environments with numpy, by the same formulas in the same
floating-point order. ``tests/test_lockstep.py`` checks every returned number against
``env.step`` bit for bit, for the three tasks, through terminations and time limits.

Gymnasium's step also calls ``mj_rnePostConstraint``, which only fills in contact forces and
body accelerations for the observation of tasks that include them (Ant, Humanoid). None of
these three does, and the next ``mj_step`` does not read them, so it is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

import ssmrl_lib.envs  # noqa: F401  (routes MuJoCo's C-level warnings through Python's)
from ssmrl_lib.errors import check_choice


@dataclass(frozen=True)
class _Rules:
    """What one task's ``step`` computes from the state; the weights are read from the env."""

    clip_velocity: bool  # Hopper and Walker2d clip qvel to ±10 in the observation
    health: str  # "none", "hopper" (z, angle and state ranges) or "walker" (z and angle)


RULES = {
    "Hopper-v5": _Rules(clip_velocity=True, health="hopper"),
    "Walker2d-v5": _Rules(clip_velocity=True, health="walker"),
    "HalfCheetah-v5": _Rules(clip_velocity=False, health="none"),
}


class LockstepEnvs:
    """``n_envs`` copies of one gymnasium locomotion task, stepped with one call per step.

    ``step(actions)`` returns ``(observations, rewards, terminated, truncated)`` as arrays over
    the environments, exactly what each environment's own ``env.step`` (with gymnasium's
    ``TimeLimit``, of ``max_episode_steps`` steps if given, else the task's own) would have
    returned. A finished environment must be ``reset`` before the
    next ``step``.
    """

    def __init__(self, gym_id: str, n_envs: int, max_episode_steps: int | None = None):
        check_choice("environment for lockstep stepping", gym_id, RULES)
        self.rules = RULES[gym_id]
        self.envs = [
            gym.make(gym_id, disable_env_checker=True, max_episode_steps=max_episode_steps)
            for _ in range(n_envs)
        ]
        self.bodies = [env.unwrapped for env in self.envs]
        first = self.bodies[0]
        if not first._exclude_current_positions_from_observation:
            raise ValueError("lockstep stepping expects the x position left out of observations")
        self.max_episode_steps = self.envs[0].spec.max_episode_steps
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.dt = first.dt
        # The task's own settings (gymnasium's defaults for these ids).
        self.weights = {"forward": first._forward_reward_weight,
                        "control": first._ctrl_cost_weight,
                        "healthy": getattr(first, "_healthy_reward", 0.0)}
        self.terminate_when_unhealthy = getattr(first, "_terminate_when_unhealthy", False)
        self.ranges = {name: getattr(first, f"_healthy_{name}_range", None)
                       for name in ("z", "angle", "state")}
        self.frame_skip = first.frame_skip
        self.elapsed = np.zeros(n_envs, dtype=np.int64)
        self.qpos = np.zeros((n_envs, first.model.nq))
        self.qvel = np.zeros((n_envs, first.model.nv))
        # MuJoCo's arrays as numpy views, taken once: each attribute access makes a new view,
        # which cost more than the rest of the per-environment loop.
        self._simulations = [
            (body.model, body.data, body.data.ctrl, body.data.qpos, body.data.qvel)
            for body in self.bodies
        ]

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, slot: int, seed: int) -> np.ndarray:
        """Reset one environment through gymnasium; its first observation."""
        observation, _ = self.envs[slot].reset(seed=seed)
        self.elapsed[slot] = 0
        self.qpos[slot] = self._simulations[slot][3]
        return observation

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply ``actions[i]`` to environment ``i``; observations, rewards, terminated and
        truncated of all environments."""
        x_before = self.qpos[:, 0].copy()
        for slot, (model, data, ctrl, qpos, qvel) in enumerate(self._simulations):
            ctrl[:] = actions[slot]
            mujoco.mj_step(model, data, nstep=self.frame_skip)
            self.qpos[slot] = qpos
            self.qvel[slot] = qvel
        self.elapsed += 1
        # np.clip's result, without its dispatch overhead (same values, NaN included)
        velocity = (
            np.minimum(np.maximum(self.qvel, -10.0), 10.0) if self.rules.clip_velocity
            else self.qvel
        )
        observations = np.concatenate((self.qpos[:, 1:], velocity), axis=1)
        x_velocity = (self.qpos[:, 0] - x_before) / self.dt
        forward_reward = self.weights["forward"] * x_velocity
        # Like gymnasium: float32 actions give a float32 control cost.
        control_cost = self.weights["control"] * np.square(actions).sum(axis=1)
        if self.rules.health == "none":
            rewards = forward_reward - control_cost
            terminated = np.zeros(len(self), dtype=bool)
        else:
            healthy = self._healthy()
            rewards = (forward_reward + healthy * self.weights["healthy"]) - control_cost
            terminated = ~healthy & self.terminate_when_unhealthy
        truncated = self.elapsed >= self.max_episode_steps
        return observations, rewards, terminated, truncated

    def _healthy(self) -> np.ndarray:
        z, angle = self.qpos[:, 1], self.qpos[:, 2]
        (min_z, max_z), (min_angle, max_angle) = self.ranges["z"], self.ranges["angle"]
        healthy = (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)
        if self.rules.health == "hopper":
            min_state, max_state = self.ranges["state"]
            state = np.concatenate((self.qpos, self.qvel), axis=1)[:, 2:]
            healthy &= ((min_state < state) & (state < max_state)).all(axis=1)
        return healthy

    def close(self) -> None:
        for env in self.envs:
            env.close()
