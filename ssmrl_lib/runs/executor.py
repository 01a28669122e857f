"""Executors run a grid of runs; notebooks call ``default_executor().run_all(specs)``.

Every executor computes a run the same way, ``compute_run``: under the run's lock (``lock.py``,
so two drivers never compute one run at once), only if it is not finished, with one torch
thread (so a seed gives the same numbers wherever it runs), writing the result atomically to
the run store. They differ in where that happens:

- ``LocalExecutor(store, jobs=N)``: in this process (``jobs=1``) or in ``N`` worker processes;
- ``RayExecutor`` (``ray_executor.py``): one Ray task per run, on a local Ray instance or a
  cluster.

``default_executor()`` picks one from the environment (``SSMRL_EXECUTOR``, ``SSMRL_JOBS``,
``SSMRL_RAY_ADDRESS``, ``SSMRL_CPUS_PER_RUN``, ``SSMRL_GPUS_PER_RUN``), which ``ssmrl notebook``
sets from its options, so a notebook runs unchanged through any executor.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.paths import environment, runs_root
from ssmrl_lib.runs.lock import RunLock, held_elsewhere
from ssmrl_lib.runs.store import RunDir, RunStore

EXECUTORS = ("local", "ray")
# What compute_run reports; a run another process holds is polled until it is done or free.
COMPUTED, FOUND, BUSY = "computed", "found", "busy"
POLL_S = 2.0
# Worker processes: one thread per BLAS/OpenMP pool too.
WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# How default_executor() reads its options; executor_environment() writes them.
ENVIRONMENT = {
    "executor": "SSMRL_EXECUTOR",
    "jobs": "SSMRL_JOBS",
    "address": "SSMRL_RAY_ADDRESS",
    "cpus_per_run": "SSMRL_CPUS_PER_RUN",
    "gpus_per_run": "SSMRL_GPUS_PER_RUN",
}


@dataclass(frozen=True)
class RunSpec:
    """One run: ``fn(config, run_dir)`` computes the result of ``config`` (which holds the seed)."""

    experiment: str
    config: Any
    fn: Callable[..., dict[str, Any]]


class Executor(Protocol):
    def run_all(self, specs: Sequence[RunSpec]) -> list[dict[str, Any]]: ...


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a batch scheduler sets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def silence_progress_bars() -> None:
    """In a worker process: the runs draw no bars of their own, which would interleave on the
    driver's terminal (the grid's bar is the one progress bar). Every bar is turned off, also
    those created with an explicit ``disable=False``."""
    import tqdm.std

    init = tqdm.std.tqdm.__init__
    if getattr(init, "silenced", False):
        return

    def silenced_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "disable": True})

    silenced_init.silenced = True
    tqdm.std.tqdm.__init__ = silenced_init


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """In a worker process: end it once the process that started it is gone. A pool's workers
    otherwise outlive a killed driver (or kernel), computing runs nobody will collect, and keep
    the driver's terminal open."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def start_worker(parent_pid: int) -> None:
    """The initializer of a local pool's worker processes."""
    silence_progress_bars()
    exit_with_parent(parent_pid)


def run_label(spec: RunSpec, run: RunDir) -> str:
    """How messages name a run: its experiment and directory under the run store."""
    return f"{spec.experiment}/{run.root.name}"


def compute_run(spec: RunSpec, store: RunStore, threads: int = 1) -> str:
    """Compute ``spec``'s run into ``store`` unless it is finished or another process holds it.

    Returns ``COMPUTED``, ``FOUND`` (finished meanwhile) or ``BUSY``. A run that fails on its
    own terms (``SsmrlError``: NaN loss, bad config) records no result, and its one-line
    message names the run.
    """
    run = store.run_dir(spec.experiment, spec.config)
    with RunLock(run.root) as lock:
        if not lock.held:
            return BUSY
        if run.finished:
            return FOUND
        with torch_threads(threads):
            try:
                result = spec.fn(spec.config, run)
            except SsmrlError as error:
                raise SsmrlError(f"run {run_label(spec, run)}: {error}") from error
        run.write_result(result)
    return COMPUTED


class Backend(Protocol):
    """Where ``drive_grid`` computes runs: ``submit`` starts one, ``wait`` returns the
    (handle, status) of those done within ``timeout`` seconds (``None``: at least one),
    raising a failed run's error; ``stop`` ends the runs still in flight."""

    slots: int | float

    def submit(self, spec: RunSpec) -> Any: ...
    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, str]]: ...
    def stop(self) -> None: ...


def drive_grid(
    specs: Sequence[RunSpec], store: RunStore, backend: Backend, poll_s: float = POLL_S
) -> list[dict[str, Any]]:
    """Compute every unfinished run of ``specs`` through ``backend``; results in ``specs``' order.

    Finished runs are never submitted. A run held by another driver waits until that driver
    finishes it (its result is then read) or lets it go (it is then submitted here). The first
    failure stops the grid: runs in flight are ended and resume from their checkpoints next time.
    """
    runs = [store.run_dir(spec.experiment, spec.config) for spec in specs]
    queue = deque(i for i, run in enumerate(runs) if not run.finished)
    running: dict[Any, int] = {}
    waiting: list[int] = []  # held by another process
    bar = tqdm(total=len(runs), initial=len(runs) - len(queue), desc="runs", unit="run",
               disable=len(runs) < 2)
    try:
        while queue or running or waiting:
            while queue and len(running) < backend.slots:
                index = queue.popleft()
                running[backend.submit(specs[index])] = index
            if running:
                done = backend.wait(list(running), poll_s if waiting else None)
            else:
                time.sleep(poll_s)
                done = []
            for handle, status in done:
                index = running.pop(handle)
                if status == BUSY:
                    waiting.append(index)
                else:
                    bar.update()
            for index in list(waiting):
                if runs[index].finished:
                    waiting.remove(index)
                    bar.update()
                elif not held_elsewhere(runs[index].root):
                    waiting.remove(index)
                    queue.append(index)
    except BaseException:
        backend.stop()
        raise
    finally:
        bar.close()
    return [run.read_result() for run in runs]


class _InProcess:
    """``jobs=1``: each run computed here, when submitted (a done ``Future`` holds its outcome)."""

    slots = 1

    def __init__(self, store: RunStore):
        self.store = store

    def submit(self, spec: RunSpec) -> Future:
        future: Future = Future()
        try:
            future.set_result(compute_run(spec, self.store))
        except Exception as error:  # raised by wait(), like a worker's
            future.set_exception(error)
        return future

    def wait(self, handles: list[Future], timeout: float | None) -> list[tuple[Future, str]]:
        return [(future, future.result()) for future in handles]

    def stop(self) -> None:
        pass


class _ProcessPool:
    """``jobs=N``: runs computed in ``N`` spawned worker processes, ``N`` at a time."""

    def __init__(self, store: RunStore, jobs: int):
        self.store = store
        self.slots = jobs
        self.pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker, initargs=(os.getpid(),),
        )

    def submit(self, spec: RunSpec) -> Future:
        return self.pool.submit(compute_run, spec, self.store)

    def wait(self, handles: list[Future], timeout: float | None) -> list[tuple[Future, str]]:
        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        try:
            return [(future, future.result()) for future in done]
        except BrokenProcessPool:
            raise SsmrlError(
                "a worker process died (killed, or out of memory); rerun to resume its runs "
                "from their checkpoints"
            ) from None

    def stop(self) -> None:
        # Python 3.11's pool cannot end running work: its workers are terminated directly.
        workers = list((self.pool._processes or {}).values())
        for worker in workers:
            worker.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class LocalExecutor:
    """Runs on this machine: ``jobs`` at a time in worker processes, or here when ``jobs=1``.

    Each run uses one torch thread, so results do not depend on ``jobs``. Finished runs in
    ``store`` are reused. ``jobs`` defaults to the number of cores.
    """

    def __init__(self, store: RunStore, jobs: int | None = None):
        if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
            raise SsmrlError(f"jobs must be a positive whole number, got {jobs!r}")
        self.store = store
        self.jobs = jobs or available_cores()

    def run_all(self, specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
        unfinished = sum(not self.store.run_dir(s.experiment, s.config).finished for s in specs)
        jobs = min(self.jobs, unfinished)
        if jobs <= 1:
            return drive_grid(specs, self.store, _InProcess(self.store))
        with environment(WORKER_ENVIRONMENT):  # inherited by the workers it spawns
            backend = _ProcessPool(self.store, jobs)
            try:
                return drive_grid(specs, self.store, backend)
            finally:
                backend.close()


def make_executor(
    kind: str = "local",
    store: RunStore | None = None,
    *,
    jobs: int | None = None,
    address: str | None = None,
    cpus_per_run: float | None = None,
    gpus_per_run: float | None = None,
) -> Executor:
    """The executor ``kind`` (``local`` or ``ray``) over ``store`` (default: the run store at
    ``runs_root()``). ``jobs`` is the local executor's; the others are Ray's."""
    check_choice("executor", kind, EXECUTORS)
    store = store if store is not None else RunStore(runs_root().resolve())
    if kind == "local":
        for name, value in (("address", address), ("cpus_per_run", cpus_per_run),
                            ("gpus_per_run", gpus_per_run)):
            if value is not None:
                raise SsmrlError(f"{name} is an option of the ray executor, not the local one")
        return LocalExecutor(store, jobs)
    if jobs is not None:
        raise SsmrlError("jobs is an option of the local executor; Ray runs as many runs at "
                         "once as the cluster has resources (see cpus_per_run, gpus_per_run)")
    from ssmrl_lib.runs.ray_executor import RayExecutor

    return RayExecutor(store, address=address, cpus_per_run=cpus_per_run or 1.0,
                       gpus_per_run=gpus_per_run or 0.0)


def executor_environment(kind: str = "local", **options: Any) -> dict[str, str]:
    """The environment variables under which ``default_executor()`` returns
    ``make_executor(kind, **options)`` (options left ``None`` are not set)."""
    check_choice("executor", kind, EXECUTORS)
    variables = {ENVIRONMENT["executor"]: kind}
    for name, value in options.items():
        check_choice("executor option", name, [key for key in ENVIRONMENT if key != "executor"])
        if value is not None:
            variables[ENVIRONMENT[name]] = str(value)
    return variables


def _number(name: str, parse: type) -> Any:
    variable = ENVIRONMENT[name]
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    try:
        value = parse(text)
    except ValueError:
        kind = "whole number" if parse is int else "number"
        raise SsmrlError(f"{variable}={text!r} is not a {kind}") from None
    if value < 0 or (value == 0 and name != "gpus_per_run"):
        raise SsmrlError(f"{variable}={text!r} must be positive")
    return value


def default_executor(store: RunStore | None = None) -> Executor:
    """The executor the environment asks for (``local`` when it asks for none)."""
    kind = os.environ.get(ENVIRONMENT["executor"], "").strip() or "local"
    return make_executor(
        kind, store,
        jobs=_number("jobs", int),
        address=os.environ.get(ENVIRONMENT["address"], "").strip() or None,
        cpus_per_run=_number("cpus_per_run", float),
        gpus_per_run=_number("gpus_per_run", float),
    )
