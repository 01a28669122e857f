"""The GPU check's dry run (``benchmarks/gpu_check.py --device cpu --dry-run``): every section
runs on tiny shapes and writes its results file, so the script that a GPU call depends on
cannot rot between GPU sessions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ssmrl_lib.device import DEVICE_VARIABLE

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
FILES = ("ppo_throughput", "scan_vs_rnn", "train_step", "inference_cost", "context_scaling",
         "full_runs", "gpu_check")


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu_check")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(out / "minari"))
        patch.setenv(DEVICE_VARIABLE, "cpu")
        assert _load_script().main(["--device", "cpu", "--dry-run", "--out-dir", str(out)]) == 0
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
    ppo = _read(dry_run, "ppo_throughput")
    assert set(ppo["results"]) == {"s5", "gru", "lstm", "mlp"}
    assert all(row["steps_per_s"] > 0 for row in ppo["results"].values())
    assert ppo["s5_over_gru_speed"] > 0 and ppo["paper"]["s5_over_gru_speed"] > 5

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
