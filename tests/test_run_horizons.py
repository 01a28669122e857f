"""Runs as prefixes of a schedule: cache keys without the horizon, milestones, extending a
finished run bit for bit, wall time summed over stretches, the one-time store migration."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import partial

import pytest
import torch

from ssmrl_lib.experiments import bsuite_memory, offline_rl, popgym_ppo
from ssmrl_lib.experiments.registry import EXPERIMENTS, grid_milestones, milestone_records
from ssmrl_lib.paths import REPO_ROOT
from ssmrl_lib.runs import LocalExecutor, RunSpec, RunStore, config_hash
from ssmrl_lib.runs.migrate import migrate_store
from ssmrl_lib.runs.store import CHECKPOINT_FILE, HARDWARE_KEY, full_config_hash, horizon_of

TIMING = {"wall_time_s", "wall_time_stretches_s", "cpu_time_s", "train_time_s",
          "env_steps_per_s", "commit", "hardware", "hardware_stretches", "versions",
          "peak_memory", "eval_time_s"}


@dataclass(frozen=True)
class Inner:
    steps: int = field(default=10, metadata={"cache_key": "horizon"})
    lr: float = 0.1
    marks: tuple = field(default=(), metadata={"cache_key": "record"})


@dataclass(frozen=True)
class Outer:
    seed: int
    inner: Inner = Inner()
    added_later: str = field(default="old", metadata={"cache_key_omit_if": "old"})


def test_cache_key_leaves_out_the_horizon_the_records_and_old_defaults():
    base = config_hash(Outer(0))
    assert config_hash(Outer(0, Inner(steps=99, marks=(5, 10)))) == base
    assert config_hash(Outer(0, Inner(lr=0.2))) != base
    assert config_hash(Outer(1)) != base
    # A field added later keeps older runs' keys while it holds the value they implicitly had.
    assert config_hash(Outer(0, added_later="new")) != base
    assert horizon_of(Outer(0, Inner(steps=7))) == {"inner.steps": 7}


def _strip(value):
    """A result without its timings and provenance (which differ between any two runs)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _run(store: RunStore, spec: RunSpec) -> dict:
    return LocalExecutor(store).run_all([spec])[0]


def _extend_matches_uninterrupted(tmp_path, specs_at) -> None:
    """A run taken to each stop in turn (resuming each time) ends with the numbers of one run
    straight to the last stop; earlier stops stay answerable."""
    stops = list(specs_at)
    stepwise, straight = RunStore(tmp_path / "stepwise"), RunStore(tmp_path / "straight")
    for stop in stops:
        _run(stepwise, specs_at[stop])
    extended = stepwise.run_dir(specs_at[stops[-1]].experiment, specs_at[stops[-1]].config)
    assert extended.finished
    uninterrupted = _run(straight, specs_at[stops[-1]])
    assert _strip(extended.read_result()) == _strip(uninterrupted)
    assert [m["step"] for m in uninterrupted["milestones"]] == [
        m["step"] for m in extended.read_result()["milestones"]
    ]
    assert len(extended.read_result()["wall_time_stretches_s"]) == len(stops)
    first = stepwise.run_dir(specs_at[stops[0]].experiment, specs_at[stops[0]].config)
    assert first.finished and first.read_result()["stop"] == horizon_of(specs_at[stops[0]].config)
    # The earlier stop's result equals a run straight to it.
    alone = _run(RunStore(tmp_path / "alone"), specs_at[stops[0]])
    assert _strip(first.read_result()) == _strip(alone)


def test_extending_an_offline_run_gives_the_uninterrupted_numbers(tmp_path, tiny_hopper_id):
    milestones = [10, 20, 30]

    def spec(steps: int) -> RunSpec:
        settings = offline_rl.settings_for(
            "smoke", dataset=tiny_hopper_id, make_missing_dataset_steps=0, models=["dt", "mamba"],
            seeds=1, **{"train.steps": steps, "eval.milestones": milestones},
        )
        return offline_rl.grid(settings)[1]  # Decision Mamba: both evaluation modes

    _extend_matches_uninterrupted(tmp_path, {s: spec(s) for s in milestones[:2]})
    result = RunStore(tmp_path / "straight").run_dir("offline_rl", spec(20).config).read_result()
    assert [m["step"] for m in result["milestones"]] == [10, 20]
    assert {e["mode"] for e in result["milestones"][0]["evaluations"]} == {"recurrent", "window"}
    assert result["evaluations"] == result["milestones"][-1]["evaluations"]


def test_extending_a_ppo_run_gives_the_uninterrupted_numbers(tmp_path):
    def spec(total_steps: int) -> RunSpec:
        settings = popgym_ppo.settings_for(
            "smoke", models=["s5"],
            **{"ppo.total_steps": total_steps, "ppo.milestones": [128, 256, 384]},
        )
        return popgym_ppo.grid(settings)[0]

    _extend_matches_uninterrupted(tmp_path, {s: spec(s) for s in (128, 384)})


def test_extending_a_bsuite_run_gives_the_uninterrupted_numbers(tmp_path):
    def spec(episodes: int) -> RunSpec:
        settings = bsuite_memory.settings_for(
            "smoke", models=["lstm"], episodes=episodes, milestones=[10, 20, 30]
        )
        return bsuite_memory.grid(settings)[0]

    _extend_matches_uninterrupted(tmp_path, {s: spec(s) for s in (10, 30)})


class Killed(Exception):
    pass


def test_wall_time_of_a_killed_and_resumed_run_sums_its_stretches(tmp_path):
    settings = popgym_ppo.settings_for("smoke", models=["gru"], **{"ppo.total_steps": 256})
    spec = popgym_ppo.grid(settings)[0]
    store = RunStore(tmp_path)

    def killed_after_first_checkpoint(config, run):
        original = run.save_checkpoint

        def save_then_die(state):
            original(state)
            raise Killed

        run.save_checkpoint = save_then_die
        return popgym_ppo.run_ppo(config, run)

    with pytest.raises(Killed):
        LocalExecutor(store).run_all([RunSpec(spec.experiment, spec.config,
                                              killed_after_first_checkpoint)])
    run = store.run_dir(spec.experiment, spec.config)
    assert not run.finished and run.load_checkpoint()["update"] == 2
    # The first stretch ran elsewhere (the checkpoint carried from another machine).
    state = torch.load(run.path / CHECKPOINT_FILE, weights_only=False)
    torch.save(state | {HARDWARE_KEY: ["Other CPU, 2 cores, torch threads 1"]},
               run.path / CHECKPOINT_FILE)
    result = _run(store, spec)
    assert result["hardware_stretches"] == ["Other CPU, 2 cores, torch threads 1",
                                            result["hardware"]]
    stretches = result["wall_time_stretches_s"]
    assert len(stretches) == 2 and all(s > 0 for s in stretches)
    assert result["wall_time_s"] == pytest.approx(sum(stretches))
    assert "every stretch" in result["wall_time_counts"]
    assert _strip(result) == _strip(_run(RunStore(tmp_path / "straight"), spec))


def test_a_stop_before_the_checkpoint_is_computed_aside(tmp_path):
    def spec(episodes: int) -> RunSpec:
        settings = bsuite_memory.settings_for("smoke", models=["mlp"], episodes=episodes)
        return bsuite_memory.grid(settings)[0]

    store = RunStore(tmp_path)
    far = _run(store, spec(30))
    near = store.run_dir(spec(10).experiment, spec(10).config)
    assert near.path != near.root and not near.finished  # behind the kept checkpoint
    assert _strip(_run(store, spec(10))) == _strip(_run(RunStore(tmp_path / "alone"), spec(10)))
    assert store.run_dir(spec(30).experiment, spec(30).config).read_result() == far
    assert not (near.root / "side").exists() or not any((near.root / "side").iterdir())


def test_grid_milestones_reads_the_furthest_stop(tmp_path):
    settings = bsuite_memory.settings_for("smoke", models=["mlp"], milestones=[10, 20],
                                          episodes=20)
    specs = bsuite_memory.grid(settings)
    store = RunStore(tmp_path)
    LocalExecutor(store).run_all(specs)
    shorter = bsuite_memory.grid(dataclasses.replace(settings, episodes=10))
    records = grid_milestones(store, shorter)
    assert [[m["episodes"] >= 10 for m in r] for r in records] == [[True, True]]
    assert records[0][-1]["final_return"] is not None or records[0][-1]["episodes"] == 20


def test_migration_moves_old_runs_to_their_new_keys(tmp_path):
    spec = popgym_ppo.grid(popgym_ppo.settings_for("smoke", models=["mlp"]))[0]
    result = _run(RunStore(tmp_path / "new"), spec)
    # The same run as the store kept it before horizons were left out of keys.
    old = {k: v for k, v in result.items()
           if k not in ("milestones", "stop", "wall_time_stretches_s", "wall_time_counts")}
    config = dataclasses.asdict(spec.config)
    del config["ppo"]["milestones"]
    old_dir = tmp_path / "old" / "popgym_ppo" / full_config_hash(config)
    old_dir.mkdir(parents=True)
    (old_dir / "config.json").write_text(json.dumps(config))
    (old_dir / "result.json").write_text(json.dumps(old))

    registry = {name: e.config_class for name, e in EXPERIMENTS.items()}
    records = {name: partial(milestone_records, name) for name in EXPERIMENTS}
    moved = migrate_store(tmp_path / "old", registry, records)
    assert [(m.old_key, m.new_key) for m in moved] == [(old_dir.name, config_hash(spec.config))]
    assert migrate_store(tmp_path / "old", registry, records) == []  # once only
    run = RunStore(tmp_path / "old").run_dir(spec.experiment, spec.config)
    assert run.finished
    migrated = run.read_result()
    assert migrated["stop"] == {"ppo.total_steps": 256}
    assert migrated["milestones"][0]["mmer"] == result["mmer"]
    assert migrated["milestones"][0]["step"] == result["milestones"][-1]["step"]
    assert {k for k in old} <= set(migrated)


def _uncached(store: RunStore, specs: list[RunSpec]) -> list[RunSpec]:
    return [s for s in specs
            if not ((run := store.find(s.experiment, s.config)) and run.finished)]


COMMITTED = RunStore(REPO_ROOT / "data" / "runs")


@pytest.mark.parametrize("experiment", ["popgym_ppo", "bsuite_memory", "meta_rl_cartpole",
                                        "meta_rl_dmc"])
def test_every_committed_quick_run_is_still_cached(experiment):
    """The book's committed runs are found under their new keys, without training."""
    for notebook, overrides in EXPERIMENTS[experiment].notebooks.items():
        specs = EXPERIMENTS[experiment].grid("quick", **overrides)
        missing = _uncached(COMMITTED, specs)
        assert not missing, f"{notebook}: {len(missing)} of {len(specs)} runs not cached"


def test_every_committed_quick_offline_run_is_still_cached(monkeypatch):
    """Offline runs are keyed by their dataset's fingerprint, so this needs `make data`'s
    datasets (the repository's store); elsewhere it is skipped."""
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(REPO_ROOT / "data" / "minari"))
    settings = offline_rl.settings_for("quick")
    local = minari.list_local_datasets()
    if any(offline_rl.dataset_id(settings, env) not in local for env in settings.envs):
        pytest.skip("the quick profile's datasets are not built (make data)")
    for notebook, overrides in EXPERIMENTS["offline_rl"].notebooks.items():
        specs = EXPERIMENTS["offline_rl"].grid("quick", **overrides)
        missing = _uncached(COMMITTED, specs)
        assert not missing, f"{notebook}: {len(missing)} of {len(specs)} runs not cached"


def test_saved_rng_states_replay_the_same_draws_and_old_checkpoints_still_restore():
    import torch

    from ssmrl_lib.train.rng import restore_torch_rng_states, torch_rng_states

    torch.manual_seed(3)
    states = torch_rng_states()
    first = torch.rand(4)
    restore_torch_rng_states(states)
    assert torch.equal(torch.rand(4), first)
    restore_torch_rng_states({"torch_rng": states["torch_rng"]})  # saved before cuda_rng was
    assert torch.equal(torch.rand(4), first)
