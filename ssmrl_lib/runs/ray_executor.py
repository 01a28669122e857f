"""Runs as Ray tasks, on a local Ray instance or a cluster (``pip install 'ssmrl[ray]'``).

Each unfinished run is one task asking for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs
(fractions allowed: four runs share a GPU at 0.25). A task computes its run with
``compute_run``, as the local executor does: under the run's lock, into the run store, result
written atomically. So:

- a task whose worker dies (killed, out of memory, node lost) is retried by Ray, up to
  ``max_retries`` times, and resumes from the run's last checkpoint;
- a run that fails on its own terms (``SsmrlError``: NaN loss, bad config) is not retried, and
  its one-line error reaches the caller;
- a finished run is never submitted, and a run another driver is computing is waited for.

Every node must see the run store at the same path on a shared file system with working
``flock`` (see ``lock.py``), and the project installed at the same commit; offline runs also
need the Minari datasets (``MINARI_DATASETS_PATH``) there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.runs.executor import (
    WORKER_ENVIRONMENT,
    RunSpec,
    compute_run,
    drive_grid,
    run_label,
    silence_progress_bars,
)
from ssmrl_lib.runs.store import RunStore

# The driver's settings a run reads from the environment, passed on to the tasks' workers.
FORWARDED_ENVIRONMENT = ("MINARI_DATASETS_PATH", "SSMRL_DEVICE", "SSMRL_OFFLINE")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SsmrlError(
            "the ray executor needs Ray: pip install 'ssmrl[ray]' (or --executor local)"
        ) from None
    return ray


def _task(spec: RunSpec, store: RunStore, threads: int) -> str:
    silence_progress_bars()  # workers' output is forwarded to the driver
    return compute_run(spec, store, threads)


class _RayTasks:
    """``drive_grid``'s backend: every unfinished run submitted at once, Ray schedules them."""

    slots = float("inf")

    def __init__(self, ray: Any, store: RunStore, options: dict[str, Any], threads: int):
        self.ray = ray
        self.store = store
        self.task = ray.remote(_task).options(**options)
        self.threads = threads
        self.max_retries = options["max_retries"]
        self.labels: dict[Any, str] = {}

    def submit(self, spec: RunSpec) -> Any:
        ref = self.task.remote(spec, self.store, self.threads)
        self.labels[ref] = run_label(spec, self.store.run_dir(spec.experiment, spec.config))
        return ref

    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, str]]:
        ray = self.ray
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:  # and whatever else is done by now
            ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)
        outcomes = []
        for ref in ready:
            label = self.labels.pop(ref)
            try:
                outcomes.append((ref, ray.get(ref)))
            except ray.exceptions.RayTaskError as error:
                cause = getattr(error, "cause", None)
                if isinstance(cause, SsmrlError):
                    raise SsmrlError(str(cause)) from None
                raise
            except ray.exceptions.RayError as error:
                raise SsmrlError(
                    f"run {label}: Ray could not finish it ({type(error).__name__}, "
                    f"after {self.max_retries} retries); rerun to resume it from its checkpoint"
                ) from None
        return outcomes

    def stop(self) -> None:
        for ref in self.labels:  # in flight: killed, resumed from their checkpoints next time
            self.ray.cancel(ref, force=True)
        self.labels.clear()


class RayExecutor:
    """Runs a grid as Ray tasks; connects to ``address`` (or ``RAY_ADDRESS``), else starts a
    local Ray instance on this machine's cores, unless Ray is already initialised here.

    Each task uses ``int(cpus_per_run)`` torch threads (at least one): at the default of one
    CPU a seed gives the same numbers as through the local executor.
    """

    def __init__(
        self,
        store: RunStore,
        address: str | None = None,
        cpus_per_run: float = 1.0,
        gpus_per_run: float = 0.0,
        max_retries: int = 3,
    ):
        if cpus_per_run <= 0 or gpus_per_run < 0:
            raise SsmrlError(
                f"a run needs more than 0 CPUs and at least 0 GPUs, got cpus_per_run="
                f"{cpus_per_run}, gpus_per_run={gpus_per_run}"
            )
        if not Path(store.root).is_absolute():
            raise SsmrlError(
                f"the ray executor needs an absolute run-store path, which every node sees "
                f"(shared storage); got {str(store.root)!r}"
            )
        self.ray = _import_ray()
        self.store = store
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.max_retries = max_retries

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return
        try:
            # Ray's INFO lines would land in the executed notebooks; its warnings still do.
            self.ray.init(address=self.address, include_dashboard=False, logging_level="warning")
        except ConnectionError as error:
            raise SsmrlError(f"cannot reach the Ray cluster at {self.address!r}: {error}") from None

    def run_all(self, specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
        self._connect()
        environment = dict(WORKER_ENVIRONMENT)
        threads = max(1, int(self.cpus_per_run))
        environment.update(OMP_NUM_THREADS=str(threads))
        environment.update({name: os.environ[name] for name in FORWARDED_ENVIRONMENT
                            if name in os.environ})
        options = {
            "num_cpus": self.cpus_per_run,
            "num_gpus": self.gpus_per_run,
            "max_retries": self.max_retries,  # worker or node died: retry, resume
            "retry_exceptions": False,  # the run itself failed: do not
            "runtime_env": {"env_vars": environment},
        }
        return drive_grid(specs, self.store, _RayTasks(self.ray, self.store, options, threads))
