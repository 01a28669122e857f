"""Wall time of a grid through the local executor at ``--jobs 1`` and ``--jobs 2``.

The grid is 4 short real runs (POPGym's smoke settings, S5 and GRU PPO, 2 seeds, longer
training). Each repeat computes it from scratch into an empty run store at each ``jobs``,
alternating, so that both see the same background load; the ratio of the medians is the
speed-up. It then checks that every ``jobs`` gave the same numbers (timings aside).

Other processes on the machine slow this down: the 1-minute load average before and after each
measurement is recorded, and a speed-up below ``jobs`` on a busy machine says as much about the
machine as about the executor.

Usage: ``python benchmarks/parallel_executor.py [--jobs 1 2] [--repeats 3] [--steps 2048]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ssmrl_lib.experiments import popgym_ppo
from ssmrl_lib.provenance import benchmark_record
from ssmrl_lib.runs import LocalExecutor, RunStore
from ssmrl_lib.runs.record import computed_numbers

RESULTS = Path(__file__).parent / "results"


def _autogroup() -> int | None:
    try:
        return int(Path("/proc/sys/kernel/sched_autogroup_enabled").read_text())
    except (OSError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2048, help="environment steps per run")
    parser.add_argument("--out", type=Path, default=RESULTS / "parallel_executor_cpu.json")
    args = parser.parse_args()

    settings = popgym_ppo.settings_for("smoke", seeds=2, **{"ppo.total_steps": args.steps})
    specs = popgym_ppo.grid(settings)
    seconds: dict[int, list[float]] = {jobs: [] for jobs in args.jobs}
    run_seconds: dict[int, list[float]] = {jobs: [] for jobs in args.jobs}
    load: dict[int, list[list[float]]] = {jobs: [] for jobs in args.jobs}
    numbers: dict[int, object] = {}
    for repeat in range(args.repeats):
        for jobs in args.jobs:
            scratch = Path(tempfile.mkdtemp(prefix="ssmrl-parallel-bench-"))
            try:
                before = os.getloadavg()[0]
                started = time.perf_counter()
                results = LocalExecutor(RunStore(scratch), jobs=jobs).run_all(specs)
                seconds[jobs].append(time.perf_counter() - started)
                run_seconds[jobs].extend(result["wall_time_s"] for result in results)
                load[jobs].append([before, os.getloadavg()[0]])
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            numbers.setdefault(jobs, computed_numbers(results))
            print(f"repeat {repeat + 1}/{args.repeats}, jobs {jobs}: "
                  f"{seconds[jobs][-1]:.1f} s, load {load[jobs][-1][0]:.1f} -> "
                  f"{load[jobs][-1][1]:.1f}", flush=True)
    medians = {jobs: statistics.median(values) for jobs, values in seconds.items()}
    baseline = args.jobs[0]
    record = {
        "benchmark": "parallel_executor",
        "grid": f"{len(specs)} POPGym smoke PPO runs (S5, GRU; 2 seeds) of {args.steps} steps",
        "repeats": args.repeats,
        "seconds": {str(jobs): values for jobs, values in seconds.items()},
        "speedup_over_jobs": baseline,
        "median_seconds": {str(jobs): round(value, 2) for jobs, value in medians.items()},
        "speedup": {
            str(jobs): round(medians[baseline] / value, 3) for jobs, value in medians.items()
        },
        # Each run's own wall time: if it grows with jobs, the runs did not get a core each.
        "median_run_seconds": {
            str(jobs): round(statistics.median(values), 2) for jobs, values in run_seconds.items()
        },
        "load_average_1min_before_after": {str(jobs): values for jobs, values in load.items()},
        # 1: Linux shares the CPU between sessions first, so on a busy machine a session's runs
        # split its share instead of adding to it.
        "sched_autogroup_enabled": _autogroup(),
        "identical_numbers": all(numbers[jobs] == numbers[baseline] for jobs in args.jobs),
        "machine": benchmark_record(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("median_seconds", "median_run_seconds",
                                              "identical_numbers")}))
    print(f"speed-up over jobs {baseline}: {record['speedup']} -> {args.out}")


if __name__ == "__main__":
    main()
