"""The Ray executor on a real local Ray instance (``ray.init(num_cpus=2)``).

Ray workers unpickle the test's run functions by value (``executor_runs`` is not installed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import executor_runs  # noqa: E402
from executor_runs import (  # noqa: E402
    CountedConfig,
    attempts,
    counted_run,
    diverging_spec,
    executions,
    pausing_run_ppo,
    smoke_grid,
)

from ssmrl_lib.errors import SsmrlError  # noqa: E402
from ssmrl_lib.experiments import popgym_ppo  # noqa: E402
from ssmrl_lib.runs import LocalExecutor, RunSpec, RunStore, make_executor  # noqa: E402
from ssmrl_lib.runs.record import computed_numbers  # noqa: E402

TESTS_DIR = Path(__file__).parent


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(executor_runs)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_a_smoke_grid_through_ray_gives_the_local_numbers(ray_instance, tmp_path):
    specs = smoke_grid(seeds=1)  # S5 and GRU
    local = LocalExecutor(RunStore(tmp_path / "local"), jobs=1).run_all(specs)
    through_ray = make_executor("ray", RunStore(tmp_path / "ray")).run_all(specs)
    assert computed_numbers(through_ray) == computed_numbers(local)
    assert through_ray[0]["curve"] != through_ray[1]["curve"]


def test_a_killed_worker_is_retried_and_resumes_to_the_uninterrupted_numbers(
    ray_instance, tmp_path
):
    plain = smoke_grid(seeds=1)[0]  # S5, 4 updates, a checkpoint every 2
    uninterrupted = LocalExecutor(RunStore(tmp_path / "plain"), jobs=1).run_all([plain])[0]

    store = RunStore(tmp_path / "ray")
    spec = RunSpec(popgym_ppo.EXPERIMENT, plain.config, pausing_run_ppo)
    run = store.run_dir(spec.experiment, spec.config)
    killed = []

    def kill_the_paused_worker():
        deadline = time.monotonic() + 180
        while not (run.path / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.2)  # the pid is written whole before the pause starts
        pid = int((run.path / "pid").read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_paused_worker)
    killer.start()
    result = make_executor("ray", store).run_all([spec])[0]
    killer.join()
    print(f"killed worker {killed}; attempts started at updates {attempts(run)}")
    assert len(killed) == 1
    assert attempts(run) == [1, 3]  # from scratch, then resumed after the checkpoint at 2
    assert computed_numbers(result) == computed_numbers(uninterrupted)


def test_a_nan_loss_through_ray_is_one_line_not_retried_and_records_nothing(
    ray_instance, tmp_path
):
    store = RunStore(tmp_path)
    with pytest.raises(SsmrlError) as caught:
        make_executor("ray", store).run_all([diverging_spec()])
    message = str(caught.value)
    print(message)
    assert "\n" not in message
    assert message.startswith("run diverging/") and "training diverged: loss is nan" in message
    run = store.run_dir("diverging", diverging_spec().config)
    assert not run.finished and executions(run) == 1


DRIVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import ray
    import executor_runs
    from executor_runs import CountedConfig, counted_run
    from ssmrl_lib.runs import RunSpec, RunStore, make_executor

    ray.cloudpickle.register_pickle_by_value(executor_runs)
    specs = [RunSpec("counted", CountedConfig(seed, seconds=2.0), counted_run) for seed in range(2)]
    executor = make_executor("ray", RunStore(sys.argv[2]), address=sys.argv[3])
    print(json.dumps(executor.run_all(specs)))
""")


def test_two_drivers_submitting_one_grid_compute_each_run_once(ray_instance, tmp_path):
    drivers = [
        subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(TESTS_DIR), str(tmp_path), ray_instance],
            stdout=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outputs = [driver.communicate(timeout=300)[0] for driver in drivers]
    assert [driver.returncode for driver in drivers] == [0, 0]
    expected = [{"seed": s, "square": s * s} for s in range(2)]
    assert [json.loads(output.splitlines()[-1]) for output in outputs] == [expected, expected]
    store = RunStore(tmp_path)
    counts = [executions(store.run_dir("counted", CountedConfig(s, seconds=2.0))) for s in range(2)]
    assert counts == [1, 1]


def test_a_finished_run_is_never_resubmitted(ray_instance, tmp_path, monkeypatch):
    from ssmrl_lib.runs import ray_executor

    store = RunStore(tmp_path)
    specs = [RunSpec("counted", CountedConfig(s, seconds=0.0), counted_run) for s in range(2)]
    first = make_executor("ray", store).run_all(specs)

    def resubmitted(self, spec):
        raise AssertionError(f"finished run {spec.config} was submitted again")

    monkeypatch.setattr(ray_executor._RayTasks, "submit", resubmitted)
    assert make_executor("ray", store).run_all(specs) == first
    assert first == [{"seed": 0, "square": 0}, {"seed": 1, "square": 1}]
