"""The one verdict rule on synthetic learning curves, the milestone adapter, the aggregate over
tasks, the Claims page's rows and the facts it computes from the code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ssmrl_lib.evaluate import code_checks
from ssmrl_lib.report import aggregate, claims, milestones, verdicts
from ssmrl_lib.report.verdicts import Milestone, judge_relation, judge_value

SEEDS = 5


def _curve(means: list[float], spread: float = 1.0, seeds: int = SEEDS, seed: int = 0
           ) -> list[Milestone]:
    """Milestones at 10k, 20k, ...: per-seed values scattered by ``spread`` around ``means``,
    each seed keeping its offset from milestone to milestone."""
    offsets = spread * np.random.default_rng(seed).standard_normal(seeds)
    return [Milestone(10_000 * (i + 1), tuple(m + offsets)) for i, m in enumerate(means)]


def test_flat_curve_is_decided_at_a_partial_budget():
    flat = _curve([40.0, 60.0, 67.0, 67.2])
    assert verdicts.has_flattened(flat)
    verdict = judge_value(flat, 66.6, 68.6, budget_fraction=0.2)
    assert verdict.decided and verdict.reproduced and str(verdict) == "reproduced"
    below = judge_value(flat, 80.0, 82.0, budget_fraction=0.2)
    assert below.decided and not below.reproduced
    assert str(below) == "not reproduced (below the paper)"


def test_rising_curve_is_inconclusive_with_the_budget_reached():
    rising = _curve([20.0, 40.0, 60.0])
    assert not verdicts.has_flattened(rising)
    verdict = judge_value(rising, 66.6, 68.6, budget_fraction=0.2)
    assert not verdict.decided
    assert str(verdict) == "inconclusive at 20 % of the paper's budget"
    # At the paper's budget the last milestone decides, flat or not.
    assert judge_value(rising, 66.6, 68.6, budget_fraction=1.0).decided


def test_a_single_milestone_cannot_show_a_flat_curve():
    one = _curve([67.0])
    assert str(judge_value(one, 66.6, 68.6, 0.004)) == "inconclusive at 0.4 % of the paper's budget"


def test_a_single_seed_gives_no_interval_and_decides_nothing():
    single = _curve([67.0, 67.0], seeds=1)
    assert verdicts.mean_interval(single[-1].values) is None
    assert str(judge_value(single, 66.6, 68.6, 1.0)) == "no interval: 1 seed"
    assert verdicts.summary_text(single[-1]).endswith("(1 seed)")
    assert "[" not in verdicts.summary_text(single[-1])
    assert str(judge_relation(single, _curve([60.0, 60.0]), "beats", 1.0)) == (
        "no interval: 1 seed")
    assert str(judge_value([], 0.0, 1.0, 1.0)) == "not run"


def test_intervals_are_scipys_t_intervals():
    values = [1.0, 2.0, 4.0]
    low, high = verdicts.mean_interval(values)
    expected = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(expected)
    welch = stats.ttest_ind([5.0, 6.0, 7.0], values, equal_var=False).confidence_interval()
    assert verdicts.difference_interval([5.0, 6.0, 7.0], values) == pytest.approx(
        (welch.low, welch.high))


def test_relations_are_judged_by_the_interval_on_the_difference():
    s5, gru = _curve([0.9, 0.9], spread=0.01), _curve([0.2, 0.2], spread=0.01, seed=1)
    assert str(judge_relation(s5, gru, "beats", 0.5)) == "reproduced"
    reverse = judge_relation(gru, s5, "beats", 0.5)
    assert reverse.decided and not reverse.reproduced
    close = _curve([0.9, 0.9], spread=0.3, seed=2)
    assert str(judge_relation(close, s5, "beats", 0.5)).startswith("undecided")
    # "Similar": the whole interval must lie within the margin; far apart is decided the other
    # way, and a wide interval across the margin stays undecided.
    dt, mamba = _curve([50.0, 50.0], 0.5), _curve([50.5, 50.5], 0.5, seed=3)
    assert str(judge_relation(mamba, dt, "similar", 0.5, margin=5.0)) == "reproduced"
    far = _curve([70.0, 70.0], 0.5, seed=4)
    assert not judge_relation(far, dt, "similar", 0.5, margin=5.0).reproduced
    noisy = _curve([53.0, 53.0], 8.0, seed=5)
    assert str(judge_relation(noisy, dt, "similar", 0.5, margin=5.0)).startswith("undecided")
    # Rising curves keep a relation inconclusive too.
    rising = judge_relation(_curve([0.1, 0.5], 0.01), gru, "beats", 0.1)
    assert str(rising).startswith("inconclusive")
    with pytest.raises(ValueError, match="beats"):
        judge_relation(s5, gru, "better", 0.5)


def test_adapter_reads_milestones_and_falls_back_to_the_final_evaluation():
    today = {"config": {"train": {"steps": 400}}, "evaluations": [{"score_mean": 40.0}]}
    assert [(m["step"], m["evaluations"]) for m in milestones.milestones(today)] == [
        (400, [{"score_mean": 40.0}])]
    later = {**today, "milestones": [
        {"step": 20_000, "evaluations": [{"score_mean": 60.0}]},
        {"step": 10_000, "evaluations": [{"score_mean": 50.0}]},
    ]}
    assert [m["step"] for m in milestones.milestones(later)] == [10_000, 20_000]
    # A milestone never inherits the final evaluation's numbers, only the run's records.
    partial = {**today, "mmer": 0.9, "milestones": [{"step": 100}]}
    assert milestones.milestones(partial) == [{"config": today["config"], "step": 100}]
    # A curve keeps the milestones every seed reached.
    short = {**today, "milestones": later["milestones"][1:]}
    points = milestones.curve([later, short], lambda m: m["evaluations"][0]["score_mean"])
    assert points == [Milestone(10_000, (50.0, 50.0))]


def _scores(means: dict[str, float], tasks: int = 4, seeds: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([
        {"model": model, "task": f"t{t}", "seed": s, "score": mean + 0.05 * rng.standard_normal()}
        for model, mean in means.items() for t in range(tasks) for s in range(seeds)
    ])


def test_aggregate_iqm_and_profile_with_stratified_intervals():
    frame = _scores({"s5": 0.8, "gru": 0.3})
    taus = np.linspace(0, 1, 11)
    results = {a.model: a for a in aggregate.aggregate(frame, taus)}
    s5 = results["s5"]
    scores = frame[frame["model"] == "s5"]["score"].to_numpy()
    assert s5.iqm == pytest.approx(stats.trim_mean(scores, 0.25))
    assert s5.iqm_interval[0] <= s5.iqm <= s5.iqm_interval[1]
    assert s5.seeds_text == "3 seeds × 4 tasks"
    assert s5.profile[0] == 1.0 and s5.profile[-1] == 0.0
    assert np.all(s5.profile_low <= s5.profile) and np.all(s5.profile <= s5.profile_high)
    assert results["gru"].iqm < s5.iqm
    again = {a.model: a for a in aggregate.aggregate(frame, taus)}
    assert again["s5"].iqm_interval == s5.iqm_interval  # seeded
    table = aggregate.aggregate_table(list(results.values()))
    assert list(table["runs"]) == ["3 seeds × 4 tasks"] * 2


def test_aggregate_shows_no_interval_for_a_single_seed():
    single = aggregate.aggregate(_scores({"s5": 0.8}, seeds=1), np.linspace(0, 1, 5))[0]
    assert single.iqm_interval is None and single.profile_low is None
    assert "single seed" in aggregate.caption([single])
    assert aggregate.aggregate_table([single])["95 % CI (stratified bootstrap)"][0] == (
        "none: a single seed")
    aggregate.plot_aggregate([single], "score")


def _offline_result(env: str, model: str, seed: int, score: float, steps: int) -> dict:
    modes = ("window",) if model == "dt" else ("recurrent", "window")
    return {
        "config": {"env": env, "model_name": model, "seed": seed,
                   "dataset": f"ssmrl/{env}/medium-v0", "train": {"steps": steps}},
        "evaluations": [{"target": 3600.0, "mode": mode, "score_mean": score} for mode in modes],
        "loss_curve": {"step": list(range(1, steps + 1)), "loss": [0.05] * steps},
    }


def test_claims_cover_the_papers_and_use_the_rule():
    runs = {"offline_rl": [
        _offline_result("hopper", model, seed, score + seed, 400)
        for model, score in (("dt", 40.0), ("mamba", 30.0)) for seed in range(3)
    ]}
    rows = claims.all_claims(runs, {}, scan_error=1e-12)
    by_claim = {c.claim: c for c in rows}
    hopper = by_claim["DT, hopper-medium: normalized score"]
    assert hopper.budget == "0.4 %" and hopper.ours == "41.0 [38.5, 43.5] (3 seeds)"
    assert str(hopper.verdict) == "inconclusive at 0.4 % of the paper's budget"
    assert str(by_claim["DT, hopper-medium-replay: normalized score"].verdict) == "not run"
    assert any(c.claim.startswith("Table 5: S5 (⊕ resets) MMER on RepeatPreviousHard")
               for c in rows)
    headline = claims.headline(rows)
    assert headline["claims"] == len(rows)
    assert headline["decided"] == headline["reproduced"] + headline["not_reproduced"]
    assert headline["reproduced"] == 1  # the scan check
    markdown = claims.claims_markdown(rows)
    assert "[Decision Transformer](01_dt_replication.ipynb)" in markdown
    peers = claims.peers_table(runs)
    assert list(peers["dataset"]) == ["hopper-medium"]
    assert peers["cited: Decision Mamba (Lv et al. 2024)"][0] == "98.5 ± 8.19"


def _bsuite_result(model: str, seed: int, final_return: float) -> dict:
    """A run at its first milestone, 1,000 episodes, which took 33,024 environment steps."""
    milestone = {"step": 33_024, "episodes": 1_000, "final_return": final_return}
    return {"config": {"model": model, "seed": seed, "memory_length": 16, "episodes": 1_000},
            "milestones": [milestone], "final_return": final_return}


def test_bsuite_budgets_count_episodes_not_environment_steps():
    runs = {"bsuite_memory": [_bsuite_result(model, seed, value + 0.01 * seed)
                              for model, value in (("s5", 0.95), ("lstm", 0.1))
                              for seed in range(2)]}
    by_claim = {c.claim: c for c in claims.bsuite_claims(runs)}
    for claim in ("bsuite, length 16: S5's return",
                  "bsuite, length 16: the LSTM has degraded (S5 beats it)"):
        assert by_claim[claim].budget == "10 %"  # of the paper's 10,000 episodes
        assert str(by_claim[claim].verdict) == "inconclusive at 10 % of the paper's budget"


def test_bsuite_scaling_claims_judge_which_core_is_faster_or_smaller_from_the_benchmark():
    def cell(core: str, length: int, seconds: float, mib: float) -> dict:
        return {"core": core, "memory_length": length, "status": "ok", "median_s": seconds,
                "memory_mib": mib}

    benchmark = {"machine": {"gpu": None}, "cells": [
        cell("s5", 2048, 0.1, 50.0), cell("lstm", 2048, 0.15, 40.0),
        cell("attention", 2048, 1.2, 400.0), cell("s5", 4096, 0.2, 100.0),
        cell("lstm", 4096, 0.3, 80.0),
        {"core": "attention", "memory_length": 4096, "status": "out of memory"},
    ]}
    by_claim = {c.claim: c for c in claims.bsuite_claims({}, {"bsuite_scaling_cpu": benchmark})}
    faster = by_claim["bsuite, length 2048: S5 trains faster than self-attention"]
    assert faster.verdict.reproduced and "= 12.00" in faster.ours and "17.6×" in faster.paper
    assert by_claim["bsuite, length 2048: S5 trains faster than the LSTM"].verdict.reproduced
    lstm_smaller = by_claim["bsuite, length 4096: the LSTM needs less memory than S5"]
    assert lstm_smaller.verdict.reproduced and "= 1.25" in lstm_smaller.ours
    # an out-of-memory cell gives no figure to judge by
    assert str(by_claim["bsuite, length 4096: S5 needs less memory than self-attention"]
               .verdict) == "not measured"
    unrecorded = {c.claim: str(c.verdict) for c in claims.bsuite_claims({})}
    scaling = [f"bsuite, length {length}: {relation}"
               for relation, _measure, length, *_cores in claims.BSUITE_SCALING_RELATIONS]
    assert [unrecorded[claim] for claim in scaling] == ["not measured"] * 4


def test_ratio_claims_need_to_clear_the_timing_noise():
    assert claims.judge_ratio(1.5, 1.0).reproduced
    assert not claims.judge_ratio(0.5, 1.0).reproduced
    assert not claims.judge_ratio(1.02, 1.0).decided
    assert claims.judge_ratio(5.8, 6.0).reproduced  # within 5 % of the claimed factor
    assert not claims.judge_ratio(1.75, 6.0).reproduced


def test_code_facts_for_the_caveats():
    assert code_checks.resettable_scan_error() < 1e-9
    from ssmrl_lib.models.decision_transformer import SequenceModelConfig

    facts = code_checks.dt_idle_parameters(SequenceModelConfig(state_dim=11, act_dim=3))
    assert facts.position_table == 1024 * 128 == 131_072
    assert facts.position_rows_read == 1  # DT passes position ids 0
    assert (facts.state_head, facts.return_head) == (11 * 128 + 11, 128 + 1)
    assert not facts.heads_get_gradients
    assert facts.idle == 1023 * 128 + facts.state_head + facts.return_head
