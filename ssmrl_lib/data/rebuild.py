"""Rebuild every D4RL-recipe dataset, a few at a time in separate processes.

Each (environment, recipe) pair is one job: collecting 1M steps is bound by MuJoCo on one core,
so ``jobs`` processes fill ``jobs`` cores. Jobs start longest first (Hopper's and Walker2d's
random recipes; medium-replay only reads the stored replay), which keeps the cores busy to the
end. A recipe made of others' datasets (``medium-expert``) runs once they exist.
A job's dataset is written atomically by :func:`build_dataset`, so a killed rebuild leaves only
complete datasets and rerunning it with ``if_missing`` finishes the rest. A stored dataset that
no longer follows its recipe is rebuilt, or removed when its recipe is not available any more
(its policy was replaced by one that does not reach that level), so that the store holds no
dataset a fresh clone could not build. A job decides under the dataset's lock, so two rebuilds
at once (``make data`` and a campaign's) build each dataset once: the one that waited keeps
what the other just wrote.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from ssmrl_lib.data.checkpoint_choice import NotAvailable
from ssmrl_lib.data.local_store import (
    dataset_lock,
    local_dataset_ids,
    remove_dataset,
    store_root,
)
from ssmrl_lib.data.recipes import RECIPES, build_dataset, outdated_reason, recipe_dataset_id
from ssmrl_lib.envs import get_task
from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.paths import environment

# Relative cost of a job, to start the long ones first: the recipe's ``build_cost`` times the
# cost of a step (Hopper's and Walker2d's RK4 integrator makes their steps about three times
# HalfCheetah's).
_STEP_COST = {"hopper": 3.0, "walker2d": 3.0, "halfcheetah": 1.0}
# Each worker runs single-threaded BLAS: a policy's small matrix products gain nothing from a
# second thread, whose spinning would take the other worker's core.
_ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass(frozen=True)
class BuildJob:
    env: str
    quality: str
    steps: int | None = None
    seed: int = 0
    n_envs: int = 8
    policies_dir: Path | None = None
    checkpoint: Path | None = None
    overwrite: bool = False
    if_missing: bool = False  # keep a stored dataset that follows its recipe

    @property
    def name(self) -> str:
        return recipe_dataset_id(get_task(self.env), self.quality)

    @property
    def policy_dir(self) -> Path | None:
        return Path(self.policies_dir) / self.env if self.policies_dir else None


@dataclass(frozen=True)
class BuildOutcome:
    """What became of one job: ``built``, ``kept`` (it existed), ``skipped`` (why) or
    ``removed`` (it was outdated and its recipe is not available now: why)."""

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    episodes: int = 0
    transitions: int = 0

    def line(self) -> str:
        if self.status == "built":
            return (f"built {self.name}: {self.episodes} episodes, {self.transitions} steps "
                    f"in {self.seconds:.0f} s")
        if self.status == "kept":
            return f"{self.name} exists; kept" + (f" ({self.detail})" if self.detail else "")
        return f"{self.status} {self.name}: {self.detail}"


def _run(job: BuildJob, store: str, progress: bool = False) -> BuildOutcome:
    """One job, maybe in a worker process (``store``: the Minari store the parent uses).

    What the store holds is judged again under the dataset's lock: another rebuild may have
    written or removed the dataset while this one waited for the lock.
    """
    os.environ["MINARI_DATASETS_PATH"] = store
    task = get_task(job.env)
    started = time.monotonic()
    with dataset_lock(job.name):
        outdated = ""
        if job.if_missing and job.name in local_dataset_ids():
            outdated = outdated_reason(task, job.quality, job.policy_dir)
            if not outdated:
                return BuildOutcome(job.name, "kept", "another build wrote it meanwhile")
        try:
            dataset = build_dataset(
                task, job.quality, steps=job.steps, seed=job.seed, n_envs=job.n_envs,
                policy_dir=job.policy_dir, checkpoint=job.checkpoint,
                overwrite=job.overwrite or bool(outdated), progress=progress, locked=True,
            )
        except NotAvailable as reason:
            if not outdated:
                return BuildOutcome(job.name, "skipped", str(reason))
            remove_dataset(job.name)
            return BuildOutcome(job.name, "removed", f"{outdated}, and {reason}")
    return BuildOutcome(
        job.name, "built", seconds=time.monotonic() - started,
        episodes=dataset.total_episodes, transitions=dataset.total_steps,
    )


def rebuild_datasets(
    envs: list[str],
    qualities: list[str] | tuple[str, ...] = tuple(RECIPES),
    jobs: int = 2,
    if_missing: bool = True,
    if_available: bool = True,
    log: Callable[[str], None] = tqdm.write,
    **job_settings,
) -> list[BuildOutcome]:
    """Build ``qualities`` × ``envs`` with ``jobs`` processes; one outcome per dataset.

    ``if_missing`` keeps datasets already in the store unless their recipe now takes another
    checkpoint or replay (then they are rebuilt) or the policy directory lost their checkpoint
    while the recipe is not available (then they are removed); ``if_available`` skips (with the
    reason) recipes whose policy has not reached its level, otherwise that is an error.
    ``job_settings`` are :class:`BuildJob` fields (``steps``, ``seed``, ``n_envs``, ...).
    """
    if jobs < 1:
        raise SsmrlError(f"jobs must be at least 1, got {jobs}")
    for quality in qualities:
        check_choice("quality", quality, RECIPES)
    local = set(local_dataset_ids())
    todo, outcomes = [], {}
    for env in envs:
        for quality in qualities:
            job = BuildJob(env, quality, if_missing=if_missing, **job_settings)
            # A first look without the lock, so that kept datasets start no worker; the job
            # looks again under the lock.
            if if_missing and job.name in local:
                outdated = outdated_reason(get_task(env), quality, job.policy_dir)
                if not outdated:
                    outcomes[job.name] = BuildOutcome(job.name, "kept")
                    log(outcomes[job.name].line())
                    continue
                log(f"outdated {job.name}: {outdated}")
            todo.append(job)
    todo.sort(key=lambda job: -RECIPES[job.quality].build_cost * _STEP_COST.get(job.env, 1.0))
    store = str(store_root())
    with ExitStack() as stack:
        # Bars only on a terminal (disable=None), so errors stay one line in logs.
        many = None if len(todo) > 1 else True
        bar = stack.enter_context(tqdm(total=len(todo), desc="datasets", disable=many))
        if jobs == 1 or len(todo) <= 1:
            # Recipes made of others' datasets last, so that those are built before them.
            in_order = sorted(todo, key=lambda job: bool(RECIPES[job.quality].parts))
            results = (_run(job, store, progress=True) for job in in_order)
        else:
            stack.enter_context(environment(_ONE_THREAD))  # inherited by the workers
            pool = stack.enter_context(ProcessPoolExecutor(
                max_workers=jobs, mp_context=multiprocessing.get_context("spawn")
            ))
            results = _scheduled(pool, todo, store, jobs)
        for outcome in results:
            outcomes[outcome.name] = outcome
            bar.update()
            log(outcome.line())
    unavailable = [o for o in outcomes.values() if o.status in ("skipped", "removed")]
    if unavailable and not if_available:
        raise NotAvailable(unavailable[0].detail)
    order = [BuildJob(env, quality).name for env in envs for quality in qualities]
    return [outcomes[name] for name in order]


def _scheduled(pool: ProcessPoolExecutor, todo: list[BuildJob], store: str, workers: int):
    """Outcomes as jobs finish. Jobs start in ``todo``'s order, one per free worker, except that
    a job whose recipe is made of other recipes' datasets (medium-expert: medium and expert)
    waits until those (when they are being built too) are done; it then fills a worker's idle
    end instead of a wave of its own.
    """
    pending, running, done = list(todo), {}, set()
    building = {job.name for job in todo}

    def ready(job: BuildJob) -> bool:
        parts = (replace(job, quality=part).name for part in RECIPES[job.quality].parts)
        return all(name in done or name not in building for name in parts)

    while pending or running:
        while len(running) < workers and (job := next(filter(ready, pending), None)):
            pending.remove(job)
            running[pool.submit(_run, job, store)] = job
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            done.add(running.pop(future).name)
            yield future.result()
