"""One-time migration of a run store to keys without the horizon (``ssmrl runs migrate``).

Run directories used to be keyed by a hash of the whole config, including where the run
stops. Each is moved to its key without the horizon; its ``config.json`` is rewritten from the
config rebuilt with today's classes (new fields at the values older runs implicitly had), and
its ``result.json`` gains the stop it reached, its milestone records (its final evaluation),
the same ``config`` and the wall-time fields of a one-stretch run. Two old directories of the
same run at different stops merge into one: the furthest stop's result is ``result.json``, the
other goes to ``stops/``. An unfinished old directory loses its checkpoint (written by the old
trainers, it would not resume under the new ones) and starts over. Running it again changes
nothing.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssmrl_lib.runs.store import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    RESULT_FILE,
    STOPS_DIR,
    WALL_TIME_COUNTS,
    _stop_key,
    atomic_write_json,
    config_from_dict,
    config_hash,
    full_config_hash,
    horizon_of,
    stop_label,
)


@dataclass(frozen=True)
class Moved:
    experiment: str
    old_key: str
    new_key: str
    finished: bool
    note: str = ""


def _upgrade_result(result: dict[str, Any], config: Any, stop: dict[str, Any],
                    milestones: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> dict:
    upgraded = dict(result)
    upgraded["milestones"] = milestones(result)
    upgraded["config"] = dataclasses.asdict(config)
    upgraded["stop"] = stop
    if "wall_time_stretches_s" not in upgraded and "wall_time_s" in upgraded:
        upgraded["wall_time_stretches_s"] = [upgraded["wall_time_s"]]
        upgraded["wall_time_counts"] = WALL_TIME_COUNTS
    return upgraded


def migrate_store(
    root: Path,
    config_classes: dict[str, type],
    milestones: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]],
) -> list[Moved]:
    """Move every run under ``root/<experiment>/`` to its key without the horizon."""
    moved = []
    for experiment, cls in config_classes.items():
        folder = root / experiment
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.is_dir()):
            if not (path / CONFIG_FILE).exists():
                continue
            data = json.loads((path / CONFIG_FILE).read_text())
            config = config_from_dict(cls, data)
            new_key, stop = config_hash(config), horizon_of(config)
            result_path = path / RESULT_FILE
            result = json.loads(result_path.read_text()) if result_path.exists() else None
            if path.name == new_key and (result is None or "stop" in result):
                continue  # already migrated
            note = "" if full_config_hash(data) == path.name else "old key was not its hash"
            if result is not None:
                result = _upgrade_result(result, config, stop, milestones[experiment])
            else:
                (path / CHECKPOINT_FILE).unlink(missing_ok=True)
            target = folder / new_key
            if target.exists() and target != path:
                note = _merge(path, target, result, stop) or note
                shutil.rmtree(path)
            else:
                if result is not None:
                    atomic_write_json(result_path, result)
                atomic_write_json(path / CONFIG_FILE, dataclasses.asdict(config))
                path.rename(target)
            moved.append(Moved(experiment, path.name, new_key, result is not None, note))
    return moved


def _merge(source: Path, target: Path, result: dict | None, stop: dict[str, Any]) -> str:
    """Fold an old directory of the same run (another stop) into ``target``."""
    if result is None:
        return "unfinished duplicate dropped"
    latest = target / RESULT_FILE
    existing = json.loads(latest.read_text()) if latest.exists() else None
    if existing is None or _stop_key(existing["stop"]) < _stop_key(stop):
        if existing is not None:
            atomic_write_json(target / STOPS_DIR / f"{stop_label(existing['stop'])}.json",
                              existing)
        atomic_write_json(latest, result)
        atomic_write_json(target / CONFIG_FILE, result["config"])
    else:
        atomic_write_json(target / STOPS_DIR / f"{stop_label(stop)}.json", result)
    return "merged with another stop of the same run"
