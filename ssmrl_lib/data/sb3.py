"""stable-baselines3: the algorithm classes by name, and a saved model as a collection policy.

SB3 (and torch) are imported only when a class is asked for, so reading datasets, recipes and
evaluation logs never pays for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym

from ssmrl_lib.data.collect import BatchPolicy
from ssmrl_lib.errors import SsmrlError

# The algorithm Minari used for each task's datasets, and so for our behavior policies.
ALGORITHMS: dict[str, str] = {"hopper": "SAC", "walker2d": "SAC", "halfcheetah": "TQC"}
# Where each algorithm lives: stable-baselines3, or sb3-contrib for TQC.
_PACKAGES = {"SAC": "stable_baselines3", "TD3": "stable_baselines3", "PPO": "stable_baselines3",
             "DDPG": "stable_baselines3", "TQC": "sb3_contrib"}


def algorithm_class(name: str) -> type:
    """The SB3 (or sb3-contrib) class called ``name``, e.g. ``"SAC"``."""
    import importlib

    if name not in _PACKAGES:
        raise SsmrlError(f"unknown algorithm {name!r}; valid choices: {', '.join(_PACKAGES)}")
    try:
        return getattr(importlib.import_module(_PACKAGES[name]), name)
    except ImportError as error:  # pragma: no cover - both packages are dependencies
        raise SsmrlError(f"{name} needs {_PACKAGES[name]}: pip install "
                         f"{_PACKAGES[name].replace('_', '-')}") from error


def checkpoint_algorithm(checkpoint_data: dict[str, Any]) -> str:
    """The name of the algorithm a saved model's data comes from, told by its policy class's
    module (``stable_baselines3.sac.policies`` is SAC's)."""
    policy_module = checkpoint_data["policy_class"].__module__
    for name in _PACKAGES:
        if f".{name.lower()}." in policy_module + ".":
            return name
    raise SsmrlError(
        f"cannot tell the algorithm of a checkpoint with policy {policy_module}; "
        f"valid choices: {', '.join(_PACKAGES)}"
    )


def load_sb3_policy(checkpoint: Path, env: gym.Env) -> BatchPolicy:
    """Deterministic actions of a saved SB3 model trained on ``env``'s spaces; a missing,
    corrupt or other-environment file is an ``SsmrlError``."""
    from stable_baselines3.common.save_util import load_from_zip_file

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
    model = algorithm_class(checkpoint_algorithm(data)).load(checkpoint, device="cpu")
    return lambda obs: model.predict(obs, deterministic=True)[0]
