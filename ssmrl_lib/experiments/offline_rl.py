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
from ssmrl_lib.evaluate.conditioning import ReturnConditioning
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
    FRACTION,
    NON_NEGATIVE,
    NON_NEGATIVE_FINITE,
    POSITIVE,
    POSITIVE_FINITE,
    MemoryEstimate,
    allowed,
    one_of,
    resolve,
)
from ssmrl_lib.runs import RunDir, RunSpec
from ssmrl_lib.runs.record import run_record
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


@dataclass(frozen=True)
class EvalConfig:
    """How a run is evaluated; defaults are the ``full`` profile's but for ``episodes`` and
    ``n_envs`` (there 500 and 50)."""

    episodes: int = 100  # per mode and return target, at every milestone and at the stop
    n_envs: int = 25  # environments played side by side
    return_targets: tuple = ()  # set per environment, see ``OfflineSettings.all_targets``
    every: int = 10_000  # steps between evaluations during training
    every_episodes: int = 10  # episodes of each evaluation during training
    max_ep_len: int = 1000  # the model's ``max_ep_len``
    rtg_scale: float = 1000.0
    # Steps at which every mode and target is evaluated with ``episodes`` episodes (the run's
    # stop always is one); they only add records, so they are not part of the run's identity.
    milestones: tuple = field(default=(), metadata={"cache_key": "record"})


@allowed(
    envs=one_of("environment", MUJOCO_TASKS), models=one_of("model", MODELS),
    make_missing_dataset_steps=NON_NEGATIVE, seeds=POSITIVE,
    cost_episodes=POSITIVE, cost_envs=POSITIVE,
    **{"model.context_len": POSITIVE, "model.hidden_size": POSITIVE, "model.n_layer": POSITIVE,
       "model.n_head": POSITIVE, "model.dropout": FRACTION, "model.max_ep_len": POSITIVE,
       "train.steps": POSITIVE, "train.batch_size": POSITIVE,
       "train.learning_rate": POSITIVE_FINITE, "train.weight_decay": NON_NEGATIVE_FINITE,
       "train.warmup_steps": NON_NEGATIVE, "train.grad_clip": POSITIVE_FINITE,
       "train.checkpoint_every": POSITIVE, "eval.episodes": POSITIVE, "eval.n_envs": POSITIVE,
       "eval.every": POSITIVE, "eval.every_episodes": POSITIVE,
       "eval.rtg_scale": POSITIVE_FINITE},
    memory=(
        # returns and lengths per evaluation episode, in arrays and in result.json
        MemoryEstimate(("eval.episodes", "cost_episodes"), "per-episode evaluation records",
                       lambda s: 48 * (s.eval.episodes + s.cost_episodes)),
        # the evaluation policy's per-slot history of states, actions and returns-to-go
        MemoryEstimate(("eval.n_envs", "cost_envs", "model.max_ep_len"),
                       "evaluation context buffers",
                       lambda s: 4 * 25 * max(s.eval.n_envs, s.cost_envs) * s.model.max_ep_len),
    ),
    # Set by the grid: the model's input sizes from the dataset, the return targets from the
    # environment (and ``all_targets``), the evaluation's episode cap from ``model.max_ep_len``.
    fixed=("model.state_dim", "model.act_dim", "eval.return_targets", "eval.max_ep_len"),
)
@dataclass(frozen=True)
class OfflineSettings:
    """A notebook's knobs; see ``PROFILES`` for their values per profile."""

    envs: tuple = ("hopper", "halfcheetah", "walker2d")
    dataset: str = "ssmrl/{env}/medium-v0"  # D4RL's medium recipe, rebuilt by `make data`
    make_missing_dataset_steps: int = 0
    models: tuple = ("dt",)
    seeds: int = 3
    model: SequenceModelConfig = SequenceModelConfig(state_dim=0, act_dim=0)
    train: TrainConfig = TrainConfig(steps=100_000)
    eval: EvalConfig = EvalConfig()
    all_targets: bool = True  # evaluate at every return target of the paper, else the first
    cost_episodes: int = 500  # Table 3's inference-cost measurement
    cost_envs: int = 50


PAPER = OfflineSettings()
PROFILES = {
    "smoke": dataclasses.replace(
        PAPER,
        envs=("hopper",),
        dataset=smoke_dataset_id("{env}"),
        make_missing_dataset_steps=1_000,
        seeds=2,
        model=dataclasses.replace(PAPER.model, context_len=5, hidden_size=16, n_layer=1,
                                  max_ep_len=50),
        train=dataclasses.replace(PAPER.train, steps=20, batch_size=8, warmup_steps=5),
        eval=dataclasses.replace(PAPER.eval, episodes=2, n_envs=2, every=10, every_episodes=1),
        all_targets=False,
        cost_episodes=2,
        cost_envs=2,
    ),
    "quick": dataclasses.replace(
        PAPER,
        seeds=2,
        train=dataclasses.replace(PAPER.train, steps=400, warmup_steps=100),
        eval=dataclasses.replace(PAPER.eval, episodes=10, n_envs=10, every=200,
                                 every_episodes=5),
        all_targets=False,
        cost_episodes=10,
        cost_envs=10,
    ),
    # Rezaei & Patel's Table 2 averages 500 evaluation episodes per model and environment.
    # The paper's schedule (10k warmup steps, then a constant learning rate, 100k steps) with
    # milestones along it; a campaign run to one of them is a prefix of the whole run.
    "full": dataclasses.replace(
        PAPER, eval=dataclasses.replace(PAPER.eval, episodes=500, n_envs=50,
                                        milestones=PAPER_MILESTONES),
    ),
}


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
    """Resolve a profile and overrides (dotted names: ``train.steps``), checking environment
    and model names."""
    settings = resolve(PROFILES, profile, **overrides)
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
        model = dataclasses.replace(
            settings.model, state_dim=trajectories.state_dim, act_dim=trajectories.act_dim
        )
        targets = task.return_targets if settings.all_targets else task.return_targets[:1]
        evaluation = dataclasses.replace(
            settings.eval, return_targets=targets, max_ep_len=settings.model.max_ep_len
        )
        fingerprint = trajectories.fingerprint()
        for model_name in settings.models:
            for seed in range(settings.seeds):
                config = OfflineRunConfig(
                    model_name, env, ds_id, fingerprint, seed, model, settings.train, evaluation
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
    conditioning = ReturnConditioning(normalizer, target, rtg_scale, sizes.max_ep_len)
    if mode == "recurrent":
        return RecurrentPolicy(model, conditioning, n_slots, sizes.state_dim, sizes.act_dim)
    return ContextWindowPolicy(model, conditioning, sizes.context_len, n_slots,
                               sizes.state_dim, sizes.act_dim)


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
    measured = {
        "loss_curve": _binned_curve(history.losses),
        "final_loss": _final_loss(history.losses),
        "evaluations_during_training": history.evaluations,
        "evaluations": history.milestones[-1]["evaluations"],
        "milestones": milestones,
        "dataset_episodes": len(trajectories.rewards),
        "dataset_steps": int(trajectories.lengths.sum()),
    }
    return run_record(config, run, model, device, measured,
                      backends=_scan_record(model, device))


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
        sizes = dataclasses.replace(
            settings.model, state_dim=probe.observation_space.shape[0],
            act_dim=probe.action_space.shape[0],
        )
        identity = StateNormalizer(np.zeros(sizes.state_dim), np.ones(sizes.state_dim))
        full_length = {"terminate_when_unhealthy": False} if env != "halfcheetah" else {}
        for model_name in settings.models:
            torch.manual_seed(0)
            model = MODELS[model_name](sizes).to(device).eval()
            for mode in EVAL_MODES[model_name]:
                cost = rollout_cost(
                    partial(gym.make, task.gym_id, max_episode_steps=sizes.max_ep_len,
                            **full_length),
                    partial(make_policy, model_name, mode, model, sizes, identity,
                            task.return_targets[0], 1000.0),
                    settings.cost_episodes, settings.cost_envs, seed=0, device=device,
                )
                rows.append({"env": env, "model": model_name, "mode": mode,
                             "parameters": count_trainable_parameters(model), **cost,
                             "device": device.type, **_scan_record(model, device)})
    return rows
