"""Shared fixtures: every test runs offline, against a Minari store and run cache in tmp."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ssmrl_lib.data.make import make_dataset
from ssmrl_lib.data.minari_io import Trajectories
from ssmrl_lib.envs import get_task


@pytest.fixture(autouse=True)
def isolated_store(tmp_path_factory, monkeypatch):
    store = tmp_path_factory.getbasetemp() / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    monkeypatch.setenv("SSMRL_OFFLINE", "1")
    monkeypatch.setenv("SSMRL_RUNS_DIR", str(tmp_path_factory.getbasetemp() / "runs"))
    return store


@pytest.fixture(scope="session")
def tiny_hopper_id(tmp_path_factory) -> str:
    """A 300-step random-policy Hopper dataset in the test store, made once per session."""
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path_factory.getbasetemp() / "minari")
    dataset_id = "test/hopper/tiny-random-v0"
    make_dataset(get_task("hopper"), dataset_id, total_steps=300, seed=0, max_episode_steps=40)
    return dataset_id


def make_trajectories(lengths: list[int], state_dim: int = 2, act_dim: int = 1) -> Trajectories:
    """Hand-made episodes whose values encode (episode, step) so windows are easy to check."""
    states, actions, rewards = [], [], []
    for episode, length in enumerate(lengths):
        steps = np.arange(length, dtype=np.float32)
        states.append(np.stack([steps + 100 * episode] * state_dim, axis=1))
        actions.append(np.full((length, act_dim), 0.5, np.float32))
        rewards.append(np.ones(length, np.float32))
    return Trajectories(
        dataset_id="hand/made-v0",
        gym_id="",
        states=states,
        actions=actions,
        rewards=rewards,
        terminations=[np.zeros(n, bool) for n in lengths],
        truncations=[np.eye(1, n, n - 1, dtype=bool)[0] for n in lengths],
    )


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
