"""Notebook runs as a user starts them: two at once on one empty store and run cache, quiet
output, files with the user's umask, and Ctrl-C in one line."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssmrl_lib.paths import REPO_ROOT

SMOKE = ["notebook", "01_dt_replication", "-p", "profile", "smoke"]
NOISE = ("without encryption", "KeyboardInterrupt", "Traceback", "Parent appears to have exited")


def _ssmrl(tmp_path: Path, *argv: str) -> subprocess.Popen:
    env = os.environ | {
        "PYTHONPATH": str(REPO_ROOT), "SSMRL_OFFLINE": "1",
        "MINARI_DATASETS_PATH": str(tmp_path / "minari"), "SSMRL_RUNS_DIR": str(tmp_path / "runs"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ssmrl_lib.cli", *argv], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, umask=0o022,
    )


def test_two_executions_at_once_share_one_store_and_run_cache(tmp_path):
    runs = [_ssmrl(tmp_path, *SMOKE, "--output-dir", str(tmp_path / f"out{i}")) for i in (1, 2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert not [line for line in err.splitlines() if any(n in line for n in NOISE)], err
        assert "executed 01_dt_replication" in out
    for i in (1, 2):
        executed = tmp_path / f"out{i}" / "01_dt_replication.ipynb"
        assert stat.S_IMODE(executed.stat().st_mode) == 0o644
        assert [p.name for p in executed.parent.iterdir()] == [executed.name]
    # one stand-in dataset, made once under its own namespace; nothing half-written
    store = tmp_path / "minari"
    assert sorted(p.name for p in store.iterdir()) == [".locks", "ssmrl-smoke"]
    assert [p.name for p in (store / "ssmrl-smoke" / "hopper").iterdir()
            if p.is_dir()] == ["random-v0"]
    # one run directory per (seed), each finished once, whole, with the user's umask
    run_dirs = sorted((tmp_path / "runs" / "offline_rl").iterdir())
    assert len(run_dirs) == 2  # the smoke profile's two seeds
    for run_dir in run_dirs:
        names = sorted(p.name for p in run_dir.rglob("*"))
        assert {"config.json", "result.json"} <= set(names), names
        assert not [n for n in names if n.endswith(".tmp")], names  # no write left half-done
        result = run_dir / "result.json"
        assert json.loads(result.read_text())["config"]["dataset"] == (
            "ssmrl-smoke/hopper/random-v0")
        assert stat.S_IMODE(result.stat().st_mode) == 0o644


@pytest.mark.parametrize("seconds", [1, 8])  # while the kernel starts; while the grid runs
def test_ctrl_c_stops_a_notebook_run_in_one_line(tmp_path, seconds):
    out = tmp_path / "out"
    run = _ssmrl(tmp_path, "notebook", "04_bsuite_memory", "-p", "profile", "smoke",
                 "-p", "episodes", "100000", "--output-dir", str(out))
    deadline = time.monotonic() + 300
    while not (out.exists() and list(out.iterdir())):  # the kernel starts right after this
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.2)
    time.sleep(seconds)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130
    assert err.strip().splitlines() == ["ssmrl: interrupted"]
    assert not list(out.iterdir())
