"""The campaign: a committed plan of runs, worked through milestone by milestone.

A plan (``campaign/plan.yaml``) lists entries in priority order. Each entry is an experiment's
grid at a profile (usually ``full``, the papers' settings) with a few settings changed (seeds,
environments, evaluation episodes) and the milestones its runs go through; it states what one
run costs from one milestone to the next, in core-hours, as measured.

``run`` takes every enabled entry's runs to their first milestone, in priority order, before
any run goes further; then to the second milestone; and so on. Each run is a prefix of the
paper's schedule: going to the next milestone resumes from the checkpoint kept at the last
one. Runs go through an executor, so ``--jobs`` runs that many at once; each uses one torch
thread. Everything it finishes lands in the run store (``data/runs`` by default) as small
summaries the book is rebuilt from; an interrupted campaign simply starts again where it was.

An entry waits while ``enabled: false`` (with ``waits_for`` saying on what), or while its
settings cannot be resolved yet: a setting another branch has not added, or a dataset not
built. ``status`` shows why. Settings are named as notebook overrides are, with dots for the
configs a settings class holds (``network.s5_block``, ``eval.episodes``).
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.experiments.registry import get_experiment
from ssmrl_lib.paths import REPO_ROOT
from ssmrl_lib.runs import Executor, RunSpec, RunStore, make_executor
from ssmrl_lib.runs.store import CHECKPOINT_FILE, CHECKPOINT_STOP_FILE

DEFAULT_PLAN = REPO_ROOT / "campaign" / "plan.yaml"
ENTRY_KEYS = {"name", "experiment", "profile", "settings", "milestones", "runs",
              "core_hours_per_run", "enabled", "waits_for", "why"}


@dataclass(frozen=True)
class Entry:
    """One experiment's grid taken through ``milestones`` (in its horizon's unit)."""

    name: str
    experiment: str
    profile: str
    settings: dict[str, Any]
    milestones: tuple[int, ...]
    runs: int  # the grid's size, as planned
    core_hours_per_run: tuple[float, ...]  # from the previous milestone to each milestone
    enabled: bool = True
    waits_for: str = ""
    why: str = ""

    def specs(self, level: int) -> list[RunSpec]:
        """The grid's runs stopping at milestone ``level`` (0-based), recording all of them."""
        experiment = get_experiment(self.experiment)
        overrides = {**self.settings, experiment.milestones: list(self.milestones),
                     experiment.horizon: self.milestones[level]}
        return experiment.grid(self.profile, **overrides)

    def planned_core_hours(self, level: int) -> float:
        return self.runs * self.core_hours_per_run[level]


@dataclass(frozen=True)
class Plan:
    entries: tuple[Entry, ...]
    jobs: int = 2
    path: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> int:
        return max((len(entry.milestones) for entry in self.entries), default=0)


def load_plan(path: Path | str = DEFAULT_PLAN) -> Plan:
    """Read and check a plan file; a malformed entry is one clear error."""
    path = Path(path)
    if not path.exists():
        raise SsmrlError(f"no campaign plan at {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise SsmrlError(f"plan {path}{line} is not valid YAML: "
                         f"{getattr(error, 'problem', None) or error}") from None
    entries = []
    for number, raw in enumerate(data.get("entries") or [], start=1):
        unknown = set(raw) - ENTRY_KEYS
        if unknown:
            raise SsmrlError(f"plan entry {number}: unknown keys {sorted(unknown)}; "
                             f"valid: {sorted(ENTRY_KEYS)}")
        name = raw.get("name", f"entry {number}")
        get_experiment(raw.get("experiment", ""))
        milestones = tuple(int(m) for m in raw.get("milestones") or ())
        costs = tuple(float(c) for c in raw.get("core_hours_per_run") or ())
        if not milestones or list(milestones) != sorted(set(milestones)):
            raise SsmrlError(f"plan entry {name!r}: milestones must be increasing, "
                             f"got {list(milestones)}")
        if len(costs) != len(milestones):
            raise SsmrlError(f"plan entry {name!r}: core_hours_per_run needs one cost per "
                             f"milestone ({len(milestones)}), got {len(costs)}")
        entries.append(Entry(
            name=name, experiment=raw["experiment"], profile=raw.get("profile", "full"),
            settings=dict(raw.get("settings") or {}), milestones=milestones,
            runs=int(raw.get("runs", 0)), core_hours_per_run=costs,
            enabled=bool(raw.get("enabled", True)), waits_for=raw.get("waits_for", ""),
            why=raw.get("why", ""),
        ))
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise SsmrlError(f"plan {path}: entry names must be unique")
    notes = {k: v for k, v in data.items() if k not in ("entries", "jobs")}
    return Plan(tuple(entries), int(data.get("jobs", 2)), path, notes)


@dataclass
class LevelState:
    """How far one entry is at one milestone level."""

    entry: Entry
    level: int
    runs: int
    done: int
    blocked: str = ""  # why the entry cannot run now ("" if it can)
    cpu_hours: float = 0.0  # spent on the finished runs from the previous milestone to this
    # Pending runs that reached an earlier milestone but whose checkpoint is not in this store
    # (checkpoints are not committed: a fresh clone, another machine): they start again at 0.
    restarts: tuple[Path, ...] = ()
    part_way: int = 0  # pending runs with a checkpoint on the way to this milestone

    @property
    def pending(self) -> int:
        return self.runs - self.done


def _blocked_reason(entry: Entry) -> str:
    if not entry.enabled:
        return f"disabled: waits for {entry.waits_for or 'the coordinator'}"
    return ""


def entry_specs(entry: Entry, level: int) -> tuple[list[RunSpec], str]:
    """The runs of ``entry`` at ``level``, or the reason they cannot be listed now."""
    reason = _blocked_reason(entry)
    if reason:
        return [], reason
    try:
        return entry.specs(level), ""
    except SsmrlError as error:
        return [], f"blocked: {str(error).split('; valid choices')[0]}"


def level_state(entry: Entry, level: int, store: RunStore) -> LevelState:
    specs, blocked = entry_specs(entry, level)
    if blocked:
        return LevelState(entry, level, entry.runs, 0, blocked)
    done, cpu, restarts, part_way = 0, 0.0, [], 0
    for spec in specs:
        run = store.find(spec.experiment, spec.config)
        if run is None:
            continue
        if run.finished:
            done += 1
            cpu += _increment_cpu_s(run.read_result()) / 3600
        elif run.checkpoint_stop() == run.stop:
            part_way += 1
        elif run.checkpoint_stop() is None and run.read_furthest():
            restarts.append(run.path)
    return LevelState(entry, level, len(specs), done, "", cpu, tuple(restarts), part_way)


def _increment_cpu_s(result: dict[str, Any]) -> float:
    """CPU seconds a run took from its previous milestone record to its stop."""
    total = result.get("cpu_time_s", result.get("wall_time_s", 0.0))
    records = result.get("milestones", [])
    before = records[-2].get("cpu_time_s", 0.0) if len(records) > 1 else 0.0
    return max(total - before, 0.0)


def campaign_state(plan: Plan, store: RunStore) -> list[LevelState]:
    return [level_state(entry, level, store)
            for level in range(plan.levels) for entry in plan.entries
            if level < len(entry.milestones)]


def campaign_results(plan: Plan, store: RunStore, experiment: str | None = None
                     ) -> dict[str, list[dict[str, Any]]]:
    """By experiment, the result at the furthest milestone of every run of the plan's runnable
    entries that has reached one (``experiment``: that one only). Nothing is computed: this is
    what a chapter shows of the campaign, as far as it has got."""
    results: dict[str, list[dict[str, Any]]] = {}
    for entry in plan.entries:
        if experiment not in (None, entry.experiment):
            continue
        specs, _blocked = entry_specs(entry, 0)  # the run keys are the same at every level
        for spec in specs:
            run = store.find(spec.experiment, spec.config)
            furthest = run.read_furthest() if run is not None else None
            if furthest is not None:
                results.setdefault(entry.experiment, []).append(furthest)
    return results


def first_milestone_progress(plan: Plan, store: RunStore) -> dict[str, tuple[int, int]]:
    """By experiment: how many of its runnable entries' runs have reached their first
    milestone, of how many. Only a complete first milestone gives the consistent picture that
    claims can rest on (a relation between two models needs both at the same budget);
    entries still waiting are not counted."""
    progress: dict[str, tuple[int, int]] = {}
    for state in campaign_state(plan, store):
        if state.level == 0 and not state.blocked:
            done, runs = progress.get(state.entry.experiment, (0, 0))
            progress[state.entry.experiment] = (done + state.done, runs + state.runs)
    return progress


def carried_checkpoints(plan: Plan, store: RunStore, finished: bool = False) -> list[Path]:
    """The checkpoint files (``checkpoint.pt`` and the stop it trained towards) that a later
    milestone of the plan resumes from: runs stopped mid-way, and runs waiting at an earlier
    milestone. Git ignores checkpoints (megabytes each), but a DT run to its first milestone
    takes longer than a session's machine lives, so ``make campaign-save`` force-adds these
    and a fresh clone resumes every run where it stopped. ``finished``: instead, those of runs
    at their entry's last milestone, which nothing resumes from (untracked again).

    Disabled entries count too: their runs, if any, were made on the data they wait for."""
    paths = []
    for entry in plan.entries:
        try:
            specs = entry.specs(len(entry.milestones) - 1)
        except SsmrlError:  # its settings or datasets are not here: no run of it is either
            continue
        for spec in specs:
            run = store.find(spec.experiment, spec.config)
            if run is None or run.checkpoint_stop() is None or run.finished != finished:
                continue
            paths += [run.path / CHECKPOINT_FILE, run.path / CHECKPOINT_STOP_FILE]
    return paths


def plan_milestones(plan: Plan, experiment: str) -> tuple[int, ...]:
    """Every milestone the plan takes ``experiment``'s runs through, in its horizon's unit."""
    return tuple(sorted({milestone for entry in plan.entries if entry.experiment == experiment
                         for milestone in entry.milestones}))


def status_report(plan: Plan, store: RunStore, jobs: int | None = None) -> str:
    """Runs done and pending per milestone level, core-hours spent and left, time to finish."""
    jobs = jobs or plan.jobs
    states = campaign_state(plan, store)
    lines = [f"campaign {plan.path}: {len(plan.entries)} entries, {plan.levels} milestone "
             f"levels, {jobs} job(s); runs in {store.root}"]
    spent = planned_done = left = left_blocked = 0.0
    done_total = runs_total = 0
    restarting: set[Path] = set()  # a run restarts once, at its next milestone
    for level in range(plan.levels):
        lines.append(f"milestone {level + 1}:")
        for state in (s for s in states if s.level == level):
            entry = state.entry
            unit = get_experiment(entry.experiment).horizon_unit
            increment = state.cpu_hours
            planned = entry.core_hours_per_run[level]
            # a restart redoes the milestones before this one too
            restarts = len(set(state.restarts) - restarting)
            restarting.update(state.restarts)
            pending_hours = (state.pending * planned
                             + restarts * sum(entry.core_hours_per_run[:level]))
            spent += max(increment, 0.0)
            planned_done += state.done * planned
            if state.blocked:
                left_blocked += pending_hours
            else:
                left += pending_hours
            done_total += state.done
            runs_total += state.runs
            lines.append(
                f"  {entry.name:<34} {entry.milestones[level]:>10,} {unit:<17} "
                f"{state.done:>3}/{state.runs:<3} done  {max(increment, 0.0):6.2f} core-h spent"
                f", {pending_hours:6.2f} left" + (f"  [{state.blocked}]" if state.blocked else "")
                + (f"  ({restarts} restart from 0: their checkpoints are not here)"
                   if restarts else "")
                + (f"  ({state.part_way} part-way, checkpointed)"
                   if state.part_way else "")
            )
    rate = spent / planned_done if planned_done else 1.0
    lines.append(
        f"total: {done_total}/{runs_total} run-milestones done; {spent:.2f} core-hours spent "
        f"({planned_done:.2f} planned for them); {left:.2f} planned core-hours left in runnable "
        f"entries, {left_blocked:.2f} in waiting ones ({left + left_blocked:.2f} in all)"
    )
    rate_note = f"measured rate {rate:.2f}× the plan" if planned_done else "plan's rate"
    lines.append(
        f"time to finish at the {rate_note}, {jobs} job(s): runnable entries "
        f"{left * rate / jobs:.1f} h, everything {(left + left_blocked) * rate / jobs:.1f} h"
    )
    return "\n".join(lines)


@contextmanager
def campaign_lock(store: RunStore) -> Iterator[None]:
    """One campaign at a time per run store."""
    store.root.mkdir(parents=True, exist_ok=True)
    path = store.root / ".campaign.lock"
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SsmrlError(f"a campaign is already running on {store.root} "
                             f"(lock {path})") from None
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


def run_campaign(
    plan: Plan,
    store: RunStore,
    jobs: int = 1,
    levels: int | None = None,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
    executor: Executor | None = None,
) -> None:
    """Take every runnable entry through its milestones, level by level, in priority order,
    through ``executor`` (default: the local one, ``jobs`` runs at once).

    An entry that fails at a level is reported and skipped at that level (its later levels
    are still attempted after every other entry's); the campaign goes on with the others.
    """
    if only:
        unknown = set(only) - {entry.name for entry in plan.entries}
        if unknown:
            raise SsmrlError(f"unknown plan entries {sorted(unknown)}; valid: "
                             f"{[entry.name for entry in plan.entries]}")
    import torch

    torch.set_num_threads(1)
    executor = executor or make_executor("local", store, jobs=jobs)
    failures = []
    with campaign_lock(store):
        for level in range(min(plan.levels, levels or plan.levels)):
            for entry in plan.entries:
                if level >= len(entry.milestones) or (only and entry.name not in only):
                    continue
                specs, blocked = entry_specs(entry, level)
                if blocked:
                    log(f"milestone {level + 1} {entry.name}: skipped ({blocked})")
                    continue
                pending = sum(not store.run_dir(s.experiment, s.config).finished for s in specs)
                log(f"milestone {level + 1} {entry.name}: {entry.milestones[level]:,} "
                    f"{get_experiment(entry.experiment).horizon_unit}, "
                    f"{len(specs) - pending}/{len(specs)} done, {pending} to run")
                if not pending:
                    continue
                started = time.monotonic()
                try:
                    executor.run_all(specs)
                except SsmrlError as error:
                    failures.append(f"{entry.name} at milestone {level + 1}: {error}")
                    log(f"milestone {level + 1} {entry.name}: FAILED: {error}")
                    continue
                log(f"milestone {level + 1} {entry.name}: done in "
                    f"{(time.monotonic() - started) / 60:.1f} min")
    log("campaign finished" + (f" with {len(failures)} failure(s)" if failures else ""))
    if failures:
        raise SsmrlError("; ".join(failures))


def say(line: str) -> None:
    """A log line with a time stamp, leaving any progress bar intact."""
    from tqdm import tqdm

    tqdm.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}")
    sys.stdout.flush()
