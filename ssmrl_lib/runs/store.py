"""On-disk run cache: one directory per run, keyed by a hash of its config without its horizon.

A run is a prefix of a schedule. Its cache key leaves out where it stops (the config fields
marked ``metadata={"cache_key": "horizon"}``: steps, total steps, episodes) and what it only
records on the way (``"cache_key": "record"``: its milestones), so a run asked to go further
reuses the directory of the same run stopped earlier and resumes from its checkpoint. A field
added after runs were recorded declares the value older runs implicitly had,
``metadata={"cache_key_omit_if": OLD_VALUE}``, and is left out of the key while it holds it.

Layout of ``root/<experiment>/<key>/``:

- ``config.json``: the config of the furthest stop reached (with its horizon);
- ``result.json``: the result at that stop, written last and atomically (temporary file +
  ``os.replace``), so a run killed at any point is never taken as finished; it names its stop
  (``"stop": {"train.steps": 20000}``);
- ``stops/<stop>.json``: results at earlier stops (a run extended further keeps them, so a
  request for an earlier stop is still answered);
- ``checkpoint.pt`` (+ ``checkpoint.json``, the stop it was trained towards): the state to
  resume from, kept after the run finishes so that it can be extended; never committed;
- ``side/<stop>/``: where a stop *before* the stored checkpoint's, never recorded, is computed
  from scratch, without touching the main checkpoint.

A run's ``wall_time_s`` adds up its stretches: each checkpoint carries the seconds of the
stretches before it (``RunDir.wall_time_s``), so resumed and extended runs count all of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

import torch

from ssmrl_lib.provenance import hardware

RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_STOP_FILE = "checkpoint.json"
STOPS_DIR = "stops"
SIDE_DIR = "side"
HORIZON = "horizon"  # where a run stops: left out of the key, defines the stop
RECORD = "record"  # what a run records on the way (milestones): left out of the key
WALL_TIME_KEY = "_run_wall_time_stretches_s"
CPU_TIME_KEY = "_run_cpu_time_stretches_s"
HARDWARE_KEY = "_run_hardware_stretches"
_NEVER = object()


def finite_or_none(values: list[float]) -> list[float | None]:
    """JSON has no NaN: a curve's missing points (e.g. updates in which no episode ended)
    are stored as ``null``."""
    return [float(v) if math.isfinite(v) else None for v in values]


def _jsonable(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return config


def _key_view(value: Any) -> Any:
    """``value`` as plain data, without the fields that are not part of a run's identity."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        view = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if field.metadata.get("cache_key") in (HORIZON, RECORD):
                continue
            omit_if = field.metadata.get("cache_key_omit_if", _NEVER)
            if omit_if is not _NEVER and item == omit_if:
                continue
            view[field.name] = _key_view(item)
        return view
    if isinstance(value, dict):
        return {key: _key_view(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_key_view(item) for item in value]
    return value


def config_hash(config: Any) -> str:
    """Stable 12-hex-digit hash of a (dataclass) config without its horizon, independent of
    key order."""
    canonical = json.dumps(_key_view(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def full_config_hash(config: Any) -> str:
    """The hash of every field (how run directories were keyed before horizons were left out)."""
    canonical = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def horizon_of(config: Any, prefix: str = "") -> dict[str, Any]:
    """Where ``config`` stops: ``{"dotted.field": value}`` of its horizon fields, in order."""
    stop: dict[str, Any] = {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        for field in dataclasses.fields(config):
            item = getattr(config, field.name)
            if field.metadata.get("cache_key") == HORIZON:
                stop[prefix + field.name] = item
            else:
                stop.update(horizon_of(item, f"{prefix}{field.name}."))
    return stop


def stop_label(stop: dict[str, Any]) -> str:
    """File-name form of a stop: ``20000`` or, with several horizon fields (in name order),
    ``165024-5000``."""
    return "-".join(str(value) for _, value in sorted(stop.items())) or "final"


def config_from_dict(cls: type, data: Any) -> Any:
    """Rebuild dataclass ``cls`` from its ``asdict`` form (nested dataclasses, tuples);
    fields absent from ``data`` (added since it was written) take their defaults."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        values[field.name] = _from_plain(hints[field.name], data[field.name])
    return cls(**values)


def _from_plain(hint: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value)
    origin = typing.get_origin(hint) or hint
    if origin is tuple and isinstance(value, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return value


def file_mode() -> int:
    """The mode a plain ``open()`` gives a new file under the process's umask (``mkstemp``
    makes 0600 files, which the user's group could not read)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _stop_key(stop: dict[str, Any]) -> tuple:
    """Stops compare field by field (in name order: stored stops come back key-sorted)."""
    return tuple(value for _, value in sorted(stop.items()))


class RunDir:
    """One run asked to reach ``stop``: its config, checkpoint, results.

    ``path`` is where this run's checkpoint lives (the run's directory, or a side directory
    for a stop before the stored checkpoint's); ``root`` is the run's directory, which holds
    its results.
    """

    def __init__(self, path: Path, stop: dict[str, Any] | None = None, root: Path | None = None,
                 config: Any = None):
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path
        self.stop = dict(stop or {})
        self.config = config
        self._stretches: list[float] = []
        self._cpu_stretches: list[float] = []
        self._hardware_stretches: list[str] = []
        self._clock_started: float | None = None
        self._cpu_started = 0.0

    # -- results --------------------------------------------------------------------------

    def _stop_file(self) -> Path:
        return self.root / STOPS_DIR / f"{stop_label(self.stop)}.json"

    def _result_file(self) -> Path | None:
        """The file holding the result at this run's stop, if it was reached."""
        latest = self.root / RESULT_FILE
        if latest.exists() and (not self.stop or _read_json(latest).get("stop") == self.stop):
            return latest
        earlier = self._stop_file()
        return earlier if self.stop and earlier.exists() else None

    @property
    def finished(self) -> bool:
        """Whether the run reached the stop its config asks for."""
        return self._result_file() is not None

    def read_result(self) -> dict[str, Any]:
        path = self._result_file()
        if path is None:
            raise FileNotFoundError(f"{self.root} has no result at {self.stop or 'its stop'}")
        return _read_json(path)

    def read_furthest(self) -> dict[str, Any] | None:
        """The result at the furthest stop this run reached, whatever its config asks for."""
        latest = self.root / RESULT_FILE
        return _read_json(latest) if latest.exists() else None

    def write_config(self, config: Any) -> None:
        atomic_write_json(self.root / CONFIG_FILE, _jsonable(config))

    def write_result(self, result: dict[str, Any]) -> None:
        """Record the result at this run's stop. The furthest stop's is ``result.json``; a
        result it supersedes moves to ``stops/``. The checkpoint is kept for extensions."""
        if self.stop:
            result = {**result, "stop": self.stop}
        latest = self.root / RESULT_FILE
        previous = _read_json(latest) if latest.exists() else None
        if previous is not None and self.stop and _stop_key(previous.get("stop", {})) > \
                _stop_key(self.stop):
            atomic_write_json(self._stop_file(), result)  # an earlier stop, computed aside
        else:
            if previous is not None and self.stop and previous.get("stop") not in (None,
                                                                                   self.stop):
                label = stop_label(previous["stop"])
                atomic_write_json(self.root / STOPS_DIR / f"{label}.json", previous)
            atomic_write_json(latest, result)
            if self.config is not None:
                self.write_config(self.config)
        if self.path != self.root:  # a side computation is not extended: drop its directory
            shutil.rmtree(self.path, ignore_errors=True)

    # -- checkpoints and wall time --------------------------------------------------------

    def start_clock(self) -> None:
        """Start timing this stretch (run functions call it first; otherwise the first
        checkpoint access starts it)."""
        self._clock_started = time.monotonic()
        self._cpu_started = time.process_time()

    def _elapsed(self) -> float:
        if self._clock_started is None:
            self.start_clock()
        return time.monotonic() - self._clock_started

    def cpu_time_stretches(self) -> list[float]:
        """CPU seconds of this process in every stretch (core-seconds at one thread)."""
        self._elapsed()
        return [*self._cpu_stretches, time.process_time() - self._cpu_started]

    def wall_time_stretches(self) -> list[float]:
        """Seconds of every stretch this run ran in: those before its checkpoint, then this one."""
        return [*self._stretches, self._elapsed()]

    def hardware_stretches(self) -> list[str]:
        """The hardware of every stretch (a run carried to another machine resumes there: its
        later numbers are that CPU's)."""
        return [*self._hardware_stretches, hardware()]

    def wall_time_s(self) -> float:
        """Seconds this run has taken, summed over its stretches."""
        return float(sum(self.wall_time_stretches()))

    def cpu_time_s(self) -> float:
        """CPU seconds this run has taken, summed over its stretches."""
        return float(sum(self.cpu_time_stretches()))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{CHECKPOINT_FILE}.tmp"
        torch.save({**state, WALL_TIME_KEY: self.wall_time_stretches(),
                    CPU_TIME_KEY: self.cpu_time_stretches(),
                    HARDWARE_KEY: self.hardware_stretches()}, tmp)
        os.replace(tmp, self.path / CHECKPOINT_FILE)
        atomic_write_json(self.path / CHECKPOINT_STOP_FILE, {"stop": self.stop})

    def load_checkpoint(self) -> dict[str, Any] | None:
        self._elapsed()
        path = self.path / CHECKPOINT_FILE
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        self._stretches = list(state.pop(WALL_TIME_KEY, []))
        self._cpu_stretches = list(state.pop(CPU_TIME_KEY, []))
        # a checkpoint written before hardware was kept per stretch: unknown, not this one's
        self._hardware_stretches = list(state.pop(
            HARDWARE_KEY, ["not recorded"] * len(self._cpu_stretches)))
        return state

    def checkpoint_stop(self) -> dict[str, Any] | None:
        """The stop the stored checkpoint's stretch was trained towards (None: no checkpoint)."""
        if not (self.path / CHECKPOINT_FILE).exists():
            return None
        marker = self.path / CHECKPOINT_STOP_FILE
        return _read_json(marker)["stop"] if marker.exists() else {}


class RunStore:
    """Runs of one experiment under ``root/<experiment>/<config key>/``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path_of(self, experiment: str, config: Any) -> Path:
        return self.root / experiment / config_hash(config)

    def run_dir(self, experiment: str, config: Any) -> RunDir:
        """The run of ``config``, created if new; ready to be computed if not finished."""
        path = self.path_of(experiment, config)
        path.mkdir(parents=True, exist_ok=True)
        stop = horizon_of(config)
        run = RunDir(path, stop, config=config)
        if not (path / CONFIG_FILE).exists():
            run.write_config(config)
        if run.finished or not stop:
            return run
        # A stop before the stored checkpoint's (or before the furthest result, whose
        # checkpoint may be missing on a fresh clone) is computed aside, from scratch.
        behind = [s for s in (run.checkpoint_stop(), (run.read_furthest() or {}).get("stop"))
                  if s]
        if any(_stop_key(s) > _stop_key(stop) for s in behind):
            return RunDir(path / SIDE_DIR / stop_label(stop), stop, root=path, config=config)
        return run

    def find(self, experiment: str, config: Any) -> RunDir | None:
        """The run of ``config`` if its directory exists (nothing is created)."""
        path = self.path_of(experiment, config)
        return RunDir(path, horizon_of(config), config=config) if path.exists() else None


WALL_TIME_COUNTS = (
    "seconds summed over every stretch the run ran in (a resumed or extended run: each earlier "
    "stretch up to its last checkpoint, then the last stretch whole)"
)


def wall_time_fields(run: RunDir) -> dict[str, Any]:
    """A result's time fields: wall time in total and per stretch, what the total counts,
    and the CPU time of the run's process (core-seconds at one thread; what a campaign's
    core-hours count)."""
    stretches = run.wall_time_stretches()
    return {
        "wall_time_s": float(sum(stretches)),
        "wall_time_stretches_s": stretches,
        "wall_time_counts": WALL_TIME_COUNTS,
        "cpu_time_s": run.cpu_time_s(),
        "hardware_stretches": run.hardware_stretches(),
    }
