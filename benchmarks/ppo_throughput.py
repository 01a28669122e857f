"""End-to-end recurrent PPO throughput (environment steps per second) for each memory core.

Lu et al. (2023) report S5 training over six times faster than a GRU end to end on one A40
(≈1,750 s vs ≈11,800 s for the whole POPGym pipeline). This measures the same thing on this
machine, with the paper's network (encoder [128, 256], memory 256, S5 with 4 layers of the
authors' block, H = P = 256, heads [128, 128]) on PositionOnlyCartPoleHard, at two workloads:

- ``paper``: Lu et al.'s Table 3, one update of 64 envs × 1024 steps, 30 epochs of 8
  minibatches. Each minibatch replays 8 whole 1024-step sequences, so learning dominates;
- ``small``: 2 updates of 16 envs × 256 steps, 2 epochs of 2 minibatches, where acting one
  step at a time takes about half the time (what this benchmark measured at first).

An update is timed in its two phases, as ``train_ppo`` runs them: acting (``collect``, every
step of the rollout) and learning (``ppo_update``, one epoch at a time). ``--timed-epochs K``
times only the first K epochs of an update and counts the median epoch for the rest (epochs
replay the same rollout, so they do the same work); the default times all of them.

Each phase is timed by the wall clock and by the process's CPU time. On a machine shared with
other jobs the wall clock is an upper bound, and even the CPU time of a single-threaded process
varies with what the others do to caches and memory bandwidth, so the cores take turns phase by
phase (acting, then each timed epoch, core after core), and medians over repeats are reported.

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
from ssmrl_lib.env_batch import EnvBatch
from ssmrl_lib.experiments.popgym_ppo import make_env
from ssmrl_lib.models.actor_critic import ActorCritic, NetworkConfig
from ssmrl_lib.provenance import benchmark_record
from ssmrl_lib.report.paper_numbers import LU2023_WALL_TIME_S
from ssmrl_lib.train.ppo import PPOAgentRunner, PPOConfig, ppo_update

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


class Learner:
    """One core's agent, optimizer and acting loop, built as ``train_ppo`` builds them (seed 0),
    with the wall-clock and CPU seconds each phase of its updates took.

    Learning runs ``ppo_update`` one epoch at a time: the same work as one call with all epochs
    but for the advantages, which each call recomputes (milliseconds, against seconds per epoch).
    Each learner keeps its own torch random state, so interleaving learners changes nothing in
    what any of them computes.
    """

    def __init__(self, core: str, config: PPOConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.one_epoch = dataclasses.replace(config, epochs=1)
        torch.manual_seed(0)
        self.generator = torch.Generator().manual_seed(0)
        envs = EnvBatch(lambda: make_env(TASK), config.num_envs, seed=0)
        self.agent = ActorCritic(int(np.prod(envs.observation_space.shape)), envs.action_space,
                                 NetworkConfig(core=core)).to(self.device)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=config.learning_rate,
                                          eps=1e-5)
        self.runner = PPOAgentRunner(envs, self.agent, self.device)
        self.rng = torch.get_rng_state()
        self.rollout = None
        self.seconds = {f"{phase}_{clock}_s": 0.0 for phase in ("act", "learn")
                        for clock in ("wall", "cpu")}
        self.epoch_seconds: dict[str, list[float]] = {"wall": [], "cpu": []}  # this update's
        self.all_epochs: dict[str, list[float]] = {"wall": [], "cpu": []}

    def _timed(self, phase: str, work) -> None:
        torch.set_rng_state(self.rng)
        clock = Clock()
        work()
        synchronize(self.device)  # on a GPU, the phase ends when its queued work has run
        wall, cpu = clock.read()
        self.rng = torch.get_rng_state()
        if phase == "act":
            self.seconds["act_wall_s"] += wall
            self.seconds["act_cpu_s"] += cpu
        else:
            self.epoch_seconds["wall"].append(wall)
            self.epoch_seconds["cpu"].append(cpu)

    def act(self) -> None:
        def collect() -> None:
            self.agent.eval()
            self.rollout, _, _ = self.runner.collect(self.agent, self.config.unroll)
            self.agent.train()

        self._timed("act", collect)

    def learn_one_epoch(self) -> None:
        self._timed("learn", lambda: ppo_update(
            self.agent, self.optimizer, self.rollout, self.one_epoch, self.generator
        ))

    def finish_update(self) -> None:
        """Add this update's learning time, the untimed epochs counted as its median epoch."""
        for clock, times in self.epoch_seconds.items():
            untimed = self.config.epochs - len(times)
            self.seconds[f"learn_{clock}_s"] += sum(times) + untimed * statistics.median(times)
            self.all_epochs[clock] += times
        self.epoch_seconds = {"wall": [], "cpu": []}

    def sample(self, updates: int) -> dict:
        steps = updates * self.config.steps_per_update
        sample = {**self.seconds, "epoch_wall_s": self.all_epochs["wall"],
                  "epoch_cpu_s": self.all_epochs["cpu"]}
        for clock in ("wall", "cpu"):
            total = self.seconds[f"act_{clock}_s"] + self.seconds[f"learn_{clock}_s"]
            sample[f"steps_per_s_{clock}"] = steps / total
            sample[f"acting_share_{clock}"] = self.seconds[f"act_{clock}_s"] / total
        return sample


def time_workload(
    cores: list[str], workload: Workload, timed_epochs: int, bar: tqdm,
    device: torch.device | str = "cpu",
) -> dict:
    """One measurement of every core on ``device``: each phase (acting, then every timed
    epoch) runs core after core, seconds apart, so that load from other processes falls on all
    cores alike."""
    config = workload.ppo()
    learners = {core: Learner(core, config, device) for core in cores}
    load_before = os.getloadavg()[0]
    for _ in range(workload.updates):
        for learner in learners.values():
            learner.act()
            bar.update()
        for _ in range(min(timed_epochs, config.epochs)):
            for learner in learners.values():
                learner.learn_one_epoch()
                bar.update()
        for learner in learners.values():
            learner.finish_update()
    load = {"load_average_before": load_before, "load_average_after": os.getloadavg()[0]}
    return {core: learner.sample(workload.updates) | load for core, learner in learners.items()}


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
        phases = workload.updates * (1 + min(timed, workload.epochs)) * len(args.cores)
        with tqdm(total=repeats * phases, desc=f"{name} workload", unit="phase") as bar:
            for repeat in range(repeats):
                for core, sample in time_workload(args.cores, workload, timed, bar).items():
                    samples[core].append(sample)
                    bar.write(f"{name} repeat {repeat} {core:>4}: "
                              f"{sample['steps_per_s_cpu']:7.0f} steps/s (CPU time), "
                              f"{sample['steps_per_s_wall']:7.0f} (wall)")
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
