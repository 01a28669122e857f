"""Wall time of `make data`: every available D4RL recipe rebuilt from the committed policies.

The datasets issue asks for all datasets rebuilt in at most 15 minutes on 2 cores. This runs the
same call as `make data` (``ssmrl data build --env all --quality all --jobs 2``) into an empty
scratch store, so nothing already built is reused, and records the total and per-dataset wall
time. It then checks determinism: each rebuilt dataset's arrays must hash to the same
fingerprint as the copy in the main store (``data/minari``) built earlier, where there is one.

With ``--other-kernels`` the build runs with the kernels another CPU would get (OpenBLAS's for
an older CPU, NumPy without its CPU-dispatched SIMD code; ``tests/test_portable.py`` does the same
on a few hundred steps): the same fingerprints then show, at full size, that a dataset does not
depend on the CPU that builds it. Its time says nothing about ``make data`` and goes to its own
file.

Other processes on the machine slow this down; the 1-minute load average is recorded.

Usage: ``python benchmarks/dataset_build.py [--jobs 2] [--envs hopper ...] [--other-kernels]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from ssmrl_lib.data.minari_io import load_trajectories
from ssmrl_lib.data.portable import other_kernels
from ssmrl_lib.data.rebuild import rebuild_datasets
from ssmrl_lib.envs import MUJOCO_TASKS
from ssmrl_lib.paths import REPO_ROOT
from ssmrl_lib.provenance import benchmark_record

RESULTS = Path(__file__).parent / "results"
MAIN_STORE = REPO_ROOT / "data" / "minari"


def fingerprints(names: list[str], store: Path) -> dict[str, str | None]:
    """Array fingerprint of each dataset in ``store`` (None where it is not there)."""
    os.environ["MINARI_DATASETS_PATH"] = str(store)
    found = {}
    for name in names:
        found[name] = load_trajectories(name, download=False).fingerprint() if (
            store / name
        ).is_dir() else None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--envs", nargs="+", default=list(MUJOCO_TASKS), choices=list(MUJOCO_TASKS))
    parser.add_argument("--other-kernels", action="store_true",
                        help="build with the kernels another CPU would get")
    parser.add_argument("--out", type=Path, help="default: results/dataset_build[_other_kernels]"
                        "_cpu.json")
    args = parser.parse_args()
    kernels = other_kernels() if args.other_kernels else {}
    out = args.out or RESULTS / (
        f"dataset_build{'_other_kernels' if kernels else ''}_cpu.json")

    scratch = Path(tempfile.mkdtemp(prefix="ssmrl-dataset-bench-"))
    try:
        os.environ.update(kernels)  # the build's workers are spawned: they start under these
        os.environ["MINARI_DATASETS_PATH"] = str(scratch)
        started = time.monotonic()
        outcomes = rebuild_datasets(args.envs, jobs=args.jobs)
        wall = time.monotonic() - started
        machine = benchmark_record()  # load average over the build's last minute
        built = [o.name for o in outcomes if o.status == "built"]
        rebuilt = fingerprints(built, scratch)
        earlier = fingerprints(built, MAIN_STORE)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    record = {
        "benchmark": "dataset_build",
        "jobs": args.jobs,
        "kernels": kernels or "this CPU's own",
        "wall_seconds": round(wall, 1),
        "target_seconds": 15 * 60,
        "datasets": [
            asdict(o) | {
                "fingerprint": rebuilt.get(o.name),
                "same_as_main_store": (
                    None if earlier.get(o.name) is None else earlier[o.name] == rebuilt[o.name]
                ),
            }
            for o in outcomes
        ],
        "machine": machine,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    for entry in record["datasets"]:
        print(f"{entry['name']:34} {entry['status']:8} {entry['seconds']:6.0f} s "
              f"same as data/minari: {entry['same_as_main_store']}")
    print(f"all datasets: {wall / 60:.1f} min with {args.jobs} jobs (target 15 min) "
          f"-> {out}")


if __name__ == "__main__":
    main()
