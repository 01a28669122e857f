"""End-to-end recurrent PPO throughput (environment steps per second) for each memory core.

Lu et al. (2023) report S5 training over six times faster than a GRU end to end on one A40
(≈1,750 s vs ≈11,800 s for the whole POPGym pipeline). This measures the same thing on this
machine, with the paper's network (encoder [128, 256], memory 256, S5 with 4 layers of the
authors' block, H = P = 256, heads [128, 128]) on PositionOnlyCartPoleHard, at two workloads:

- ``paper``: Lu et al.'s Table 3, one update of 64 envs × 1024 steps, 30 epochs of 8
  minibatches. Each minibatch replays 8 whole 1024-step sequences, so learning dominates;
- ``small``: 2 updates of 16 envs × 256 steps, 2 epochs of 2 minibatches, where acting one
  step at a time dominates (what this benchmark measured before the paper's workload).

An update is timed in its two phases, as ``train_ppo`` runs them: acting (``collect``, every
step of the rollout) and learning (``ppo_update``, one epoch at a time). ``--timed-epochs K``
times only the first K epochs of an update and counts the median epoch for the rest (epochs
replay the same rollout, so they do the same work); the default times all of them.

Each phase is timed by the wall clock and by the process's CPU time. On a machine shared with
other jobs the wall clock is an upper bound; with one torch thread the CPU time is close to
what the wall clock would be on an idle machine. Cores are interleaved within each repeat, so
load from other processes hits them alike; medians over repeats are reported.

Usage: ``python benchmarks/ppo_throughput.py [--workloads paper small] [--repeats 1 3]
[--timed-epochs K] [--threads 1]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ssmrl_lib.device import synchronize
from ssmrl_lib.experiments.popgym_ppo import make_env
from ssmrl_lib.report.popgym import LU2023_WALL_TIME_S
from ssmrl_lib.report.provenance import benchmark_record
from ssmrl_lib.train.ppo import (
    ActorCritic,
    EnvBatch,
    NetworkConfig,
    PPOAgentRunner,
    PPOConfig,
    ppo_update,
)

TASK = "PositionOnlyCartPoleHard"
CORES = ("s5", "gru", "lstm", "mlp")
RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Workload:
    """A rollout shape and how many updates of it one measurement runs."""

    num_envs: int
    unroll: int
    epochs: int
    minibatches: int
    updates: int

    def ppo(self) -> PPOConfig:
        """The PPO settings (Table 3's hyperparameters, this workload's shape)."""
        return PPOConfig(
            total_steps=self.updates * self.num_envs * self.unroll, num_envs=self.num_envs,
            unroll=self.unroll, epochs=self.epochs, minibatches=self.minibatches,
        )


WORKLOADS = {
    "paper": Workload(num_envs=64, unroll=1024, epochs=30, minibatches=8, updates=1),
    "small": Workload(num_envs=16, unroll=256, epochs=2, minibatches=2, updates=2),
}


class Clock:
    """Wall-clock and process CPU seconds since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def time_updates(
    core: str, workload: Workload, timed_epochs: int, device: torch.device | str = "cpu"
) -> dict:
    """Time ``workload.updates`` PPO updates of ``core`` (seed 0) on ``device``, phase by phase
    (on a GPU each phase's clock is read once its queued work has finished).

    The agent, optimizer and acting loop are built as ``train_ppo`` builds them; learning runs
    ``ppo_update`` one epoch at a time, the same work as one call with all epochs but for the
    advantages, which each call recomputes (tens of milliseconds, against seconds per epoch).
    """
    config = workload.ppo()
    one_epoch = dataclasses.replace(config, epochs=1)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    envs = EnvBatch(lambda: make_env(TASK), config.num_envs, seed=0)
    agent = ActorCritic(int(np.prod(envs.observation_space.shape)), envs.action_space,
                        NetworkConfig(core=core)).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
    runner = PPOAgentRunner(envs, agent, torch.device(device))
    sample = {"act_wall_s": 0.0, "act_cpu_s": 0.0, "learn_wall_s": 0.0, "learn_cpu_s": 0.0,
              "epoch_wall_s": [], "epoch_cpu_s": [], "load_average_before": os.getloadavg()[0]}
    for _ in range(workload.updates):
        agent.eval()
        clock = Clock()
        rollout, _, _ = runner.collect(agent, config.unroll)
        synchronize(device)
        wall, cpu = clock.read()
        sample["act_wall_s"] += wall
        sample["act_cpu_s"] += cpu
        agent.train()
        epochs_wall, epochs_cpu = [], []
        for _ in range(min(timed_epochs, config.epochs)):
            clock = Clock()
            ppo_update(agent, optimizer, rollout, one_epoch, generator)
            synchronize(device)
            wall, cpu = clock.read()
            epochs_wall.append(wall)
            epochs_cpu.append(cpu)
        untimed = config.epochs - len(epochs_wall)
        sample["learn_wall_s"] += sum(epochs_wall) + untimed * statistics.median(epochs_wall)
        sample["learn_cpu_s"] += sum(epochs_cpu) + untimed * statistics.median(epochs_cpu)
        sample["epoch_wall_s"] += epochs_wall
        sample["epoch_cpu_s"] += epochs_cpu
    sample["load_average_after"] = os.getloadavg()[0]
    steps = workload.updates * config.steps_per_update
    for clock_name in ("wall", "cpu"):
        total = sample[f"act_{clock_name}_s"] + sample[f"learn_{clock_name}_s"]
        sample[f"steps_per_s_{clock_name}"] = steps / total
        sample[f"acting_share_{clock_name}"] = sample[f"act_{clock_name}_s"] / total
    return sample


def summarise(samples: list[dict]) -> dict:
    """Medians over repeats of one core's throughput and time split, plus the samples."""
    keys = ("steps_per_s_cpu", "steps_per_s_wall", "acting_share_cpu", "acting_share_wall",
            "act_cpu_s", "learn_cpu_s", "act_wall_s", "learn_wall_s")
    return {**{k: statistics.median(s[k] for s in samples) for k in keys}, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--repeats", nargs="+", type=int, default=[1, 3],
                        help="repeats per workload, in the order of --workloads")
    parser.add_argument("--timed-epochs", type=int, default=None,
                        help="epochs timed per update (the rest count as the median one); "
                             "default: all")
    parser.add_argument("--cores", nargs="+", default=list(CORES), choices=CORES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "ppo_throughput_cpu.json")
    args = parser.parse_args()
    if len(args.repeats) != len(args.workloads):
        parser.error("give one --repeats value per workload")
    torch.set_num_threads(args.threads)
    machine = benchmark_record()  # the code as it was when the timings started
    load_start = os.getloadavg()

    workloads = {}
    for name, repeats in zip(args.workloads, args.repeats, strict=True):
        workload = WORKLOADS[name]
        timed = args.timed_epochs or workload.epochs
        samples: dict[str, list[dict]] = {core: [] for core in args.cores}
        runs = [(repeat, core) for repeat in range(repeats) for core in args.cores]
        for repeat, core in tqdm(runs, desc=f"{name} workload", unit="run"):
            samples[core].append(time_updates(core, workload, timed))
            tqdm.write(f"{name} repeat {repeat} {core:>4}: "
                       f"{samples[core][-1]['steps_per_s_cpu']:7.0f} steps/s (CPU time), "
                       f"{samples[core][-1]['steps_per_s_wall']:7.0f} (wall)")
        cores = {core: summarise(values) for core, values in samples.items()}
        workloads[name] = {
            **dataclasses.asdict(workload),
            "steps_per_update": workload.num_envs * workload.unroll,
            "timed_epochs": min(timed, workload.epochs),
            "repeats": repeats,
            "cores": cores,
            "s5_over_gru_speed": {
                clock: cores["s5"][f"steps_per_s_{clock}"] / cores["gru"][f"steps_per_s_{clock}"]
                for clock in ("cpu", "wall")
            } if {"s5", "gru"} <= set(cores) else None,
        }
    result = {
        "benchmark": "recurrent PPO end-to-end environment steps per second, CPU",
        "task": TASK,
        "network": dataclasses.asdict(NetworkConfig()) | {"core": list(args.cores)},
        "paper_claim": {
            "s5_over_gru_speed": LU2023_WALL_TIME_S["gru"] / LU2023_WALL_TIME_S["s5"],
            "wall_time_s": LU2023_WALL_TIME_S,
            "hardware": "one A40 GPU, the whole POPGym pipeline",
        },
        "workloads": workloads,
        "load_average_at_start": list(load_start),
        "load_average_at_end": list(os.getloadavg()),
        "machine": machine | {"load_average_1min": os.getloadavg()[0]},  # load when it finished
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, entry in workloads.items():
        if entry["s5_over_gru_speed"]:
            speed = entry["s5_over_gru_speed"]
            print(f"{name}: S5 / GRU end-to-end speed {speed['cpu']:.2f}x (CPU time), "
                  f"{speed['wall']:.2f}x (wall)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
