"""Meta-RL environments of Lu et al. (2023), §4.3: tasks hidden behind a new random projection.

An *episode* is ``num_trials`` *trials* of one task under one projection, drawn at ``reset``.
A trial that ends (failure or ``trial_length`` steps) is followed at once by the next one; the
environment does **not** signal ``terminated`` or ``truncated`` there, so a recurrent agent keeps
its memory across trials and can learn the projection in context. Only the end of the last trial
ends the episode. Trial ends are a flag in the next observation instead.

* ``ProjectedStatelessCartPole`` (Meta-RL 1): popgym's ``PositionOnlyCartPole`` (the paper's
  StatelessCartPole: cart position and pole angle only, reward ``1/trial_length`` per step
  survived, so a trial's return lies in ``(0, 1]``) with its 2-d observation mapped through an
  orthogonal 4×2 matrix scaled by √2. Observation: projection, previous action one-hot (zeros at
  the first step), trial-done flag, first-step flag.
* ``DMControlProjectionTask`` (Meta-RL 2, the paper's Algorithm 1): a DMControl task sampled
  from ``tasks``, its flattened observation mapped to 12 dims and a 2-d action mapped into its
  action space, both by random orthogonal matrices; observation: projection, previous reward,
  trial-done flag.

All randomness (projections, tasks, initial states) comes from the generator seeded by
``reset(seed=...)``, so equal seeds give equal episodes.
"""

from __future__ import annotations

import math
import os
from typing import Any

import gymnasium as gym
import numpy as np

from ssmrl_lib.errors import SsmrlError, check_choice

# Lu et al.'s Meta-RL 2 split: train on the first six, evaluate in context on the other five.
TRAIN_TASKS = (
    "ball_in_cup_catch",
    "cartpole_swingup",
    "finger_spin",
    "finger_turn_hard",
    "point_mass_easy",
    "reacher_easy",
)
HELDOUT_TASKS = (
    "cartpole_balance",
    "finger_turn_easy",
    "pendulum_swingup",
    "point_mass_hard",
    "reacher_hard",
)
# Task name -> dm_control (domain, task); domains may contain underscores, so no parsing.
DMC_TASKS = {
    "ball_in_cup_catch": ("ball_in_cup", "catch"),
    "cartpole_swingup": ("cartpole", "swingup"),
    "finger_spin": ("finger", "spin"),
    "finger_turn_hard": ("finger", "turn_hard"),
    "point_mass_easy": ("point_mass", "easy"),
    "reacher_easy": ("reacher", "easy"),
    "cartpole_balance": ("cartpole", "balance"),
    "finger_turn_easy": ("finger", "turn_easy"),
    "pendulum_swingup": ("pendulum", "swingup"),
    "point_mass_hard": ("point_mass", "hard"),
    "reacher_hard": ("reacher", "hard"),
}
DMC_STEP_LIMIT = 1000  # dm_control's own episode length for every task above


def orthogonal(rng: np.random.Generator, rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
    """A random ``rows × cols`` matrix with orthonormal columns (rows if ``rows < cols``), scaled.

    The usual orthogonal initialiser: QR of a Gaussian matrix, signs fixed so that the result is
    uniformly (Haar) distributed.
    """
    gaussian = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(gaussian)
    q = q * np.sign(np.diag(r))
    matrix = q if rows >= cols else q.T
    return (scale * matrix).astype(np.float32)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


class TrialEnv(gym.Env):
    """An episode of ``num_trials`` trials of one sampled task; subclasses define the task.

    Subclasses implement ``_sample_episode`` (draw this episode's task and projections from
    ``self.np_random``), ``_reset_trial(seed)`` (the first raw observation of a trial),
    ``_step_trial(action)`` (raw observation, reward, whether the task ended the trial) and
    ``_observation(raw, reward, trial_done, first_step, action)``.

    ``info`` of every step holds ``trial`` (the index of the trial the step belongs to); a step
    that ends a trial adds ``trial_return``, the last step of the episode ``trial_returns``.
    """

    def __init__(self, num_trials: int, trial_length: int):
        if num_trials < 1 or trial_length < 1:
            raise SsmrlError(
                f"num_trials and trial_length must be positive, got {num_trials}, {trial_length}"
            )
        self.num_trials = num_trials
        self.trial_length = trial_length
        self._trial = 0
        self._steps_in_trial = 0
        self._trial_returns: list[float] = []

    def _sample_episode(self) -> None:
        raise NotImplementedError

    def _reset_trial(self, seed: int) -> np.ndarray:
        raise NotImplementedError

    def _step_trial(self, action: Any) -> tuple[np.ndarray, float, bool]:
        raise NotImplementedError

    def _observation(
        self, raw: np.ndarray, reward: float, trial_done: bool, first_step: bool, action: Any
    ) -> np.ndarray:
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        return {"trial": self._trial}

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._sample_episode()
        self._trial, self._steps_in_trial, self._trial_returns = 0, 0, [0.0]
        raw = self._reset_trial(_seed(self.np_random))
        return self._observation(raw, 0.0, False, True, None), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        raw, reward, task_ended = self._step_trial(action)
        self._steps_in_trial += 1
        self._trial_returns[-1] += reward
        info = self._info()
        trial_done = task_ended or self._steps_in_trial >= self.trial_length
        terminated = False
        if trial_done:
            info["trial_return"] = self._trial_returns[-1]
            if self._trial + 1 == self.num_trials:
                terminated = True
                info["trial_returns"] = list(self._trial_returns)
            else:
                self._trial += 1
                self._steps_in_trial = 0
                self._trial_returns.append(0.0)
                raw = self._reset_trial(_seed(self.np_random))
        return (
            self._observation(raw, reward, trial_done, False, action),
            reward,
            terminated,
            False,
            info,
        )


class ProjectedStatelessCartPole(TrialEnv):
    """Meta-RL 1: StatelessCartPole behind an episode's random orthogonal projection (scale √2).

    popgym's ``PositionOnlyCartPole`` is gymnasium's CartPole with the velocities removed, i.e.
    the paper's StatelessCartPole (the popgym version Lu et al. built on), with popgym's reward
    scale: ``1/trial_length`` per step survived, so a perfect trial returns 1.
    """

    action_space = gym.spaces.Discrete(2)

    def __init__(
        self,
        num_trials: int = 16,
        trial_length: int = 200,
        projection_dim: int = 4,
        scale: float = math.sqrt(2),
    ):
        super().__init__(num_trials, trial_length)
        from popgym.envs.position_only_cartpole import PositionOnlyCartPole

        self._cartpole = PositionOnlyCartPole(max_episode_length=trial_length)
        self.projection_dim = projection_dim
        self.scale = scale
        raw_dim = self._cartpole.observation_space.shape[0]
        self.projection = np.zeros((projection_dim, raw_dim), np.float32)
        # |P x| <= scale * |x| for P with orthonormal columns times scale.
        bound = scale * float(np.linalg.norm(self._cartpole.observation_space.high))
        low = np.concatenate([np.full(projection_dim, -bound), np.zeros(4)]).astype(np.float32)
        high = np.concatenate([np.full(projection_dim, bound), np.ones(4)]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def _sample_episode(self) -> None:
        raw_dim = self._cartpole.observation_space.shape[0]
        self.projection = orthogonal(self.np_random, self.projection_dim, raw_dim, self.scale)

    def _reset_trial(self, seed: int) -> np.ndarray:
        return self._cartpole.reset(seed=seed)[0]

    def _step_trial(self, action: Any) -> tuple[np.ndarray, float, bool]:
        obs, reward, terminated, truncated, _ = self._cartpole.step(int(action))
        return obs, float(reward), terminated or truncated

    def _observation(
        self, raw: np.ndarray, reward: float, trial_done: bool, first_step: bool, action: Any
    ) -> np.ndarray:
        previous = np.zeros(2, np.float32)
        if action is not None:
            previous[int(action)] = 1.0
        flags = np.array([trial_done, first_step], np.float32)
        projected = self.projection @ raw.astype(np.float32)
        return np.concatenate([projected, previous, flags]).astype(np.float32)


def _load_dmc(name: str):
    """The dm_control suite task ``name``; rendering is never used, so no GL backend is loaded."""
    os.environ.setdefault("MUJOCO_GL", "disable")
    from dm_control import suite

    domain, task = DMC_TASKS[name]
    return suite.load(domain, task, task_kwargs={"random": 0})


class DMControlProjectionTask(TrialEnv):
    """Meta-RL 2 (Algorithm 1): a random DMControl task behind random observation/action maps.

    At ``reset`` a task is drawn uniformly from ``tasks`` and two orthogonal matrices (scale 1,
    our choice: the paper gives none): ``obs_dim × d_obs`` for the flattened observation and
    ``d_act × action_dim`` for the action. The agent's action is clipped to ``[-1, 1]``, mapped,
    and clipped to the task's bounds. A trial ends after ``trial_length`` steps (dm_control's own
    limit, 1000, caps it). The task's initial states come from dm_control's own generator,
    reseeded from ``np_random`` at every trial. Each task is loaded once per environment.
    """

    def __init__(
        self,
        tasks: tuple[str, ...] = TRAIN_TASKS,
        num_trials: int = 1,
        trial_length: int = DMC_STEP_LIMIT,
        obs_dim: int = 12,
        action_dim: int = 2,
    ):
        super().__init__(num_trials, trial_length)
        if not tasks:
            raise SsmrlError("DMControlProjectionTask needs at least one task")
        for task in tasks:
            check_choice("DMControl task", task, DMC_TASKS)
        self.tasks = tuple(tasks)
        self.obs_dim = obs_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim + 2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self._loaded: dict[str, Any] = {}
        self.task = self.tasks[0]
        self.obs_projection = np.zeros((obs_dim, 1), np.float32)
        self.action_projection = np.zeros((1, action_dim), np.float32)

    def _env(self):
        if self.task not in self._loaded:
            self._loaded[self.task] = _load_dmc(self.task)
        return self._loaded[self.task]

    def _sample_episode(self) -> None:
        self.task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        env = self._env()
        d_obs = sum(int(np.prod(spec.shape)) for spec in env.observation_spec().values())
        d_act = int(np.prod(env.action_spec().shape))
        self.obs_projection = orthogonal(self.np_random, self.obs_dim, d_obs)
        self.action_projection = orthogonal(self.np_random, d_act, self.action_space.shape[0])

    @staticmethod
    def _flatten(observation: dict) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in observation.values()])

    def _reset_trial(self, seed: int) -> np.ndarray:
        env = self._env()
        env.task.random.seed(seed)
        return self._flatten(env.reset().observation)

    def _step_trial(self, action: Any) -> tuple[np.ndarray, float, bool]:
        env = self._env()
        spec = env.action_spec()
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        mapped = np.clip(self.action_projection @ action, spec.minimum, spec.maximum)
        timestep = env.step(mapped.reshape(spec.shape))
        return self._flatten(timestep.observation), float(timestep.reward or 0.0), timestep.last()

    def _observation(
        self, raw: np.ndarray, reward: float, trial_done: bool, first_step: bool, action: Any
    ) -> np.ndarray:
        extra = np.array([reward, trial_done], np.float32)
        return np.concatenate([self.obs_projection @ raw, extra]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"trial": self._trial, "task": self.task}
