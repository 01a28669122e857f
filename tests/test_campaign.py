"""The campaign: plan files, milestone-by-milestone order, resuming, status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ssmrl_lib.campaign import (
    DEFAULT_PLAN,
    campaign_lock,
    campaign_results,
    carried_checkpoints,
    entry_specs,
    first_milestone_progress,
    load_plan,
    plan_milestones,
    run_campaign,
    status_report,
)
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.experiments.registry import get_experiment
from ssmrl_lib.runs import RunStore

TINY_PLAN = {
    "jobs": 1,
    "entries": [
        {"name": "bsuite-mlp", "experiment": "bsuite_memory", "profile": "smoke",
         "settings": {"models": ["mlp"]}, "milestones": [10, 20], "runs": 1,
         "core_hours_per_run": [0.001, 0.001]},
        {"name": "popgym-mlp", "experiment": "popgym_ppo", "profile": "smoke",
         "settings": {"models": ["mlp"], "network.hidden": 8}, "milestones": [128, 256, 384],
         "runs": 1,
         "core_hours_per_run": [0.002, 0.002, 0.002]},
        {"name": "waiting", "experiment": "popgym_ppo", "profile": "smoke",
         "settings": {"models": ["gru"]}, "milestones": [128], "runs": 1,
         "core_hours_per_run": [1.0], "enabled": False, "waits_for": "a check"},
        {"name": "needs-a-setting", "experiment": "popgym_ppo", "profile": "smoke",
         "settings": {"models": ["s5"], "no_such_setting": "authors"}, "milestones": [128],
         "runs": 1, "core_hours_per_run": [2.0]},
    ],
}


def _plan(tmp_path, plan=TINY_PLAN):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return load_plan(path)


def test_campaign_goes_milestone_by_milestone_and_resumes(tmp_path):
    plan = _plan(tmp_path)
    store = RunStore(tmp_path / "runs")
    lines = []
    run_campaign(plan, store, levels=1, log=lines.append)
    assert [line.split(":")[0] for line in lines if "to run" in line] == [
        "milestone 1 bsuite-mlp", "milestone 1 popgym-mlp"]
    assert any("waiting: skipped (disabled: waits for a check)" in line for line in lines)
    assert any("needs-a-setting: skipped (blocked:" in line and "no_such_setting" in line
               for line in lines)
    lines.clear()
    run_campaign(plan, store, log=lines.append)  # starts again where it stopped
    started = [line.split(":")[0] for line in lines if "to run" in line]
    assert started == ["milestone 1 bsuite-mlp", "milestone 1 popgym-mlp",
                       "milestone 2 bsuite-mlp", "milestone 2 popgym-mlp",
                       "milestone 3 popgym-mlp"]
    assert "1/1 done, 0 to run" in lines[0]
    entry = plan.entries[1]
    (spec,) = entry_specs(entry, 2)[0]
    result = store.run_dir(spec.experiment, spec.config).read_result()
    assert [m["step"] for m in result["milestones"]] == [128, 256, 384]
    assert spec.config.network.hidden == 8 and spec.config.ppo.milestones == (128, 256, 384)
    assert len(result["wall_time_stretches_s"]) == 3  # one stretch per milestone, resumed

    report = status_report(plan, store)
    assert "bsuite-mlp" in report and "1/1   done" in report
    assert "[disabled: waits for a check]" in report
    assert "3.00 in waiting ones" in report
    assert "time to finish at the measured rate" in report


def test_status_counts_a_run_without_its_checkpoint_as_starting_again(tmp_path):
    """Checkpoints are not committed: on a fresh clone the next milestone redoes the earlier."""
    entries = [dict(TINY_PLAN["entries"][1], core_hours_per_run=[1.0, 2.0, 4.0])]
    plan = _plan(tmp_path, {"jobs": 1, "entries": entries})
    store = RunStore(tmp_path / "runs")
    run_campaign(plan, store, levels=1, log=lambda _line: None)

    def second_milestone() -> str:
        return status_report(plan, store).splitlines()[4]

    assert second_milestone().endswith("2.00 left")
    (spec,) = entry_specs(plan.entries[0], 1)[0]
    store.run_dir(spec.experiment, spec.config).path.joinpath("checkpoint.pt").unlink()
    assert second_milestone().endswith(
        "3.00 left  (1 restart from 0: their checkpoints are not here)")


def test_status_says_which_pending_runs_are_part_way_to_the_milestone(tmp_path):
    plan = _plan(tmp_path, {"jobs": 1, "entries": [TINY_PLAN["entries"][1]]})
    store = RunStore(tmp_path / "runs")

    def first_milestone() -> str:
        return status_report(plan, store).splitlines()[2]

    assert "part-way" not in first_milestone()
    (spec,) = entry_specs(plan.entries[0], 0)[0]
    store.run_dir(spec.experiment, spec.config).save_checkpoint({"update": 1})  # a killed run
    assert first_milestone().endswith("(1 part-way, checkpointed)")
    assert "0/1   done" in first_milestone()


def test_an_experiment_is_settled_once_its_runnable_entries_reached_their_first_milestone(
        tmp_path):
    plan = _plan(tmp_path)
    store = RunStore(tmp_path / "runs")
    # waiting and blocked entries are not counted: their runs are not part of the picture yet
    assert first_milestone_progress(plan, store) == {"bsuite_memory": (0, 1),
                                                     "popgym_ppo": (0, 1)}
    run_campaign(plan, store, levels=1, only=["bsuite-mlp"], log=lambda _line: None)
    assert first_milestone_progress(plan, store) == {"bsuite_memory": (1, 1),
                                                     "popgym_ppo": (0, 1)}


def test_the_checkpoints_a_later_milestone_resumes_from_are_carried_until_the_plans_end(
        tmp_path):
    plan = _plan(tmp_path)
    store = RunStore(tmp_path / "runs")
    run_campaign(plan, store, levels=1, log=lambda _line: None)
    runs = {entry.name: store.find(spec.experiment, spec.config).path
            for entry in plan.entries[:2] for spec in entry_specs(entry, 0)[0]}
    both = [(runs[name] / "checkpoint.pt", runs[name] / "checkpoint.json")
            for name in ("bsuite-mlp", "popgym-mlp")]
    assert carried_checkpoints(plan, store) == [path for pair in both for path in pair]
    assert all(path.exists() for path in carried_checkpoints(plan, store))
    assert carried_checkpoints(plan, store, finished=True) == []

    run_campaign(plan, store, levels=2, log=lambda _line: None)  # bsuite-mlp is at its end
    assert carried_checkpoints(plan, store) == list(both[1])
    assert carried_checkpoints(plan, store, finished=True) == list(both[0])


def test_chapters_read_each_campaign_run_at_its_furthest_milestone(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from ssmrl_lib.report import bsuite_memory, figures, popgym
    from ssmrl_lib.report.milestones import curve

    plan = _plan(tmp_path)
    store = RunStore(tmp_path / "runs")
    run_campaign(plan, store, levels=2, log=lambda _line: None)
    results = campaign_results(plan, store)
    assert sorted(results) == ["bsuite_memory", "popgym_ppo"]  # none from the waiting entries
    (run,) = results["popgym_ppo"]
    assert [m["step"] for m in run["milestones"]] == [128, 256]  # at level 2 of 3
    assert plan_milestones(plan, "popgym_ppo") == (128, 256, 384)
    assert campaign_results(plan, store, "bsuite_memory").keys() == {"bsuite_memory"}
    # what the chapters draw of them, over the paper's schedules
    popgym.plot_learning_curves(results["popgym_ppo"], 15_000_000, (128, 256, 384))
    bsuite_memory.plot_schedule_curves(results["bsuite_memory"], 10_000, (10, 20))
    points = curve(results["bsuite_memory"], lambda m: m["final_return"])
    assert len(points) == 2 and 10 <= points[0].step < points[1].step < 30  # episodes, not steps
    fig = figures.plot_milestone_curves({"MemoryChain": {"MLP": points}}, 10_000, (10, 20),
                                        "return")
    assert fig.axes[0].get_xlim() == (0, 10_000)


def test_one_campaign_at_a_time(tmp_path):
    store = RunStore(tmp_path)
    with campaign_lock(store), pytest.raises(SsmrlError, match="already running"), \
            campaign_lock(store):
        pass


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown keys"),
    ({"milestones": [20, 10]}, "milestones must be increasing"),
    ({"core_hours_per_run": [1.0]}, "one cost per milestone"),
    ({"experiment": "nope"}, "experiment"),
])
def test_bad_plans_fail_with_one_clear_line(tmp_path, change, message):
    entry = {**TINY_PLAN["entries"][0], **change}
    with pytest.raises(SsmrlError, match=message):
        _plan(tmp_path, {"entries": [entry]})


def test_the_committed_plan_is_valid_and_its_run_counts_are_its_grids():
    plan = load_plan(DEFAULT_PLAN)
    assert plan.entries
    for entry in plan.entries:
        # every setting it names exists (dotted names, as a notebook's overrides)
        get_experiment(entry.experiment).module.settings_for(entry.profile, **entry.settings)
        if entry.experiment == "offline_rl":
            continue  # its grid needs the datasets (make data)
        specs, blocked = entry_specs(entry, 0)
        if not blocked:
            assert len(specs) == entry.runs, entry.name


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no autogroup scheduling")
def test_a_background_job_gives_its_niceness_to_its_session_only(tmp_path):
    # The file is empty for a process in a non-autogroup task group (a container's cgroup):
    # compare its whole text, which is what the scheduler shows.
    # `nice -n 7` adds to this process's niceness (an earlier test may have raised it)
    niceness = min(os.nice(0) + 7, 19)
    probe = ("from ssmrl_lib.cli import yield_to_other_sessions; "
             "yield_to_other_sessions(); print(open('/proc/self/autogroup').read().strip())")
    background = subprocess.run(
        ["setsid", "nice", "-n", "7", sys.executable, "-c", probe], capture_output=True,
        text=True, env={**os.environ, "SSMRL_BACKGROUND": "1"}, check=True)
    if background.stdout.strip():
        assert background.stdout.strip().endswith(f"nice {niceness}")
    mine = Path("/proc/self/autogroup").read_text().strip()
    environment = {k: v for k, v in os.environ.items() if k != "SSMRL_BACKGROUND"}
    foreground = subprocess.run(["nice", "-n", "7", sys.executable, "-c", probe],
                                capture_output=True, text=True, env=environment, check=True)
    assert foreground.stdout.strip() == mine  # the caller's session keeps its share
