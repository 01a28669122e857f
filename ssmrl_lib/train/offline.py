"""Supervised training of offline sequence models (DT, Decision Mamba) on DT windows.

A plain loop in the spirit of the reference ``SequenceTrainer``: masked MSE on actions, AdamW,
linear warmup then a constant learning rate (DT's schedule: nothing depends on where training
stops, so a run to 10k steps is the first half of a run to 20k). It checkpoints model,
optimizer, scheduler and every random-number generator, so a killed run resumes to exactly the
numbers it would have produced, and a finished one can be extended from its last milestone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ssmrl_lib.data.windows import DTWindowSampler
from ssmrl_lib.device import module_device
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.runs.store import RunDir
from ssmrl_lib.train.rng import restore_torch_rng_states, torch_rng_states


@dataclass(frozen=True)
class TrainConfig:
    steps: int = field(metadata={"cache_key": "horizon"})  # where this run stops
    batch_size: int = 64
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10_000
    grad_clip: float = 0.25
    checkpoint_every: int = 250


@dataclass
class TrainHistory:
    """Loss at every step, the evaluations made along the way (step → metrics), and the
    records made at milestones."""

    losses: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    milestones: list[dict[str, Any]] = field(default_factory=list)


def action_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean squared error of predicted actions on the unpadded steps of a batch."""
    predictions = model(
        states=batch["states"],
        actions=batch["actions"],
        returns_to_go=batch["returns_to_go"][:, :-1],
        timesteps=batch["timesteps"],
        attention_mask=batch["attention_mask"],
    )
    mask = batch["attention_mask"] > 0
    squared = (predictions - batch["actions"]) ** 2
    if squared.is_cuda:  # boolean indexing would make the host wait to count the mask
        kept = mask.unsqueeze(-1).expand_as(squared)
        return squared.where(kept, 0.0).sum() / kept.sum()
    return squared[mask].mean()


class DeviceLosses:
    """Step losses held on the model's device until something reads them.

    ``loss.item()`` every step would make the host wait for the GPU every step; instead the
    loop syncs once per log, evaluation or checkpoint, where ``flush_into`` copies the pending
    losses out (the same float32 values ``item`` gives) and stops a diverged run, naming the
    first step whose loss was not finite.
    """

    def __init__(self) -> None:
        self.pending: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        self.pending.append(loss.detach())

    def flush_into(self, losses: list[float]) -> None:
        """Append the pending losses to ``losses`` (one per step since step 0)."""
        if not self.pending:
            return
        values = torch.stack(self.pending).tolist()
        self.pending = []
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise SsmrlError(
                    f"training diverged: loss is {value} at step {len(losses) + offset}; "
                    "lower the learning rate (run not recorded)"
                )
        losses.extend(values)


def train_offline(
    model: nn.Module,
    sampler: DTWindowSampler,
    config: TrainConfig,
    seed: int,
    run: RunDir | None = None,
    evaluate: Callable[[nn.Module], dict[str, Any]] | None = None,
    eval_every: int = 0,
    milestones: Sequence[int] = (),
    at_milestone: Callable[[nn.Module, int], dict[str, Any]] | None = None,
) -> TrainHistory:
    """Train ``model`` for ``config.steps`` steps, resuming from ``run``'s checkpoint if any.

    ``evaluate(model)`` is called every ``eval_every`` steps (and never when 0). At every
    milestone step up to ``config.steps``, and at ``config.steps`` itself,
    ``at_milestone(model, step)``'s record goes into ``history.milestones`` (under the torch
    random state of the moment, restored afterwards, so it never changes the training) and a
    checkpoint is written: the last one stays, to extend the run from.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = max(config.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, 1.0)
    )
    history = TrainHistory()
    start = 0
    checkpoint = run.load_checkpoint() if run is not None else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        rng.bit_generator.state = checkpoint["numpy_rng"]
        restore_torch_rng_states(checkpoint)
        history = checkpoint["history"]
        start = checkpoint["step"]

    stops = {m for m in milestones if 0 < m < config.steps} | {config.steps}
    model.train()
    device = module_device(model)
    losses = DeviceLosses()
    progress = tqdm(range(start, config.steps), desc="train", unit="step", mininterval=2.0,
                    initial=start, total=config.steps)
    for step in progress:
        batch = {k: v.to(device) for k, v in sampler.sample(config.batch_size, rng).items()}
        loss = action_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.add(loss)
        done = step + 1
        if evaluate is not None and eval_every and done % eval_every == 0:
            losses.flush_into(history.losses)
            model.eval()
            history.evaluations.append({"step": done, **evaluate(model)})
            model.train()
        if done % 50 == 0:
            losses.flush_into(history.losses)
            progress.set_postfix(loss=f"{np.mean(history.losses[-50:]):.4f}")
        milestone = done in stops
        if milestone and at_milestone is not None:
            losses.flush_into(history.losses)
            model.eval()
            with torch.random.fork_rng(devices=[]):
                history.milestones.append({"step": done, **at_milestone(model, done)})
            model.train()
        if run is not None and (milestone or done % config.checkpoint_every == 0):
            losses.flush_into(history.losses)
            run.save_checkpoint({
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                **torch_rng_states(),
                "history": history,
                "step": done,
            })
    losses.flush_into(history.losses)
    model.eval()
    return history
