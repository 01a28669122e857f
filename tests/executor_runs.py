"""Run functions and grids for the executor tests, importable by their worker processes.

Real smoke runs come from the experiments; the functions here only add what a test has to
observe from outside a worker: how often a run executed, and a pause a test can kill.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from ssmrl_lib.runs import RunDir, RunSpec

# The experiments are imported where they are used: a worker process that only runs
# ``counted_run`` then starts in seconds, not in the time it takes to import them.

PAUSE_LIMIT_S = 120


def smoke_grid(seeds: int = 2) -> list[RunSpec]:
    """POPGym's smoke grid: S5 and GRU PPO runs of 4 updates each."""
    from ssmrl_lib.experiments import popgym_ppo

    return popgym_ppo.grid(popgym_ppo.settings_for("smoke", seeds=seeds))


@dataclass(frozen=True)
class DivergingConfig:
    seed: int
    learning_rate: float = float("inf")


def diverging_run(config: DivergingConfig, run: RunDir) -> dict[str, Any]:
    """A tiny Decision Transformer trained at an infinite learning rate on random episodes:
    its weights blow up after the first step and the trainer's own check stops it with a NaN
    loss. Logs each execution like ``counted_run``."""
    import numpy as np
    import torch

    from ssmrl_lib.data.minari_io import Trajectories
    from ssmrl_lib.data.windows import DTWindowSampler
    from ssmrl_lib.models.decision_transformer import DecisionTransformer, SequenceModelConfig
    from ssmrl_lib.train.offline import TrainConfig, train_offline

    with open(run.path / "executions.log", "a") as log:
        log.write(f"{os.getpid()}\n")
    rng = np.random.default_rng(config.seed)
    lengths = [12, 20]
    trajectories = Trajectories(
        dataset_id="random/episodes-v0", gym_id="",
        states=[rng.normal(size=(n, 3)).astype(np.float32) for n in lengths],
        actions=[rng.uniform(-1, 1, size=(n, 2)).astype(np.float32) for n in lengths],
        rewards=[np.ones(n, np.float32) for n in lengths],
        terminations=[np.zeros(n, bool) for n in lengths],
        truncations=[np.arange(n) == n - 1 for n in lengths],
    )
    torch.manual_seed(config.seed)
    model = DecisionTransformer(SequenceModelConfig(state_dim=3, act_dim=2, context_len=4,
                                                    hidden_size=16, n_layer=1, max_ep_len=32))
    train_config = TrainConfig(steps=5, batch_size=4, learning_rate=config.learning_rate)
    train_offline(model, DTWindowSampler(trajectories, context_len=4), train_config,
                  config.seed, run)
    return {"seed": config.seed}


def diverging_spec(seed: int = 0) -> RunSpec:
    return RunSpec("diverging", DivergingConfig(seed), diverging_run)


@dataclass(frozen=True)
class CountedConfig:
    seed: int
    seconds: float = 1.0


def counted_run(config: CountedConfig, run: RunDir) -> dict[str, Any]:
    """Logs each execution in the run's directory, takes ``seconds``, returns seed numbers."""
    with open(run.path / "executions.log", "a") as log:
        log.write(f"{os.getpid()}\n")
    time.sleep(config.seconds)
    return {"seed": config.seed, "square": config.seed**2}


def executions(run: RunDir) -> int:
    log = run.path / "executions.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def pausing_run_ppo(config: Any, run: RunDir) -> dict[str, Any]:
    """POPGym's ``run_ppo``, except that its first attempt, once it has written a checkpoint,
    writes its pid to ``run.path/pid`` and waits to be killed. Each attempt logs the first
    update it trains to ``run.path/attempts`` (1: from scratch, later: resumed)."""
    from ssmrl_lib.experiments import popgym_ppo

    train_ppo = popgym_ppo.train_ppo
    first_update: list[int] = []

    def on_update(done: int, history: Any) -> None:
        if not first_update:
            first_update.append(done)
            with open(run.path / "attempts", "a") as log:
                log.write(f"{done}\n")
        if run.load_checkpoint() is not None and not (run.path / "pid").exists():
            (run.path / "pid").write_text(str(os.getpid()))
            time.sleep(PAUSE_LIMIT_S)
            raise RuntimeError("the test did not kill this worker")

    def train_with_pause(*args: Any, **kwargs: Any) -> Any:
        of_the_run = kwargs.pop("on_update", None)

        def both(done: int, history: Any) -> None:
            if of_the_run is not None:
                of_the_run(done, history)
            on_update(done, history)

        return train_ppo(*args, **kwargs, on_update=both)

    with mock.patch.object(popgym_ppo, "train_ppo", train_with_pause):
        return popgym_ppo.run_ppo(config, run)


def attempts(run: RunDir) -> list[int]:
    return [int(line) for line in Path(run.path / "attempts").read_text().splitlines()]
