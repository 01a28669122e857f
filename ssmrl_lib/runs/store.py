"""On-disk run cache: one directory per run, keyed by a hash of its config.

A run is finished exactly when ``result.json`` exists; it is written last and atomically
(temporary file + ``os.replace``), so a run killed at any point is never taken as finished.
While it runs, the directory holds its ``checkpoint.pt`` to resume from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"


def finite_or_none(values: list[float]) -> list[float | None]:
    """JSON has no NaN: a curve's missing points (e.g. updates in which no episode ended)
    are stored as ``null``."""
    return [float(v) if math.isfinite(v) else None for v in values]


def _jsonable(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return config


def config_hash(config: Any) -> str:
    """Stable 12-hex-digit hash of a (dataclass) config, independent of key order."""
    canonical = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


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


class RunDir:
    """The directory of one run: config, checkpoint while running, result when finished."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def finished(self) -> bool:
        return (self.path / RESULT_FILE).exists()

    def read_result(self) -> dict[str, Any]:
        return json.loads((self.path / RESULT_FILE).read_text())

    def write_config(self, config: Any) -> None:
        atomic_write_json(self.path / CONFIG_FILE, _jsonable(config))

    def write_result(self, result: dict[str, Any]) -> None:
        """Mark the run finished; the checkpoint is no longer needed and is removed."""
        atomic_write_json(self.path / RESULT_FILE, result)
        (self.path / CHECKPOINT_FILE).unlink(missing_ok=True)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        tmp = self.path / f".{CHECKPOINT_FILE}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.path / CHECKPOINT_FILE)

    def load_checkpoint(self) -> dict[str, Any] | None:
        path = self.path / CHECKPOINT_FILE
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=False)


class RunStore:
    """Runs of one experiment under ``root/<experiment>/<config hash>/``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def run_dir(self, experiment: str, config: Any) -> RunDir:
        path = self.root / experiment / config_hash(config)
        path.mkdir(parents=True, exist_ok=True)
        run = RunDir(path)
        if not (path / CONFIG_FILE).exists():
            run.write_config(config)
        return run
