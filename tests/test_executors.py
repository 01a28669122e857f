"""The local executor: parallel runs give sequential numbers, locks, errors, the env contract."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from executor_runs import (
    CountedConfig,
    counted_run,
    diverging_spec,
    executions,
    smoke_grid,
)

from ssmrl_lib import cli
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.runs import LocalExecutor, RunSpec, RunStore, default_executor, make_executor
from ssmrl_lib.runs.lock import RunLock, held_elsewhere
from ssmrl_lib.runs.record import computed_numbers

TESTS_DIR = Path(__file__).parent


def test_parallel_runs_give_the_numbers_of_sequential_ones(tmp_path):
    specs = smoke_grid(seeds=2)  # 4 real PPO runs: S5 and GRU, 2 seeds
    sequential = LocalExecutor(RunStore(tmp_path / "jobs1"), jobs=1).run_all(specs)
    parallel = LocalExecutor(RunStore(tmp_path / "jobs2"), jobs=2).run_all(specs)
    assert len(parallel) == 4 and all(r["curve"]["mean_return"] for r in parallel)
    assert computed_numbers(parallel) == computed_numbers(sequential)
    # the seeds differ, so equal numbers are not one run copied four times
    assert parallel[0]["curve"] != parallel[1]["curve"]
    assert {r["hardware"].split("torch threads ")[1] for r in parallel} == {"1"}


def test_finished_runs_are_not_recomputed_by_a_parallel_grid(tmp_path):
    store = RunStore(tmp_path)
    specs = [RunSpec("counted", CountedConfig(seed, seconds=0.1), counted_run) for seed in range(3)]
    first = LocalExecutor(store, jobs=2).run_all(specs)
    second = LocalExecutor(store, jobs=2).run_all(specs)
    assert first == second == [{"seed": s, "square": s * s} for s in range(3)]
    assert [executions(store.run_dir(s.experiment, s.config)) for s in specs] == [1, 1, 1]


def test_a_worker_error_is_one_line_naming_the_run_and_records_nothing(tmp_path):
    store = RunStore(tmp_path)
    good = RunSpec("counted", CountedConfig(0, seconds=0.1), counted_run)
    with pytest.raises(SsmrlError) as caught:
        LocalExecutor(store, jobs=2).run_all([diverging_spec(), good])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("run diverging/") and "training diverged: loss is nan" in message
    failed = store.run_dir("diverging", diverging_spec().config)
    assert not failed.finished and not (failed.path / "result.json").exists()


def test_a_run_held_by_another_driver_is_waited_for_not_computed(tmp_path):
    store = RunStore(tmp_path)
    specs = [RunSpec("counted", CountedConfig(seed, seconds=0.1), counted_run) for seed in range(2)]
    held = store.run_dir("counted", specs[0].config)
    lock = RunLock(held.path)
    assert lock.acquire() and held_elsewhere(held.path)

    def other_driver_finishes():
        time.sleep(3)
        held.write_result({"seed": 0, "square": 0, "by": "other driver"})
        lock.release()

    thread = threading.Thread(target=other_driver_finishes)
    thread.start()
    results = LocalExecutor(store, jobs=1).run_all(specs)
    thread.join()
    assert results[0]["by"] == "other driver" and executions(held) == 0
    assert results[1] == {"seed": 1, "square": 1}


def test_a_lock_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ssmrl_lib.runs.lock import RunLock
        assert RunLock({str(tmp_path)!r}).acquire()
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert held_elsewhere(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert not held_elsewhere(tmp_path)


DRIVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from executor_runs import CountedConfig, counted_run
    from ssmrl_lib.runs import LocalExecutor, RunSpec, RunStore

    specs = [RunSpec("counted", CountedConfig(seed, seconds=1.0), counted_run) for seed in range(4)]
    print(json.dumps(LocalExecutor(RunStore(sys.argv[2]), jobs=1).run_all(specs)))
""")


def test_two_drivers_on_one_store_compute_each_run_once(tmp_path):
    drivers = [
        subprocess.Popen([sys.executable, "-c", DRIVER, str(TESTS_DIR), str(tmp_path)],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [driver.communicate(timeout=240)[0] for driver in drivers]
    assert [driver.returncode for driver in drivers] == [0, 0]
    assert outputs[0] == outputs[1]
    store = RunStore(tmp_path)
    counts = [executions(store.run_dir("counted", CountedConfig(seed, seconds=1.0)))
              for seed in range(4)]
    assert counts == [1, 1, 1, 1]


def test_workers_of_a_killed_driver_end_with_it(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from executor_runs import CountedConfig, counted_run
        from ssmrl_lib.runs import LocalExecutor, RunSpec, RunStore
        specs = [RunSpec("counted", CountedConfig(seed, seconds=600), counted_run)
                 for seed in range(2)]
        LocalExecutor(RunStore({str(tmp_path)!r}), jobs=2).run_all(specs)
    """)])
    store = RunStore(tmp_path)
    logs = [store.run_dir("counted", CountedConfig(seed, seconds=600)).path / "executions.log"
            for seed in range(2)]
    deadline = time.monotonic() + 120
    while not all(log.exists() and log.read_text().strip() for log in logs):
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    workers = [int(log.read_text()) for log in logs]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_default_executor_follows_the_environment(monkeypatch, tmp_path):
    store = RunStore(tmp_path)
    monkeypatch.delenv("SSMRL_EXECUTOR", raising=False)
    monkeypatch.delenv("SSMRL_JOBS", raising=False)
    assert isinstance(default_executor(store), LocalExecutor)
    assert default_executor(store).jobs == len(os.sched_getaffinity(0))
    monkeypatch.setenv("SSMRL_JOBS", "3")
    assert default_executor(store).jobs == 3
    monkeypatch.setenv("SSMRL_JOBS", "two")
    with pytest.raises(SsmrlError, match="SSMRL_JOBS='two' is not a whole number"):
        default_executor(store)
    monkeypatch.setenv("SSMRL_JOBS", "0")
    with pytest.raises(SsmrlError, match="SSMRL_JOBS='0' must be positive"):
        default_executor(store)
    monkeypatch.delenv("SSMRL_JOBS")
    monkeypatch.setenv("SSMRL_EXECUTOR", "slurm")
    with pytest.raises(SsmrlError, match="unknown executor 'slurm'; valid choices: local, ray"):
        default_executor(store)


def test_executor_options_belong_to_their_executor(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(SsmrlError, match="gpus_per_run is an option of the ray executor"):
        make_executor("local", store, gpus_per_run=0.5)
    with pytest.raises(SsmrlError, match="jobs is an option of the local executor"):
        make_executor("ray", store, jobs=2)
    with pytest.raises(SsmrlError, match="jobs must be a positive whole number"):
        LocalExecutor(store, jobs=0)


def test_notebook_command_hands_its_executor_to_the_kernel(monkeypatch, capsys, tmp_path):
    seen = {}

    def execute(name, parameters, output_dir):
        seen.update({k: v for k, v in os.environ.items() if k.startswith("SSMRL_")})
        return output_dir / f"{name}.ipynb"

    monkeypatch.setattr("ssmrl_lib.notebooks.execute", execute)
    monkeypatch.delenv("SSMRL_EXECUTOR", raising=False)
    assert cli.main(["notebook", "04_bsuite_memory", "--jobs", "2",
                     "--output-dir", str(tmp_path)]) == 0
    assert seen["SSMRL_EXECUTOR"] == "local" and seen["SSMRL_JOBS"] == "2"
    assert "SSMRL_EXECUTOR" not in os.environ  # restored after the notebook
    assert cli.main(["notebook", "04_bsuite_memory", "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "ssmrl: error: jobs must be a positive whole number, got 0"
    ]
