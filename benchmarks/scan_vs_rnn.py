"""CPU wall-clock of S5 (per scan backend) vs ``nn.GRU`` / ``nn.LSTM`` against sequence length.

The issue's goal: S5 training over 1024-step sequences at least twice as fast as a GRU of the
same size on CPU. Every model maps ``[BATCH, L, 256]`` to ``[BATCH, L, 256]``; BATCH = 8 is one
PPO minibatch of Lu et al.'s POPGym setup (64 envs × 1024 steps / 8 minibatches). S5 gets
random episode resets (1% of steps), as in PPO training; GRU and LSTM run without resets (torch's
fused RNNs cannot reset mid-sequence), which only favours them.

"forward" runs under ``torch.no_grad`` (evaluating a rollout); "forward+backward" is the
training step (input requires grad, as behind an encoder). Repeats are interleaved across models
so load from other processes hits all of them alike; the median is reported.

Usage: ``python benchmarks/scan_vs_rnn.py [--repeats 5] [--max-length 4096] [--threads N]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ssmrl_lib.device import synchronize
from ssmrl_lib.models.s5 import S5Config, S5Layer, S5Stack
from ssmrl_lib.provenance import benchmark_record
from ssmrl_lib.report.popgym import plot_scan_benchmark
from ssmrl_lib.scan import linear_scan_backends

BATCH = 8
HIDDEN = 256  # H = P = 256 (128 complex modes kept), the paper's recurrent size
LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096)
SEQUENTIAL_MAX_LENGTH = 1024  # the Python-loop backend takes seconds per step beyond this
RESET_PROB = 0.01
RESULTS = Path(__file__).parent / "results"

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build_models() -> dict[str, tuple[nn.Module, Forward, int]]:
    """Name -> (module, ``f(u, reset) -> output``, longest length it is timed at)."""
    models: dict[str, tuple[nn.Module, Forward, int]] = {}
    for backend in linear_scan_backends():
        layer = S5Layer(S5Config(HIDDEN, HIDDEN, n_layers=1, scan_backend=backend))
        max_len = SEQUENTIAL_MAX_LENGTH if backend == "sequential" else max(LENGTHS)
        models[f"S5 layer ({backend})"] = (layer, lambda u, r, m=layer: m(u, None, r)[0], max_len)
    # The paper's whole recurrent core (4 blocks) against a single GRU layer, for context; only
    # up to the goal's length, to keep the run short.
    stack = S5Stack(S5Config(HIDDEN, HIDDEN, n_layers=4))
    models["S5 stack, 4 blocks (associative)"] = (stack, lambda u, r: stack(u, None, r)[0], 1024)
    for name, cls in (("GRU", nn.GRU), ("LSTM", nn.LSTM)):
        rnn = cls(HIDDEN, HIDDEN, batch_first=True)
        models[name] = (rnn, lambda u, r, m=rnn: m(u)[0], max(LENGTHS))
    return models


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def _steps(
    module: nn.Module, forward: Forward, u: torch.Tensor, reset: torch.Tensor
) -> dict[str, Callable[[], None]]:
    """The two timed operations for one model: inference forward and a training step."""

    def fwd() -> None:
        with torch.no_grad():
            forward(u, reset)

    def fwd_bwd() -> None:
        module.zero_grad(set_to_none=True)
        u.grad = None
        forward(u, reset).sum().backward()

    return {"forward": fwd, "forward+backward": fwd_bwd}


def run(
    repeats: int, max_length: int, device: torch.device | str = "cpu",
    lengths: tuple[int, ...] = LENGTHS,
) -> list[dict]:
    """Median milliseconds of every model and mode at each of ``lengths`` up to
    ``max_length``, on ``device``."""
    device = torch.device(device)
    torch.manual_seed(0)
    models = build_models()
    for module, _, _ in models.values():
        module.to(device)
    rows = []
    for length in (n for n in lengths if n <= max_length):
        u = torch.randn(BATCH, length, HIDDEN).to(device).requires_grad_()
        reset = (torch.rand(BATCH, length) < RESET_PROB).to(device)
        ops = {
            (name, mode): fn
            for name, (module, forward, max_len) in models.items()
            if length <= max_len
            for mode, fn in _steps(module, forward, u, reset).items()
        }
        for fn in ops.values():  # warm-up: allocator, oneDNN kernels
            fn()
        times: dict[tuple[str, str], list[float]] = {key: [] for key in ops}
        for _ in range(repeats):
            for key, fn in ops.items():
                times[key].append(_timed(fn, device))
        for (name, mode), ts in times.items():
            ms = [1e3 * t for t in ts]
            median = statistics.median(ms)
            rows.append({"model": name, "mode": mode, "length": length, "median_ms": median})
            rows[-1]["times_ms"] = ms
        print(f"L={length}: done", flush=True)
    return rows


def _lookup(rows: list[dict], model: str, mode: str, length: int) -> float | None:
    key = (model, mode, length)
    return next((r["median_ms"] for r in rows if (r["model"], r["mode"], r["length"]) == key), None)


def print_table(rows: list[dict]) -> None:
    models = list(dict.fromkeys(r["model"] for r in rows))
    lengths = sorted({r["length"] for r in rows})
    for mode in ("forward", "forward+backward"):
        print(f"\n{mode}: median ms, batch {BATCH}, H = P = {HIDDEN}")
        print(f"{'model':<36}" + "".join(f"{n:>9}" for n in lengths))
        for model in models:
            cells = (_lookup(rows, model, mode, n) for n in lengths)
            text = ("—" if c is None else f"{c:.1f}" for c in cells)
            print(f"{model:<36}" + "".join(f"{t:>9}" for t in text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=max(LENGTHS))
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch intra-op threads (1 is steadier on a shared machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    rows = run(args.repeats, args.max_length)
    print_table(rows)

    training = "forward+backward"
    ratios = {}
    for model in ("S5 layer (associative)", "S5 stack, 4 blocks (associative)"):
        s5, gru = _lookup(rows, model, training, 1024), _lookup(rows, "GRU", training, 1024)
        if s5 and gru:
            ratios[model] = gru / s5
            print(f"\nGRU / {model}, training step at L=1024: {gru / s5:.2f}x")

    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": benchmark_record(),
        "batch": BATCH,
        "hidden": HIDDEN,
        "reset_prob": RESET_PROB,
        "repeats": args.repeats,
        "sequential_max_length": SEQUENTIAL_MAX_LENGTH,
        "gru_over_s5_training_at_1024": ratios,
        "wall_s": time.perf_counter() - started,
        "results": rows,
    }
    (RESULTS / "scan_vs_rnn_cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_scan_benchmark(report).savefig(RESULTS / "scan_vs_rnn_cpu.png", dpi=120)
    print(f"wrote {RESULTS}/scan_vs_rnn_cpu.{{json,png}} in {report['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
