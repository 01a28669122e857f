"""End-to-end recurrent PPO throughput (environment steps per second) for each memory core.

Lu et al. (2023) report S5 training over six times faster than a GRU end to end on one A40
(≈1,750 s vs ≈11,800 s for the whole POPGym pipeline). This measures the same thing on this
machine: acting in the environments (one core call per step) plus PPO epochs replaying the
stored sequences, with the paper's network sizes (encoder [128, 256], memory 256, S5 4 layers,
P 256, heads [128, 128]) on PositionOnlyCartPoleHard. The rollout is shortened (16 envs ×
256 steps, 2 epochs) so every core finishes in about a minute on a CPU; the proportion of
acting to learning is therefore not the paper's (64 × 1024 steps, 30 epochs).

Each core is trained ``--repeats`` times from the same seed, interleaved across cores so load
from other processes hits them alike; the median steps/s is reported.

Usage: ``python benchmarks/ppo_throughput.py [--repeats 3] [--updates 2] [--threads N]``
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from ssmrl_lib.experiments.popgym_ppo import make_env
from ssmrl_lib.models.memory import CORES
from ssmrl_lib.report.provenance import benchmark_record
from ssmrl_lib.train.ppo import NetworkConfig, PPOConfig, train_ppo

TASK = "PositionOnlyCartPoleHard"
RESULTS = Path(__file__).parent / "results"


def steps_per_second(core: str, updates: int) -> float:
    """Environment steps per second of ``updates`` PPO updates with ``core`` (wall clock)."""
    config = PPOConfig(
        total_steps=updates * 16 * 256, num_envs=16, unroll=256, epochs=2, minibatches=2,
        checkpoint_every=updates + 1,
    )
    _, history = train_ppo(
        lambda: make_env(TASK), NetworkConfig(core=core), config, seed=0, progress=False
    )
    return history.steps[-1] / history.wall_time_s[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=RESULTS / "ppo_throughput_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    samples: dict[str, list[float]] = {core: [] for core in CORES}
    for repeat in range(args.repeats):
        for core in CORES:
            samples[core].append(steps_per_second(core, args.updates))
            print(f"repeat {repeat} {core:>10}: {samples[core][-1]:8.0f} steps/s", flush=True)
    median = {core: statistics.median(values) for core, values in samples.items()}
    result = {
        "benchmark": "recurrent PPO end-to-end environment steps per second, CPU",
        "task": TASK,
        "network": "Lu et al. Table 3 sizes (NetworkConfig defaults)",
        "rollout": {"num_envs": 16, "unroll": 256, "epochs": 2, "minibatches": 2,
                    "updates": args.updates},
        "repeats": args.repeats,
        "median_steps_per_s": median,
        "s5_over_gru_speed": median["s5"] / median["gru"],
        "samples_steps_per_s": samples,
        "machine": benchmark_record(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"S5 / GRU end-to-end speed: {result['s5_over_gru_speed']:.2f}x; wrote {args.out}")


if __name__ == "__main__":
    main()
