"""Read a run's evaluations at its milestones, whatever the age of its result.json.

A run that records ``"milestones"`` (a list of evaluation summaries, each with its ``"step"``)
is read from them; an older run's final evaluation is its one milestone. Each milestone comes
back as a summary that reads like the run's final result, so the report code written against a
final result works on any milestone: the milestone's own fields plus the records that describe
the whole run (``WHOLE_RUN_KEYS``), never the final evaluation's numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ssmrl_lib.report.verdicts import Milestone

# What a milestone inherits from its run: the config, and records over the whole run that the
# report slices at the milestone's step (the binned loss curve, the per-update returns).
WHOLE_RUN_KEYS = ("config", "loss_curve", "curve", "parameters")


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
    base = {key: result[key] for key in WHOLE_RUN_KEYS if key in result}
    return [{**base, **milestone} for milestone in sorted(recorded, key=lambda m: m["step"])]


def schedule_position(milestone: dict[str, Any]) -> float:
    """Where a milestone lies on its paper's schedule, in the unit of :func:`final_step`:
    a bsuite milestone's ``step`` counts environment steps, its schedule episodes."""
    if "memory_length" in milestone["config"] and "episodes" in milestone:
        return float(milestone["episodes"])
    return float(milestone["step"])


def curve(results: Sequence[dict[str, Any]], metric: Callable[[dict[str, Any]], float]
          ) -> list[Milestone]:
    """``metric`` at every milestone that all ``results`` (one per seed) reached, placed by
    :func:`schedule_position`."""
    if not results:
        return []
    per_run = [{schedule_position(m): metric(m) for m in milestones(result)}
               for result in results]
    common = sorted(set.intersection(*(set(run) for run in per_run)))
    return [Milestone(step, tuple(float(run[step]) for run in per_run)) for step in common]
