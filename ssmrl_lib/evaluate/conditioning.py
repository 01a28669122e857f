"""What a return-conditioned policy (DT, Decision Mamba) acts on besides its model: the
return it is asked for, scaled as in training, and how observations and timesteps were fed."""

from __future__ import annotations

from dataclasses import dataclass

from ssmrl_lib.data.windows import StateNormalizer


@dataclass(frozen=True)
class ReturnConditioning:
    normalizer: StateNormalizer  # the training set's state statistics
    target_return: float  # the return-to-go at an episode's first step, in the env's units
    rtg_scale: float  # returns-to-go are divided by it, as in training
    max_ep_len: int  # the model's timestep table: later timesteps are clipped below it

    @property
    def scaled_target(self) -> float:
        return self.target_return / self.rtg_scale
