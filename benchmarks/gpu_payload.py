"""What travels to the GPU machine for the GPU check, and the steps on either side of the call.

The device tool copies the working tree (tracked and untracked-not-ignored files, plus the
ignored paths a call carries), at most 64 MiB, to a bare machine that cannot download
anything. So, here, before the call:

* ``prepare`` downloads wheels (Python 3.12, manylinux x86-64) of the packages the check needs
  and the GPU image lacks, at the versions this environment runs, into ``.gpu-wheels/``
  (git-ignored; the call carries it), records the source commit there, and moves every tracked
  file the check does not read into ``.gpu-stash/`` (git-ignored, not carried): the behavior
  policies' replays and checkpoints (and the training states of those retraining), all but
  Hopper's medium checkpoint and its evaluation log,
  which rebuild ``ssmrl/hopper/medium-v0`` there, and the run store with the campaign's
  committed checkpoints (the check writes its runs elsewhere). ``.gitignore`` files stay, so
  that ignored files stay ignored. Then it prints the payload and fails if it is over the
  limit.
* ``restore`` (right after the call) moves the stashed files back; ``git status`` is clean again.
* ``size`` prints the payload as the tree stands now.

Usage: ``python benchmarks/gpu_payload.py prepare|restore|size`` (``make gpu-check-prepare``,
``make gpu-check-restore``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".gpu-wheels"
STASH = ROOT / ".gpu-stash"
LIMIT_MIB = 64.0
# Needed by the check and missing from the GPU image (README of the device tool, KINDS.md):
# the environments and the dataset library, at the versions this environment pins or runs.
PACKAGES = ("gymnasium", "farama-notifications", "minari", "mujoco", "glfw", "popgym")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
# The behavior policies, those retraining (their committed state is tens of MB), and the run
# store, which holds the campaign's carried checkpoints (about 10 MB a DT run).
STASHED_UNDER = ("data/policies", "data/policy-training", "data/runs")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def _kept_policy_files() -> set[str]:
    """The files of ``data/policies`` that the check's dataset rebuild reads."""
    from ssmrl_lib.data.checkpoint_choice import choose_checkpoint
    from ssmrl_lib.envs import get_task

    hopper = ROOT / STASHED_UNDER[0] / "hopper"
    chosen = choose_checkpoint(get_task("hopper"), "medium", hopper).path
    return {str(p.relative_to(ROOT)) for p in (chosen, hopper / "evaluations.csv",
                                               hopper / "training.json")}


def _size(path: Path) -> int:
    return path.lstat().st_size if path.is_symlink() or path.is_file() else 0


def payload_bytes() -> dict[str, int]:
    """Bytes that a call carrying ``.gpu-wheels`` sends, by kind."""
    tracked = [p for p in _git("ls-files", "-z").split("\0") if p]
    untracked = [p for p in _git("ls-files", "-z", "--others", "--exclude-standard").split("\0")
                 if p]
    carried = [p for p in WHEELS.rglob("*")] if WHEELS.exists() else []
    return {
        "tracked files present": sum(_size(ROOT / p) for p in tracked),
        "untracked, not ignored": sum(_size(ROOT / p) for p in untracked),
        "carried .gpu-wheels": sum(_size(p) for p in carried),
    }


def report_size() -> bool:
    parts = payload_bytes()
    total = sum(parts.values()) / 2**20
    for name, size in parts.items():
        print(f"  {name:<24} {size / 2**20:7.1f} MiB")
    print(f"  {'payload':<24} {total:7.1f} MiB of {LIMIT_MIB:.0f} MiB")
    return total <= LIMIT_MIB


def download_wheels() -> None:
    shutil.rmtree(WHEELS, ignore_errors=True)  # two versions of one package stop the install
    WHEELS.mkdir()
    pins = [f"{name}=={metadata.version(name)}" for name in PACKAGES]
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(WHEELS),
         *pins],
        check=True,
    )
    commit = _git("rev-parse", "--short=10", "HEAD").strip()
    dirty = _git("status", "--porcelain", "--untracked-files=no").strip()
    (WHEELS / "SOURCE_COMMIT").write_text(f"{commit}{'+dirty' if dirty else ''}\n")
    print(f"wheels in {WHEELS.relative_to(ROOT)}: " + ", ".join(pins))


def stash() -> None:
    if STASH.exists() and any(STASH.rglob("*")):
        print(f"{STASH.relative_to(ROOT)} already holds stashed files; kept as they are")
        return
    keep = _kept_policy_files()
    moved = 0
    for name in _git("ls-files", "-z", *STASHED_UNDER).split("\0"):
        # .gitignore files stay: without them ignored files (SAC states) would travel
        if name and name not in keep and Path(name).name != ".gitignore" and (ROOT / name).exists():
            target = STASH / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(ROOT / name, target)
            moved += 1
    print(f"moved {moved} tracked files to {STASH.relative_to(ROOT)} (kept: {sorted(keep)}); "
          "run `make gpu-check-restore` after the call")


def restore() -> None:
    if not STASH.exists():
        print("nothing stashed")
        return
    files = [p for p in STASH.rglob("*") if p.is_file()]
    for path in files:
        target = ROOT / path.relative_to(STASH)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    shutil.rmtree(STASH)
    print(f"restored {len(files)} files")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("prepare", "restore", "size"))
    action = parser.parse_args().action
    os.chdir(ROOT)
    if action == "restore":
        restore()
        return 0
    if action == "prepare":
        download_wheels()
        stash()
    fits = report_size()
    if not fits:
        print(f"payload over {LIMIT_MIB:.0f} MiB: the device tool would refuse the call",
              file=sys.stderr)
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
