"""Recurrent PPO on POPGym (Morad et al. 2023): resettable S5 against GRU, LSTM and an MLP.

Replicates Lu et al. (2023), Table 5 / Figure 3: MMER (the max over training of the mean
episodic return per update) on the Hard variants of the stateless ("PositionOnly") CartPole and
Pendulum, their noisy versions, and RepeatPrevious. Environments are the ``popgym`` package's
own classes behind popgym's own wrappers: ``PreviousAction`` appends the previous action,
``Antialias`` a first-step flag (the null action at the first step is action 0, so the flag
tells it apart from a real 0), ``Flatten`` turns the result into one vector with discrete parts
one-hot. POPGym scales rewards so that every episode's return
lies in ``[-1, 1]`` (CartPole ``[0, 1]``: ``1/max_len`` per step survived).

``PopgymSettings`` is what a notebook's ``profile`` and overrides resolve to; ``grid`` turns it
into one ``PopgymRunConfig`` per (environment, model, seed); ``run_ppo`` trains one of them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ssmrl_lib.device import default_device
from ssmrl_lib.errors import check_choice
from ssmrl_lib.models.actor_critic import CLEANRL_GAIN, ActorCritic, NetworkConfig
from ssmrl_lib.models.memory import CORES
from ssmrl_lib.profiles import (
    PPO_ALLOWED,
    PPO_ROLLOUT_MEMORY,
    allowed,
    one_of,
    quick_ppo,
    resolve,
    smoke_ppo,
)
from ssmrl_lib.runs import RunDir, RunSpec, finite_or_none
from ssmrl_lib.runs.record import run_record, with_final_record
from ssmrl_lib.train.ppo import PPOConfig, PPOHistory, mmer_summary, train_ppo

EXPERIMENT = "popgym_ppo"

# The task families of Lu et al.'s Table 5; the paper's "Stateless" is popgym's "PositionOnly".
FAMILIES = (
    "PositionOnlyCartPole",
    "NoisyPositionOnlyCartPole",
    "PositionOnlyPendulum",
    "NoisyPositionOnlyPendulum",
    "RepeatPrevious",
)
# popjaxrl's actor and critic hidden layers (orthogonal(2), its ActorCriticS5 and ActorCriticRNN).
AUTHORS_HEAD_GAIN = 2.0
PAPER_TASKS = tuple(f"{family}Hard" for family in FAMILIES)
TASKS = tuple(f"{family}{level}" for family in FAMILIES for level in ("Easy", "Medium", "Hard"))
MODELS = CORES  # s5 (with ⊕ resets), s5_noreset, gru, lstm, mlp
PAPER_TOTAL_STEPS = 15_000_000
# Milestones at 1/64, 1/32, ..., 1/2 and all of the paper's 15M steps (rounded down to whole
# updates of 65,536 steps when a run records them).
PAPER_MILESTONES = tuple(PAPER_TOTAL_STEPS // 2**k for k in range(6, -1, -1))


def make_env(task: str) -> gym.Env:
    """The popgym environment ``task`` with the previous action and first-step flag appended."""
    check_choice("environment", task, TASKS)
    import popgym.envs
    from popgym import wrappers

    env = getattr(popgym.envs, task)()
    return wrappers.Flatten(wrappers.Antialias(wrappers.PreviousAction(env)))


# The knobs of every recurrent-PPO settings class here (POPGym, meta-RL): models are memory cores.
RECURRENT_PPO_ALLOWED = PPO_ALLOWED | {"models": one_of("model", MODELS)}


@allowed(envs=one_of("environment", TASKS), **RECURRENT_PPO_ALLOWED,
         memory=(PPO_ROLLOUT_MEMORY,), fixed=("network.core",))
@dataclass(frozen=True)
class PopgymSettings:
    """A notebook's knobs; defaults are the paper's (Table 3), see ``PROFILES``."""

    envs: tuple = PAPER_TASKS
    models: tuple = MODELS  # each run's ``network.core``
    seeds: int = 8
    # ``ppo.milestones``: environment steps at which a run records a summary.
    ppo: PPOConfig = PPOConfig()
    network: NetworkConfig = NetworkConfig(head_gain=AUTHORS_HEAD_GAIN)


PAPER = PopgymSettings()
# The small networks of the smoke and quick profiles (the meta-RL experiments use them too),
# with the pre-norm S5 block and CleanRL's head gain their recorded runs used.
SMOKE_NETWORK = dataclasses.replace(
    PAPER.network, encoder=(16, 16), hidden=16, heads=(16,), s5_layers=1, s5_state=8,
    s5_block="prenorm", head_gain=CLEANRL_GAIN,
)
QUICK_NETWORK = dataclasses.replace(
    PAPER.network, encoder=(64, 64), hidden=64, heads=(64, 64), s5_layers=2, s5_state=64,
    s5_block="prenorm", head_gain=CLEANRL_GAIN,
)

PROFILES = {
    "smoke": dataclasses.replace(
        PAPER,
        envs=("PositionOnlyCartPoleHard",),
        models=("s5", "gru"),
        seeds=1,
        ppo=smoke_ppo(PAPER.ppo, total_steps=256, num_envs=1, unroll=64),
        network=SMOKE_NETWORK,
    ),
    # About 10 CPU-minutes (measured, 1 torch thread): 30 runs of 32 updates of 2,048 steps.
    # RepeatPreviousEasy (recall the card 4 steps back) stands in for RepeatPreviousHard (64
    # back), which no model learns in this budget; the learning rate is raised to match it.
    "quick": dataclasses.replace(
        PAPER,
        envs=("PositionOnlyCartPoleHard", "PositionOnlyPendulumHard", "RepeatPreviousEasy"),
        seeds=2,
        ppo=quick_ppo(PAPER.ppo, total_steps=65_536, num_envs=16, unroll=128,
                      learning_rate=2e-3, gae_lambda=0.95),
        network=QUICK_NETWORK,
    ),
    "full": dataclasses.replace(
        PAPER, ppo=dataclasses.replace(PAPER.ppo, milestones=PAPER_MILESTONES)
    ),
}


@dataclass(frozen=True)
class PopgymRunConfig:
    """Everything that determines one run's numbers (hashed as the run's cache key)."""

    env: str
    model: str
    seed: int
    network: NetworkConfig
    ppo: PPOConfig


def settings_for(profile: str, **overrides: Any) -> PopgymSettings:
    """Resolve a profile and overrides (dotted names: ``ppo.learning_rate``), each checked as
    ``PopgymSettings`` declares."""
    return resolve(PROFILES, profile, **overrides)


def grid(settings: PopgymSettings) -> list[RunSpec]:
    """One run per (environment, model, seed)."""
    specs = []
    for env in settings.envs:
        for model in settings.models:
            network = dataclasses.replace(settings.network, core=model)
            for seed in range(settings.seeds):
                config = PopgymRunConfig(env, model, seed, network, settings.ppo)
                specs.append(RunSpec(EXPERIMENT, config, run_ppo))
    return specs


def mmer_measures(history: PPOHistory) -> dict[str, Any]:
    """What a POPGym-style run measured (the meta-RL runs too): its learning curve, MMER, last
    losses and training speed."""
    train_time = history.wall_time_s[-1]
    return {
        "curve": {
            "steps": history.steps,
            "mean_return": finite_or_none(history.mean_return),
            "episodes": history.episodes,
            "wall_time_s": history.wall_time_s,
        },
        "mmer": history.mmer if np.isfinite(history.mmer) else None,
        "final_losses": history.losses[-1],
        "train_time_s": train_time,
        "env_steps_per_s": history.steps[-1] / train_time,
    }


def run_ppo(config: PopgymRunConfig, run: RunDir) -> dict[str, Any]:
    """Train one model on one environment with one seed; the curve and MMER of the run."""
    return run_recurrent_ppo(config, run, lambda: make_env(config.env), libraries=("popgym",))


def run_recurrent_ppo(
    config: Any,
    run: RunDir,
    make_env: Callable[[], gym.Env],
    evaluate: Callable[[ActorCritic, Any], dict[str, Any]] | None = None,
    libraries: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Train ``config``'s network (its ``network``, ``ppo`` and ``seed``) with PPO on
    ``make_env``'s environments and record its curve and MMER. ``evaluate(agent, device)``, if
    given, then plays the trained agent (the meta-RL runs: on unseen projections or tasks); its
    result is recorded, also as the last milestone's."""
    run.start_clock()
    device = default_device()
    agent, history = train_ppo(make_env, config.network, config.ppo, config.seed, run, device,
                               summarize=mmer_summary)
    measured = {**mmer_measures(history), "milestones": history.milestones}
    if evaluate is not None:
        eval_started = time.perf_counter()
        evaluation = evaluate(agent, device)
        measured |= {
            "evaluation": evaluation,
            "eval_time_s": time.perf_counter() - eval_started,
            "milestones": with_final_record(history.milestones, evaluation=evaluation),
        }
    return run_record(config, run, agent, device, measured, libraries=libraries)
