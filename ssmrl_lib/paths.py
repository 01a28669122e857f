"""Default locations of the project's generated files, overridable by environment variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def runs_root() -> Path:
    """Where finished runs are cached: ``$SSMRL_RUNS_DIR`` or ``data/runs`` in the repository."""
    return Path(os.environ.get("SSMRL_RUNS_DIR", REPO_ROOT / "data" / "runs"))


def default_minari_store() -> None:
    """Point Minari at the repository's store, ``data/minari`` (where ``make data`` builds the
    datasets), unless ``$MINARI_DATASETS_PATH`` already names one: the ``ssmrl`` command then
    finds the book's datasets however it is started, not only from the Makefile."""
    os.environ.setdefault("MINARI_DATASETS_PATH", str(REPO_ROOT / "data" / "minari"))


def shown(path: Path | str) -> str:
    """``path`` relative to the repository when inside it: messages and the rendered book name
    ``data/policies/hopper/...``, not one machine's checkout."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment ``variables`` for the duration, then restore them (processes started
    inside inherit them)."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
