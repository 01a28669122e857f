"""A finished run's result record, the same frame for every experiment.

``run_record`` puts a run's config and trainable-parameter count first, then what the run
measured (curves, scores: each experiment's own keys, which its chapter reads), then where and
how long it ran: wall and CPU time, device, commit, hardware and library versions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ssmrl_lib.provenance import git_commit, hardware, library_versions
from ssmrl_lib.runs.store import RunDir, wall_time_fields


def run_record(
    config: Any,
    run: RunDir,
    model: torch.nn.Module,
    device: torch.device,
    measured: dict[str, Any],
    libraries: tuple[str, ...] = (),
    backends: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The result of ``run`` (a dataclass ``config``) that trained ``model`` on ``device``.

    ``libraries``: the packages besides the tracked ones whose versions the result names
    (the environment suite); ``backends``: which implementation a model's speed code ran on
    (e.g. ``{"scan_backend": ...}``), recorded beside the device.
    """
    return {
        "config": dataclasses.asdict(config),
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **measured,
        **wall_time_fields(run),
        "device": device.type,
        **(backends or {}),
        "commit": git_commit(),
        "hardware": hardware(),
        "versions": library_versions(*libraries),
    }


# The keys of a record that measure where and how fast a run ran, not what it computed: the
# same run gives other values for them on another executor, machine or day.
MEASUREMENT_KEYS = frozenset({
    "wall_time_s", "wall_time_stretches_s", "cpu_time_s", "train_time_s", "env_steps_per_s",
    "eval_time_s", "peak_memory", "hardware", "hardware_stretches", "commit", "versions",
})


def computed_numbers(record: Any) -> Any:
    """``record`` (or a list of them, nested too) without its measurements: what must not
    depend on where the run ran."""
    if isinstance(record, dict):
        return {k: computed_numbers(v) for k, v in record.items() if k not in MEASUREMENT_KEYS}
    if isinstance(record, list):
        return [computed_numbers(v) for v in record]
    return record


def with_final_record(milestones: list[dict[str, Any]], **final: Any) -> list[dict[str, Any]]:
    """Milestone records with ``final`` joined to the last one: a measurement made at the
    run's stop only (e.g. an evaluation after training) belongs to the stop's record."""
    return [*milestones[:-1], {**milestones[-1], **final}]
