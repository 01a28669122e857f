"""Read a run's evaluations at its milestones, whatever the age of its result.json.

A run that records ``"milestones"`` (a list of evaluation summaries, each with its ``"step"``)
is read from them; an older run's final evaluation is its one milestone. Each milestone comes
back as a summary that reads like the run's final result (the milestone's fields over the
result's), so the report code written against a final result works on any milestone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ssmrl_lib.report.verdicts import Milestone


def final_step(result: dict[str, Any]) -> int:
    """Where a run without milestones stopped: gradient steps (offline), episodes (bsuite),
    environment steps (PPO)."""
    config = result["config"]
    if "train" in config:
        return int(config["train"]["steps"])
    if "memory_length" in config:
        return int(config["episodes"])
    return int(result["curve"]["steps"][-1])


def milestones(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's milestone summaries, oldest first."""
    recorded = result.get("milestones")
    if not recorded:
        return [{**result, "step": final_step(result)}]
    base = {key: value for key, value in result.items() if key != "milestones"}
    return [{**base, **milestone} for milestone in sorted(recorded, key=lambda m: m["step"])]


def curve(results: Sequence[dict[str, Any]], metric: Callable[[dict[str, Any]], float]
          ) -> list[Milestone]:
    """``metric`` at every milestone that all ``results`` (one per seed) reached."""
    if not results:
        return []
    per_run = [{m["step"]: metric(m) for m in milestones(result)} for result in results]
    common = sorted(set.intersection(*(set(run) for run in per_run)))
    return [Milestone(step, tuple(float(run[step]) for run in per_run)) for step in common]
