"""How per-step inference and training cost grow with context: DT vs Decision Mamba on CPU.

Inference, one action per environment step after ``L`` steps of history (batch 1, as in a
rollout), three ways:

* DT without cache: re-run the transformer on the whole ``L``-step window (what DT's evaluation
  does, with ``L = K = 20``): O(L) tokens, O(L^2) attention, every step.
* DT with a KV cache: GPT-2's ``past_key_values`` keep every earlier token's keys and values,
  so a step processes only its 3 new tokens, but attends over (and stores) all ``3L``.
* Decision Mamba recurrent (``step``): a fixed-size state, O(1) time and memory per step.

For each we report the median step latency, the bytes carried from one step to the next, and
the step's peak resident-memory growth (Linux only). Training: seconds and peak memory per
step (forward, backward, AdamW) against the window length ``K``.

Usage: ``python benchmarks/context_scaling.py [--max-length 4096] [--threads N]``
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
from transformers import DynamicCache

from ssmrl_lib.device import synchronize
from ssmrl_lib.evaluate.peak_memory import PeakMemory
from ssmrl_lib.models.decision_mamba import DecisionMamba
from ssmrl_lib.models.decision_transformer import DecisionTransformer, SequenceModelConfig
from ssmrl_lib.provenance import benchmark_record

LENGTHS = (20, 64, 256, 1024, 4096)
TRAIN_CONTEXTS = (20, 50, 100, 200, 400)
TRAIN_BATCH = 16
CPU = torch.device("cpu")
RESULTS = Path(__file__).parent / "results"


def make_config(max_ep_len: int) -> SequenceModelConfig:
    # Hopper's sizes; the timestep table must cover the longest history.
    return SequenceModelConfig(state_dim=11, act_dim=3, max_ep_len=max_ep_len)


def _history(
    config: SequenceModelConfig, length: int, batch: int = 1, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(length)
    history = {
        "states": torch.randn(batch, length, config.state_dim, generator=g),
        "actions": torch.rand(batch, length, config.act_dim, generator=g) * 2 - 1,
        "returns_to_go": torch.randn(batch, length, 1, generator=g),
        "timesteps": torch.arange(length).expand(batch, length),
        "attention_mask": torch.ones(batch, length),
    }
    return {key: value.to(device) for key, value in history.items()}


class CachedDT:
    """DT rollout with GPT-2's KV cache: the same embeddings and heads as the full forward,
    but each step feeds only ``(a_{t-1}, R_t, s_t)`` to the encoder."""

    def __init__(self, model: DecisionTransformer):
        self.dt = model.model
        self.cache = DynamicCache(config=self.dt.config)
        self.tokens = 0

    def _token(self, embed: nn.Module, value: torch.Tensor, timestep: torch.Tensor):
        return self.dt.embed_ln(embed(value) + self.dt.embed_timestep(timestep))

    def _encode(self, tokens: torch.Tensor) -> torch.Tensor:
        self.tokens += tokens.shape[1]
        out = self.dt.encoder(
            inputs_embeds=tokens,
            attention_mask=torch.ones(1, self.tokens, device=tokens.device),
            # as DT does
            position_ids=torch.zeros(1, tokens.shape[1], dtype=torch.long, device=tokens.device),
            past_key_values=self.cache,
            use_cache=True,
        )
        return out.last_hidden_state

    def prefill(self, history: dict[str, torch.Tensor]) -> None:
        """All ``(R, s, a)`` tokens of the history but the last action."""
        t = history["timesteps"]
        tokens = torch.stack(
            [
                self._token(self.dt.embed_return, history["returns_to_go"], t),
                self._token(self.dt.embed_state, history["states"], t),
                self._token(self.dt.embed_action, history["actions"], t),
            ],
            dim=2,
        ).flatten(1, 2)
        self._encode(tokens[:, :-1])

    def step(self, prev_action, return_to_go, state, prev_timestep, timestep) -> torch.Tensor:
        tokens = torch.cat(
            [
                self._token(self.dt.embed_action, prev_action, prev_timestep),
                self._token(self.dt.embed_return, return_to_go, timestep),
                self._token(self.dt.embed_state, state, timestep),
            ],
            dim=1,
        )
        return self.dt.predict_action(self._encode(tokens)[:, -1])

    def carried_bytes(self) -> int:
        return sum(
            t.numel() * t.element_size()
            for layer in self.cache.layers
            for t in (layer.keys, layer.values)
        )


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """``fn``'s peak memory above what was in use before it (``PeakMemory``): tensors on a GPU,
    resident memory on the CPU (Linux; None elsewhere)."""
    with PeakMemory(device) as memory:
        fn()
    mib = memory.gpu_growth_mib if device.type == "cuda" else memory.rss_growth_mib
    return None if mib is None else round(mib * 2**20)


def _median_times(
    fns: list[Callable[[], object]], repeats: list[int], device: torch.device = CPU
) -> list[float]:
    """Median seconds of each ``fns[i]`` over ``repeats[i]`` calls, interleaved round by round
    so that load from other processes hits every function alike."""
    times: list[list[float]] = [[] for _ in fns]
    for round_index in range(max(repeats)):
        for fn, n, fn_times in zip(fns, repeats, times, strict=True):
            if round_index < n:
                synchronize(device)
                start = time.perf_counter()
                fn()
                synchronize(device)
                fn_times.append(time.perf_counter() - start)
    return [statistics.median(fn_times) for fn_times in times]


@torch.no_grad()
def _inference_at(
    length: int, dt: DecisionTransformer, dm: DecisionMamba, repeats: int,
    device: torch.device = CPU,
) -> list[dict]:
    # step `length` acts after `length` steps of history
    h = _history(dt.config, length + 1, device=device)
    window = {key: value[:, 1:] for key, value in h.items()}  # the last `length` steps
    last = {key: value[:, -1] for key, value in h.items()}
    prev = {key: value[:, -2] for key, value in h.items()}

    def dt_window() -> torch.Tensor:
        return dt(**window)[:, -1]

    cached = CachedDT(dt)
    cached.prefill({key: value[:, :-1] for key, value in window.items()})
    carried = cached.carried_bytes()

    def dt_cached_step() -> torch.Tensor:
        # Each call appends 3 tokens; a handful of repeats barely changes the length.
        return cached.step(
            prev["actions"][:, None],
            last["returns_to_go"][:, None],
            last["states"][:, None],
            prev["timesteps"][:, None],
            last["timesteps"][:, None],
        )

    if length <= 256:  # the cached step must reproduce the full forward
        # (GPU attention kernels sum in another order than the CPU's, hence their tolerance)
        tolerance = 1e-4 if device.type == "cpu" else 1e-3
        torch.testing.assert_close(dt_cached_step(), dt_window(), rtol=tolerance, atol=tolerance)

    state = dm.init_state(1)
    for t in range(length):  # advance the recurrence through the history
        _, state = dm.step(
            state,
            window["returns_to_go"][:, t],
            window["states"][:, t],
            window["actions"][:, t - 1] if t > 0 else None,
            window["timesteps"][:, t],
        )

    def dm_step() -> torch.Tensor:
        return dm.step(
            state, last["returns_to_go"], last["states"], last["actions"], last["timesteps"]
        )[0]

    history_bytes = sum(
        v.numel() * v.element_size() for k, v in window.items() if k != "attention_mask"
    )
    state_bytes = sum(t.numel() * t.element_size() for layer in state.backbone for t in layer)
    candidates = (  # name, step function, bytes carried between steps, timed calls
        ("DT, no cache (re-run window)", dt_window, history_bytes, max(2, repeats // 4)),
        ("DT, KV cache", dt_cached_step, carried, repeats),
        ("Decision Mamba, recurrent", dm_step, state_bytes, repeats),
    )
    for _, fn, _, _ in candidates:
        fn()  # warm-up
    medians = _median_times([c[1] for c in candidates], [c[3] for c in candidates], device)
    rows = []
    for (name, fn, carried_bytes, _), median in zip(candidates, medians, strict=True):
        rows.append(
            {
                "model": name,
                "context_steps": length,
                "median_step_s": median,
                "carried_bytes": carried_bytes,
                **_peak_record(fn, device),
            }
        )
        print(
            f"L={length:5d} {name:<30} {median * 1e3:9.2f} ms "
            f"carried {carried_bytes / 2**20:9.3f} MiB",
            flush=True,
        )
    return rows


def _peak_record(fn: Callable[[], object], device: torch.device) -> dict[str, int | None]:
    """The step's peak memory under the name saying what was measured."""
    name = "step_gpu_peak_bytes" if device.type == "cuda" else "step_peak_rss_growth_bytes"
    return {name: peak_bytes(fn, device)}


def inference(lengths: list[int], repeats: int, device: torch.device = CPU) -> list[dict]:
    config = make_config(max(lengths) + 1)
    torch.manual_seed(0)
    dt = DecisionTransformer(config).to(device).eval()
    dm = DecisionMamba(config).to(device).eval()
    return [row for length in lengths for row in _inference_at(length, dt, dm, repeats, device)]


def _training_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = nn.functional.mse_loss(model(**batch), batch["actions"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up (AdamW state)
    return step


def training(contexts: list[int], repeats: int, device: torch.device = CPU) -> list[dict]:
    rows = []
    for context in contexts:
        config = SequenceModelConfig(state_dim=11, act_dim=3, context_len=context)
        batch = _history(config, context, TRAIN_BATCH, device)
        names = ("Decision Transformer", "Decision Mamba")
        steps = [
            _training_step(cls(config).to(device), batch)
            for cls in (DecisionTransformer, DecisionMamba)
        ]
        medians = _median_times(steps, [repeats] * len(steps), device)
        for name, step, median in zip(names, steps, medians, strict=True):
            rows.append(
                {
                    "model": name,
                    "context_len": context,
                    "batch_size": TRAIN_BATCH,
                    "median_step_s": median,
                    **_peak_record(step, device),
                }
            )
            print(f"K={context:4d} {name:<22} {median:.3f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-length", type=int, default=max(LENGTHS))
    parser.add_argument("--repeats", type=int, default=20, help="timed inference steps")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=RESULTS / "context_scaling_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lengths = [n for n in LENGTHS if n <= args.max_length]
    result = {
        "benchmark": "per-step inference and training cost vs context length, CPU",
        "machine": benchmark_record(),
        "transformers": transformers.__version__,
        "inference": inference(lengths, args.repeats),
        "training": training(list(TRAIN_CONTEXTS), max(3, args.repeats // 5)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
