"""Report helpers: the DT score table, parameter counts, provenance records."""

import pandas as pd

from ssmrl_lib.report.tables import (
    absent_envs_markdown,
    dataset_quality,
    dt_score_table,
)


def test_dataset_quality_is_read_from_the_id():
    assert dataset_quality("ssmrl/hopper/medium-v0") == "medium"
    assert dataset_quality("mujoco/walker2d/medium-replay-v0") == "medium-replay"
    assert dataset_quality("ssmrl/hopper/smoke-random-v0") == "smoke-random"


def test_score_table_puts_paper_numbers_beside_ours():
    frame = pd.DataFrame({
        "model": ["dt"] * 2,
        "env": ["hopper"] * 2,
        "dataset": ["ssmrl/hopper/medium-v0"] * 2,
        "seed": [0, 1],
        "train_steps": [100_000] * 2,
        "target": [3600.0] * 2,
        "score_mean": [66.0, 69.0],
    })
    row = dt_score_table(frame).iloc[0]
    assert row["paper: DT"] == "67.6 ± 1.0"
    assert row["paper: CORL last / best"] == "65.1 / 69.4"
    assert row["ours (seeds)"] == "67.5 ± 1.5 (2)"
    assert row["ours 95% CI"] == "[48.4, 86.6]"  # t interval, 1 degree of freedom


def test_parameter_counts_grow_by_the_timestep_table_only():
    from ssmrl_lib.evaluate.code_checks import parameter_counts
    from ssmrl_lib.models.decision_transformer import SequenceModelConfig

    small = parameter_counts(SequenceModelConfig(state_dim=11, act_dim=3, max_ep_len=1000))
    large = parameter_counts(SequenceModelConfig(state_dim=11, act_dim=3, max_ep_len=4096))
    for model in ("dt", "mamba"):
        assert large[model] - small[model] == 3096 * 128  # one 128-wide row per extra timestep
    assert small["mamba"] < small["dt"]


def test_benchmark_record_names_commit_and_machine():
    from ssmrl_lib.provenance import benchmark_record
    from ssmrl_lib.report.provenance import benchmark_caption

    record = benchmark_record()
    assert record["logical_cpus"] >= 1 and record["threads"] >= 1
    caption = benchmark_caption(record)
    assert record["commit"] in caption and record["cpu"] in caption


def test_finite_or_none_keeps_json_free_of_nan():
    import json

    from ssmrl_lib.runs import finite_or_none

    values = finite_or_none([1.0, float("nan"), float("inf"), 2])
    assert values == [1.0, None, None, 2.0]
    json.dumps(values, allow_nan=False)


def test_library_versions_include_extra_packages():
    from ssmrl_lib.provenance import library_versions

    versions = library_versions("popgym", "no-such-package-xyz")
    assert versions["popgym"] != "not installed"
    assert versions["no-such-package-xyz"] == "not installed"


def test_absent_environments_say_why(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("SSMRL_POLICIES_DIR", str(tmp_path / "policies"))
    text = absent_envs_markdown(("hopper",), "ssmrl/{env}/medium-v0")
    lines = text.splitlines()
    assert [line.split("**")[1] for line in lines] == ["halfcheetah", "walker2d"]
    assert "`ssmrl/walker2d/medium-v0` is not built: no evaluated behavior policy" in lines[1]
    assert absent_envs_markdown(("hopper", "halfcheetah", "walker2d"), "x/{env}/y-v0") == ""


def test_the_datasets_chapter_shows_only_trainings_that_are_not_the_policy_in_place(
        tmp_path, monkeypatch):
    from ssmrl_lib.report.datasets import trainings_apart

    monkeypatch.setenv("SSMRL_POLICIES_DIR", str(tmp_path / "policies"))
    training = tmp_path / "training"
    logs = {("policies", "hopper"): "step\n10000\n", ("training", "hopper"): "step\n5000\n",
            ("policies", "halfcheetah"): "step\n5000\n",
            ("training", "halfcheetah"): "step\n5000\n",  # swapped in whole
            ("policies", "walker2d"): "step\n5000\n"}  # no training of its own
    for (where, env), text in logs.items():
        (tmp_path / where / env).mkdir(parents=True)
        (tmp_path / where / env / "evaluations.csv").write_text(text)
    assert trainings_apart(["hopper", "halfcheetah", "walker2d"], training) == ["hopper"]
    # a swapped-in training whose committed state (and log) is older than the policy in place
    (tmp_path / "policies" / "halfcheetah" / "evaluations.csv").write_text("step\n5000\n7500\n")
    assert trainings_apart(["hopper", "halfcheetah", "walker2d"], training) == ["hopper"]
    # trained on towards expert after its swap: apart again
    (training / "halfcheetah" / "evaluations.csv").write_text("step\n5000\n10000\n")
    assert trainings_apart(["hopper", "halfcheetah", "walker2d"], training) == [
        "hopper", "halfcheetah"]


def test_settings_table_lists_only_the_differences_as_written_in_a_config():
    from dataclasses import dataclass

    from ssmrl_lib.report.tables import settings_table

    @dataclass
    class Settings:
        steps: int
        learning_rate: float
        seeds: int

    table = settings_table(Settings(400, 0.002, 3), Settings(100_000, 5e-05, 3))
    assert table["setting"].tolist() == ["steps", "learning_rate"]
    assert table["this run"].tolist() == ["400", "0.002"]
    assert table["paper scale (full)"].tolist() == ["100000", "5e-05"]


def test_throughput_table_reads_the_recorded_benchmark():
    """The POPGym chapter's throughput table, from the committed benchmark result."""
    import json

    from ssmrl_lib.paths import REPO_ROOT
    from ssmrl_lib.report.popgym import throughput_table, throughput_workload_note

    path = REPO_ROOT / "benchmarks" / "results" / "ppo_throughput_cpu.json"
    benchmark = json.loads(path.read_text())
    table = throughput_table(benchmark)
    workloads = benchmark["workloads"]
    assert len(table) == sum(len(w["cores"]) for w in workloads.values())
    paper_s5 = table[
        (table["workload"] == "paper's (Table 3)") & (table["model"] == "S5 (⊕ resets)")
    ]
    ratio = workloads["paper"]["s5_over_gru_speed"]["cpu"]
    assert paper_s5["speed / GRU (CPU time)"].item() == f"{ratio:.2f}×"
    assert paper_s5["paper: speed / GRU (A40 GPU)"].item() == "≈6.7×"
    note = throughput_workload_note(benchmark)
    assert "64 environments × 1024 steps, 30 epochs of 8 minibatches" in note


def _result(**fields):
    base = {"hardware": "test CPU", "commit": "abc1234567", "versions": {"torch": "2.13.0"}}
    return {**base, **fields}


def test_one_provenance_box_for_offline_and_online_chapters():
    from ssmrl_lib.report.provenance import provenance_markdown

    offline = provenance_markdown(
        "quick", [_result(wall_time_s=60.0, scan_backend="chunked"), _result(wall_time_s=120.0)],
        ["ssmrl/hopper/medium-v0"], 30.0)
    assert "- **datasets**: `ssmrl/hopper/medium-v0`" in offline
    assert "- **runs**: 2, total run wall time 3.0 min (this execution of the notebook: 0.5 min;" \
        in offline
    assert "- **device**: cpu; Decision Mamba's scan: chunked" in offline
    online = provenance_markdown(
        "smoke", [_result(train_time_s=90.0, wall_time_s=95.0, device="cuda")],
        ["MemoryChain(L=4)"], 6.0, source="bsuite")
    assert "- **environments**: `MemoryChain(L=4)` (bsuite)" in online
    assert "- **runs**: 1, total training time 1.5 min" in online
    assert "- **device**: cuda\n" in online
    for box in (offline, online):
        lines = box.splitlines()
        assert lines[0] == "```{admonition} Provenance" and lines[-1] == "```"
        assert "- **code commit**: runs `abc1234567`; notebook executed at `" in box


def test_both_offline_chapters_read_one_frame_of_the_runs():
    from ssmrl_lib.report.mamba_vs_dt import table2
    from ssmrl_lib.report.tables import offline_frame

    def run(model, seed, mode, score):
        return {
            "config": {"model_name": model, "env": "hopper", "dataset": "ssmrl/hopper/medium-v0",
                       "seed": seed, "train": {"steps": 400}},
            "evaluations": [{"mode": mode, "target": 3600.0, "returns": [10.0, 20.0],
                             "return_mean": 15.0, "score_mean": score}],
            "final_loss": 0.1, "parameters": 1000, "wall_time_s": 5.0,
        }

    frame = offline_frame([run("dt", 0, "window", 40.0), run("mamba", 0, "recurrent", 30.0),
                           run("mamba", 1, "recurrent", 34.0)])
    assert frame["label"].tolist() == ["dt", "mamba (recurrent)", "mamba (recurrent)"]
    rows = table2(frame)
    assert rows["model"].tolist() == ["dt", "mamba (recurrent)"]
    assert rows["episodes"].tolist() == [2, 4]
    assert rows.iloc[1]["ours: normalized score [95% CI]"].startswith("32.0 [")
    assert dt_score_table(frame).iloc[0]["ours (seeds)"] == "40.0 ± 0.0 (1)"
