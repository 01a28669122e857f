"""A SAC/TQC behavior policy's actor as a small numpy checkpoint, and loading one for a task."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ssmrl_lib.data import portable
from ssmrl_lib.data.files import npz_bytes
from ssmrl_lib.envs import LocomotionTask
from ssmrl_lib.errors import SsmrlError

# SB3's clamp on the actor's log standard deviation (stable_baselines3/sac/policies.py and
# sb3_contrib/tqc/policies.py: LOG_STD_MIN, LOG_STD_MAX).
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class ActorPolicy:
    """A SAC/TQC actor: ``tanh(mu(mlp(obs)))`` rescaled to the action bounds, or a draw from
    its tanh-Gaussian.

    Stored as ``.npz`` (a zip of numpy arrays): the hidden layers' weights and biases
    (``w0, b0, w1, b1, ...``, ReLU between them), the mean head (``w_mu, b_mu``), the log-std
    head (``w_log_std, b_log_std``; a checkpoint without it, such as the committed policies',
    can only act deterministically), the action bounds and a JSON ``meta`` string (environment,
    algorithm, step, evaluation). A few hundred kB instead of SB3's few MB. Inference is
    batched and computed by :mod:`portable` arithmetic: the same actions on every CPU.

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
        # Inference runs in float64 by `portable` arithmetic (the same bits on every CPU, so
        # that a dataset is the same wherever it is built): transposed weights, converted once.
        self._layers = [_inference_weights(w, b) for w, b in self.hidden]
        self._mean_head = _inference_weights(*self.mu)
        self._log_std_head = _inference_weights(*self.log_std) if self.log_std else None

    @property
    def obs_dim(self) -> int:
        return int(self.hidden[0][0].shape[1])

    @property
    def can_sample(self) -> bool:
        """Whether the checkpoint holds the log-std head that sampling needs."""
        return self.log_std is not None

    def _latent(self, obs: np.ndarray) -> np.ndarray:
        """The last hidden layer's output ``(n, hidden)`` for observations ``(n, obs_dim)``."""
        x = np.atleast_2d(np.asarray(obs, dtype=np.float32))
        for weight_t, bias in self._layers:
            x = np.maximum(portable.linear(x, weight_t, bias), 0.0)
        return x

    def _rescale(self, squashed: np.ndarray, obs: np.ndarray) -> np.ndarray:
        actions = (self.low + 0.5 * (squashed + 1.0) * (self.high - self.low)).astype(np.float32)
        return actions if np.ndim(obs) > 1 else actions[0]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch ``(n, obs_dim)`` (or one observation ``(obs_dim,)``)."""
        mean = portable.linear(self._latent(obs), *self._mean_head)
        return self._rescale(portable.tanh(mean), obs)

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
            mean = portable.linear(latent, *self._mean_head)
            log_std = np.clip(portable.linear(latent, w_std, b_std), LOG_STD_MIN, LOG_STD_MAX)
            noise = rng.standard_normal(mean.shape)
            return self._rescale(portable.tanh(mean + portable.exp(log_std) * noise), obs)

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


def _inference_weights(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A layer's ``(out, in)`` weight as the ``(in, out)`` float64 matrix inference multiplies by,
    and its bias in float64."""
    return np.ascontiguousarray(weight.T, dtype=np.float64), bias.astype(np.float64)


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
