"""One A2C training pass of S5, an LSTM and self-attention over whole bsuite episodes, against
memory length: the runtime and memory comparison of Lu et al. (2023), Figure 2, without
training.

The paper's figure gives whole training runs (runtime at memory length 2048: attention ≈52,700
s, LSTM ≈4,500 s, S5 ≈3,000 s) and their memory at length 4096 (attention ≈48.5 GiB, S5 ≈3.1
GiB, LSTM ≈1.6 GiB). How these grow with length is a property of one training pass, so this
times that pass per core and length, which takes minutes instead of a campaign:

* the network is ``experiments.bsuite_memory``'s ``full`` profile (the paper's Table 2: encoder
  [256, 256], one memory layer of 256, heads [256], ReLU; S5 with the authors' block and
  P = 256), built by ``ActorCritic`` as the experiment builds it. The attention core (below)
  takes the memory core's place in the same network;
* the batch is ``batch`` whole ``MemoryChain`` episodes (``memory length + 1`` steps each; the
  full profile's A2C steps one environment, so the default is 1), observed from bsuite's
  environment and acted on by the network itself (one no-grad pass, as acting would have);
* the pass is the project's A2C update (``train.ppo``: one epoch of one minibatch, so
  ``ppo_loss``'s ratio is 1): forward over the whole episodes, the actor-critic loss, backward,
  gradient clipping and an Adam step. The GAE(λ) targets are computed once beforehand: they
  come from the acting pass's values, and their Python loop over time costs every core the same,
  which would only blur the cores' difference.

Unlike the experiment, which updates every 32 steps and carries the recurrent state between
updates, the pass covers whole episodes: attention has no state to carry, so it must see an
episode at once, and the recurrent cores are then measured on the same work.

The attention core (``AttentionCore``) is one GPT-style pre-LayerNorm block at the memory width
(256): causal multi-head self-attention (4 heads of 64) over the whole sequence, written plainly
so that the ``T × T`` attention matrix is materialised (no memory-efficient kernel), then a
feed-forward layer of 4 × 256. It has no positional encoding: MemoryChain's observation shows
the time left on every step. Each core's parameter count is recorded beside its timings.

Time is the median wall-clock seconds of ``--repeats`` passes after one warm-up pass (Adam's
state and first-call allocations). Memory is ``evaluate.peak_memory.PeakMemory`` around each
timed pass, median over passes: on a GPU the peak tensor allocation
(``torch.cuda.max_memory_allocated``, model and optimizer included); on the CPU the peak
resident memory above that on entry (activations, gradients and temporaries, not the
interpreter's few hundred MiB, which would swamp the small cores). The ratios to S5
(attention/S5, LSTM/S5) are of these medians, None where a figure is missing. At short lengths
the CPU's growth is a few MiB of temporaries whichever the core, so its memory ratios mean
something only from a few hundred steps on. A cell that runs out of memory is recorded as such,
and longer lengths of that core are not tried.

The whole grid takes about a minute on one CPU thread, most of it the attention core at 2048
and 4096 (about 2 s a pass at 4096, under 1 GiB).

Usage: ``python benchmarks/bsuite_scaling.py [--lengths 4 16 ... 4096] [--max-length 4096]
[--cores s5 lstm attention] [--repeats 5] [--batch 1] [--threads 1] [--device cpu|cuda]
[--out PATH]``
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ssmrl_lib.device import default_device, synchronize
from ssmrl_lib.evaluate.peak_memory import PeakMemory
from ssmrl_lib.experiments import bsuite_memory
from ssmrl_lib.experiments.bsuite_memory import MemoryChainEnv
from ssmrl_lib.models.actor_critic import ActorCritic, NetworkConfig
from ssmrl_lib.provenance import benchmark_record
from ssmrl_lib.report.paper_numbers import (
    LU2023_BSUITE_MEMORY_4096_GIB,
    LU2023_BSUITE_RUNTIME_2048_S,
)
from ssmrl_lib.train.ppo import PPOConfig, Rollout, gae, ppo_loss

CORES = ("s5", "lstm", "attention")
LENGTHS = (4, 16, 64, 256, 1024, 2048, 4096)
ATTENTION_HEADS = 4
FEEDFORWARD_FACTOR = 4
FULL = bsuite_memory.settings_for("full")
RESULTS = Path(__file__).parent / "results"


class AttentionCore(nn.Module):
    """A self-attention memory core with the memory cores' interface (``models/memory.py``).

    One pre-LayerNorm transformer block: ``x ← x + W_o softmax(QKᵀ/√d + mask) V`` over
    ``heads`` heads, then ``x ← x + MLP(LayerNorm(x))``. The mask lets step ``t`` attend to
    steps ``≤ t`` of its own episode (an episode starts where ``reset`` is true). It keeps no
    state between calls: it needs the whole episode in one call, so it can be trained on whole
    episodes but not act one step at a time; the state is a placeholder, as the MLP core's is.
    """

    def __init__(self, d_in: int, hidden: int, heads: int = ATTENTION_HEADS):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"width {hidden} is not a multiple of {heads} heads")
        self.project = nn.Identity() if d_in == hidden else nn.Linear(d_in, hidden)
        self.attention_norm = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.feedforward_norm = nn.LayerNorm(hidden)
        self.feedforward = nn.Sequential(
            nn.Linear(hidden, FEEDFORWARD_FACTOR * hidden), nn.GELU(),
            nn.Linear(FEEDFORWARD_FACTOR * hidden, hidden),
        )
        self.heads = heads
        self.out_features = hidden

    def initial_state(self, batch_size: int) -> torch.Tensor:
        weight = self.qkv.weight
        return torch.zeros(1, batch_size, 1, dtype=weight.dtype, device=weight.device)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, reset: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.project(x)
        batch, length, width = x.shape
        head_width = width // self.heads
        # [3, B, heads, T, head_width]
        q, k, v = self.qkv(self.attention_norm(x)).view(
            batch, length, 3, self.heads, head_width).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_width)  # [B, heads, T, T]
        episode = reset.bool().long().cumsum(dim=1)  # [B, T]: which episode each step is in
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        allowed = causal & (episode[:, :, None] == episode[:, None, :])  # [B, T, T]
        weights = scores.masked_fill(~allowed[:, None], float("-inf")).softmax(dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(batch, length, width)
        x = x + self.attention_out(mixed)
        return x + self.feedforward(self.feedforward_norm(x)), state


def build_agent(core: str, network: NetworkConfig = FULL.network) -> ActorCritic:
    """The full profile's actor-critic for MemoryChain with memory core ``core``.

    S5 and the LSTM are built by ``ActorCritic`` exactly as ``bsuite_memory`` builds them. For
    attention, ``ActorCritic`` builds the network around its smallest core (the MLP) and the
    attention core then takes that core's place: the encoder, heads and their initialisation
    stay the library's, at the same width.
    """
    env = MemoryChainEnv(memory_length=1)
    obs_dim = int(np.prod(env.observation_space.shape))
    if core != "attention":
        return ActorCritic(obs_dim, env.action_space, dataclasses.replace(network, core=core))
    agent = ActorCritic(obs_dim, env.action_space, dataclasses.replace(network, core="mlp"))
    agent.core = AttentionCore(network.encoder[-1], network.hidden)
    return agent


def _episode(
    length: int, seed: int, actions: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One MemoryChain episode's observations ``[length + 1, obs_dim]`` and rewards, taking
    ``actions`` (or 0 throughout); the observations do not depend on the actions."""
    env = MemoryChainEnv(length)
    obs, _ = env.reset(seed=seed)
    observations, rewards, done = [], [], False
    while not done:
        observations.append(obs)
        action = 0 if actions is None else int(actions[len(rewards)])
        obs, reward, done, _, _ = env.step(action)
        rewards.append(reward)
    return np.stack(observations), np.asarray(rewards, dtype=np.float32)


@torch.no_grad()
def whole_episodes(
    agent: ActorCritic, length: int, batch: int, device: torch.device
) -> Rollout:
    """``batch`` whole episodes of memory length ``length`` (seeds 0 … batch - 1) as a rollout,
    with the actions, log-probabilities and values of one pass of ``agent`` over them."""
    obs = torch.from_numpy(np.stack([_episode(length, seed)[0] for seed in range(batch)]))
    obs = obs.to(device)
    steps = obs.shape[1]
    resets = torch.zeros(batch, steps, dtype=torch.bool, device=device)
    resets[:, 0] = True
    dones = torch.zeros_like(resets)
    dones[:, -1] = True
    start_state = agent.initial_state(batch).to(device)
    policy_out, values, _ = agent(obs, start_state, resets)
    dist = agent.distribution(policy_out)
    actions = dist.sample()
    rewards = np.stack([_episode(length, seed, actions[seed].cpu().numpy())[1]
                        for seed in range(batch)])
    return Rollout(
        start_state=start_state, obs=obs, resets=resets, actions=actions,
        log_probs=dist.log_prob(actions), values=values,
        rewards=torch.from_numpy(rewards).to(device), dones=dones, policy_out=policy_out,
        last_value=torch.zeros(batch, device=device),  # every episode ends: nothing to bootstrap
    )


def training_pass(
    agent: ActorCritic, rollout: Rollout, config: PPOConfig = FULL.a2c
) -> Callable[[], None]:
    """One A2C update on ``rollout``, as ``train.ppo.ppo_update`` runs it with one epoch of one
    minibatch, with its GAE(λ) targets computed once here (see the module docstring)."""
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
    advantages, targets = gae(rollout.rewards, rollout.values, rollout.dones,
                              rollout.last_value, config.gamma, config.gae_lambda)
    envs = torch.arange(rollout.obs.shape[0], device=rollout.obs.device)
    agent.train()

    def step() -> None:
        loss, _ = ppo_loss(agent, rollout, advantages, targets, envs, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
        optimizer.step()

    return step


def _memory_mib(memory: dict[str, float | None], device: torch.device) -> float | None:
    """The figure compared across cores: the GPU's peak allocation, or the CPU's peak growth."""
    return memory["gpu_peak_mib"] if device.type == "cuda" else memory["rss_growth_mib"]


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def measure(step: Callable[[], None], device: torch.device, repeats: int) -> dict[str, Any]:
    """Median seconds and memory of ``step`` over ``repeats`` calls after one warm-up call."""
    step()
    times, memories = [], []
    for _ in range(repeats):
        with PeakMemory(device) as memory:
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times.append(time.perf_counter() - start)
        memories.append(memory.as_dict())
    peak = {key: _median_or_none([m[key] for m in memories]) for key in memories[0]}
    return {"median_s": statistics.median(times), "times_s": times,
            "memory_mib": _memory_mib(peak, device), "peak_memory": peak}


def _is_out_of_memory(error: RuntimeError) -> bool:
    # The CPU allocator raises a plain RuntimeError ("DefaultCPUAllocator: can't allocate").
    return isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in str(error)


def _measure_core(
    core: str, length: int, batch: int, repeats: int, device: torch.device
) -> dict[str, Any]:
    """Build ``core``'s network and episodes, then measure its training pass; everything it
    allocated is freed when it returns (or raises)."""
    agent = build_agent(core).to(device)
    step = training_pass(agent, whole_episodes(agent, length, batch, device))
    return {"parameters": sum(p.numel() for p in agent.parameters()),
            "core_parameters": sum(p.numel() for p in agent.core.parameters()),
            "status": "ok", **measure(step, device, repeats)}


def run_cell(
    core: str, length: int, batch: int, repeats: int, device: torch.device
) -> dict[str, Any]:
    """One core at one memory length: its timings and memory, or an out-of-memory record."""
    cell: dict[str, Any] = {"core": core, "memory_length": length, "episode_steps": length + 1,
                            "batch": batch}
    torch.manual_seed(0)
    try:
        cell |= _measure_core(core, length, batch, repeats, device)
    except RuntimeError as error:
        if not _is_out_of_memory(error):
            raise
        cell |= {"status": "out of memory", "error": str(error).strip().splitlines()[0]}
    gc.collect()  # the next cell's memory baseline without this one's leftovers
    if device.type == "cuda":
        torch.cuda.empty_cache()
    cell["load_average_1min"] = os.getloadavg()[0]
    return cell


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def ratios_to_s5(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per memory length, each other core's median time and memory over S5's."""
    by_key = {(c["core"], c["memory_length"]): c for c in cells if c["status"] == "ok"}
    rows = []
    for length in sorted({c["memory_length"] for c in cells}):
        s5 = by_key.get(("s5", length), {})
        row: dict[str, Any] = {"memory_length": length}
        for core in ("attention", "lstm"):
            other = by_key.get((core, length), {})
            for measure_name, key in (("time", "median_s"), ("memory", "memory_mib")):
                row[f"{measure_name}_{core}_over_s5"] = _ratio(other.get(key), s5.get(key))
        rows.append(row)
    return rows


def paper_reference() -> dict[str, Any]:
    """Lu et al.'s Figure 2 numbers (≈, whole training runs) and their ratios to S5."""
    runtime, memory = LU2023_BSUITE_RUNTIME_2048_S, LU2023_BSUITE_MEMORY_4096_GIB
    return {
        "source": "Lu et al. (2023), Figure 2, read off the figure (≈)",
        "runtime_s_at_length_2048": runtime,
        "memory_gib_at_length_4096": memory,
        "time_attention_over_s5_at_2048": runtime["attention"] / runtime["s5"],
        "time_lstm_over_s5_at_2048": runtime["lstm"] / runtime["s5"],
        "memory_attention_over_s5_at_4096": memory["attention"] / memory["s5"],
        "memory_lstm_over_s5_at_4096": memory["lstm"] / memory["s5"],
        "note": "the paper's runtimes are of whole training runs, its memory of a whole run; "
                "ours are of one training pass, so only the ratios compare",
    }


def run(
    lengths: list[int], cores: list[str], batch: int, repeats: int, device: torch.device
) -> dict[str, Any]:
    """Every (length, core) cell, shortest length first; a core that ran out of memory at one
    length is recorded as out of memory at the longer ones without trying them."""
    machine = benchmark_record()  # the code as it was when the timings started
    cells: list[dict[str, Any]] = []
    out_of_memory_at: dict[str, int] = {}
    with tqdm(total=len(lengths) * len(cores), desc="bsuite scaling", unit="cell") as bar:
        for length in lengths:
            for core in cores:
                bar.set_postfix(core=core, length=length)
                if core in out_of_memory_at:
                    cells.append({"core": core, "memory_length": length,
                                  "episode_steps": length + 1, "batch": batch,
                                  "status": "out of memory",
                                  "error": f"not tried: out of memory at memory length "
                                           f"{out_of_memory_at[core]}"})
                else:
                    cell = run_cell(core, length, batch, repeats, device)
                    cells.append(cell)
                    if cell["status"] == "ok":
                        memory = cell["memory_mib"]
                        bar.write(f"L={length:5d} {core:>9}: {cell['median_s']:8.4f} s, "
                                  f"memory {'?' if memory is None else f'{memory:.1f}'} MiB")
                    else:
                        out_of_memory_at[core] = length
                        bar.write(f"L={length:5d} {core:>9}: out of memory")
                bar.update()
    return {
        "benchmark": f"one A2C training pass over whole bsuite MemoryChain episodes per memory "
                     f"core against memory length, {device.type.upper()}",
        "device": str(device),
        "memory_figure": ("gpu_peak_mib: peak tensor allocation" if device.type == "cuda" else
                          "rss_growth_mib: peak resident memory above that on entry"),
        "loss": "the project's A2C loss (train.ppo.ppo_loss, ratio 1), backward, gradient "
                "clipping, Adam step; GAE(λ) targets computed beforehand",
        "network": dataclasses.asdict(FULL.network) | {"core": list(cores)},
        "attention": {"heads": ATTENTION_HEADS, "feedforward_width": FEEDFORWARD_FACTOR
                      * FULL.network.hidden, "positional_encoding": None},
        # the A2C settings one pass uses (not the run's length, milestones or checkpoints)
        "a2c": {k: v for k, v in dataclasses.asdict(FULL.a2c).items()
                if k not in ("total_steps", "milestones", "checkpoint_every")},
        "batch": batch,
        "warmup": 1,
        "repeats": repeats,
        "lengths": lengths,
        "cells": cells,
        "ratios_to_s5": ratios_to_s5(cells),
        "paper": paper_reference(),
        "machine": machine | {"load_average_1min": os.getloadavg()[0]},  # load at the end
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS),
                        help="memory lengths (an episode is one step longer)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="drop the lengths above this one")
    parser.add_argument("--cores", nargs="+", default=list(CORES), choices=CORES)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per cell")
    parser.add_argument("--batch", type=int, default=FULL.a2c.num_envs,
                        help="whole episodes per pass (default: the full profile's A2C "
                             "environments)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: $SSMRL_DEVICE, else a GPU where torch sees one")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/bsuite_scaling_{cpu,gpu}.json")
    args = parser.parse_args(argv)
    lengths = sorted({n for n in args.lengths
                      if args.max_length is None or n <= args.max_length})
    if not lengths or min(lengths) < 1:
        parser.error("give at least one memory length, each at least 1")
    if args.repeats < 1 or args.batch < 1:
        parser.error("--repeats and --batch must be at least 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else default_device()
    out = args.out or RESULTS / f"bsuite_scaling_{'gpu' if device.type == 'cuda' else 'cpu'}.json"

    result = run(lengths, args.cores, args.batch, args.repeats, device)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for row in result["ratios_to_s5"]:
        print(" ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in row.items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
