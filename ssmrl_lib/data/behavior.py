"""Train the behavior policies that the D4RL-style datasets are collected with.

D4RL made its MuJoCo datasets from SAC policies: ``medium`` from one stopped at about a third
of expert performance, ``medium-replay`` from everything in its replay buffer up to that point,
``expert`` from a fully trained one. Minari's MuJoCo v5 datasets were made the same way with
stable-baselines3: SAC for Hopper and Walker2d, TQC (sb3-contrib) for HalfCheetah. This module
does the same, from scratch, so that every dataset can be rebuilt offline.

A policy directory (by default ``data/policies/<env>/``) holds

* ``training.json``: the algorithm, its hyperparameters, the seed, package versions;
* ``evaluations.csv``: one row per evaluation (every ``eval_every`` steps): mean and std of
  the return and of the D4RL-normalized score over ``eval_episodes`` deterministic episodes
  (SB3's mean action) and, in the ``sampled_*`` columns, over ``sampled_eval_episodes``
  episodes of the exported checkpoint drawing its actions from its tanh-Gaussian, as D4RL's
  and Minari's datasets were collected (empty in trainings made before); the wall and CPU
  seconds spent so far (on a shared machine only the CPU time means much), and the CPU
  seconds the evaluations took (``eval_cpu_seconds``, cumulative);
* ``checkpoints/step_<N>.npz``: the policy's actor at each evaluation (small, committed; see
  :class:`ActorPolicy`): the candidates for the ``medium`` policy;
* ``state/``: the full training state (SB3 model with optimizers, and the replay buffer),
  git-ignored, so that rerunning the same training resumes where it stopped;
* ``replay_medium.npz``: after :func:`export_replay`, every transition the replay buffer saw
  up to the medium checkpoint (the ``medium-replay`` dataset's source).

Every file is written atomically and the state is a consistent pair (model, replay buffer)
named by its step, so a training killed at any point resumes from its last evaluation.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import pickle
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from ssmrl_lib.envs import LocomotionTask, normalized_score
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.paths import REPO_ROOT
from ssmrl_lib.runs.store import atomic_write_bytes, atomic_write_json

# The algorithm Minari used for each task's datasets.
ALGORITHMS: dict[str, str] = {"hopper": "SAC", "walker2d": "SAC", "halfcheetah": "TQC"}

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
# Sampled evaluation episode k at step s is reset with seed SAMPLED_EVAL_SEED + s + k and draws
# its actions from a generator seeded with SAMPLED_EVAL_SEED + s (deterministic evaluations use
# 1_000_000 + s + k): a different set of initial states from the deterministic evaluation's.
SAMPLED_EVAL_SEED = 2_000_000
# What a checkpoint's ``meta["evaluation"]`` records of its evaluation.
_EVALUATION_KEYS = ("mean_return", "std_return", "normalized_mean", "normalized_std") + tuple(
    SAMPLED_PREFIX + key for key in SUMMARY_COLUMNS)


def policies_root() -> Path:
    """Where behavior policies live: ``$SSMRL_POLICIES_DIR`` or ``data/policies``."""
    return Path(os.environ.get("SSMRL_POLICIES_DIR", REPO_ROOT / "data" / "policies"))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a behavior-policy training except how long it runs.

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
    # Episodes of sampled actions per evaluation (0: none, as in trainings recorded before this
    # field existed, whose training.json lacks it).
    sampled_eval_episodes: int = 0


def _recorded_config(record: dict[str, Any]) -> dict[str, Any]:
    """The config of a ``training.json``, with fields added since it was written at the value
    those trainings implicitly had."""
    return {"sampled_eval_episodes": 0} | record["config"]


def _algorithm_class(name: str) -> type:
    if name == "TQC":
        try:
            from sb3_contrib import TQC
        except ImportError as error:  # pragma: no cover - sb3-contrib is a dependency
            raise SsmrlError("TQC needs sb3-contrib: pip install sb3-contrib") from error
        return TQC
    from stable_baselines3 import SAC

    return SAC


# --------------------------------------------------------------------------------------------
# The actor, exported as a small numpy checkpoint
# --------------------------------------------------------------------------------------------

# SB3's clamp on the actor's log standard deviation (stable_baselines3/sac/policies.py and
# sb3_contrib/tqc/policies.py: LOG_STD_MIN, LOG_STD_MAX).
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """``np.savez_compressed`` without its time stamps: the same arrays give the same bytes,
    so re-exporting the same policy or transitions changes neither the committed file nor its
    hash."""
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(entry, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return payload.getvalue()


class ActorPolicy:
    """A SAC/TQC actor: ``tanh(mu(mlp(obs)))`` rescaled to the action bounds, or a draw from
    its tanh-Gaussian.

    Stored as ``.npz`` (a zip of numpy arrays): the hidden layers' weights and biases
    (``w0, b0, w1, b1, ...``, ReLU between them), the mean head (``w_mu, b_mu``), the log-std
    head (``w_log_std, b_log_std``; checkpoints written before it was exported lack it and can
    only act deterministically), the action bounds and a JSON ``meta`` string (environment,
    algorithm, step, evaluation). A few hundred kB instead of SB3's few MB, and batched
    inference is one matrix product per layer.

    Calling the policy gives the deterministic action (SB3's ``predict(deterministic=True)``);
    :meth:`sampler` gives a policy that samples like SB3's default ``predict`` (D4RL and Minari
    collected their datasets that way).
    """

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]):
        n_hidden = sum(1 for key in arrays if key.startswith("w") and key[1:].isdigit())
        self.hidden = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(n_hidden)]
        self.mu = (arrays["w_mu"], arrays["b_mu"])
        self.log_std = (
            (arrays["w_log_std"], arrays["b_log_std"]) if "w_log_std" in arrays else None
        )
        self.low, self.high = arrays["low"], arrays["high"]
        self.meta = meta
        # Inference multiplies by the transposed weights, stored contiguous once: NumPy's
        # float32 product with a transposed view is about 4x slower for the small batches here.
        self._layers = [(np.ascontiguousarray(w.T), b) for w, b in self.hidden]
        self._mean_head = (np.ascontiguousarray(self.mu[0].T), self.mu[1])
        self._log_std_head = (
            (np.ascontiguousarray(self.log_std[0].T), self.log_std[1]) if self.log_std else None
        )

    @property
    def obs_dim(self) -> int:
        return int(self.hidden[0][0].shape[1])

    @property
    def can_sample(self) -> bool:
        """Whether the checkpoint holds the log-std head that sampling needs."""
        return self.log_std is not None

    def _latent(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        for weight_t, bias in self._layers:
            x = np.maximum(x @ weight_t + bias, 0.0)
        return x

    def _rescale(self, squashed: np.ndarray) -> np.ndarray:
        return (self.low + 0.5 * (squashed + 1.0) * (self.high - self.low)).astype(np.float32)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch ``(n, obs_dim)`` (or one observation ``(obs_dim,)``)."""
        latent = self._latent(obs)
        return self._rescale(np.tanh(latent @ self._mean_head[0] + self._mean_head[1]))

    def sampler(self, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
        """A policy drawing ``tanh(mu + exp(log_std) * eps)``, ``eps ~ N(0, I)`` from ``rng``
        (SAC's squashed Gaussian, log-std clamped as SB3 does), rescaled to the bounds."""
        if self._log_std_head is None:
            raise SsmrlError(
                f"policy checkpoint of step {self.meta.get('step')} holds no log-std head, so "
                "it cannot sample actions; it was exported before log-stds were, re-export it "
                "from its SB3 training state or collect with action_sampling='mean'"
            )
        w_std, b_std = self._log_std_head

        def act(obs: np.ndarray) -> np.ndarray:
            latent = self._latent(obs)
            mean = latent @ self._mean_head[0] + self._mean_head[1]
            log_std = np.clip(latent @ w_std + b_std, LOG_STD_MIN, LOG_STD_MAX)
            noise = rng.standard_normal(mean.shape).astype(np.float32)
            return self._rescale(np.tanh(mean + np.exp(log_std) * noise))

        return act

    @classmethod
    def from_model(cls, model: Any, meta: dict[str, Any]) -> ActorPolicy:
        """Extract the actor of a trained SB3 SAC/TQC ``model`` (ReLU MLP, mean and log-std
        heads)."""
        import torch

        actor = model.actor
        arrays: dict[str, np.ndarray] = {}
        linears = [m for m in actor.latent_pi if isinstance(m, torch.nn.Linear)]
        if not all(isinstance(m, torch.nn.ReLU | torch.nn.Linear) for m in actor.latent_pi):
            raise SsmrlError("only ReLU MLP actors can be exported")
        for i, layer in enumerate(linears):
            arrays[f"w{i}"] = layer.weight.detach().cpu().numpy().astype(np.float32)
            arrays[f"b{i}"] = layer.bias.detach().cpu().numpy().astype(np.float32)
        arrays["w_mu"] = actor.mu.weight.detach().cpu().numpy().astype(np.float32)
        arrays["b_mu"] = actor.mu.bias.detach().cpu().numpy().astype(np.float32)
        # A gSDE actor has no log-std head (its noise is state-dependent): mean actions only.
        if isinstance(actor.log_std, torch.nn.Linear):
            arrays["w_log_std"] = actor.log_std.weight.detach().cpu().numpy().astype(np.float32)
            arrays["b_log_std"] = actor.log_std.bias.detach().cpu().numpy().astype(np.float32)
        arrays["low"] = model.action_space.low.astype(np.float32)
        arrays["high"] = model.action_space.high.astype(np.float32)
        return cls(arrays, meta)

    def to_bytes(self) -> bytes:
        arrays = {f"w{i}": w for i, (w, _) in enumerate(self.hidden)}
        arrays |= {f"b{i}": b for i, (_, b) in enumerate(self.hidden)}
        arrays |= {"w_mu": self.mu[0], "b_mu": self.mu[1], "low": self.low, "high": self.high}
        if self.log_std is not None:
            arrays |= {"w_log_std": self.log_std[0], "b_log_std": self.log_std[1]}
        arrays["meta"] = np.asarray(json.dumps(self.meta, sort_keys=True))
        return npz_bytes(**arrays)

    @classmethod
    def load(cls, path: Path) -> ActorPolicy:
        """Read a checkpoint written by :meth:`to_bytes`; a bad file is an ``SsmrlError``."""
        path = Path(path)
        if not path.is_file():
            raise SsmrlError(f"policy checkpoint {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            meta = json.loads(str(arrays.pop("meta")))
            return cls(arrays, meta)
        except Exception as error:
            raise SsmrlError(
                f"policy checkpoint {path} is corrupt or truncated ({error})"
            ) from error


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            row[key] = float(row.get(key) or "nan")  # e.g. cpu_seconds, sampled_*: came later
    return rows


def _write_evaluations(policy_dir: Path, rows: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=EVAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in EVAL_COLUMNS})
    atomic_write_bytes(Path(policy_dir) / "evaluations.csv", text.getvalue().encode())


def _csv_value(value: Any) -> Any:
    """NaN (a column an older row lacks) is written as an empty field."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else value


def has_sampled_evaluations(rows: list[dict[str, Any]]) -> bool:
    """Whether every evaluation also scored sampled actions (trainings since that existed)."""
    return bool(rows) and all(
        np.isfinite(row.get(f"{SAMPLED_PREFIX}normalized_mean", np.nan)) for row in rows
    )


def evaluate_policy_returns(
    act: Any, gym_id: str, episodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of ``episodes`` episodes of ``act`` (obs -> action), seeded."""
    env = gym.make(gym_id, disable_env_checker=True)
    returns, lengths = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    env.close()
    return np.asarray(returns), np.asarray(lengths)


# --------------------------------------------------------------------------------------------
# Training with periodic evaluation, checkpoints and a resumable state
# --------------------------------------------------------------------------------------------


def _state_paths(policy_dir: Path, step: int) -> tuple[Path, Path]:
    state = policy_dir / "state"
    return state / f"model-{step:08d}.zip", state / f"replay-{step:08d}.pkl"


def _save_state(model: Any, policy_dir: Path, wall_seconds: float, cpu_seconds: float) -> None:
    """Save model and replay buffer under names carrying the step, then point to them.

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
    tmp_replay = replay_path.with_name(f".{replay_path.name}.tmp")
    with open(tmp_replay, "wb") as handle:
        pickle.dump(model.replay_buffer, handle, protocol=pickle.HIGHEST_PROTOCOL)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp_replay, replay_path)
    atomic_write_json(
        policy_dir / "state" / "state.json",
        {"step": step, "model": model_path.name, "replay": replay_path.name,
         "wall_seconds": wall_seconds, "cpu_seconds": cpu_seconds},
    )
    for old in policy_dir.joinpath("state").glob("*-*.*"):
        if old.name not in (model_path.name, replay_path.name):
            old.unlink(missing_ok=True)


def read_state(policy_dir: Path) -> dict[str, Any] | None:
    """The saved training state's description (``step``, file names), or None."""
    path = Path(policy_dir) / "state" / "state.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def load_replay_buffer(policy_dir: Path) -> Any:
    """The replay buffer of the saved training state."""
    state = read_state(policy_dir)
    if state is None:
        raise SsmrlError(f"{policy_dir} holds no training state (state/state.json)")
    path = Path(policy_dir) / "state" / state["replay"]
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception as error:
        raise SsmrlError(f"replay buffer {path} is missing or corrupt ({error})") from error


def _training_record(config: TrainConfig) -> dict[str, Any]:
    import stable_baselines3

    record = {"config": asdict(config), "stable_baselines3": stable_baselines3.__version__}
    try:
        import sb3_contrib

        record["sb3_contrib"] = sb3_contrib.__version__
    except ImportError:  # pragma: no cover
        pass
    record["gymnasium"] = gym.__version__
    import mujoco

    record["mujoco"] = mujoco.__version__
    return record


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
    import torch

    algorithm = algorithm or ALGORITHMS[task.name]
    policy_dir = Path(policy_dir) if policy_dir is not None else policies_root() / task.name
    if total_steps <= 0 or eval_every <= 0 or eval_episodes <= 0:
        raise SsmrlError("steps, eval-every and eval-episodes must be positive")
    if sampled_eval_episodes < 0:
        raise SsmrlError("sampled-eval-episodes must be 0 (none) or positive")
    config = TrainConfig(
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

    cls = _algorithm_class(algorithm)
    env = gym.make(task.gym_id, disable_env_checker=True)
    state = read_state(policy_dir)
    if state is not None:
        model_path = policy_dir / "state" / state["model"]
        model = cls.load(model_path, env=env, device="cpu")
        model.replay_buffer = load_replay_buffer(policy_dir)
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
    _write_evaluations(policy_dir, rows)
    remaining = total_steps - int(model.num_timesteps)
    if remaining <= 0:
        log(f"{task.gym_id}: already trained for {model.num_timesteps} steps")
        return policy_dir
    torch.manual_seed(seed + int(model.num_timesteps))
    callback = _EvalCallback(
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


class _EvalCallback:
    """SB3 callback (built lazily to import SB3 only when training): evaluate, save, log."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        task, config, policy_dir, rows, (wall_offset, cpu_offset), log, total_steps = args
        eval_cpu_offset = float(rows[-1].get("eval_cpu_seconds", 0.0)) if rows else 0.0
        if not np.isfinite(eval_cpu_offset):  # rows written before the column existed
            eval_cpu_offset = 0.0

        class EvalCallback(BaseCallback):
            def _on_training_start(self) -> None:
                self.started = time.monotonic()
                self.cpu_started = time.process_time()
                # On a terminal only (disable=None): logs and notebooks get the eval lines.
                self.bar = tqdm(total=total_steps, initial=self.num_timesteps,
                                desc=config.gym_id, unit="step", disable=None)

            def _on_training_end(self) -> None:
                self.bar.close()

            def _on_step(self) -> bool:
                self.bar.update()
                step = self.num_timesteps
                if step % config.eval_every != 0:
                    return True
                wall = wall_offset + time.monotonic() - self.started
                cpu = cpu_offset + time.process_time() - self.cpu_started
                model = self.model

                def act(obs: np.ndarray) -> np.ndarray:
                    return model.predict(obs, deterministic=True)[0]

                eval_started = time.process_time()
                returns, lengths = evaluate_policy_returns(
                    act, config.gym_id, config.eval_episodes, seed=1_000_000 + step
                )
                row = {"step": step} | _summary(task, returns, lengths)
                actor = ActorPolicy.from_model(model, {})
                if config.sampled_eval_episodes:
                    # The exported actor, sampling: exactly the actions a dataset gets.
                    sampler = actor.sampler(np.random.default_rng(SAMPLED_EVAL_SEED + step))
                    sampled = evaluate_policy_returns(
                        lambda obs: sampler(obs[None])[0], config.gym_id,
                        config.sampled_eval_episodes, seed=SAMPLED_EVAL_SEED + step,
                    )
                    row |= {f"{SAMPLED_PREFIX}{key}": value
                            for key, value in _summary(task, *sampled).items()}
                self.eval_cpu = getattr(self, "eval_cpu", eval_cpu_offset) + (
                    time.process_time() - eval_started)
                row |= {
                    "wall_seconds": round(wall, 1),
                    "cpu_seconds": round(cpu, 1),
                    "eval_cpu_seconds": round(self.eval_cpu, 1),
                    "checkpoint": f"checkpoints/step_{step:08d}.npz",
                }
                actor.meta = {
                    "gym_id": config.gym_id,
                    "algorithm": config.algorithm,
                    "seed": config.seed,
                    "step": step,
                    "evaluation": {key: row[key] for key in _EVALUATION_KEYS if key in row},
                }
                atomic_write_bytes(policy_dir / row["checkpoint"], actor.to_bytes())
                self.pending = (row, wall, cpu)
                return True

            def _on_rollout_end(self) -> None:
                # SB3 calls on_step before it stores the step's transition and on_rollout_end
                # (after every step here) once it is stored, before the next gradient step:
                # the state saved here holds exactly `step` transitions and the evaluated
                # weights.
                if getattr(self, "pending", None) is None:
                    return
                row, wall, cpu = self.pending
                self.pending = None
                _save_state(self.model, policy_dir, wall, cpu)
                rows.append(row)
                _write_evaluations(policy_dir, rows)
                sampled = (
                    f", sampled {row[SAMPLED_PREFIX + 'normalized_mean']:.1f} "
                    f"± {row[SAMPLED_PREFIX + 'normalized_std']:.1f}"
                    if config.sampled_eval_episodes else ""
                )
                log(
                    f"{config.gym_id} step {row['step']}: return {row['mean_return']:.1f} "
                    f"± {row['std_return']:.1f}, normalized {row['normalized_mean']:.1f}"
                    f"{sampled} ({wall:.0f} s, CPU {cpu:.0f} s, evaluations "
                    f"{row['eval_cpu_seconds']:.0f} s)"
                )

        return EvalCallback()
