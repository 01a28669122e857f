"""The run cache: hashing, reuse of finished runs, killed runs, exact resume."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import make_trajectories

from ssmrl_lib.data.windows import DTWindowSampler
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.models.decision_transformer import DecisionTransformer, SequenceModelConfig
from ssmrl_lib.runs import LocalExecutor, RunSpec, RunStore, config_hash
from ssmrl_lib.train.offline import TrainConfig, train_offline


@dataclass(frozen=True)
class ToyConfig:
    seed: int
    size: int = 3


def test_config_hash_is_stable_and_distinguishes_configs():
    assert config_hash(ToyConfig(0)) == config_hash(ToyConfig(0))
    assert config_hash(ToyConfig(0)) != config_hash(ToyConfig(1))
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})


def test_finished_runs_are_reused(tmp_path):
    calls = []

    def compute(config, run):
        calls.append(config.seed)
        return {"value": config.seed * 10}

    executor = LocalExecutor(RunStore(tmp_path), jobs=1)  # in this process: `calls` sees the runs
    specs = [RunSpec("toy", ToyConfig(seed), compute) for seed in range(3)]
    first = executor.run_all(specs)
    second = executor.run_all(specs)
    assert calls == [0, 1, 2]
    assert first == second == [{"value": 0}, {"value": 10}, {"value": 20}]


def test_a_failed_run_is_not_recorded_as_finished(tmp_path):
    def explode(config, run):
        raise SsmrlError("training diverged")

    store = RunStore(tmp_path)
    with pytest.raises(SsmrlError):
        LocalExecutor(store).run_all([RunSpec("toy", ToyConfig(0), explode)])
    run = store.run_dir("toy", ToyConfig(0))
    assert not run.finished
    assert not (run.path / "result.json").exists()


def _tiny_model() -> DecisionTransformer:
    torch.manual_seed(0)
    return DecisionTransformer(
        SequenceModelConfig(state_dim=2, act_dim=1, context_len=4, hidden_size=16, n_layer=1)
    )


class Killed(Exception):
    pass


def test_a_killed_training_run_resumes_to_the_same_numbers(tmp_path):
    sampler = DTWindowSampler(make_trajectories([15, 25]), context_len=4)
    config = TrainConfig(steps=30, batch_size=8, warmup_steps=5, checkpoint_every=10)
    uninterrupted = train_offline(_tiny_model(), sampler, config, seed=1)

    run = RunStore(tmp_path).run_dir("toy", ToyConfig(0))

    def kill_at_step_25(model):
        kill_at_step_25.calls += 1
        if kill_at_step_25.calls == 5:
            raise Killed
        return {}

    kill_at_step_25.calls = 0
    with pytest.raises(Killed):
        train_offline(_tiny_model(), sampler, config, seed=1, run=run,
                      evaluate=kill_at_step_25, eval_every=5)
    assert run.load_checkpoint()["step"] == 20
    assert not run.finished

    resumed_model = _tiny_model()
    resumed = train_offline(resumed_model, sampler, config, seed=1, run=run)
    np.testing.assert_array_equal(resumed.losses, uninterrupted.losses)


def test_nan_loss_stops_training_with_a_clear_error():
    sampler = DTWindowSampler(make_trajectories([15]), context_len=4)
    model = _tiny_model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(SsmrlError, match="training diverged: loss is nan"):
        train_offline(model, sampler, TrainConfig(steps=3, batch_size=4), seed=0)
