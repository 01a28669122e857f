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
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssmrl_lib.device import default_device
from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.evaluate.trials import per_trial_mean, trial_returns
from ssmrl_lib.meta_envs import ProjectedStatelessCartPole
from ssmrl_lib.models.actor_critic import NetworkConfig
from ssmrl_lib.models.memory import CORES
from ssmrl_lib.profiles import (
    POSITIVE,
    PPO_ALLOWED,
    PPO_ROLLOUT_MEMORY,
    allowed,
    resolve,
)
from ssmrl_lib.provenance import git_commit, hardware, library_versions
from ssmrl_lib.runs import RunDir, RunSpec, finite_or_none, wall_time_fields
from ssmrl_lib.train.ppo import PPOConfig, mmer_summary, train_ppo

EXPERIMENT = "meta_rl_cartpole"
MODELS = CORES
PAPER_MODELS = ("s5", "s5_noreset", "gru", "mlp")
PAPER_TRIALS = 16
PAPER_TRIAL_LENGTH = 200
PAPER_EVAL_TRIALS = 32
EVAL_SEED_OFFSET = 1_000_000  # evaluation seeds: none of them seeds a training environment


@allowed(
    num_trials=POSITIVE, trial_length=POSITIVE, eval_trials=POSITIVE, eval_episodes=POSITIVE,
    **PPO_ALLOWED, memory=(PPO_ROLLOUT_MEMORY,),
)
@dataclass(frozen=True)
class MetaCartPoleSettings:
    """A notebook's knobs; defaults are the paper's (§4.3 and Table 3), see ``PROFILES``."""

    models: tuple = PAPER_MODELS
    seeds: int = 4
    num_trials: int = PAPER_TRIALS
    trial_length: int = PAPER_TRIAL_LENGTH
    eval_trials: int = PAPER_EVAL_TRIALS
    eval_episodes: int = 32
    total_steps: int = 15_000_000
    num_envs: int = 64
    unroll: int = 1024
    epochs: int = 30
    minibatches: int = 8
    learning_rate: float = 5e-5
    gamma: float = 0.99
    gae_lambda: float = 1.0
    clip: float = 0.2
    entropy_coef: float = 0.0
    value_coef: float = 1.0
    max_grad_norm: float = 0.5
    encoder: tuple = (128, 256)
    hidden: int = 256
    heads: tuple = (128, 128)
    s5_layers: int = 4
    s5_state: int = 256
    scan_backend: str = "associative"
    s5_block: str = "authors"  # S5's residual block: authors (Lu et al.'s) | prenorm
    checkpoint_every: int = 10


PROFILES = {
    "smoke": MetaCartPoleSettings(
        models=("s5", "gru"),
        seeds=1,
        num_trials=2,
        trial_length=8,
        eval_trials=32,
        eval_episodes=2,
        total_steps=128,
        num_envs=2,
        unroll=32,
        epochs=1,
        minibatches=1,
        learning_rate=1e-3,
        encoder=(16, 16),
        hidden=16,
        heads=(16,),
        s5_layers=1,
        s5_state=8,
        s5_block="prenorm",  # the block these profiles' recorded runs used
        checkpoint_every=2,
    ),
    # About 4 CPU-minutes (measured on the book's 2-core machine, 1 torch thread, under load):
    # 98,304 steps took S5 32 s and the GRU 41 s including evaluation, S5 without resets about
    # as long as S5, the MLP about 15 s; 8 runs. Four trials per episode instead of 16
    # keep episodes short enough for 24 updates; evaluation still runs to the paper's 32 trials
    # (8 times the training horizon, a few seconds per run).
    "quick": MetaCartPoleSettings(
        seeds=2,
        num_trials=4,
        eval_trials=32,
        eval_episodes=16,
        total_steps=98_304,
        num_envs=16,
        unroll=256,
        epochs=4,
        minibatches=4,
        learning_rate=2e-3,
        gae_lambda=0.95,
        encoder=(64, 64),
        hidden=64,
        heads=(64, 64),
        s5_layers=2,
        s5_state=64,
        s5_block="prenorm",  # the block these profiles' recorded runs used
        checkpoint_every=4,
    ),
    "full": MetaCartPoleSettings(),
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
    for model in settings.models:
        check_choice("model", model, MODELS)
    if settings.eval_trials <= settings.num_trials:
        raise SsmrlError(
            f"eval_trials ({settings.eval_trials}) must exceed num_trials "
            f"({settings.num_trials}): evaluation looks past the training horizon"
        )
    PPOConfig.from_settings(settings).check()
    return settings


def grid(settings: MetaCartPoleSettings) -> list[RunSpec]:
    """One run per (model, seed)."""
    ppo = PPOConfig.from_settings(settings)
    specs = []
    for model in settings.models:
        network = NetworkConfig.from_settings(settings, model)
        for seed in range(settings.seeds):
            config = MetaCartPoleRunConfig(
                model,
                seed,
                settings.num_trials,
                settings.trial_length,
                settings.eval_trials,
                settings.eval_episodes,
                network,
                ppo,
            )
            specs.append(RunSpec(EXPERIMENT, config, run_meta_cartpole))
    return specs


def run_meta_cartpole(config: MetaCartPoleRunConfig, run: RunDir) -> dict[str, Any]:
    """Train one model with one seed, then play ``eval_trials`` trials on unseen projections."""
    run.start_clock()
    device = default_device()
    agent, history = train_ppo(
        lambda: ProjectedStatelessCartPole(config.num_trials, config.trial_length),
        config.network,
        config.ppo,
        config.seed,
        run,
        device,
        summarize=mmer_summary,
    )
    train_time = history.wall_time_s[-1]
    eval_started = time.perf_counter()
    envs = [
        ProjectedStatelessCartPole(config.eval_trials, config.trial_length)
        for _ in range(config.eval_episodes)
    ]
    seeds = [EVAL_SEED_OFFSET + 10_000 * config.seed + i for i in range(config.eval_episodes)]
    mean, std = per_trial_mean(trial_returns(agent, envs, seeds, device))
    evaluation = {
        "trials": config.eval_trials,
        "episodes": config.eval_episodes,
        "mean_return_per_trial": mean,
        "std_return_per_trial": std,
    }
    return {
        "config": dataclasses.asdict(config),
        "parameters": sum(p.numel() for p in agent.parameters() if p.requires_grad),
        "curve": {
            "steps": history.steps,
            "mean_return": finite_or_none(history.mean_return),
            "episodes": history.episodes,
            "wall_time_s": history.wall_time_s,
        },
        "mmer": history.mmer if np.isfinite(history.mmer) else None,
        "evaluation": evaluation,
        "final_losses": history.losses[-1],
        "train_time_s": train_time,
        "eval_time_s": time.perf_counter() - eval_started,
        "env_steps_per_s": history.steps[-1] / train_time,
        # The evaluation is made at the stop only: it joins the last milestone's record.
        "milestones": [*history.milestones[:-1],
                       {**history.milestones[-1], "evaluation": evaluation}],
        **wall_time_fields(run),
        "device": device.type,
        "commit": git_commit(),
        "hardware": hardware(),
        "versions": library_versions("popgym"),
    }
