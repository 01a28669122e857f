"""CPU seconds per training step: Decision Transformer vs Decision Mamba (each scan backend).

One step is what the offline trainer does per batch: forward on a batch of DT windows, MSE on
the action predictions, backward, AdamW. The setting is the reference one (batch 64, K = 20
steps = 60 tokens, hidden 128, 3 layers, Hopper's 11-d states and 3-d actions). Hugging Face's
``MambaModel`` (its pure-PyTorch fallback, i.e. what the paper ran without mamba-ssm kernels)
sits behind the same DT-style embeddings as a reference point. "fused" is the default on CPU
(the C kernels of ``scan.c_kernels``); the other Decision Mamba rows swap only the scan for a
``linear_scan`` backend on the discretised ``[B, L, D, N]`` tensors.

All models run in this one process; steps are interleaved across models, round by round, so
load from other processes hits all of them alike; the median is reported, of wall-clock time
and of process CPU time (all threads), the latter being less sensitive to a shared machine.

Usage: ``python benchmarks/train_step.py [--rounds 10] [--threads N]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import MambaConfig as HFMambaConfig
from transformers import MambaModel

from ssmrl_lib.models.decision_mamba import DecisionMamba
from ssmrl_lib.models.decision_transformer import (
    DecisionTransformer,
    SequenceModelConfig,
    count_trainable_parameters,
)
from ssmrl_lib.provenance import benchmark_record
from ssmrl_lib.scan import selective_scan_backends

BATCH = 64
CONFIG = SequenceModelConfig(state_dim=11, act_dim=3)  # Hopper; K = 20, hidden 128, 3 layers
RESULTS = Path(__file__).parent / "results"
# Autograd through a Python time loop (our sequential backend, Hugging Face's fallback) takes
# seconds per step; these are timed every third round only.
SLOW_MODELS = ("Decision Mamba (sequential)", "Decision Mamba (transformers MambaModel)")


class HFMambaBackbone(nn.Module):
    """``transformers.MambaModel`` behind our backbone's ``(embeddings, mask)`` interface."""

    def __init__(self, hidden_size: int, n_layer: int):
        super().__init__()
        config = HFMambaConfig(vocab_size=1, hidden_size=hidden_size, num_hidden_layers=n_layer)
        self.model = MambaModel(config)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask)[0]


def build_models() -> dict[str, nn.Module]:
    models: dict[str, nn.Module] = {"Decision Transformer": DecisionTransformer(CONFIG)}
    for backend in selective_scan_backends():
        if backend in ("auto", "cuda"):  # auto is "fused" on CPU; cuda needs a GPU
            continue
        models[f"Decision Mamba ({backend})"] = DecisionMamba(CONFIG, scan_backend=backend)
    hf = DecisionMamba(CONFIG)
    hf.backbone = HFMambaBackbone(CONFIG.hidden_size, CONFIG.n_layer)
    models["Decision Mamba (transformers MambaModel)"] = hf
    return models


def make_batch(generator: torch.Generator) -> dict[str, torch.Tensor]:
    k = CONFIG.context_len
    return {
        "states": torch.randn(BATCH, k, CONFIG.state_dim, generator=generator),
        "actions": torch.rand(BATCH, k, CONFIG.act_dim, generator=generator) * 2 - 1,
        "returns_to_go": torch.randn(BATCH, k, 1, generator=generator),
        "timesteps": torch.randint(0, CONFIG.max_ep_len - k, (BATCH, 1), generator=generator)
        + torch.arange(k),
        "attention_mask": torch.ones(BATCH, k),
    }


def training_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    model.train()

    def step() -> None:
        predictions = model(**batch)
        loss = nn.functional.mse_loss(predictions, batch["actions"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed steps per model")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=RESULTS / "train_step_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    batch = make_batch(torch.Generator().manual_seed(0))
    models = build_models()
    steps = {name: training_step(model, batch) for name, model in models.items()}
    for step in steps.values():  # warm-up: allocator, AdamW state, lazy inits
        step()
    wall: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(args.rounds):
        for name, step in steps.items():
            if name in SLOW_MODELS and round_index % 3:
                continue
            wall_s, cpu_s = _timed(step)
            wall[name].append(wall_s)
            cpu[name].append(cpu_s)

    dt_wall = statistics.median(wall["Decision Transformer"])
    dt_cpu = statistics.median(cpu["Decision Transformer"])
    rows = [
        {
            "model": name,
            "median_s": statistics.median(wall[name]),
            "ratio_to_dt": statistics.median(wall[name]) / dt_wall,
            "median_cpu_s": statistics.median(cpu[name]),
            "cpu_ratio_to_dt": statistics.median(cpu[name]) / dt_cpu,
            "steps_timed": len(wall[name]),
            "trainable_parameters": count_trainable_parameters(model),
        }
        for name, model in models.items()
    ]
    print(f"{'model':<44} {'s/step':>8} {'vs DT':>6} {'CPU s':>8} {'vs DT':>6} {'params':>9}")
    for row in rows:
        print(
            f"{row['model']:<44} {row['median_s']:8.4f} {row['ratio_to_dt']:6.2f} "
            f"{row['median_cpu_s']:8.4f} {row['cpu_ratio_to_dt']:6.2f} "
            f"{row['trainable_parameters']:9,d}"
        )
    result = {
        "benchmark": "training step (forward + MSE action loss + backward + AdamW), CPU",
        "batch_size": BATCH,
        "context_len": CONFIG.context_len,
        "hidden_size": CONFIG.hidden_size,
        "n_layer": CONFIG.n_layer,
        "state_dim": CONFIG.state_dim,
        "act_dim": CONFIG.act_dim,
        "machine": benchmark_record(),
        "transformers": transformers.__version__,
        "rounds": args.rounds,
        "results": rows,
        "wall_times_s": wall,
        "cpu_times_s": cpu,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
