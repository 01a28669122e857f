"""Pick the stable-baselines3 algorithm class a checkpoint was saved from."""

from __future__ import annotations

from typing import Any

from ssmrl_lib.errors import SsmrlError


def algorithm_class(checkpoint_data: dict[str, Any]) -> type:
    """The SB3 (or sb3-contrib) class whose policy class matches the checkpoint's."""
    import stable_baselines3 as sb3

    candidates = {"SAC": sb3.SAC, "TD3": sb3.TD3, "PPO": sb3.PPO, "DDPG": sb3.DDPG}
    try:
        import sb3_contrib

        candidates["TQC"] = sb3_contrib.TQC
    except ImportError:
        pass
    policy_module = checkpoint_data["policy_class"].__module__
    for name, cls in candidates.items():
        if f".{name.lower()}." in policy_module + ".":
            return cls
    raise SsmrlError(
        f"cannot tell the algorithm of a checkpoint with policy {policy_module}; "
        f"valid choices: {', '.join(candidates)}"
    )
