"""Recurrent PPO (Schulman et al. 2017) with a pluggable memory core, in the style of CleanRL.

One update:

1. **Act.** ``num_envs`` environments step ``unroll`` times. The agent sees one step at a time
   (``T = 1``) and carries its memory state; the reset flag of step ``t`` is the previous
   step's ``done``, so a core with resets starts every episode from its initial state. The
   state at the *start* of the rollout is kept.
2. **Advantages.** GAE(λ) over each environment's rollout, cut at every ``done``.
3. **Learn.** ``epochs`` passes; each splits the environments (never the time axis) into
   ``minibatches`` groups and replays every group's whole sequences from the stored start state
   with the stored reset flags, so the training forward pass sees exactly the hidden states the
   agent had while acting (``test_ppo.py`` checks this). Clipped policy loss, clipped value
   loss, entropy bonus, global grad-norm clip, Adam.

Episode ends (termination or time-limit truncation) both cut bootstrapping, as in the paper's
implementation. The learning rate is constant (the paper's POPGym runs do not anneal it), so a
run to any number of steps is a prefix of a longer one. A killed run resumes from its last
checkpoint (model, optimizer, random generators, environments and the agent's state),
producing the numbers it would have produced; the checkpoint at its stop is kept, so a finished
run can be extended to a later milestone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

# Checkpoints pickle the EnvBatch; those written while it lived here name it
# ssmrl_lib.train.ppo.EnvBatch, which this import keeps loadable.
from ssmrl_lib.env_batch import EnvBatch
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.models.actor_critic import ActorCritic, NetworkConfig
from ssmrl_lib.models.memory import STATE_BATCH_DIM
from ssmrl_lib.runs.store import RunDir
from ssmrl_lib.train.rng import restore_torch_rng_states, torch_rng_states


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters; defaults are Lu et al.'s Table 3 for POPGym."""

    total_steps: int = field(default=15_000_000, metadata={"cache_key": "horizon"})
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
    clip_value_loss: bool = True
    normalize_advantages: bool = True
    checkpoint_every: int = 10  # updates
    # Environment steps at which the run records a summary and keeps a checkpoint (its stop
    # always is one); they only add records, so they are not part of the run's identity.
    milestones: tuple = field(default=(), metadata={"cache_key": "record"})

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.unroll

    @property
    def updates(self) -> int:
        return max(1, self.total_steps // self.steps_per_update)

    def milestone_updates(self) -> set[int]:
        """The updates after which a milestone is recorded: ``milestones`` (environment steps,
        rounded down to whole updates, as ``total_steps`` is) up to the stop, and the stop."""
        within = {m // self.steps_per_update for m in self.milestones}
        return {u for u in within if 0 < u < self.updates} | {self.updates}

    def check(self) -> None:
        if self.num_envs % self.minibatches:
            raise SsmrlError(
                f"num_envs ({self.num_envs}) must be a multiple of minibatches "
                f"({self.minibatches}): minibatches split the environments"
            )


@dataclass
class PPOHistory:
    """One entry per update: mean return of the episodes finished in it (NaN if none), etc."""

    mean_return: list[float] = field(default_factory=list)
    episodes: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    wall_time_s: list[float] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    milestones: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mmer(self) -> float:
        """Max over training of the mean episodic return per update (NaN if no episode ended)."""
        finite = [r for r in self.mean_return if np.isfinite(r)]
        return max(finite) if finite else float("nan")


def mmer_summary(history: PPOHistory) -> dict[str, Any]:
    """A milestone's record of a POPGym-style run: the MMER so far and the training speed."""
    return {
        "mmer": history.mmer if np.isfinite(history.mmer) else None,
        "episodes": int(sum(history.episodes)),
        "train_time_s": history.wall_time_s[-1],
        "env_steps_per_s": history.steps[-1] / history.wall_time_s[-1],
    }


@dataclass
class Rollout:
    """One update's experience, batch-first: ``[num_envs, unroll, ...]``."""

    start_state: torch.Tensor
    obs: torch.Tensor
    resets: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    policy_out: torch.Tensor  # what the agent computed while acting, for the replay test
    last_value: torch.Tensor


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(λ) advantages and value targets for ``[B, T]`` rollouts.

    ``dones[:, t]`` is true when the episode ended at step ``t``: nothing after it is
    bootstrapped. ``last_value`` ``[B]`` is the value of the observation after the last step.
    """
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[1])):
        alive = 1.0 - dones[:, t].to(rewards.dtype)
        delta = rewards[:, t] + gamma * next_value * alive - values[:, t]
        next_advantage = delta + gamma * lam * alive * next_advantage
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, advantages + values


class PPOAgentRunner:
    """The acting side: environments, the agent's current memory state, the last done flags."""

    def __init__(self, envs: EnvBatch, agent: ActorCritic, device: torch.device):
        self.envs = envs
        self.device = device
        self.state = agent.initial_state(len(envs.envs)).to(device)
        # The very first step is an episode start.
        self.done = torch.ones(len(envs.envs), dtype=torch.bool, device=device)

    @torch.no_grad()
    def collect(self, agent: ActorCritic, unroll: int) -> tuple[Rollout, list, list]:
        """Step every environment ``unroll`` times; returns the rollout and finished episodes."""
        n, device = len(self.envs.envs), self.device
        start_state = self.state.clone()
        columns: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "resets", "actions", "log_probs", "values", "rewards", "dones",
                            "policy_out")
        }
        returns, lengths = [], []
        for _ in range(unroll):
            obs = torch.tensor(self.envs.obs, dtype=torch.float32, device=device)  # a copy
            policy_out, value, self.state = agent(obs[:, None], self.state, self.done[:, None])
            dist = agent.distribution(policy_out[:, 0])
            action = dist.sample()
            _, reward, done, finished, finished_lengths = self.envs.step(action.cpu().numpy())
            returns += finished
            lengths += finished_lengths
            for key, value_t in (
                ("obs", obs), ("resets", self.done), ("actions", action),
                ("log_probs", dist.log_prob(action)), ("values", value[:, 0]),
                ("rewards", torch.as_tensor(reward, dtype=torch.float32, device=device)),
                ("dones", torch.as_tensor(done, device=device)), ("policy_out", policy_out[:, 0]),
            ):
                columns[key].append(value_t)
            self.done = columns["dones"][-1]
        obs = torch.tensor(self.envs.obs, dtype=torch.float32, device=device)  # a copy
        _, last_value, _ = agent(obs[:, None], self.state, self.done[:, None])
        stacked = {k: torch.stack(v, dim=1) for k, v in columns.items()}
        assert stacked["obs"].shape[:2] == (n, unroll)
        return Rollout(start_state=start_state, last_value=last_value[:, 0], **stacked), \
            returns, lengths


def ppo_loss(
    agent: ActorCritic,
    rollout: Rollout,
    advantages: torch.Tensor,
    targets: torch.Tensor,
    envs: torch.Tensor,
    config: PPOConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's loss on the whole sequences of environments ``envs``, replayed from their start,
    and its statistics (0-d tensors on the agent's device, so no step waits for the host)."""
    state = rollout.start_state.index_select(STATE_BATCH_DIM, envs)
    policy_out, values, _ = agent(rollout.obs[envs], state, rollout.resets[envs])
    dist = agent.distribution(policy_out)
    log_probs = dist.log_prob(rollout.actions[envs])
    log_ratio = log_probs - rollout.log_probs[envs]
    ratio = log_ratio.exp()
    adv = advantages[envs]
    if config.normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = -torch.min(
        ratio * adv, ratio.clamp(1 - config.clip, 1 + config.clip) * adv
    ).mean()
    old_values, target = rollout.values[envs], targets[envs]
    value_loss = (values - target) ** 2
    if config.clip_value_loss:
        clipped = old_values + (values - old_values).clamp(-config.clip, config.clip)
        value_loss = torch.max(value_loss, (clipped - target) ** 2)
    value_loss = 0.5 * value_loss.mean()
    entropy = dist.entropy().mean()
    loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > config.clip).float().mean()
    stats = {
        "policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
        "entropy": entropy.detach(), "approx_kl": approx_kl, "clip_fraction": clip_fraction,
    }
    return loss, stats


def ppo_update(
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    config: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """``epochs`` × ``minibatches`` gradient steps on one rollout; mean loss statistics."""
    advantages, targets = gae(
        rollout.rewards, rollout.values, rollout.dones, rollout.last_value,
        config.gamma, config.gae_lambda,
    )
    n = rollout.obs.shape[0]
    stats: list[dict[str, torch.Tensor]] = []
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator).to(rollout.obs.device)
        for envs in order.chunk(config.minibatches):
            loss, step_stats = ppo_loss(agent, rollout, advantages, targets, envs, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
            optimizer.step()
            stats.append(step_stats)
    # One copy to the host per update; numpy averages each statistic's float32 values in float64.
    names = list(stats[0])
    values = torch.stack([torch.stack([s[k] for k in names]) for s in stats]).T.cpu().numpy()
    return {k: float(np.mean(values[i].astype(np.float64))) for i, k in enumerate(names)}


def train_ppo(
    make_env: Callable[[], gym.Env],
    network: NetworkConfig,
    config: PPOConfig,
    seed: int,
    run: RunDir | None = None,
    device: str | torch.device = "cpu",
    on_update: Callable[[int, PPOHistory], None] | None = None,
    progress: bool = True,
    summarize: Callable[[PPOHistory], dict[str, Any]] | None = None,
) -> tuple[ActorCritic, PPOHistory]:
    """Train an actor-critic with ``network``'s core on ``make_env`` for ``config.total_steps``.

    Resumes from ``run``'s checkpoint if it has one. After each of
    ``config.milestone_updates()``, ``{"step", "update", **summarize(history), "wall_time_s"}``
    goes into ``history.milestones`` and a checkpoint is written. ``on_update(update,
    history)`` is called after every update, once its checkpoint (if due) is written.
    """
    config.check()
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    envs = EnvBatch(make_env, config.num_envs, seed)
    obs_dim = int(np.prod(envs.observation_space.shape))
    agent = ActorCritic(obs_dim, envs.action_space, network).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
    runner = PPOAgentRunner(envs, agent, device)
    history = PPOHistory()
    start = 0
    checkpoint = run.load_checkpoint() if run is not None else None
    if checkpoint is not None:
        agent.load_state_dict(checkpoint["agent"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        restore_torch_rng_states(checkpoint)
        generator.set_state(checkpoint["generator"])
        runner.envs = checkpoint["envs"]
        runner.state = checkpoint["state"].to(device)
        runner.done = checkpoint["done"].to(device)
        history = checkpoint["history"]
        start = checkpoint["update"]

    milestone_updates = config.milestone_updates()
    elapsed = history.wall_time_s[-1] if history.wall_time_s else 0.0
    started = time.perf_counter() - elapsed
    bar = tqdm(range(start, config.updates), desc=f"ppo {network.core}", unit="update",
               mininterval=2.0, initial=start, total=config.updates, disable=not progress)
    for update in bar:
        agent.eval()
        rollout, returns, _ = runner.collect(agent, config.unroll)
        agent.train()
        losses = ppo_update(agent, optimizer, rollout, config, generator)
        if not np.isfinite(losses["value_loss"]):
            raise SsmrlError(
                f"PPO diverged: value loss is {losses['value_loss']} at update {update}; "
                "lower the learning rate (run not recorded)"
            )
        history.mean_return.append(float(np.mean(returns)) if returns else float("nan"))
        history.episodes.append(len(returns))
        history.steps.append((update + 1) * config.steps_per_update)
        history.wall_time_s.append(time.perf_counter() - started)
        history.losses.append(losses)
        bar.set_postfix(ret=f"{history.mean_return[-1]:.3f}", mmer=f"{history.mmer:.3f}")
        done = update + 1
        milestone = done in milestone_updates
        if milestone:
            history.milestones.append({
                "step": done * config.steps_per_update, "update": done,
                **(summarize(history) if summarize is not None else {}),
                "wall_time_s": run.wall_time_s() if run is not None else history.wall_time_s[-1],
                **({"cpu_time_s": run.cpu_time_s()} if run is not None else {}),
            })
        if run is not None and (milestone or done % config.checkpoint_every == 0):
            run.save_checkpoint({
                "agent": agent.state_dict(),
                "optimizer": optimizer.state_dict(),
                **torch_rng_states(),
                "generator": generator.get_state(),
                "envs": runner.envs,
                "state": runner.state.cpu(),
                "done": runner.done.cpu(),
                "history": history,
                "update": done,
            })
        if on_update is not None:
            on_update(done, history)
    agent.eval()
    return agent, history
