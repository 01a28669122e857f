"""The local Minari store: builds appear whole or not at all, broken folders are skipped with one
warning, two processes needing the same stand-in build it once, stand-ins never carry a real
dataset's id."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import minari
import pytest

from ssmrl_lib.data.local_store import dataset_lock, local_dataset_ids
from ssmrl_lib.data.make import ensure_smoke_dataset, make_dataset, smoke_dataset_id
from ssmrl_lib.envs import get_task
from ssmrl_lib.experiments import offline_rl
from ssmrl_lib.paths import REPO_ROOT


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """An empty store of this test's own."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def _broken_folders(store: Path) -> None:
    """What old code or a hand left behind: an id without version, and metadata only."""
    (store / "badid" / "data").mkdir(parents=True)
    half = store / "mine" / "hopper" / "half-v0" / "data"
    half.mkdir(parents=True)
    (half / "metadata.json").write_text(json.dumps({"dataset_id": "mine/hopper/half-v0"}))


def test_listing_skips_broken_folders_in_one_warning_line(store, caplog):
    make_dataset(get_task("hopper"), "mine/hopper/whole-v0", 50, seed=0, max_episode_steps=20)
    _broken_folders(store)
    with caplog.at_level(logging.WARNING, logger="ssmrl"):
        assert local_dataset_ids() == ["mine/hopper/whole-v0"]
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "\n" not in line and "badid" in line and "mine/hopper/half-v0" in line
    with pytest.raises(Exception, match="Malformed|int"):  # what Minari itself does with it
        minari.list_local_datasets()


def test_a_broken_folder_is_replaced_by_the_next_build(store):
    _broken_folders(store)
    dataset = make_dataset(get_task("hopper"), "mine/hopper/half-v0", 50, seed=0)
    assert dataset.total_steps >= 50
    assert "mine/hopper/half-v0" in local_dataset_ids()


_KILLED_BUILD = """
import sys, time
from pathlib import Path
import ssmrl_lib.data.make as make
from ssmrl_lib.envs import get_task

real = make.create_dataset
def create_then_hang(*args, **kwargs):
    real(*args, **kwargs)  # everything written, not yet moved into place
    Path(sys.argv[1]).touch()
    time.sleep(600)
make.create_dataset = create_then_hang
make.make_dataset(get_task("hopper"), "mine/hopper/killed-v0", 200, seed=0)
"""


def test_a_build_killed_while_writing_leaves_nothing_under_its_id(store, tmp_path):
    written = tmp_path / "written"
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    build = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(written)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not written.exists():
            assert build.poll() is None and time.monotonic() < deadline, "build did not start"
            time.sleep(0.2)
        scratch = [p for p in store.iterdir() if p.name.startswith(".building-")]
        assert len(scratch) == 1 and (scratch[0] / "mine/hopper/killed-v0/data").is_dir()
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()
    assert not (store / "mine" / "hopper" / "killed-v0").exists()
    assert local_dataset_ids() == []
    # The next attempt starts over (no --overwrite needed) and clears the killed one's scratch.
    dataset = make_dataset(get_task("hopper"), "mine/hopper/killed-v0", 200, seed=0)
    assert dataset.total_steps >= 200
    assert local_dataset_ids() == ["mine/hopper/killed-v0"]
    assert not [p for p in store.iterdir() if p.name.startswith(".building-")]


def test_a_second_process_waits_for_the_stand_in_and_uses_it(store):
    dataset_id = smoke_dataset_id("hopper")
    finished = []
    waiter = threading.Thread(target=lambda: finished.append(ensure_smoke_dataset("hopper", 50)))
    with dataset_lock(dataset_id):
        waiter.start()
        time.sleep(0.5)
        assert not finished  # blocked on the lock
        make_dataset(get_task("hopper"), dataset_id, 50, seed=0, locked=True)
        made = (store / dataset_id / "data" / "main_data.hdf5").stat().st_mtime_ns
    waiter.join(60)
    assert finished == [dataset_id]
    assert (store / dataset_id / "data" / "main_data.hdf5").stat().st_mtime_ns == made


def test_smoke_stand_ins_have_their_own_namespace(store):
    smoke = offline_rl.PROFILES["smoke"]
    assert offline_rl.dataset_id(smoke, "hopper") == "ssmrl-smoke/hopper/random-v0"
    hosted = offline_rl.settings_for("smoke", dataset="mujoco/{env}/medium-v0")
    assert offline_rl.ensure_datasets(hosted) == {"hopper": "mujoco/hopper/medium-v0"}
    assert local_dataset_ids() == []  # nothing made up under the hosted id
