"""Default locations of the project's generated files, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def runs_root() -> Path:
    """Where finished runs are cached: ``$SSMRL_RUNS_DIR`` or ``data/runs`` in the repository."""
    return Path(os.environ.get("SSMRL_RUNS_DIR", REPO_ROOT / "data" / "runs"))


def shown(path: Path | str) -> str:
    """``path`` relative to the repository when inside it: messages and the rendered book name
    ``data/policies/hopper/...``, not one machine's checkout."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
