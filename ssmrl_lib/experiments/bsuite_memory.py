"""bsuite memory length (Osband et al. 2020) with A2C: how far back can S5 and an LSTM remember?

Replicates Lu et al. (2023), Table 2 / Figure 2. The environment is bsuite's ``MemoryChain``:
the first observation shows a context bit, the next ``memory_length`` steps show only a
countdown, and the last action earns +1 if it repeats the bit and -1 otherwise (random: 0).
bsuite's own ``memory_len`` sweep stops at length 100; the paper sweeps 4 … 2048, so lengths are
passed to ``MemoryChain`` directly.

A2C is the library's PPO loop with one gradient step per rollout (one epoch, one minibatch):
the ratio is then exactly 1, so the clipped objective's gradient is the policy gradient. No
advantage normalisation or value clipping; TD(λ) targets via GAE(λ). The paper's Table 2 does
not list a value-loss coefficient; we use A2C's usual 0.5.

The score of a run is the mean return of the last 10% of its training episodes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ssmrl_lib.device import default_device
from ssmrl_lib.evaluate.peak_memory import PeakMemory
from ssmrl_lib.models.actor_critic import NetworkConfig
from ssmrl_lib.profiles import (
    FRACTION,
    NON_NEGATIVE_FINITE,
    POSITIVE,
    POSITIVE_FINITE,
    POSITIVE_SIZES,
    MemoryEstimate,
    allowed,
    one_of,
    resolve,
)
from ssmrl_lib.runs import RunDir, RunSpec, finite_or_none
from ssmrl_lib.runs.record import run_record
from ssmrl_lib.train.ppo import PPOConfig, PPOHistory, train_ppo

EXPERIMENT = "bsuite_memory"
MODELS = ("s5", "lstm", "gru", "mlp")
PAPER_LENGTHS = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
FINAL_FRACTION = 0.1
PAPER_EPISODES = 10_000
PAPER_MILESTONES = (1_000, 2_500, 5_000, PAPER_EPISODES)


class MemoryChainEnv(gym.Env):
    """bsuite's ``MemoryChain`` (a ``dm_env``) as a gymnasium environment.

    The bsuite environment draws contexts from its own ``RandomState``; a seeded ``reset``
    builds a fresh one with that seed, later resets continue it.
    """

    action_space = gym.spaces.Discrete(2)

    def __init__(self, memory_length: int, num_bits: int = 1):
        self.memory_length = memory_length
        self.num_bits = num_bits
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (num_bits + 2,), np.float32)
        self._env = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._env is None or seed is not None:
            from bsuite.environments.memory_chain import MemoryChain

            self._env = MemoryChain(self.memory_length, self.num_bits, seed=seed)
        timestep = self._env.reset()
        return timestep.observation.reshape(-1), {}

    def step(self, action: int):
        timestep = self._env.step(int(action))
        return timestep.observation.reshape(-1), float(timestep.reward), timestep.last(), \
            False, {}


# Table 2's A2C (see above); TD(λ)'s λ is ``gae_lambda``.
A2C = PPOConfig(
    num_envs=1, unroll=32, epochs=1, minibatches=1, learning_rate=3e-4, gamma=0.99,
    gae_lambda=0.9, entropy_coef=0.0, value_coef=0.5, max_grad_norm=0.5,
    clip_value_loss=False, normalize_advantages=False, checkpoint_every=200,
)


@allowed(
    lengths=POSITIVE_SIZES, models=one_of("model", MODELS), seeds=POSITIVE, episodes=POSITIVE,
    **{"a2c.unroll": POSITIVE, "a2c.learning_rate": POSITIVE_FINITE, "a2c.gamma": FRACTION,
       "a2c.gae_lambda": FRACTION, "a2c.entropy_coef": NON_NEGATIVE_FINITE,
       "a2c.value_coef": NON_NEGATIVE_FINITE, "a2c.max_grad_norm": POSITIVE_FINITE,
       "a2c.checkpoint_every": POSITIVE, "network.encoder": POSITIVE_SIZES,
       "network.hidden": POSITIVE, "network.heads": POSITIVE_SIZES,
       "network.s5_layers": POSITIVE, "network.s5_state": POSITIVE},
    # a return and a length per training episode, in arrays and in result.json
    memory=(MemoryEstimate(("episodes",), "per-episode training records",
                           lambda s: 48 * s.episodes),),
    # The grid sets the step budget and milestones from ``episodes`` and ``milestones`` per
    # length, and the core from ``models``; the rest is what makes the PPO loop A2C (one
    # environment, whose episodes ``episodes`` counts; one epoch, one minibatch, so the ratio
    # is 1 and nothing is clipped).
    fixed=("a2c.total_steps", "a2c.milestones", "a2c.num_envs", "a2c.epochs", "a2c.minibatches",
           "a2c.clip", "a2c.clip_value_loss", "a2c.normalize_advantages", "network.core"),
)
@dataclass(frozen=True)
class BsuiteSettings:
    """A notebook's knobs; defaults are the paper's (Table 2), see ``PROFILES``."""

    lengths: tuple = PAPER_LENGTHS
    models: tuple = ("s5", "lstm")  # each run's ``network.core``
    seeds: int = 5
    episodes: int = PAPER_EPISODES
    milestones: tuple = ()  # training episodes at which a run records its score
    a2c: PPOConfig = A2C
    network: NetworkConfig = NetworkConfig(
        encoder=(256, 256), hidden=256, heads=(256,), s5_layers=1, s5_state=256,
        activation="relu",
    )


PAPER = BsuiteSettings()
# smoke and quick keep the pre-norm S5 block their recorded runs used.
PROFILES = {
    "smoke": dataclasses.replace(
        PAPER, lengths=(4,), seeds=1, episodes=40,
        a2c=dataclasses.replace(PAPER.a2c, unroll=8, checkpoint_every=10),
        network=dataclasses.replace(PAPER.network, encoder=(16,), hidden=16, heads=(16,),
                                    s5_state=8, s5_block="prenorm"),
    ),
    # About 6.5 CPU-minutes (1 torch thread): 16 runs, 64k steps per model and seed.
    "quick": dataclasses.replace(
        PAPER, lengths=(4, 8, 16, 32), seeds=2, episodes=1_000,
        a2c=dataclasses.replace(PAPER.a2c, learning_rate=1e-3),
        network=dataclasses.replace(PAPER.network, encoder=(64,), hidden=64, heads=(64,),
                                    s5_state=64, s5_block="prenorm"),
    ),
    "full": dataclasses.replace(PAPER, milestones=PAPER_MILESTONES),
}


@dataclass(frozen=True)
class BsuiteRunConfig:
    memory_length: int
    model: str
    seed: int
    episodes: int = field(metadata={"cache_key": "horizon"})  # where this run stops
    network: NetworkConfig
    a2c: PPOConfig
    # Training episodes at which the run records its score (``a2c.milestones`` in steps).
    milestones: tuple = field(default=(), metadata={"cache_key": "record"})


def episode_steps(episodes: int, length: int, unroll: int) -> int:
    """Steps of ``episodes`` episodes of memory length ``length`` (``length + 1`` steps each),
    rounded up to whole rollouts of ``unroll`` steps."""
    return -(-episodes * (length + 1) // unroll) * unroll


def settings_for(profile: str, **overrides: Any) -> BsuiteSettings:
    """Resolve a profile and overrides, each checked as ``BsuiteSettings`` declares."""
    return resolve(PROFILES, profile, **overrides)


def grid(settings: BsuiteSettings) -> list[RunSpec]:
    """One run per (memory length, model, seed); the step budget is ``episodes`` episodes."""
    specs = []
    for length in settings.lengths:
        milestones = tuple(settings.milestones)
        unroll = settings.a2c.unroll
        a2c = dataclasses.replace(
            settings.a2c, total_steps=episode_steps(settings.episodes, length, unroll),
            milestones=tuple(episode_steps(e, length, unroll) for e in milestones),
        )
        for model in settings.models:
            network = dataclasses.replace(settings.network, core=model)
            for seed in range(settings.seeds):
                config = BsuiteRunConfig(length, model, seed, settings.episodes, network, a2c,
                                         milestones)
                specs.append(RunSpec(EXPERIMENT, config, run_a2c))
    return specs


def final_return(history: PPOHistory, fraction: float = FINAL_FRACTION) -> float:
    """Mean return of the last ``fraction`` of all finished episodes (whole updates)."""
    total = sum(history.episodes)
    wanted = max(1, int(round(fraction * total)))
    returns, counted = 0.0, 0
    for mean, n in zip(reversed(history.mean_return), reversed(history.episodes), strict=True):
        if n == 0:
            continue
        returns += mean * n
        counted += n
        if counted >= wanted:
            break
    return returns / counted if counted else float("nan")


def summarize(history: PPOHistory) -> dict[str, Any]:
    """What a milestone records: the score so far (the last 10 % of its episodes)."""
    score = final_return(history)
    return {
        "episodes": int(sum(history.episodes)),
        "final_return": score if np.isfinite(score) else None,
        "train_time_s": history.wall_time_s[-1],
    }


def run_a2c(config: BsuiteRunConfig, run: RunDir) -> dict[str, Any]:
    """Train one model on one memory length with one seed."""
    run.start_clock()
    device = default_device()
    with PeakMemory(device) as memory:
        agent, history = train_ppo(
            lambda: MemoryChainEnv(config.memory_length), config.network, config.a2c,
            config.seed, run, device, summarize=summarize,
        )
    score = final_return(history)
    measured = {
        "curve": {
            "steps": history.steps,
            "mean_return": finite_or_none(history.mean_return),
            "episodes": history.episodes,
        },
        "final_return": score if np.isfinite(score) else None,
        "episodes_finished": sum(history.episodes),
        "train_time_s": history.wall_time_s[-1],
        "env_steps_per_s": history.steps[-1] / history.wall_time_s[-1],
        # Of this process's training (a resumed run: since the resume), see evaluate.peak_memory.
        "peak_memory": memory.as_dict(),
        "milestones": history.milestones,
    }
    return run_record(config, run, agent, device, measured, libraries=("bsuite",))
