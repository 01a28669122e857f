"""Meta-RL 1 of Lu et al. (2023), §4.3: in-context learning of a randomly projected CartPole.

Every episode is ``num_trials`` trials of StatelessCartPole seen through a new random orthogonal
projection (``ssmrl_lib.meta_envs.ProjectedStatelessCartPole``); the agent's memory runs on
across trials, so it can work out the projection in its first trials and balance better in
later ones. PPO trains S5 (with ⊕ resets at episode starts), S5 without resets, a GRU and an MLP
with the POPGym settings of the paper's Table 3; the score is the MMER (max over training of the
mean episode return per update; the maximum is ``num_trials``). After training the agent plays
``eval_trials`` trials (the paper: 32, twice the training horizon) on projections it never saw,
which gives the return per trial index.

The paper does not state this experiment's step budget; the ``full`` profile assumes the 15M
steps of its POPGym runs (Table 3).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.evaluate.trials import EVAL_SEED_OFFSET, per_trial_mean, trial_returns
from ssmrl_lib.experiments.popgym_ppo import (
    AUTHORS_HEAD_GAIN,
    QUICK_NETWORK,
    RECURRENT_PPO_ALLOWED,
    SMOKE_NETWORK,
    run_recurrent_ppo,
)
from ssmrl_lib.meta_envs import ProjectedStatelessCartPole
from ssmrl_lib.models.actor_critic import ActorCritic, NetworkConfig
from ssmrl_lib.models.memory import CORES
from ssmrl_lib.profiles import (
    POSITIVE,
    PPO_ROLLOUT_MEMORY,
    allowed,
    quick_ppo,
    resolve,
    smoke_ppo,
)
from ssmrl_lib.runs import RunDir, RunSpec
from ssmrl_lib.train.ppo import PPOConfig

EXPERIMENT = "meta_rl_cartpole"
MODELS = CORES
PAPER_MODELS = ("s5", "s5_noreset", "gru", "mlp")
PAPER_TRIALS = 16
PAPER_TRIAL_LENGTH = 200
PAPER_EVAL_TRIALS = 32


@allowed(
    num_trials=POSITIVE, trial_length=POSITIVE, eval_trials=POSITIVE, eval_episodes=POSITIVE,
    **RECURRENT_PPO_ALLOWED, memory=(PPO_ROLLOUT_MEMORY,),
    fixed=("network.core",),
)
@dataclass(frozen=True)
class MetaCartPoleSettings:
    """A notebook's knobs; defaults are the paper's (§4.3 and Table 3), see ``PROFILES``."""

    models: tuple = PAPER_MODELS  # each run's ``network.core``
    seeds: int = 4
    num_trials: int = PAPER_TRIALS
    trial_length: int = PAPER_TRIAL_LENGTH
    eval_trials: int = PAPER_EVAL_TRIALS
    eval_episodes: int = 32
    ppo: PPOConfig = PPOConfig()  # the POPGym settings of Table 3
    network: NetworkConfig = NetworkConfig(head_gain=AUTHORS_HEAD_GAIN)


PAPER = MetaCartPoleSettings()
PROFILES = {
    "smoke": dataclasses.replace(
        PAPER,
        models=("s5", "gru"),
        seeds=1,
        num_trials=2,
        trial_length=8,
        eval_episodes=2,
        ppo=smoke_ppo(PAPER.ppo, total_steps=128, num_envs=2, unroll=32),
        network=SMOKE_NETWORK,
    ),
    # About 4 CPU-minutes (measured on the book's 2-core machine, 1 torch thread, under load):
    # 98,304 steps took S5 32 s and the GRU 41 s including evaluation, S5 without resets about
    # as long as S5, the MLP about 15 s; 8 runs. Four trials per episode instead of 16
    # keep episodes short enough for 24 updates; evaluation still runs to the paper's 32 trials
    # (8 times the training horizon, a few seconds per run).
    "quick": dataclasses.replace(
        PAPER,
        seeds=2,
        num_trials=4,
        eval_episodes=16,
        ppo=quick_ppo(PAPER.ppo, total_steps=98_304, num_envs=16, unroll=256,
                      learning_rate=2e-3, gae_lambda=0.95),
        network=QUICK_NETWORK,
    ),
    "full": PAPER,
}


@dataclass(frozen=True)
class MetaCartPoleRunConfig:
    """Everything that determines one run's numbers (hashed as the run's cache key)."""

    model: str
    seed: int
    num_trials: int
    trial_length: int
    eval_trials: int
    eval_episodes: int
    network: NetworkConfig
    ppo: PPOConfig


def settings_for(profile: str, **overrides: Any) -> MetaCartPoleSettings:
    """Resolve a profile and overrides, checking model names and the trial counts."""
    settings = resolve(PROFILES, profile, **overrides)
    if settings.eval_trials <= settings.num_trials:
        raise SsmrlError(
            f"eval_trials ({settings.eval_trials}) must exceed num_trials "
            f"({settings.num_trials}): evaluation looks past the training horizon"
        )
    return settings


def grid(settings: MetaCartPoleSettings) -> list[RunSpec]:
    """One run per (model, seed)."""
    specs = []
    for model in settings.models:
        network = dataclasses.replace(settings.network, core=model)
        for seed in range(settings.seeds):
            config = MetaCartPoleRunConfig(
                model,
                seed,
                settings.num_trials,
                settings.trial_length,
                settings.eval_trials,
                settings.eval_episodes,
                network,
                settings.ppo,
            )
            specs.append(RunSpec(EXPERIMENT, config, run_meta_cartpole))
    return specs


def run_meta_cartpole(config: MetaCartPoleRunConfig, run: RunDir) -> dict[str, Any]:
    """Train one model with one seed, then play ``eval_trials`` trials on unseen projections."""

    def evaluate(agent: ActorCritic, device: Any) -> dict[str, Any]:
        envs = [
            ProjectedStatelessCartPole(config.eval_trials, config.trial_length)
            for _ in range(config.eval_episodes)
        ]
        seeds = [EVAL_SEED_OFFSET + 10_000 * config.seed + i for i in range(config.eval_episodes)]
        mean, std = per_trial_mean(trial_returns(agent, envs, seeds, device))
        return {
            "trials": config.eval_trials,
            "episodes": config.eval_episodes,
            "mean_return_per_trial": mean,
            "std_return_per_trial": std,
        }

    return run_recurrent_ppo(
        config, run, lambda: ProjectedStatelessCartPole(config.num_trials, config.trial_length),
        evaluate, libraries=("popgym",))
