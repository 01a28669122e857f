"""Price the campaign plan: core-hours per run per milestone, from the measured unit costs.

The unit costs come from ``benchmarks/campaign_costs.py`` (``benchmarks/results/
campaign_costs_cpu.json``: CPU seconds at one torch thread). For every plan entry this prints
the cost of one run from each milestone to the next and the entry's total; ``--write`` puts
``runs`` and ``core_hours_per_run`` into ``plan.yaml`` (only those lines change, comments stay).

Cost model, per run and milestone step (from milestone ``a`` to ``b``):

- offline: ``(b - a)`` training steps, plus at ``b`` ``eval.episodes`` evaluation episodes per
  return target and mode, plus the 10-episode evaluations every ``eval.every`` steps; every
  episode is priced at 1000 steps (HalfCheetah's length; Hopper and Walker2d episodes end
  earlier, so they cost less than this);
- POPGym: whole PPO updates between ``a`` and ``b`` times one update's cost at Table 3
  (64 envs x 1024 steps, 30 epochs, 8 minibatches). ``benchmarks/campaign_costs.py`` times a
  32-step unroll and scales it, which does not extrapolate (S5 686 s, GRU 286 s per update
  against 396 s and 693 s measured at the real unroll), so the plan takes the full-unroll
  measurement of issue 13 (one update on PositionOnlyCartPoleHard, one torch thread, with the
  library's ``train_ppo``): ``TABLE3_UPDATE_S``;
- bsuite: the steps of the episodes between ``a`` and ``b`` (``L + 1`` each) over the measured
  steps per second at memory length ``L``, interpolated linearly between measured lengths
  (constant beyond them).

Usage: ``python campaign/price.py [--write]``
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from ssmrl_lib.campaign import DEFAULT_PLAN, Entry, load_plan
from ssmrl_lib.envs import get_task
from ssmrl_lib.experiments import bsuite_memory, offline_rl, popgym_ppo
from ssmrl_lib.paths import REPO_ROOT

COSTS = REPO_ROOT / "benchmarks" / "results" / "campaign_costs_cpu.json"
# Seconds of one 65,536-step PPO update at Table 3's settings, one torch thread, measured at the
# real unroll in issue 13 (4c: S5 ⊕ 396 s, GRU 693 s, MLP 69 s); the pre-norm S5 block.
TABLE3_UPDATE_S = {"s5": 396.0, "gru": 693.0, "mlp": 69.0}


def offline_costs(entry: Entry, costs: dict) -> tuple[list[float], int]:
    settings = offline_rl.settings_for(entry.profile, **entry.settings)
    per_run, runs = [], 0
    per_model_env = []
    for model in settings.models:
        for env in settings.envs:
            targets = len(get_task(env).return_targets) if settings.all_targets else 1
            modes = offline_rl.EVAL_MODES[model]
            episode = {mode: costs["offline_episode_s"][f"{model}/{mode}"] for mode in modes}
            steps, previous = [], 0
            for milestone in entry.milestones:
                train = (milestone - previous) * costs["offline_step_s"][model]
                final = settings.eval.episodes * targets * sum(episode.values())
                every = settings.eval.every
                during = (milestone // every - previous // every) \
                    * settings.eval.every_episodes * episode[modes[0]]
                steps.append(train + final + during)
                previous = milestone
            per_model_env.append(steps)
            runs += settings.seeds
    # The plan prices every run of an entry alike: the mean over its models and environments.
    per_run = list(np.mean(per_model_env, axis=0))
    return per_run, runs


def popgym_costs(entry: Entry, costs: dict) -> tuple[list[float], int]:
    settings = popgym_ppo.settings_for(entry.profile, **entry.settings)
    per_update = np.mean([TABLE3_UPDATE_S[m] for m in settings.models])
    spu = settings.ppo.steps_per_update
    steps, previous = [], 0
    for milestone in entry.milestones:
        steps.append((milestone // spu - previous // spu) * per_update)
        previous = milestone
    return steps, len(settings.envs) * len(settings.models) * settings.seeds


def bsuite_costs(entry: Entry, costs: dict) -> tuple[list[float], int]:
    settings = bsuite_memory.settings_for(entry.profile, **entry.settings)
    measured = costs["bsuite_steps_per_s"]
    per_length_model = []
    for model in settings.models:
        points = sorted((int(k.split("/")[1]), v) for k, v in measured.items()
                        if k.startswith(f"{model}/"))
        lengths, rates = zip(*points, strict=True)
        for length in settings.lengths:
            rate = float(np.interp(length, lengths, rates))
            steps, previous = [], 0
            for milestone in entry.milestones:
                unroll = settings.a2c.unroll
                new = bsuite_memory.episode_steps(milestone, length, unroll) - \
                    bsuite_memory.episode_steps(previous, length, unroll)
                steps.append(new / rate)
                previous = milestone
            per_length_model.append(steps)
    runs = len(settings.models) * len(settings.lengths) * settings.seeds
    return list(np.mean(per_length_model, axis=0)), runs


PRICERS = {"offline_rl": offline_costs, "popgym_ppo": popgym_costs,
           "bsuite_memory": bsuite_costs}


def price(entry: Entry, costs: dict) -> tuple[list[float], int]:
    """Core-hours of one run from each milestone to the next, and the entry's run count."""
    seconds, runs = PRICERS[entry.experiment](entry, costs)
    return [round(float(s) / 3600, 3) for s in seconds], runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN)
    parser.add_argument("--costs", type=Path, default=COSTS)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    costs = json.loads(args.costs.read_text())
    plan = load_plan(args.plan)
    text = args.plan.read_text()
    total = 0.0
    for entry in plan.entries:
        hours, runs = price(entry, costs)
        entry_total = runs * sum(hours)
        total += entry_total
        state = "" if entry.enabled else " (disabled)"
        print(f"{entry.name:<34} {runs:>3} runs x {hours} core-h = {entry_total:6.2f}{state}")
        if args.write:
            pattern = re.compile(
                rf"(- name: {re.escape(entry.name)}\n(?:(?!  - name:).*\n)*?)"
                r"(    runs: ).*\n((?:(?!  - name:).*\n)*?)(    core_hours_per_run: ).*\n"
            )
            text, n = pattern.subn(
                lambda m, r=runs, h=hours: f"{m[1]}{m[2]}{r}\n{m[3]}{m[4]}{h}\n", text
            )
            if n != 1:
                raise SystemExit(f"could not find {entry.name}'s runs/core_hours_per_run lines")
    print(f"total: {total:.1f} core-hours")
    if args.write:
        args.plan.write_text(text)


if __name__ == "__main__":
    main()
