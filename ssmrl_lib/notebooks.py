"""Execute the book's notebooks with papermill, checking parameter names first.

Papermill only warns about a parameter the notebook does not declare; here an unknown name is
an error naming the valid ones. The executed notebook replaces its target only on success,
so a failed run never leaves a half-executed chapter where the book would render it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import papermill

from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
BOOK_DIR = REPO_ROOT / "book"


def notebook_names() -> list[str]:
    return sorted(path.stem for path in NOTEBOOK_DIR.glob("*.ipynb"))


def notebook_parameters(name: str) -> list[str]:
    check_choice("notebook", name, notebook_names())
    return list(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb")))


def execute(name: str, parameters: dict[str, Any], output_dir: Path = BOOK_DIR) -> Path:
    """Run notebook ``name`` with ``parameters``; return the executed notebook's path."""
    valid = notebook_parameters(name)
    for key in parameters:
        check_choice(f"parameter of notebook {name}", key, valid)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{name}.ipynb"
    fd, tmp = tempfile.mkstemp(dir=output_dir, prefix=f".{name}.", suffix=".ipynb")
    os.close(fd)
    try:
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / f"{name}.ipynb"), tmp, parameters=parameters,
            cwd=str(NOTEBOOK_DIR), progress_bar=False, kernel_name="python3",
        )
    except papermill.PapermillExecutionError as error:
        Path(tmp).unlink(missing_ok=True)
        raise SsmrlError(
            f"notebook {name} failed: {error.ename}: {error.evalue.splitlines()[0]}"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target
