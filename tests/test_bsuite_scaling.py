"""``benchmarks/bsuite_scaling.py`` at tiny lengths (its JSON's shape, the out-of-memory record),
its attention core's masking, and the chapter's table of its results."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import load_benchmark

from ssmrl_lib.report.bsuite_memory import scaling_table


@pytest.fixture(scope="module")
def benchmark():
    return load_benchmark("bsuite_scaling")


@pytest.fixture(scope="module")
def tiny_result(benchmark, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bsuite_scaling") / "result.json"
    threads = torch.get_num_threads()
    try:
        assert benchmark.main(["--lengths", "4", "8", "--repeats", "2", "--batch", "2",
                               "--device", "cpu", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.read_text())


def test_every_cell_has_a_time_and_a_memory_figure(tiny_result):
    cells = tiny_result["cells"]
    assert [(c["memory_length"], c["core"]) for c in cells] == [
        (4, "s5"), (4, "lstm"), (4, "attention"), (8, "s5"), (8, "lstm"), (8, "attention")]
    for cell in cells:
        assert cell["episode_steps"] == cell["memory_length"] + 1 and cell["batch"] == 2
        assert cell["status"] == "ok"
        assert cell["median_s"] > 0 and len(cell["times_s"]) == 2
        assert cell["memory_mib"] is not None and cell["memory_mib"] >= 0  # growth on the CPU
        assert cell["peak_memory"]["gpu_peak_mib"] is None
        assert cell["parameters"] > cell["core_parameters"] > 0
    assert tiny_result["lengths"] == [4, 8] and tiny_result["repeats"] == 2
    assert tiny_result["network"]["hidden"] == 256 and tiny_result["network"]["s5_block"] == \
        "authors"
    assert {"commit", "cpu", "threads", "load_average_1min"} <= set(tiny_result["machine"])
    assert tiny_result["machine"]["threads"] == 1


def test_ratios_are_of_the_medians_and_the_paper_sits_beside_them(tiny_result):
    by_key = {(c["core"], c["memory_length"]): c for c in tiny_result["cells"]}
    assert [row["memory_length"] for row in tiny_result["ratios_to_s5"]] == [4, 8]
    for row in tiny_result["ratios_to_s5"]:
        length = row["memory_length"]
        for core in ("attention", "lstm"):
            assert row[f"time_{core}_over_s5"] == pytest.approx(
                by_key[(core, length)]["median_s"] / by_key[("s5", length)]["median_s"])
    paper = tiny_result["paper"]
    assert paper["time_attention_over_s5_at_2048"] == pytest.approx(52_700 / 3_000)
    assert paper["memory_gib_at_length_4096"]["attention"] == 48.5


def test_a_core_out_of_memory_is_recorded_and_not_tried_longer(benchmark, monkeypatch):
    def measure_core(core, length, batch, repeats, device):
        if core == "attention" and length >= 8:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                               "allocate 1 bytes")
        return {"status": "ok", "median_s": 1.0, "times_s": [1.0], "memory_mib": 2.0,
                "peak_memory": {}}

    monkeypatch.setattr(benchmark, "_measure_core", measure_core)
    result = benchmark.run([4, 8, 16], list(benchmark.CORES), 1, 1, torch.device("cpu"))
    status = {(c["core"], c["memory_length"]): c["status"] for c in result["cells"]}
    assert status[("attention", 4)] == "ok"
    assert status[("attention", 8)] == status[("attention", 16)] == "out of memory"
    assert "not tried" in result["cells"][-1]["error"]
    assert status[("lstm", 16)] == "ok"
    ratios = {row["memory_length"]: row for row in result["ratios_to_s5"]}
    assert ratios[8]["time_attention_over_s5"] is None and ratios[8]["time_lstm_over_s5"] == 1.0

    table = scaling_table(result)
    row = table[(table["memory length"] == 16) & (table["model"] == "self-attention")].iloc[0]
    assert row["one pass (s)"] == "out of memory" and row["time × S5"] == "—"


def test_attention_sees_only_the_past_of_its_own_episode(benchmark):
    torch.manual_seed(0)
    core = benchmark.AttentionCore(8, 8, heads=2)
    x = torch.randn(1, 6, 8)
    reset = torch.tensor([[True, False, False, True, False, False]])
    y, _ = core(x, core.initial_state(1), reset)
    changed = x.clone()
    # Not a constant shift: the block's LayerNorm would take it out before any attention (the
    # outputs would move only by rounding, which is no evidence either way).
    nudge = torch.linspace(-1.0, 1.0, 8)
    changed[0, 0] += nudge  # the first episode's first step
    changed[0, 5] += nudge  # the second episode's last step
    y_changed, _ = core(changed, core.initial_state(1), reset)
    moved = (y - y_changed).abs().amax(dim=-1)[0] > 0
    # The first episode (steps 0-2) sees its first step; the second (3-5) neither that step
    # nor, before step 5, its own future.
    assert moved.tolist() == [True, True, True, False, False, True]


def test_the_table_puts_the_paper_on_its_lengths():
    def cell(core: str, length: int, seconds: float, mib: float) -> dict:
        return {"core": core, "memory_length": length, "status": "ok", "median_s": seconds,
                "memory_mib": mib}

    result = {
        "device": "cpu",
        "cells": [cell("s5", 2048, 2.0, 10.0), cell("attention", 2048, 30.0, 400.0),
                  cell("s5", 4096, 4.0, 20.0), cell("attention", 4096, 120.0, 1600.0)],
        "ratios_to_s5": [
            {"memory_length": 2048, "time_attention_over_s5": 15.0,
             "memory_attention_over_s5": 40.0},
            {"memory_length": 4096, "time_attention_over_s5": 30.0,
             "memory_attention_over_s5": 80.0},
        ],
    }
    table = scaling_table(result)
    assert list(table["memory length"]) == [2048, 2048, 4096, 4096]
    attention_2048, attention_4096 = table.iloc[1], table.iloc[3]
    assert attention_2048["time × S5"] == "15.00"
    assert attention_2048["paper: runtime of a run"] == "≈52,700 s (17.57 × S5)"
    assert attention_2048["paper: memory"] == "—"
    assert attention_4096["paper: memory"] == "≈48.5 GiB (15.65 × S5)"
    assert attention_4096["peak memory growth (MiB)"] == "1600.0"
    assert table.iloc[0]["time × S5"] == "1.00"  # S5 is the reference
