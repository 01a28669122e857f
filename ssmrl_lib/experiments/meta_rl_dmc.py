"""Meta-RL 2 of Lu et al. (2023), §4.3 and Algorithm 1: one agent for randomly projected DMControl.

Every episode samples a training task and random orthogonal maps of its observation (to 12
dims) and of a 2-d action (into its action space); the previous reward and a trial-done flag
are appended to the observation (``ssmrl_lib.meta_envs.DMControlProjectionTask``). The agent
must infer task and projections from experience within the episode. After training it plays
every training task and every held-out task (never seen in training) on fresh projections.

The paper trained with Muesli on 64 TPUv3 for 2e9 frames (S5: 10 layers of 256, LSTM: 512).
Muesli is not available here; this replication uses the library's recurrent PPO with the
POPGym PPO settings of the paper's Table 3 (GAE λ 0.95 for the 1000-step episodes), which is a
different learner, so its numbers test the architectures' ranking rather than the paper's
exact returns. The ``full`` profile's 1e8 steps are 5% of the paper's frames.

The paper gives no number of trials per task; its reported returns are on dm_control's
1000-step scale, so the ``full`` profile plays one 1000-step trial per episode. With one trial
the done flag in the observation is always 0; it carries information when ``num_trials > 1``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ssmrl_lib.evaluate.trials import EVAL_SEED_OFFSET, trial_returns
from ssmrl_lib.experiments.popgym_ppo import (
    AUTHORS_HEAD_GAIN,
    QUICK_NETWORK,
    RECURRENT_PPO_ALLOWED,
    SMOKE_NETWORK,
    run_recurrent_ppo,
)
from ssmrl_lib.meta_envs import DMC_STEP_LIMIT, HELDOUT_TASKS, TRAIN_TASKS, DMControlProjectionTask
from ssmrl_lib.models.actor_critic import NetworkConfig
from ssmrl_lib.models.memory import CORES
from ssmrl_lib.profiles import (
    POSITIVE,
    PPO_ROLLOUT_MEMORY,
    allowed,
    one_of,
    quick_ppo,
    resolve,
    smoke_ppo,
)
from ssmrl_lib.runs import RunDir, RunSpec
from ssmrl_lib.train.ppo import PPOConfig

EXPERIMENT = "meta_rl_dmc"
MODELS = CORES
PAPER_MODELS = ("s5", "lstm", "mlp")


@allowed(
    train_tasks=one_of("training task", TRAIN_TASKS),
    heldout_tasks=one_of("held-out task", HELDOUT_TASKS, non_empty=False),
    num_trials=POSITIVE, trial_length=POSITIVE, eval_episodes=POSITIVE, lstm_hidden=POSITIVE,
    **RECURRENT_PPO_ALLOWED, memory=(PPO_ROLLOUT_MEMORY,),
    fixed=("network.core",),
)
@dataclass(frozen=True)
class MetaDMCSettings:
    """A notebook's knobs; defaults are paper scale with PPO in place of Muesli (see above)."""

    models: tuple = PAPER_MODELS  # each run's ``network.core``
    seeds: int = 3  # the paper does not say how many
    train_tasks: tuple = TRAIN_TASKS
    heldout_tasks: tuple = HELDOUT_TASKS
    num_trials: int = 1
    trial_length: int = DMC_STEP_LIMIT
    eval_episodes: int = 16  # per task
    # Table 3's POPGym PPO with GAE λ 0.95 for the 1000-step episodes.
    ppo: PPOConfig = PPOConfig(total_steps=100_000_000, gae_lambda=0.95)
    # The paper's S5 is 10 layers of 256; ``network.hidden`` is also the MLP's width.
    network: NetworkConfig = NetworkConfig(s5_layers=10, head_gain=AUTHORS_HEAD_GAIN)
    lstm_hidden: int = 512  # the LSTM's width, in place of ``network.hidden``


PAPER = MetaDMCSettings()
PROFILES = {
    "smoke": dataclasses.replace(
        PAPER,
        models=("s5", "mlp"),
        seeds=1,
        train_tasks=("point_mass_easy", "reacher_easy"),
        heldout_tasks=("point_mass_hard",),
        trial_length=16,
        eval_episodes=1,
        ppo=smoke_ppo(PAPER.ppo, total_steps=64, num_envs=2, unroll=32),
        network=SMOKE_NETWORK,
        lstm_hidden=16,
    ),
    # About 5 CPU-minutes (measured on the book's 2-core machine, 1 torch thread, under load):
    # about 1,000 steps/s for S5, LSTM and MLP alike (dm_control's physics dominates, loading
    # a task takes 0.1 s), 81,920 steps ≈ 80 s per run plus ≈ 10 s to evaluate 11 tasks × 4
    # episodes; 3 runs. Trials of 250 steps instead of dm_control's 1000.
    "quick": dataclasses.replace(
        PAPER,
        seeds=1,
        trial_length=250,
        eval_episodes=4,
        ppo=quick_ppo(PAPER.ppo, total_steps=81_920, num_envs=8, unroll=256,
                      learning_rate=1e-3),
        network=QUICK_NETWORK,
        lstm_hidden=128,
    ),
    "full": PAPER,
}


@dataclass(frozen=True)
class MetaDMCRunConfig:
    """Everything that determines one run's numbers (hashed as the run's cache key)."""

    model: str
    seed: int
    train_tasks: tuple
    heldout_tasks: tuple
    num_trials: int
    trial_length: int
    eval_episodes: int
    network: NetworkConfig
    ppo: PPOConfig


def settings_for(profile: str, **overrides: Any) -> MetaDMCSettings:
    """Resolve a profile and overrides, each checked as ``MetaDMCSettings`` declares: training
    tasks come from the paper's training split and held-out tasks from its held-out split, so
    no held-out task can ever be trained on."""
    return resolve(PROFILES, profile, **overrides)


def grid(settings: MetaDMCSettings) -> list[RunSpec]:
    """One run per (model, seed)."""
    specs = []
    for model in settings.models:
        hidden = settings.lstm_hidden if model == "lstm" else settings.network.hidden
        network = dataclasses.replace(settings.network, core=model, hidden=hidden)
        for seed in range(settings.seeds):
            config = MetaDMCRunConfig(
                model,
                seed,
                tuple(settings.train_tasks),
                tuple(settings.heldout_tasks),
                settings.num_trials,
                settings.trial_length,
                settings.eval_episodes,
                network,
                settings.ppo,
            )
            specs.append(RunSpec(EXPERIMENT, config, run_meta_dmc))
    return specs


def evaluate_tasks(
    agent: torch.nn.Module, config: MetaDMCRunConfig, device: torch.device
) -> dict[str, dict[str, Any]]:
    """Per task (training and held-out): mean return per trial over fresh projections."""
    tasks = [(task, "train") for task in config.train_tasks]
    tasks += [(task, "held-out") for task in config.heldout_tasks]
    envs, seeds = [], []
    for index, (task, _) in enumerate(tasks):
        for episode in range(config.eval_episodes):
            envs.append(DMControlProjectionTask((task,), config.num_trials, config.trial_length))
            seeds.append(EVAL_SEED_OFFSET + 10_000 * config.seed + 100 * index + episode)
    episodes = trial_returns(agent, envs, seeds, device)
    evaluation = {}
    for task, split in tasks:
        returns = np.array([e["trial_returns"] for e in episodes if e["task"] == task])
        per_episode = returns.mean(axis=1)  # mean over the episode's trials
        evaluation[task] = {
            "split": split,
            "mean_return": float(per_episode.mean()),
            "std_return": float(per_episode.std()),
            "episodes": len(per_episode),
            "mean_return_per_trial": returns.mean(axis=0).tolist(),
        }
    return evaluation


def run_meta_dmc(config: MetaDMCRunConfig, run: RunDir) -> dict[str, Any]:
    """Train one model with one seed on the training tasks, then evaluate every task."""
    return run_recurrent_ppo(
        config, run,
        lambda: DMControlProjectionTask(config.train_tasks, config.num_trials, config.trial_length),
        lambda agent, device: evaluate_tasks(agent, config, device), libraries=("dm_control",))
