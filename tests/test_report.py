"""Verdicts and the DT score table."""

import pandas as pd

from ssmrl_lib.report.tables import dataset_quality, dt_score_table, verdict


def test_dataset_quality_is_read_from_the_id():
    assert dataset_quality("ssmrl/hopper/medium-v0") == "medium"
    assert dataset_quality("mujoco/walker2d/medium-replay-v0") == "medium-replay"
    assert dataset_quality("ssmrl/hopper/smoke-random-v0") == "smoke-random"


def test_verdict_compares_our_interval_with_the_paper_band():
    paper = (67.6, 1.0)
    assert verdict((66.0, 70.0), paper, same_data=True) == "reproduced"
    assert verdict((50.0, 60.0), paper, same_data=True) == "below paper"
    assert verdict((70.0, 75.0), paper, same_data=True) == "above paper"
    assert verdict((66.0, 70.0), paper, same_data=False) == "not comparable: other data"
    assert verdict((66.0, 70.0), None, same_data=True) == "no paper number"


def test_score_table_puts_paper_numbers_beside_ours():
    frame = pd.DataFrame({
        "model": ["dt"] * 2,
        "env": ["hopper"] * 2,
        "dataset": ["ssmrl/hopper/medium-v0"] * 2,
        "seed": [0, 1],
        "target": [3600.0] * 2,
        "score_mean": [66.0, 69.0],
    })
    row = dt_score_table(frame).iloc[0]
    assert row["paper: DT"] == "67.6 ± 1.0"
    assert row["paper: CORL last / best"] == "65.1 / 69.4"
    assert row["ours (seeds)"] == "67.5 ± 1.5 (2)"
    assert row["verdict"] == "reproduced"
