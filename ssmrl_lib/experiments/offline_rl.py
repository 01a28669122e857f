"""Offline RL on MuJoCo locomotion with sequence models (Decision Transformer and successors).

``OfflineSettings`` is what a notebook's ``profile`` and overrides resolve to; ``grid`` turns it
into one ``OfflineRunConfig`` per (environment, seed); ``run_offline`` trains and evaluates one
of them. Everything that changes a run's numbers is in its config, so the run cache is safe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ssmrl_lib.data import DTWindowSampler, load_trajectories
from ssmrl_lib.data.local_store import check_dataset_id
from ssmrl_lib.data.make import ensure_smoke_dataset, smoke_dataset_id
from ssmrl_lib.data.windows import StateNormalizer
from ssmrl_lib.device import default_device
from ssmrl_lib.envs import MUJOCO_TASKS, get_task, normalized_score
from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.evaluate.dt_policy import ContextWindowPolicy
from ssmrl_lib.evaluate.inference_cost import rollout_cost
from ssmrl_lib.evaluate.recurrent_policy import RecurrentPolicy
from ssmrl_lib.evaluate.rollout import BatchedPolicy, rollout
from ssmrl_lib.models.decision_mamba import DecisionMamba
from ssmrl_lib.models.decision_transformer import (
    DecisionTransformer,
    SequenceModelConfig,
    count_trainable_parameters,
)
from ssmrl_lib.profiles import (
    NON_EMPTY,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_FINITE,
    MemoryEstimate,
    allowed,
    resolve,
)
from ssmrl_lib.provenance import git_commit, hardware, library_versions
from ssmrl_lib.runs import RunDir, RunSpec, wall_time_fields
from ssmrl_lib.scan import scan_provenance
from ssmrl_lib.train.offline import TrainConfig, train_offline

EXPERIMENT = "offline_rl"
MODELS = {"dt": DecisionTransformer, "mamba": DecisionMamba}
# How each model acts in rollouts; the first mode is the one used during training.
# Decision Mamba is also evaluated DT-style (re-reading the last K steps), as a wrapper around
# Hugging Face's Mamba would, to separate the backbone from the recurrent-inference change.
EVAL_MODES = {"dt": ("window",), "mamba": ("recurrent", "window")}
LOSS_CURVE_POINTS = 400
PAPER_MILESTONES = (5_000, 10_000, 20_000, 50_000, 100_000)


@allowed(
    envs=NON_EMPTY, models=NON_EMPTY, make_missing_dataset_steps=NON_NEGATIVE, seeds=POSITIVE,
    steps=POSITIVE, batch_size=POSITIVE, warmup_steps=NON_NEGATIVE,
    learning_rate=POSITIVE_FINITE, context_len=POSITIVE, hidden_size=POSITIVE, n_layer=POSITIVE,
    episodes=POSITIVE, eval_envs=POSITIVE, eval_every=POSITIVE, eval_every_episodes=POSITIVE,
    max_ep_len=POSITIVE, cost_episodes=POSITIVE, cost_envs=POSITIVE,
    memory=(
        # returns and lengths per evaluation episode, in arrays and in result.json
        MemoryEstimate(("episodes", "cost_episodes"), "per-episode evaluation records",
                       lambda s: 48 * (s.episodes + s.cost_episodes)),
        # the evaluation policy's per-slot history of states, actions and returns-to-go
        MemoryEstimate(("eval_envs", "cost_envs", "max_ep_len"), "evaluation context buffers",
                       lambda s: 4 * 25 * max(s.eval_envs, s.cost_envs) * s.max_ep_len),
    ),
)
@dataclass(frozen=True)
class OfflineSettings:
    """A notebook's knobs; see ``PROFILES`` for their values per profile."""

    envs: tuple = ("hopper", "halfcheetah", "walker2d")
    dataset: str = "ssmrl/{env}/medium-v0"  # D4RL's medium recipe, rebuilt by `make data`
    make_missing_dataset_steps: int = 0
    models: tuple = ("dt",)
    seeds: int = 3
    steps: int = 100_000
    batch_size: int = 64
    warmup_steps: int = 10_000
    learning_rate: float = 1e-4
    context_len: int = 20
    hidden_size: int = 128
    n_layer: int = 3
    episodes: int = 100
    eval_envs: int = 25
    all_targets: bool = True
    eval_every: int = 10_000
    eval_every_episodes: int = 10
    milestones: tuple = ()  # steps at which a run is fully evaluated and checkpointed
    max_ep_len: int = 1000
    cost_episodes: int = 500
    cost_envs: int = 50


PROFILES = {
    "smoke": OfflineSettings(
        envs=("hopper",),
        dataset=smoke_dataset_id("{env}"),
        make_missing_dataset_steps=1_000,
        seeds=2,
        steps=20,
        batch_size=8,
        warmup_steps=5,
        context_len=5,
        hidden_size=16,
        n_layer=1,
        episodes=2,
        eval_envs=2,
        all_targets=False,
        eval_every=10,
        eval_every_episodes=1,
        max_ep_len=50,
        cost_episodes=2,
        cost_envs=2,
    ),
    "quick": OfflineSettings(
        seeds=2,
        steps=400,
        warmup_steps=100,
        learning_rate=1e-4,
        episodes=10,
        eval_envs=10,
        all_targets=False,
        eval_every=200,
        eval_every_episodes=5,
        cost_episodes=10,
        cost_envs=10,
    ),
    # Rezaei & Patel's Table 2 averages 500 evaluation episodes per model and environment.
    # The paper's schedule (10k warmup steps, then a constant learning rate, 100k steps) with
    # milestones along it; a campaign run to one of them is a prefix of the whole run.
    "full": OfflineSettings(episodes=500, eval_envs=50, milestones=PAPER_MILESTONES),
}


@dataclass(frozen=True)
class EvalConfig:
    episodes: int
    n_envs: int
    return_targets: tuple
    every: int
    every_episodes: int
    max_ep_len: int
    rtg_scale: float = 1000.0
    # Steps at which every mode and target is evaluated with ``episodes`` episodes (the run's
    # stop always is one); they only add records, so they are not part of the run's identity.
    milestones: tuple = field(default=(), metadata={"cache_key": "record"})


@dataclass(frozen=True)
class OfflineRunConfig:
    """Everything that determines one run's numbers (hashed as the run's cache key)."""

    model_name: str
    env: str
    dataset: str
    dataset_fingerprint: str
    seed: int
    model: SequenceModelConfig
    train: TrainConfig
    eval: EvalConfig


def settings_for(profile: str, **overrides: Any) -> OfflineSettings:
    """Resolve a profile and overrides, checking environment and model names."""
    settings = resolve(PROFILES, profile, **overrides)
    for env in settings.envs:
        check_choice("environment", env, MUJOCO_TASKS)
    for model in settings.models:
        check_choice("model", model, MODELS)
    for env in settings.envs:
        try:
            ds_id = dataset_id(settings, env)
        except (KeyError, IndexError, ValueError):
            raise SsmrlError(
                f"parameter 'dataset' = {settings.dataset!r}: a dataset id with at most the "
                "placeholder {env}, e.g. mujoco/{env}/medium-v0"
            ) from None
        check_dataset_id(ds_id)
    return settings


def dataset_id(settings: OfflineSettings, env: str) -> str:
    return settings.dataset.format(env=env)


def ensure_datasets(settings: OfflineSettings) -> dict[str, str]:
    """Dataset id per environment. Smoke-style settings make a missing stand-in (random policy,
    ``ssmrl-smoke/<env>/random-v0``); any other missing id is left for loading to report."""
    ids = {env: dataset_id(settings, env) for env in settings.envs}
    if settings.make_missing_dataset_steps:
        for env, ds_id in ids.items():
            if ds_id == smoke_dataset_id(env):
                ensure_smoke_dataset(env, settings.make_missing_dataset_steps)
    return ids


def grid(settings: OfflineSettings) -> list[RunSpec]:
    """One run per (model, environment, seed)."""
    specs = []
    for env, ds_id in ensure_datasets(settings).items():
        trajectories = load_trajectories(ds_id)
        task = get_task(env)
        if trajectories.gym_id and trajectories.gym_id != task.gym_id:
            raise SsmrlError(
                f"dataset {ds_id!r} was recorded in {trajectories.gym_id}, not {task.gym_id}"
            )
        model = SequenceModelConfig(
            state_dim=trajectories.state_dim,
            act_dim=trajectories.act_dim,
            context_len=settings.context_len,
            hidden_size=settings.hidden_size,
            n_layer=settings.n_layer,
            max_ep_len=settings.max_ep_len,
        )
        train = TrainConfig(
            steps=settings.steps,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            warmup_steps=settings.warmup_steps,
        )
        targets = task.return_targets if settings.all_targets else task.return_targets[:1]
        evaluation = EvalConfig(
            episodes=settings.episodes,
            n_envs=settings.eval_envs,
            return_targets=targets,
            every=settings.eval_every,
            every_episodes=settings.eval_every_episodes,
            max_ep_len=settings.max_ep_len,
            milestones=tuple(settings.milestones),
        )
        fingerprint = trajectories.fingerprint()
        for model_name in settings.models:
            for seed in range(settings.seeds):
                config = OfflineRunConfig(
                    model_name, env, ds_id, fingerprint, seed, model, train, evaluation
                )
                specs.append(RunSpec(EXPERIMENT, config, run_offline))
    return specs


def make_policy(
    model_name: str,
    mode: str,
    model: nn.Module,
    sizes: SequenceModelConfig,
    normalizer: StateNormalizer,
    target: float,
    rtg_scale: float,
    n_slots: int,
) -> BatchedPolicy:
    """The rollout policy of ``model`` in ``mode`` (``window`` or ``recurrent``)."""
    check_choice(f"evaluation mode of {model_name}", mode, EVAL_MODES[model_name])
    if mode == "recurrent":
        return RecurrentPolicy(model, normalizer, target, rtg_scale, sizes.max_ep_len, n_slots,
                               sizes.state_dim, sizes.act_dim)
    return ContextWindowPolicy(model, normalizer, target, rtg_scale, sizes.context_len,
                               sizes.max_ep_len, n_slots, sizes.state_dim, sizes.act_dim)


def evaluate_model(
    model: nn.Module,
    config: OfflineRunConfig,
    normalizer: StateNormalizer,
    mode: str,
    target: float,
    episodes: int,
) -> dict[str, Any]:
    """Return and normalized score of ``episodes`` rollouts conditioned on ``target``."""
    task = get_task(config.env)
    policy = make_policy(config.model_name, mode, model, config.model, normalizer, target,
                         config.eval.rtg_scale, min(config.eval.n_envs, episodes))
    result = rollout(
        lambda: gym.make(task.gym_id, max_episode_steps=config.eval.max_ep_len),
        policy, episodes, config.eval.n_envs, seed=10_000 * (config.seed + 1),
        desc=f"eval {config.model_name} {mode} {config.env} target {target:g}",
    )
    scores = normalized_score(task, result.returns)
    return {
        "mode": mode,
        "target": target,
        "returns": result.returns.tolist(),
        "lengths": result.lengths.tolist(),
        "return_mean": float(result.returns.mean()),
        "return_std": float(result.returns.std()),
        "score_mean": float(scores.mean()),
        "score_std": float(scores.std()),
        "wall_time_s": result.wall_time_s,
    }


def run_offline(config: OfflineRunConfig, run: RunDir) -> dict[str, Any]:
    """Train one model on one dataset with one seed; at every milestone up to its stop (and at
    the stop), evaluate it on every mode and return target."""
    run.start_clock()
    trajectories = load_trajectories(config.dataset)
    if trajectories.fingerprint() != config.dataset_fingerprint:
        raise SsmrlError(f"dataset {config.dataset!r} changed since this run was configured")
    sampler = DTWindowSampler(
        trajectories, config.model.context_len, config.eval.rtg_scale, config.model.max_ep_len
    )
    device = default_device()
    torch.manual_seed(config.seed)
    model = MODELS[config.model_name](config.model).to(device)

    modes = EVAL_MODES[config.model_name]

    def evaluate_during_training(current: nn.Module) -> dict[str, Any]:
        target = config.eval.return_targets[0]
        summary = evaluate_model(current, config, sampler.normalizer, modes[0], target,
                                 config.eval.every_episodes)
        return {k: summary[k] for k in ("mode", "target", "return_mean", "score_mean")}

    def evaluate_at_milestone(current: nn.Module, step: int) -> dict[str, Any]:
        evaluations = [
            evaluate_model(current, config, sampler.normalizer, mode, target,
                           config.eval.episodes)
            for mode in modes
            for target in config.eval.return_targets
        ]
        return {"evaluations": evaluations, "wall_time_s": run.wall_time_s(),
                "cpu_time_s": run.cpu_time_s()}

    history = train_offline(
        model, sampler, config.train, config.seed, run,
        evaluate=evaluate_during_training, eval_every=config.eval.every,
        milestones=config.eval.milestones, at_milestone=evaluate_at_milestone,
    )
    milestones = [
        {**record, "final_loss": _final_loss(history.losses[:record["step"]])}
        for record in history.milestones
    ]
    return {
        "config": dataclasses.asdict(config),
        "parameters": count_trainable_parameters(model),
        "loss_curve": _binned_curve(history.losses),
        "final_loss": _final_loss(history.losses),
        "evaluations_during_training": history.evaluations,
        "evaluations": history.milestones[-1]["evaluations"],
        "milestones": milestones,
        "dataset_episodes": len(trajectories.rewards),
        "dataset_steps": int(trajectories.lengths.sum()),
        **wall_time_fields(run),
        "device": device.type,
        **_scan_record(model, device),
        "commit": git_commit(),
        "hardware": hardware(),
        "versions": library_versions(),
    }


def _scan_record(model: nn.Module, device: torch.device) -> dict[str, str]:
    """Which selective-scan implementation a Decision Mamba ran on (nothing for DT)."""
    if not isinstance(model, DecisionMamba):
        return {}
    return {"scan_backend": scan_provenance(model.backbone.config.scan_backend, device)}


def _final_loss(losses: list[float]) -> float:
    """Mean loss of the last 5 % of steps."""
    return float(np.mean(losses[-max(1, len(losses) // 20):]))


def _binned_curve(losses: list[float]) -> dict[str, list[float]]:
    """Per-step losses averaged into at most ``LOSS_CURVE_POINTS`` bins (step = bin end)."""
    losses_array = np.asarray(losses)
    bins = np.array_split(np.arange(len(losses_array)), min(LOSS_CURVE_POINTS, len(losses_array)))
    return {
        "step": [int(b[-1]) + 1 for b in bins],
        "loss": [float(losses_array[b].mean()) for b in bins],
    }


def inference_costs(settings: OfflineSettings) -> list[dict[str, Any]]:
    """Table 3: rollout wall time and peak memory of every model and mode, back to back.

    Fixed workload (episodes never end early) and freshly initialised models of the trained
    sizes: the cost of acting does not depend on the weights once episode lengths are fixed.
    """
    device = default_device()
    rows = []
    for env in settings.envs:
        task = get_task(env)
        probe = gym.make(task.gym_id)
        sizes = SequenceModelConfig(
            state_dim=probe.observation_space.shape[0],
            act_dim=probe.action_space.shape[0],
            context_len=settings.context_len,
            hidden_size=settings.hidden_size,
            n_layer=settings.n_layer,
            max_ep_len=settings.max_ep_len,
        )
        identity = StateNormalizer(np.zeros(sizes.state_dim), np.ones(sizes.state_dim))
        full_length = {"terminate_when_unhealthy": False} if env != "halfcheetah" else {}
        for model_name in settings.models:
            torch.manual_seed(0)
            model = MODELS[model_name](sizes).to(device).eval()
            for mode in EVAL_MODES[model_name]:
                cost = rollout_cost(
                    partial(gym.make, task.gym_id, max_episode_steps=settings.max_ep_len,
                            **full_length),
                    partial(make_policy, model_name, mode, model, sizes, identity,
                            task.return_targets[0], 1000.0),
                    settings.cost_episodes, settings.cost_envs, seed=0, device=device,
                )
                rows.append({"env": env, "model": model_name, "mode": mode,
                             "parameters": count_trainable_parameters(model), **cost,
                             "device": device.type, **_scan_record(model, device)})
    return rows
