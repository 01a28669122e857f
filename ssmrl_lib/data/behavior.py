"""Train the behavior policies that the D4RL-style datasets are collected with.

D4RL made its MuJoCo datasets from SAC policies: ``medium`` from one stopped at about a third
of expert performance, ``medium-replay`` from everything in its replay buffer up to that point,
``expert`` from a fully trained one. Minari's MuJoCo v5 datasets were made the same way with
stable-baselines3: SAC for Hopper and Walker2d, TQC (sb3-contrib) for HalfCheetah. This module
does the same, from scratch, so that every dataset can be rebuilt offline. What a training
writes into its policy directory, and how it resumes, is described in :mod:`policy_dir`.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import stable_baselines3
import torch
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from ssmrl_lib.data.actor import ActorPolicy
from ssmrl_lib.data.collect import BatchPolicy, collect_episodes
from ssmrl_lib.data.policy_dir import (
    CHECKPOINT_DIR,
    SAMPLED_PREFIX,
    SUMMARY_COLUMNS,
    SavedReplay,
    load_replay_buffer,
    read_evaluations,
    read_state,
    save_state,
    task_policy_dir,
    write_evaluations,
)
from ssmrl_lib.data.sb3 import ALGORITHMS, algorithm_class
from ssmrl_lib.envs import LocomotionTask, normalized_score
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.runs.store import atomic_write_bytes, atomic_write_json

# Evaluation episode k at step s is reset with seed DETERMINISTIC_EVAL_SEED + s + k; the
# sampled evaluation's with SAMPLED_EVAL_SEED + s + k, its actions drawn from a generator
# seeded with SAMPLED_EVAL_SEED + s: another set of initial states than the deterministic one.
DETERMINISTIC_EVAL_SEED = 1_000_000
SAMPLED_EVAL_SEED = 2_000_000
# What a checkpoint's ``meta["evaluation"]`` records of its evaluation.
_EVALUATION_KEYS = ("mean_return", "std_return", "normalized_mean", "normalized_std") + tuple(
    SAMPLED_PREFIX + key for key in SUMMARY_COLUMNS)


@dataclass(frozen=True)
class BehaviorTrainingConfig:
    """Everything that defines a behavior-policy training except how long it runs (recorded in
    ``training.json``; a resumed training must match it).

    The hyperparameters are stable-baselines3's defaults (lr 3e-4, batch 256, gamma 0.99,
    tau 0.005, one gradient step per environment step, [256, 256] networks, automatic entropy)
    with 10k random warm-up steps and a 1M replay buffer (to our knowledge what RL Baselines3
    Zoo uses for the MuJoCo tasks; not checked against its files offline). The buffer is as
    long as any training here, so it never overwrites a transition.
    """

    gym_id: str
    algorithm: str
    seed: int = 0
    learning_starts: int = 10_000
    buffer_size: int = 1_000_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    extra: dict[str, Any] = field(default_factory=dict)
    # Episodes of sampled actions per evaluation; 0: none.
    sampled_eval_episodes: int = 0


def _recorded_config(record: dict[str, Any]) -> dict[str, Any]:
    """The config of a ``training.json``. One that lacks ``sampled_eval_episodes`` stands for
    a training that scored no sampled actions: 0."""
    return {"sampled_eval_episodes": 0} | record["config"]


def evaluate_policy_returns(
    act: BatchPolicy, gym_id: str, episodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of ``episodes`` episodes of ``act`` in one environment, episode
    ``k`` reset with seed ``seed + k``. A return is summed step by step, in step order."""
    played = collect_episodes(gym_id, act, seed, episodes=episodes)
    returns = [sum(episode.rewards.tolist()) for episode in played]
    return np.asarray(returns), np.asarray([len(episode.rewards) for episode in played])


# --------------------------------------------------------------------------------------------
# Training with periodic evaluation, checkpoints and a resumable state
# --------------------------------------------------------------------------------------------


def _training_record(config: BehaviorTrainingConfig) -> dict[str, Any]:
    """``training.json``: the config and the versions of the packages that train."""
    record = {"config": asdict(config), "stable_baselines3": stable_baselines3.__version__}
    try:
        import sb3_contrib

        record["sb3_contrib"] = sb3_contrib.__version__
    except ImportError:  # pragma: no cover - sb3-contrib is a dependency
        pass
    return record | {"gymnasium": gym.__version__, "mujoco": mujoco.__version__}


def train_policy(
    task: LocomotionTask,
    total_steps: int,
    policy_dir: Path | None = None,
    seed: int = 0,
    eval_every: int = 10_000,
    eval_episodes: int = 10,
    learning_starts: int = 10_000,
    buffer_size: int = 1_000_000,
    algorithm: str | None = None,
    sampled_eval_episodes: int = 0,
    extra: dict[str, Any] | None = None,
    log: Any = print,
) -> Path:
    """Train (or resume training) ``task``'s behavior policy up to ``total_steps`` steps.

    Evaluates every ``eval_every`` steps, writing a checkpoint, an ``evaluations.csv`` row and
    the full state each time. Rerunning with the same arguments and a larger ``total_steps``
    continues; different hyperparameters for an existing directory are an error.
    ``extra`` passes further keyword arguments to the SB3 constructor (tests use tiny nets).
    ``sampled_eval_episodes`` > 0 also scores each checkpoint on that many episodes of sampled
    actions (the ``sampled_*`` columns), the actions the recipes then collect with.
    """
    algorithm = algorithm or ALGORITHMS[task.name]
    policy_dir = task_policy_dir(task.name, policy_dir)
    if total_steps <= 0 or eval_every <= 0 or eval_episodes <= 0:
        raise SsmrlError("steps, eval-every and eval-episodes must be positive")
    if sampled_eval_episodes < 0:
        raise SsmrlError("sampled-eval-episodes must be 0 (none) or positive")
    config = BehaviorTrainingConfig(
        gym_id=task.gym_id,
        algorithm=algorithm,
        seed=seed,
        learning_starts=learning_starts,
        buffer_size=buffer_size,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        extra=dict(extra or {}),
        sampled_eval_episodes=sampled_eval_episodes,
    )
    record_path = policy_dir / "training.json"
    if record_path.is_file():
        previous = _recorded_config(json.loads(record_path.read_text()))
        wanted = json.loads(json.dumps(asdict(config)))
        if previous != wanted:
            differ = ", ".join(f"{key} {previous.get(key)!r} (asked: {wanted.get(key)!r})"
                               for key in sorted(previous.keys() | wanted.keys())
                               if previous.get(key) != wanted.get(key))
            raise SsmrlError(
                f"{policy_dir} holds a training with other settings: {differ}; "
                "resume it with its own settings, or use another --dir"
            )
    else:
        atomic_write_json(record_path, _training_record(config))

    cls = algorithm_class(algorithm)
    env = gym.make(task.gym_id, disable_env_checker=True)
    state = read_state(policy_dir)
    if state is not None:
        model_path = policy_dir / "state" / state["model"]
        model = cls.load(model_path, env=env, device="cpu")
        saved = load_replay_buffer(policy_dir)
        if isinstance(saved, SavedReplay):
            saved.restore(model.replay_buffer)
        else:
            model.replay_buffer = saved
        _close_partial_episode(model.replay_buffer)
        wall_offset = float(state["wall_seconds"])
        cpu_offset = float(state.get("cpu_seconds", "nan"))
        log(f"resuming {task.gym_id} {algorithm} from step {model.num_timesteps}")
    else:
        model = cls(
            "MlpPolicy",
            env,
            learning_starts=learning_starts,
            buffer_size=buffer_size,
            seed=seed,
            device="cpu",
            verbose=0,
            **copy.deepcopy(config.extra),
        )
        wall_offset = cpu_offset = 0.0
    # Evaluation rows past the saved state belong to a run that was killed before saving.
    rows = [row for row in read_evaluations(policy_dir) if row["step"] <= model.num_timesteps]
    write_evaluations(policy_dir, rows)
    remaining = total_steps - int(model.num_timesteps)
    if remaining <= 0:
        log(f"{task.gym_id}: already trained for {model.num_timesteps} steps")
        return policy_dir
    torch.manual_seed(seed + int(model.num_timesteps))
    callback = EvaluationCallback(
        task, config, policy_dir, rows, (wall_offset, cpu_offset), log, total_steps
    )
    model.learn(remaining, callback=callback, reset_num_timesteps=False, progress_bar=False)
    env.close()
    return policy_dir


def _summary(task: LocomotionTask, returns: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    """The evaluation columns (``SUMMARY_COLUMNS``) of one set of episodes."""
    scores = normalized_score(task, returns)
    return {
        "mean_return": round(float(returns.mean()), 3),
        "std_return": round(float(returns.std()), 3),
        "normalized_mean": round(float(scores.mean()), 3),
        "normalized_std": round(float(scores.std()), 3),
        "mean_length": round(float(lengths.mean()), 1),
    }


def _close_partial_episode(buffer: Any) -> None:
    """Mark the buffer's last transition as a truncation: after a resume a new episode starts.

    Setting ``timeouts`` too keeps SAC's target unchanged (SB3 bootstraps through timeouts),
    and it makes the cut visible when the buffer is later split into episodes.
    """
    if buffer.pos == 0 and not buffer.full:
        return
    last = (buffer.pos - 1) % buffer.buffer_size
    if buffer.dones[last].all():  # the episode had ended (a real termination stays one)
        return
    buffer.dones[last] = 1.0
    buffer.timeouts[last] = 1.0


class EvaluationCallback(BaseCallback):
    """Every ``eval_every`` steps: evaluate the policy, export its actor as a checkpoint, and
    (once SB3 has stored the step's transition) save the state and the evaluation row."""

    def __init__(
        self,
        task: LocomotionTask,
        config: BehaviorTrainingConfig,
        policy_dir: Path,
        rows: list[dict[str, Any]],
        offsets: tuple[float, float],
        log: Any,
        total_steps: int,
    ):
        super().__init__()
        self.task, self.config, self.policy_dir, self.rows = task, config, policy_dir, rows
        self.wall_offset, self.cpu_offset = offsets
        self.log, self.total_steps = log, total_steps
        eval_cpu = float(rows[-1].get("eval_cpu_seconds", 0.0)) if rows else 0.0
        # A row without the column (NaN) counted no evaluation time.
        self.eval_cpu = eval_cpu if np.isfinite(eval_cpu) else 0.0
        self.pending: tuple[dict[str, Any], float, float] | None = None

    def _on_training_start(self) -> None:
        self.started = time.monotonic()
        self.cpu_started = time.process_time()
        # On a terminal only (disable=None): logs and notebooks get the eval lines.
        self.bar = tqdm(total=self.total_steps, initial=self.num_timesteps,
                        desc=self.config.gym_id, unit="step", disable=None)

    def _on_training_end(self) -> None:
        self.bar.close()

    def _on_step(self) -> bool:
        self.bar.update()
        step, config = self.num_timesteps, self.config
        if step % config.eval_every != 0:
            return True
        wall = self.wall_offset + time.monotonic() - self.started
        cpu = self.cpu_offset + time.process_time() - self.cpu_started
        model = self.model

        def act(obs: np.ndarray) -> np.ndarray:
            return model.predict(obs, deterministic=True)[0]

        eval_started = time.process_time()
        returns, lengths = evaluate_policy_returns(
            act, config.gym_id, config.eval_episodes, seed=DETERMINISTIC_EVAL_SEED + step
        )
        row = {"step": step} | _summary(self.task, returns, lengths)
        actor = ActorPolicy.from_model(model, {})
        if config.sampled_eval_episodes:
            # The exported actor, sampling: exactly the actions a dataset gets.
            sampler = actor.sampler(np.random.default_rng(SAMPLED_EVAL_SEED + step))
            sampled = evaluate_policy_returns(
                sampler, config.gym_id, config.sampled_eval_episodes,
                seed=SAMPLED_EVAL_SEED + step,
            )
            row |= {f"{SAMPLED_PREFIX}{key}": value
                    for key, value in _summary(self.task, *sampled).items()}
        self.eval_cpu += time.process_time() - eval_started
        row |= {
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
            "eval_cpu_seconds": round(self.eval_cpu, 1),
            "checkpoint": f"{CHECKPOINT_DIR}/step_{step:08d}.npz",
        }
        actor.meta = {
            "gym_id": config.gym_id,
            "algorithm": config.algorithm,
            "seed": config.seed,
            "step": step,
            "evaluation": {key: row[key] for key in _EVALUATION_KEYS if key in row},
        }
        atomic_write_bytes(self.policy_dir / row["checkpoint"], actor.to_bytes())
        self.pending = (row, wall, cpu)
        return True

    def _on_rollout_end(self) -> None:
        # SB3 calls on_step before it stores the step's transition and on_rollout_end (after
        # every step here) once it is stored, before the next gradient step: the state saved
        # here holds exactly `step` transitions and the evaluated weights.
        if self.pending is None:
            return
        row, wall, cpu = self.pending
        self.pending = None
        save_state(self.model, self.policy_dir, wall, cpu)
        self.rows.append(row)
        write_evaluations(self.policy_dir, self.rows)
        sampled = (
            f", sampled {row[SAMPLED_PREFIX + 'normalized_mean']:.1f} "
            f"± {row[SAMPLED_PREFIX + 'normalized_std']:.1f}"
            if self.config.sampled_eval_episodes else ""
        )
        self.log(
            f"{self.config.gym_id} step {row['step']}: return {row['mean_return']:.1f} "
            f"± {row['std_return']:.1f}, normalized {row['normalized_mean']:.1f}"
            f"{sampled} ({wall:.0f} s, CPU {cpu:.0f} s, evaluations "
            f"{row['eval_cpu_seconds']:.0f} s)"
        )
