"""Every experiment by name: its module, run config class, horizon and the notebooks using it.

The campaign, the run-store migration and the report's milestone reader look experiments up
here. Modules are imported on first use (each pulls in its own environments).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ssmrl_lib.errors import check_choice
from ssmrl_lib.runs import RunSpec, RunStore


@dataclass(frozen=True)
class Experiment:
    """``module`` has ``settings_for(profile, **overrides)`` and ``grid(settings)``."""

    name: str
    module_name: str
    config_class_name: str
    horizon: str  # the setting (dotted name) that says where runs stop
    horizon_unit: str
    milestones: str  # the setting that lists the stops at which runs record, in that unit
    # Notebook -> the settings it passes beyond the profile (what its grid is at defaults).
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @property
    def config_class(self) -> type:
        return getattr(self.module, self.config_class_name)

    def grid(self, profile: str, **overrides: Any) -> list[RunSpec]:
        return self.module.grid(self.module.settings_for(profile, **overrides))


EXPERIMENTS = {
    experiment.name: experiment
    for experiment in (
        Experiment("offline_rl", "ssmrl_lib.experiments.offline_rl", "OfflineRunConfig",
                   "train.steps", "gradient steps", "eval.milestones",
                   {"01_dt_replication": {}, "02_mamba_vs_dt": {"models": ["dt", "mamba"]}}),
        Experiment("popgym_ppo", "ssmrl_lib.experiments.popgym_ppo", "PopgymRunConfig",
                   "ppo.total_steps", "environment steps", "ppo.milestones",
                   {"03_s5_popgym": {}}),
        Experiment("bsuite_memory", "ssmrl_lib.experiments.bsuite_memory", "BsuiteRunConfig",
                   "episodes", "episodes", "milestones", {"04_bsuite_memory": {}}),
        Experiment("meta_rl_cartpole", "ssmrl_lib.experiments.meta_rl_cartpole",
                   "MetaCartPoleRunConfig", "ppo.total_steps", "environment steps",
                   "ppo.milestones", {"05_meta_rl": {}}),
        Experiment("meta_rl_dmc", "ssmrl_lib.experiments.meta_rl_dmc", "MetaDMCRunConfig",
                   "ppo.total_steps", "environment steps", "ppo.milestones",
                   {"05_meta_rl": {}}),
    )
}


def get_experiment(name: str) -> Experiment:
    check_choice("experiment", name, EXPERIMENTS)
    return EXPERIMENTS[name]


def milestone_records(experiment: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """A result's milestone records, oldest first. Results written before runs recorded
    milestones get one: their final evaluation, at their stop."""
    if "milestones" in result:
        return result["milestones"]
    wall = {"wall_time_s": result.get("wall_time_s")}
    if experiment == "offline_rl":
        return [{"step": result["config"]["train"]["steps"], "evaluations": result["evaluations"],
                 "final_loss": result["final_loss"], **wall}]
    curve = result["curve"]
    record = {"step": curve["steps"][-1], "update": len(curve["steps"]),
              "episodes": int(sum(curve["episodes"])), "train_time_s": result["train_time_s"]}
    if experiment == "bsuite_memory":
        return [{**record, "final_return": result["final_return"], **wall}]
    record.update(mmer=result["mmer"], env_steps_per_s=result["env_steps_per_s"])
    if "evaluation" in result:  # the meta-RL experiments evaluate at their stop
        record["evaluation"] = result["evaluation"]
    return [{**record, **wall}]


def grid_milestones(store: RunStore, specs: list[RunSpec]) -> list[list[dict[str, Any]]]:
    """For each run of a grid, the milestone records of the furthest stop it has reached,
    whatever stop the grid asks for ([] for a run never finished at any stop). A chapter draws
    its curves over the paper's schedule from these."""
    records = []
    for spec in specs:
        run = store.find(spec.experiment, spec.config)
        furthest = run.read_furthest() if run is not None else None
        records.append(milestone_records(spec.experiment, furthest) if furthest else [])
    return records


def book_grids(profile: str) -> list[tuple[str, str, list[RunSpec]]]:
    """(notebook, experiment, specs) of every notebook's grid at ``profile`` and its defaults."""
    grids = []
    for experiment in EXPERIMENTS.values():
        for notebook, overrides in experiment.notebooks.items():
            grids.append((notebook, experiment.name, experiment.grid(profile, **overrides)))
    return grids
