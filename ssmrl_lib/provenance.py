"""Where a number came from: code commit, hardware, library versions (recorded with every run,
dataset and benchmark; the book's provenance boxes are ``report/provenance.py``)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from ssmrl_lib.paths import REPO_ROOT

TRACKED_PACKAGES = ("torch", "numpy", "gymnasium", "mujoco", "minari", "transformers")


# The paths whose contents decide a number; edits elsewhere (README, book pages, tests, recorded
# benchmark results) do not.
CODE_PATHS = ("ssmrl_lib", "notebooks", "benchmarks", "pyproject.toml", ":!benchmarks/results")


def git_commit() -> str:
    """Short commit hash of the code, with ``+dirty`` if tracked code (``CODE_PATHS``) has
    uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> str:
    """CPU model and core count, plus the GPU when torch sees one."""
    import torch

    description = (
        f"{cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    )
    if torch.cuda.is_available():
        description += f", GPU {torch.cuda.get_device_name(0)}"
    return description


def benchmark_record() -> dict:
    """What a benchmark's JSON records about where and on what code it ran.

    The 1-minute load average is kept because timings taken while other jobs share the CPU are
    upper bounds, and a reader should be able to tell.
    """
    import torch

    return {
        "commit": git_commit(),
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1min": os.getloadavg()[0],
    }


def library_versions(*extra: str) -> dict[str, str]:
    """Versions of Python, the packages every experiment uses, and ``extra`` packages."""
    versions = {"python": platform.python_version()}
    for package in (*TRACKED_PACKAGES, *extra):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
