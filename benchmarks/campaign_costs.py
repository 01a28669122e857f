"""Per-unit costs of the campaign's runs, measured at their real sizes with one torch thread.

The campaign plan (``campaign/plan.yaml``) turns these into core-hours. Each kind of run is
measured briefly, at the settings the plan uses (the ``full`` profiles):

1. **Offline training step**: Decision Transformer and Decision Mamba at the papers' sizes
   (hidden 128, 3 layers, K = 20, batch 64) on a Hopper dataset (``--dataset``; the step's
   cost does not depend on which): ``--offline-steps`` steps after a few warm-up steps.
2. **Offline evaluation**: one round of ``--eval-envs`` HalfCheetah episodes (which never
   terminate early) cut at ``--eval-steps`` steps, for every model and evaluation mode, with
   freshly initialised models (acting costs the same whatever the weights), scaled to the
   1000-step episode, the longest any environment plays (after the first K = 20 steps every
   step costs the same).
3. **PPO on POPGym** (Lu et al.'s Table 3: 64 envs, 30 epochs, 8 minibatches) for S5, GRU and
   MLP: one update is acting ``64 × 1024`` steps and 30 epochs over them. Measured with a
   shorter unroll (``--ppo-unroll``) at 1 and 2 epochs; acting and one epoch scale linearly
   with the unroll (every core is a scan or a loop over time), so one full update costs
   ``1024/unroll × (act + 30 × epoch)``.
4. **bsuite A2C** (Lu et al.'s Table 2 sizes): environment steps per second of S5 and the LSTM
   at memory lengths 4, 64 and 256; an episode of length ``L`` is ``L + 1`` steps.

Times are CPU seconds of this process (``time.process_time``) with one torch thread, i.e.
core-seconds, which is what the plan budgets; on a shared, loaded machine the wall clock of a
nice'd process says more about the other jobs than about the run. Evaluation rollouts report
their own wall time, so they are timed here with ``process_time`` around the call too.

Usage: ``nice -n 19 python benchmarks/campaign_costs.py [--only offline eval ppo bsuite]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ssmrl_lib.data import DTWindowSampler, load_trajectories
from ssmrl_lib.data.windows import StateNormalizer
from ssmrl_lib.envs import get_task
from ssmrl_lib.evaluate.rollout import rollout
from ssmrl_lib.experiments import bsuite_memory, offline_rl, popgym_ppo
from ssmrl_lib.provenance import benchmark_record
from ssmrl_lib.train.offline import action_loss
from ssmrl_lib.train.ppo import PPOConfig, train_ppo

RESULTS = Path(__file__).parent / "results"


def offline_step_seconds(model_name: str, steps: int, dataset: str) -> float:
    """Seconds per training step of ``model_name`` at the full profile's sizes."""
    settings = offline_rl.settings_for("full")
    sampler = DTWindowSampler(load_trajectories(dataset), settings.model.context_len)
    config = dataclasses.replace(
        settings.model, state_dim=sampler.trajectories.state_dim,
        act_dim=sampler.trajectories.act_dim,
    )
    torch.manual_seed(0)
    model = offline_rl.MODELS[model_name](config)
    train = dataclasses.replace(settings.train, steps=steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.learning_rate)
    rng = np.random.default_rng(0)

    def step() -> None:
        loss = action_loss(model, sampler.sample(train.batch_size, rng))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()

    model.train()
    for _ in range(5):
        step()
    started = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - started) / steps


def offline_episode_seconds(model_name: str, mode: str, n_envs: int, steps: int) -> float:
    """Seconds per 1000-step HalfCheetah episode, ``n_envs`` played side by side, from
    episodes cut at ``steps``."""
    task = get_task("halfcheetah")
    probe = gym.make(task.gym_id)
    settings = offline_rl.settings_for("full")
    sizes = dataclasses.replace(
        settings.model, state_dim=probe.observation_space.shape[0],
        act_dim=probe.action_space.shape[0],
    )
    torch.manual_seed(0)
    model = offline_rl.MODELS[model_name](sizes).eval()
    identity = StateNormalizer(np.zeros(sizes.state_dim), np.ones(sizes.state_dim))
    policy = offline_rl.make_policy(model_name, mode, model, sizes, identity,
                                    task.return_targets[0], 1000.0, n_envs)
    started = time.process_time()
    result = rollout(lambda: gym.make(task.gym_id, max_episode_steps=steps), policy, n_envs,
                     n_envs, seed=0, desc=f"{model_name} {mode}")
    assert (result.lengths == steps).all()
    return (time.process_time() - started) / n_envs * 1000 / steps


def ppo_update_seconds(core: str, unroll: int) -> dict[str, float]:
    """Acting and one learning epoch at Table 3's settings, scaled to a 1024-step unroll."""
    settings = popgym_ppo.settings_for("full")
    network = dataclasses.replace(settings.network, core=core)
    times = {}
    for epochs in (1, 2):
        config = dataclasses.replace(settings.ppo, total_steps=settings.ppo.num_envs * unroll,
                                     unroll=unroll, epochs=epochs)
        started = time.process_time()
        train_ppo(lambda: popgym_ppo.make_env("PositionOnlyCartPoleHard"), network, config,
                  seed=0, progress=False)
        times[epochs] = time.process_time() - started
    epoch = times[2] - times[1]
    act = times[1] - epoch
    scale = settings.ppo.unroll / unroll
    return {
        "act_s": act * scale,
        "epoch_s": epoch * scale,
        "update_s": scale * (act + settings.ppo.epochs * epoch),
        "steps_per_update": settings.ppo.steps_per_update,
        "measured_unroll": unroll,
    }


def bsuite_steps_per_second(model: str, length: int, updates: int) -> float:
    settings = bsuite_memory.settings_for("full", lengths=[length], models=[model], seeds=1)
    spec = bsuite_memory.grid(settings)[0]
    config = spec.config
    a2c = PPOConfig(**{**config.a2c.__dict__, "total_steps": updates * config.a2c.unroll})
    started = time.process_time()
    train_ppo(lambda: bsuite_memory.MemoryChainEnv(length), config.network, a2c, seed=0,
              progress=False)
    return updates * config.a2c.unroll / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline-steps", type=int, default=200)
    parser.add_argument("--dataset", default="ssmrl/hopper/medium-v0")
    parser.add_argument("--eval-envs", type=int, default=50)
    parser.add_argument("--eval-steps", type=int, default=200)
    parser.add_argument("--ppo-unroll", type=int, default=32)
    parser.add_argument("--bsuite-updates", type=int, default=100)
    parser.add_argument("--only", nargs="*", default=["offline", "eval", "ppo", "bsuite"])
    parser.add_argument("--out", type=Path, default=RESULTS / "campaign_costs_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["benchmark"] = "per-unit costs of the campaign's runs, one torch thread"

    def record(section: str, key: str, value) -> None:
        result.setdefault(section, {})[key] = value
        result.setdefault("machine", {})[section] = benchmark_record()
        print(f"{section} {key}: {value}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    if "offline" in args.only:
        for model_name in ("dt", "mamba"):
            record("offline_step_s", model_name, offline_step_seconds(
                model_name, args.offline_steps, args.dataset))
    if "eval" in args.only:
        for model_name, modes in offline_rl.EVAL_MODES.items():
            for mode in modes:
                record("offline_episode_s", f"{model_name}/{mode}",
                       offline_episode_seconds(model_name, mode, args.eval_envs,
                                               args.eval_steps))
        result["offline_episode_envs"] = args.eval_envs
    if "ppo" in args.only:
        for core in ("mlp", "gru", "s5"):
            record("popgym_update", core, ppo_update_seconds(core, args.ppo_unroll))
    if "bsuite" in args.only:
        for model in ("s5", "lstm"):
            for length in (4, 64, 256):
                record("bsuite_steps_per_s", f"{model}/{length}",
                       bsuite_steps_per_second(model, length, args.bsuite_updates))


if __name__ == "__main__":
    main()
