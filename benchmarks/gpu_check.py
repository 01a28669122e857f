"""The GPU check: the papers' speed and memory figures, measured in one call on one GPU.

Issue 14's list, in this order (each section writes its ``<name>_gpu.json`` under ``--out-dir``
as soon as it finishes; a section starts only while the time budget lasts, and one that fails
is recorded in ``gpu_check_gpu.json`` so the rest still run):

a. ``ppo_throughput``: recurrent PPO end to end (acting + learning) at Lu et al.'s Table 3
   settings (64 envs × 1024 steps, 30 epochs, 8 minibatches, the paper's network) for S5 ⊕,
   GRU, LSTM and MLP on PositionOnlyCartPoleHard (``benchmarks/ppo_throughput.py``'s paper
   workload on the device); environment steps/s and the S5/GRU ratio beside the paper's claim.
b. ``scan_vs_rnn``: the S5 scan against ``nn.GRU``/``nn.LSTM``, forward and forward+backward,
   64 … 4096 steps (``benchmarks/scan_vs_rnn.py`` on the device); ``bsuite_scaling``: one A2C
   training pass of S5, the LSTM and self-attention over bsuite episodes of 4 … 4096 steps,
   time and peak GPU memory, as Lu et al.'s Figure 2 compares them on a GPU
   (``benchmarks/bsuite_scaling.py`` on the device).
c. ``train_step``, ``inference_cost``, ``context_scaling``: DT and Decision Mamba training-step
   time (``benchmarks/train_step.py``'s models), Rezaei & Patel's Table 3 (rollout time and
   peak GPU memory over 1000-step episodes at K = 20, ``experiments.offline_rl.inference_costs``)
   and the per-step inference sweep to 4096 steps of history (``benchmarks/context_scaling.py``).
d. ``full_runs``: with the time left, the full profile's DT and Decision Mamba training on
   hopper-medium, after rebuilding that dataset from the committed behavior policy; as many of
   the 100k steps as fit (a prefix of the full run: the same config), with the time per step
   and what the whole run would take.

``--dry-run`` (CI, ``--device cpu``) runs every section on tiny shapes in seconds, so the
script cannot rot; its files say ``"dry_run": true`` and hold no timing worth reading.

On the GPU machine run it through ``benchmarks/gpu_check.sh`` (installs the carried wheels,
runs the library from source); README's "GPU check" section gives the whole procedure.

Usage: ``python benchmarks/gpu_check.py [--device cuda] [--budget-s 420] [--dry-run]
[--sections ppo,scan,offline,full] [--out-dir benchmarks/results]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark modules

import bsuite_scaling  # noqa: E402
import context_scaling  # noqa: E402
import ppo_throughput as ppo_throughput_benchmark  # noqa: E402
import scan_vs_rnn  # noqa: E402
import train_step  # noqa: E402

from ssmrl_lib.device import DEVICE_VARIABLE, synchronize  # noqa: E402
from ssmrl_lib.models.decision_transformer import count_trainable_parameters  # noqa: E402
from ssmrl_lib.provenance import benchmark_record  # noqa: E402
from ssmrl_lib.report.paper_numbers import LU2023_WALL_TIME_S  # noqa: E402
from ssmrl_lib.scan import scan_provenance  # noqa: E402
from ssmrl_lib.scan.cuda import kernels_available  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SECTIONS = ("ppo", "scan", "offline", "full")
PPO_CORES = ("s5", "gru", "lstm", "mlp")
# Where the carried wheels' folder records the commit the payload was made from (the GPU
# machine gets the working tree without its git history).
SOURCE_COMMIT_FILE = Path(__file__).resolve().parents[1] / ".gpu-wheels" / "SOURCE_COMMIT"


class Budget:
    """Seconds left of the check's time budget."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _record(device: torch.device, dry_run: bool) -> dict[str, Any]:
    """Where and on what this ran (``benchmark_record`` plus the device and the scan)."""
    machine = benchmark_record()
    if machine["commit"] == "unknown" and SOURCE_COMMIT_FILE.exists():
        machine["commit"] = SOURCE_COMMIT_FILE.read_text().strip()
    return {
        "device": str(device),
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "mamba_scan": scan_provenance("auto", device),
        "dry_run": dry_run,
        "machine": machine,
    }


def _median_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall-clock milliseconds of ``fn`` after one warm-up call, synchronised."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


# ----------------------------------------------------------------------------------------------
# a. PPO end to end


def ppo_throughput(
    device: torch.device, dry_run: bool, share_s: float, timed_epochs: int
) -> dict:
    """``benchmarks/ppo_throughput.py``'s paper workload (one update of 64 envs × 1024 steps,
    30 epochs of 8 minibatches) per core on the device, in that benchmark's result format; a
    core starts only within ``share_s`` seconds of the first (S5 and GRU come first)."""
    workload = ppo_throughput_benchmark.WORKLOADS["paper"]
    if dry_run:
        workload = ppo_throughput_benchmark.Workload(num_envs=2, unroll=8, epochs=2,
                                                     minibatches=1, updates=1)
    warm_up = ppo_throughput_benchmark.Workload(num_envs=4, unroll=16, epochs=1, minibatches=1,
                                                updates=1)
    timed = min(timed_epochs, workload.epochs)
    load_start = os.getloadavg()
    cores, skipped = {}, {}
    no_bar = tqdm(disable=True)
    started = time.monotonic()
    for core in PPO_CORES:
        if time.monotonic() - started > share_s and not dry_run:
            skipped[core] = f"the section's {share_s:.0f} s were spent"
            continue
        if not dry_run:  # CUDA context, cuDNN and kernel choice: outside the measurement
            ppo_throughput_benchmark.time_workload([core], warm_up, 1, no_bar, device)
        sample = ppo_throughput_benchmark.time_workload([core], workload, timed, no_bar,
                                                        device)[core]
        cores[core] = ppo_throughput_benchmark.summarise([sample])
        print(f"ppo {core:>5}: {sample['steps_per_s_wall']:9.0f} env steps/s (wall clock), "
              f"acting {100 * sample['acting_share_wall']:.0f}%", flush=True)
    return {
        "benchmark": "recurrent PPO end-to-end environment steps per second, GPU",
        "task": ppo_throughput_benchmark.TASK,
        "network": "NetworkConfig defaults (Lu et al.'s Table 3 sizes)",
        "paper_claim": {
            "claim": "S5 over five times faster than a GRU end to end (the paper's abstract)",
            "s5_over_gru_speed": LU2023_WALL_TIME_S["gru"] / LU2023_WALL_TIME_S["s5"],
            "wall_time_s": LU2023_WALL_TIME_S,
            "hardware": "one A40 GPU, the whole POPGym pipeline",
        },
        "workloads": {"paper": {
            **dataclasses.asdict(workload),
            "steps_per_update": workload.num_envs * workload.unroll,
            "timed_epochs": timed,
            "repeats": 1,
            "cores": cores,
            "skipped": skipped,
            "s5_over_gru_speed": {
                clock: cores["s5"][f"steps_per_s_{clock}"] / cores["gru"][f"steps_per_s_{clock}"]
                for clock in ("cpu", "wall")
            } if {"s5", "gru"} <= set(cores) else None,
        }},
        "load_average_at_start": list(load_start),
        "load_average_at_end": list(os.getloadavg()),
    }


# ----------------------------------------------------------------------------------------------
# b. the scan against cuDNN's GRU and LSTM


def scan_against_rnn(device: torch.device, dry_run: bool, repeats: int) -> dict:
    lengths = (8,) if dry_run else scan_vs_rnn.LENGTHS
    rows = scan_vs_rnn.run(1 if dry_run else repeats, max(lengths), device, lengths)
    scan_vs_rnn.print_table(rows)
    length = min(1024, max(lengths))  # the training length, or the dry run's
    gru = scan_vs_rnn._lookup(rows, "GRU", "forward+backward", length)
    ratios = {
        model: gru / s5
        for model in ("S5 layer (associative)", "S5 stack, 4 blocks (associative)")
        if (s5 := scan_vs_rnn._lookup(rows, model, "forward+backward", length)) and gru
    }
    return {
        "benchmark": "S5 scan vs nn.GRU / nn.LSTM, forward and forward+backward",
        "batch": scan_vs_rnn.BATCH,
        "hidden": scan_vs_rnn.HIDDEN,
        "reset_prob": scan_vs_rnn.RESET_PROB,
        "repeats": repeats,
        "gru_over_s5_training_at_1024": ratios,
        "results": rows,
    }


# ----------------------------------------------------------------------------------------------
# c. offline sequence models: training step, Table 3, per-step inference sweep


def training_steps(device: torch.device, dry_run: bool, repeats: int) -> dict:
    """``train_step.py``'s models and batch (K = 20, batch 64, hidden 128, 3 layers) on the
    device; Decision Mamba on mamba-ssm's kernels too where they import."""
    models = train_step.build_models()
    if kernels_available() and device.type == "cuda":
        from ssmrl_lib.models.decision_mamba import DecisionMamba

        models["Decision Mamba (cuda)"] = DecisionMamba(train_step.CONFIG, scan_backend="cuda")
    if dry_run:  # DT and the default Decision Mamba only: the others take seconds on a CPU
        models = dict(list(models.items())[:2])
    batch = {
        k: v.to(device) for k, v in train_step.make_batch(torch.Generator().manual_seed(0)).items()
    }
    rows = []
    for name, model in models.items():
        step = train_step.training_step(model.to(device), batch)
        slow = name in train_step.SLOW_MODELS
        timed = 1 if dry_run else max(3, repeats // 3) if slow else repeats
        median = _median_ms(step, device, timed)
        rows.append({"model": name, "median_ms": median,
                     "trainable_parameters": count_trainable_parameters(model)})
        print(f"train step {name:<44} {median:8.2f} ms", flush=True)
    dt = rows[0]["median_ms"]
    for row in rows:
        row["ratio_to_dt"] = row["median_ms"] / dt
    return {
        "benchmark": "training step (forward + MSE action loss + backward + AdamW)",
        "batch_size": train_step.BATCH,
        "context_len": train_step.CONFIG.context_len,
        "hidden_size": train_step.CONFIG.hidden_size,
        "n_layer": train_step.CONFIG.n_layer,
        "results": rows,
    }


def table3(device: torch.device, dry_run: bool, episodes: int) -> dict:
    """Rezaei & Patel's Table 3 on the device: ``inference_costs`` at K = 20, 1000-step
    episodes (every episode runs the full time limit), Hopper."""
    from ssmrl_lib.experiments.offline_rl import PAPER, inference_costs

    if dry_run:
        model = dataclasses.replace(PAPER.model, context_len=5, hidden_size=16, n_layer=1,
                                    max_ep_len=10)
        costs = {"cost_episodes": 2, "cost_envs": 2}
    else:
        model = dataclasses.replace(PAPER.model, context_len=20, max_ep_len=1000)
        costs = {"cost_episodes": episodes, "cost_envs": min(50, episodes)}
    settings = dataclasses.replace(PAPER, envs=("hopper",), models=("dt", "mamba"), model=model,
                                   **costs)
    rows = inference_costs(settings)
    for row in rows:
        print(f"table 3 {row['model']:>5} {row['mode']:<9} {row['wall_time_s']:7.1f} s, "
              f"GPU peak {row['gpu_peak_mib']} MiB", flush=True)
    return {
        "benchmark": "Rezaei & Patel Table 3: rollout time and peak memory, fixed workload",
        "settings": dataclasses.asdict(settings),
        "results": rows,
    }


def context_sweep(device: torch.device, dry_run: bool, repeats: int) -> dict:
    lengths = [4, 8] if dry_run else list(context_scaling.LENGTHS)
    contexts = [4] if dry_run else list(context_scaling.TRAIN_CONTEXTS)
    return {
        "benchmark": "per-step inference and training cost vs context length",
        "inference": context_scaling.inference(lengths, 2 if dry_run else repeats, device),
        "training": context_scaling.training(contexts, 1 if dry_run else max(3, repeats // 5),
                                             device),
    }


# ----------------------------------------------------------------------------------------------
# d. full-profile training on hopper-medium, as far as the time allows


FULL_DATASET = "ssmrl/hopper/medium-v0"


class DatasetRebuild:
    """``ssmrl data build`` of ``FULL_DATASET`` in a child process, started first so that the
    CPU-bound collection overlaps the GPU sections (the machine has cores to spare)."""

    def __init__(self, dry_run: bool):
        command = [sys.executable, "-m", "ssmrl_lib.cli", "data", "build", "--env", "hopper",
                   "--quality", "medium", "--if-missing"] + (["--steps", "300"] if dry_run else [])
        self.log = Path(tempfile.gettempdir()) / "ssmrl_gpu_check_dataset_rebuild.log"
        self.started = time.perf_counter()
        with self.log.open("w") as log:
            # one thread: the collection must not take the cores the timed sections use
            env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env=env)

    def wait(self, timeout_s: float) -> float:
        """Seconds the rebuild took; ``TimeoutError`` (and the child killed) past ``timeout_s``."""
        try:
            code = self.process.wait(timeout=max(timeout_s, 1))
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise TimeoutError(
                f"dataset rebuild unfinished within the budget; see {self.log}"
            ) from None
        if code:
            raise RuntimeError(f"dataset rebuild failed (exit {code}): {self.log.read_text()}")
        return time.perf_counter() - self.started


def full_runs(
    device: torch.device, dry_run: bool, budget: Budget, rebuild: DatasetRebuild
) -> dict:
    """Wait for the rebuilt ``FULL_DATASET``, then train the full profile's DT and Decision
    Mamba on it for as many of their steps as the budget allows (no evaluation rollouts)."""
    from ssmrl_lib.data import DTWindowSampler, load_trajectories
    from ssmrl_lib.experiments import offline_rl
    from ssmrl_lib.train.offline import train_offline

    rebuild_s = rebuild.wait(budget.left() - 60)
    dataset = FULL_DATASET
    print(f"{dataset} ready {rebuild_s:.0f} s after the check started building it", flush=True)
    settings = offline_rl.settings_for("full", envs=["hopper"], models=["dt", "mamba"], seeds=1)
    specs = offline_rl.grid(settings)
    trajectories = load_trajectories(dataset)
    runs = []
    for index, spec in enumerate(specs):
        config = spec.config
        share = budget.left() / (len(specs) - index) - 10  # seconds for this model
        probe = 20 if not dry_run else 1
        sampler = DTWindowSampler(trajectories, config.model.context_len, config.eval.rtg_scale,
                                  config.model.max_ep_len)
        torch.manual_seed(config.seed)
        model = offline_rl.MODELS[config.model_name](config.model).to(device)
        probe_started = time.perf_counter()
        train_offline(model, sampler, dataclasses.replace(config.train, steps=probe), config.seed)
        synchronize(device)
        step_s = (time.perf_counter() - probe_started) / probe
        steps = config.train.steps if not dry_run else 2
        steps = max(probe, min(steps, int(share / step_s))) if not dry_run else steps
        torch.manual_seed(config.seed)
        model = offline_rl.MODELS[config.model_name](config.model).to(device)
        train_started = time.perf_counter()
        history = train_offline(model, sampler, dataclasses.replace(config.train, steps=steps),
                                config.seed)
        synchronize(device)
        train_s = time.perf_counter() - train_started
        runs.append({
            "model": config.model_name,
            "config": dataclasses.asdict(config),
            "steps_done": steps,
            "steps_full": config.train.steps,
            "fraction_of_full": steps / config.train.steps,
            "train_s": train_s,
            "s_per_step": train_s / steps,
            "projected_full_train_s": train_s / steps * config.train.steps,
            "final_loss": float(statistics.fmean(history.losses[-max(1, steps // 20):])),
            "loss_curve": offline_rl._binned_curve(history.losses),
        })
        print(f"full {config.model_name:>5}: {steps}/{config.train.steps} steps in "
              f"{train_s:.0f} s ({1e3 * train_s / steps:.1f} ms/step, whole run ≈ "
              f"{train_s / steps * config.train.steps / 60:.0f} min)", flush=True)
    return {
        "benchmark": "full-profile offline training on hopper-medium (prefix; no evaluation)",
        "dataset": dataset,
        "dataset_fingerprint": trajectories.fingerprint(),
        "dataset_steps": int(trajectories.lengths.sum()),
        "dataset_ready_after_s": rebuild_s,  # built alongside the sections before this one
        "runs": runs,
    }


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny shapes, every section, seconds on a CPU (CI)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="time budget in seconds; sections that would start later are skipped")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated, from {', '.join(SECTIONS)}")
    parser.add_argument("--timed-epochs", type=int, default=10,
                        help="PPO epochs timed of the 30 (the rest count as the median one)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--table3-episodes", type=int, default=100)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or args.device not in ("cpu", "cuda"):
        what = f"section(s) {', '.join(unknown)}" if unknown else f"device {args.device!r}"
        print(f"gpu_check: error: unknown {what}; valid: {', '.join(SECTIONS)}; cpu, cuda",
              file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: error: --device cuda but torch sees no GPU; use --device cpu "
              "--dry-run for the CPU check", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    os.environ[DEVICE_VARIABLE] = args.device  # inference_costs and the trainers read it
    torch.manual_seed(0)
    budget = Budget(args.budget_s)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    header = _record(device, args.dry_run)
    print(f"gpu check on {header['gpu_name'] or header['machine']['cpu']}, "
          f"Mamba scan: {header['mamba_scan']}, budget {args.budget_s:.0f} s", flush=True)

    # name of the results file -> (section, how to compute it, seconds it needs at least)
    jobs: list[tuple[str, str, Callable[[], dict], float]] = [
        ("ppo_throughput", "ppo",
         lambda: ppo_throughput(device, args.dry_run, 0.4 * args.budget_s, args.timed_epochs),
         60),
        ("scan_vs_rnn", "scan", lambda: scan_against_rnn(device, args.dry_run, args.repeats), 30),
        ("bsuite_scaling", "scan", lambda: bsuite_scaling.run(
            [4] if args.dry_run else list(bsuite_scaling.LENGTHS), list(bsuite_scaling.CORES),
            1, 1 if args.dry_run else 5, device), 30),
        ("train_step", "offline", lambda: training_steps(device, args.dry_run, args.repeats), 20),
        ("inference_cost", "offline",
         lambda: table3(device, args.dry_run, args.table3_episodes), 40),
        ("context_scaling", "offline",
         lambda: context_sweep(device, args.dry_run, 2 * args.repeats), 30),
        ("full_runs", "full", lambda: full_runs(device, args.dry_run, budget, rebuild), 60),
    ]
    rebuild = DatasetRebuild(args.dry_run) if "full" in sections else None
    summary: dict[str, Any] = {"benchmark": "gpu check summary", **header,
                               "budget_s": args.budget_s, "sections": {}}
    for name, section, compute, needs_s in jobs:
        if section not in sections:
            continue
        if not args.dry_run and budget.left() < needs_s:
            summary["sections"][name] = {"status": "skipped",
                                         "why": f"{budget.left():.0f} s of the budget left"}
            print(f"{name}: skipped, {budget.left():.0f} s left", flush=True)
            continue
        started = time.perf_counter()
        try:
            result = compute()
        except Exception as error:  # one broken section must not cost the rest of the call
            if args.dry_run:
                raise
            traceback.print_exc()
            summary["sections"][name] = {"status": "failed", "error": repr(error)}
            continue
        result = {**result, **header, "wall_s": time.perf_counter() - started}
        path = args.out_dir / f"{name}_gpu.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        summary["sections"][name] = {"status": "done", "wall_s": result["wall_s"],
                                     "file": path.name}
        print(f"{name}: done in {result['wall_s']:.0f} s -> {path}", flush=True)
    if rebuild is not None and rebuild.process.poll() is None:  # its section was skipped
        rebuild.process.kill()
    summary["wall_s"] = args.budget_s - budget.left()
    (args.out_dir / "gpu_check_gpu.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'section':<18} {'status':<8} {'s':>6}")
    for name, row in summary["sections"].items():
        print(f"{name:<18} {row['status']:<8} {row.get('wall_s', 0):6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
