"""Where a number came from: code commit, hardware, library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
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


def benchmark_caption(machine: dict) -> str:
    """One sentence naming where a recorded benchmark ran, for the chapter that shows it."""
    where = machine["gpu"] or f"{machine['cpu']} ({machine['logical_cpus']} logical CPUs)"
    return (
        f"Recorded on {where}, {machine['threads']} torch thread(s), torch {machine['torch']}, "
        f"code commit `{machine['commit']}`, 1-minute load average "
        f"{machine['load_average_1min']:.1f} when it finished."
    )


def library_versions(*extra: str) -> dict[str, str]:
    """Versions of Python, the packages every experiment uses, and ``extra`` packages."""
    versions = {"python": platform.python_version()}
    for package in (*TRACKED_PACKAGES, *extra):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def provenance_markdown(
    profile: str, results: list[dict], datasets: list[str], notebook_wall_time_s: float
) -> str:
    """A MyST admonition saying which profile, data, hardware and commit produced the numbers."""
    hardware_seen = sorted({r["hardware"] for r in results})
    # results recorded before runs named their device ran on the CPU
    devices = sorted({r.get("device", "cpu") for r in results})
    scans = sorted({r["scan_backend"] for r in results if "scan_backend" in r})
    commits = sorted({r["commit"] for r in results})
    run_time = sum(r["wall_time_s"] for r in results)
    versions = results[0]["versions"] if results else library_versions()
    version_text = ", ".join(f"{k} {v}" for k, v in versions.items())
    lines = [
        "```{admonition} Provenance",
        ":class: note",
        f"- **profile**: `{profile}`",
        f"- **datasets**: {', '.join(f'`{d}`' for d in datasets)}",
        f"- **runs**: {len(results)}, total run wall time {run_time / 60:.1f} min "
        f"(this execution of the notebook: {notebook_wall_time_s / 60:.1f} min; finished runs "
        "are reused from the cache)",
        f"- **hardware**: {'; '.join(hardware_seen)}",
        f"- **device**: {', '.join(devices)}"
        + (f"; Decision Mamba's scan: {'; '.join(scans)}" if scans else ""),
        f"- **code commit**: runs {', '.join(f'`{c}`' for c in commits)}; "
        f"notebook executed at `{git_commit()}`",
        f"- **versions**: {version_text}",
        "```",
    ]
    return "\n".join(lines)


def scale_note(profile: str, results: list[dict]) -> str:
    """A warning box unless the numbers come from the paper-scale profile on a GPU."""
    on_gpu = any(r.get("device") == "cuda" for r in results)
    if profile == "full" and on_gpu:
        return ""
    where = "on a GPU" if on_gpu else "on CPU only"
    return (
        "```{admonition} Not paper scale\n:class: warning\n"
        f"These numbers come from the `{profile}` profile, run {where}, far below the papers' "
        "budgets (see the provenance box). The `full` profile (the papers' settings, meant for "
        "a GPU) has not produced this chapter yet.\n```"
    )
