"""Default locations of the project's generated files, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def runs_root() -> Path:
    """Where finished runs are cached: ``$SSMRL_RUNS_DIR`` or ``data/runs`` in the repository."""
    return Path(os.environ.get("SSMRL_RUNS_DIR", REPO_ROOT / "data" / "runs"))
