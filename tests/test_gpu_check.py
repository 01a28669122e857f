"""The GPU check's dry run (``benchmarks/gpu_check.py --device cpu --dry-run``): every section
runs on tiny shapes and writes its results file, so the script that a GPU call depends on
cannot rot between GPU sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_benchmark

from ssmrl_lib.device import DEVICE_VARIABLE

FILES = ("ppo_throughput", "scan_vs_rnn", "bsuite_scaling", "train_step", "inference_cost",
         "context_scaling", "full_runs", "gpu_check")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu_check")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(out / "minari"))
        patch.setenv(DEVICE_VARIABLE, "cpu")
        arguments = ["--device", "cpu", "--dry-run", "--out-dir", str(out)]
        assert load_benchmark("gpu_check").main(arguments) == 0
    return out


def _read(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}_gpu.json").read_text())


def test_every_section_writes_its_file(dry_run):
    for name in FILES:
        result = _read(dry_run, name)
        assert result["dry_run"] is True and result["device"] == "cpu"
        assert result["gpu_name"] is None
    summary = _read(dry_run, "gpu_check")
    assert {row["status"] for row in summary["sections"].values()} == {"done"}
    assert set(summary["sections"]) == set(FILES) - {"gpu_check"}


def test_sections_hold_the_issue_figures(dry_run):
    ppo = _read(dry_run, "ppo_throughput")["workloads"]["paper"]
    assert set(ppo["cores"]) == {"s5", "gru", "lstm", "mlp"}
    assert all(row["steps_per_s_wall"] > 0 for row in ppo["cores"].values())
    assert ppo["s5_over_gru_speed"]["wall"] > 0
    assert _read(dry_run, "ppo_throughput")["paper_claim"]["s5_over_gru_speed"] > 5

    bsuite = _read(dry_run, "bsuite_scaling")
    assert {cell["core"] for cell in bsuite["cells"]} == {"s5", "lstm", "attention"}
    assert all(cell["status"] == "ok" and cell["median_s"] > 0 for cell in bsuite["cells"])

    scan = _read(dry_run, "scan_vs_rnn")
    models = {(row["model"], row["mode"]) for row in scan["results"]}
    for model in ("GRU", "LSTM", "S5 layer (associative)"):
        assert {(model, "forward"), (model, "forward+backward")} <= models

    costs = _read(dry_run, "inference_cost")["results"]
    assert [(row["model"], row["mode"]) for row in costs] == [
        ("dt", "window"), ("mamba", "recurrent"), ("mamba", "window")
    ]
    # on the CPU, the resident-memory peak; the GPU figure only where a GPU ran the rollouts
    assert all(row["gpu_peak_mib"] is None and row["device"] == "cpu" for row in costs)
    assert costs[1]["scan_backend"].startswith("fused")

    runs = _read(dry_run, "full_runs")
    assert runs["dataset"] == "ssmrl/hopper/medium-v0" and runs["dataset_steps"] >= 300
    assert [run["model"] for run in runs["runs"]] == ["dt", "mamba"]
    assert all(run["steps_full"] == 100_000 and run["steps_done"] == 2 for run in runs["runs"])


def test_chapters_render_the_check_files(dry_run, monkeypatch, tmp_path):
    """The chapters' GPU cells on files of the check's own shape (a dry run's, relabelled as a
    GPU's so that ``gpu_results.load_gpu_result`` takes them), and the line they show without
    them."""
    import matplotlib.pyplot as plt

    from ssmrl_lib.report import gpu_results, mamba_vs_dt, popgym

    monkeypatch.setattr(gpu_results, "RESULTS", tmp_path)
    assert gpu_results.load_gpu_result("ppo_throughput") is None
    assert "`benchmarks/results/ppo_throughput_gpu.json` missing" in gpu_results.missing(
        ["ppo_throughput"])
    for name in FILES:
        result = {**_read(dry_run, name), "dry_run": False, "gpu_name": "Test GPU"}
        (tmp_path / f"{name}_gpu.json").write_text(json.dumps(result))
    (tmp_path / "dry_gpu.json").write_text(json.dumps(_read(dry_run, "train_step")))
    assert gpu_results.load_gpu_result("dry") is None  # a dry run's file is never shown

    costs = gpu_results.load_gpu_result("inference_cost")
    assert len(mamba_vs_dt.table3(costs["results"])) == 3
    assert "Test GPU" in gpu_results.gpu_caption(costs)
    assert gpu_results.missing(list(FILES)) == ""
    steps = gpu_results.train_step_table(gpu_results.load_gpu_result("train_step"), None)
    assert list(steps["model"])[:2] == ["Decision Transformer", "Decision Mamba (fused)"]
    assert len(gpu_results.full_runs_table(gpu_results.load_gpu_result("full_runs"))) == 2
    throughput = gpu_results.load_gpu_result("ppo_throughput")
    assert len(gpu_results.gpu_throughput_table(throughput)) == 4
    assert "Paper's (Table 3) workload" in popgym.throughput_workload_note(throughput)
    plt.close(mamba_vs_dt.plot_context_scaling(gpu_results.load_gpu_result("context_scaling")))
    plt.close(popgym.plot_scan_benchmark(gpu_results.load_gpu_result("scan_vs_rnn")))
