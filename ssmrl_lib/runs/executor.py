"""Executors run a grid of runs; notebooks only ever call ``executor.run_all(specs)``.

``LocalExecutor`` runs them one after another in this process. A distributed executor
(a job queue, a cluster) implements the same ``run_all`` and the notebooks stay unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm.auto import tqdm

from ssmrl_lib.runs.store import RunStore


@dataclass(frozen=True)
class RunSpec:
    """One run: ``fn(config, run_dir)`` computes the result of ``config`` (which holds the seed)."""

    experiment: str
    config: Any
    fn: Callable[..., dict[str, Any]]


class Executor(Protocol):
    def run_all(self, specs: Sequence[RunSpec]) -> list[dict[str, Any]]: ...


class LocalExecutor:
    """Runs specs sequentially in this process, reusing every run already finished in ``store``."""

    def __init__(self, store: RunStore):
        self.store = store

    def run_all(self, specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
        results = []
        for spec in tqdm(specs, desc="runs", unit="run", disable=len(specs) < 2):
            run = self.store.run_dir(spec.experiment, spec.config)
            if not run.finished:
                run.write_result(spec.fn(spec.config, run))
            results.append(run.read_result())
        return results
