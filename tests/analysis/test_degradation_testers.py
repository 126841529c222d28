"""Phase degradation's testers and typed results on short literal series with a known answer."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from analysis.degradation import (
    METRICS,
    NO_PER_RUN,
    BootstrapTester,
    Comparison,
    PhaseTesters,
    SummaryOnly,
    WelchTester,
    WindowSides,
    choose_tester,
    compare,
    judged,
    with_q_values,
)

SPEC = {m.name: m for m in METRICS}
TPUT, ITL = SPEC["output_tok_s"], SPEC["itl_ms_p99"]
TESTERS = PhaseTesters(welch=WelchTester(), bootstrap=SummaryOnly(), summary=SummaryOnly())


def test_two_runs_per_side_choose_welch() -> None:
    assert choose_tester(TESTERS, 2, 2, per_request=False) is TESTERS.welch


def test_one_run_with_requests_chooses_the_bootstrap_and_without_them_the_summaries() -> None:
    testers = TESTERS._replace(bootstrap=WelchTester(level=0.9))
    assert choose_tester(testers, 1, 3, per_request=True) is testers.bootstrap
    assert choose_tester(testers, 3, 1, per_request=False) is testers.summary


def test_welch_gives_the_ratio_of_geometric_means_and_confidence_by_run_count() -> None:
    base, new = np.array([100.0, 400.0]), np.array([90.0, 360.0, 90.0, 360.0])
    est = WelchTester().estimate(TPUT, base, new)
    assert est.ratio == pytest.approx(0.9)
    assert est.ci_low < 0.9 < est.ci_high and math.isfinite(est.p_check)
    assert est.confidence == "medium"
    assert WelchTester().estimate(TPUT, np.full(5, 1.0) + np.arange(5), np.arange(5) + 2.0).confidence == "high"


def test_summary_only_gives_the_change_without_an_interval() -> None:
    est = SummaryOnly().estimate(TPUT, np.array([822.10]), np.array([805.12]))
    assert est.ratio == 805.12 / 822.10
    assert math.isnan(est.ci_low) and math.isnan(est.p) and est.confidence == "none"
    assert est.note == NO_PER_RUN and est.own_note


def test_compare_turns_an_estimate_into_percent_and_keeps_the_metric_note() -> None:
    c = compare(
        TPUT, np.array([100.0, 100.0]), np.array([110.0, 110.0]), WelchTester(), threshold_pct=3.0, note="goodput SLOs"
    )
    assert (c.baseline_value, c.value) == (pytest.approx(100.0), pytest.approx(110.0))
    assert c.change_pct == pytest.approx(10.0) and c.ci_low_pct == c.ci_high_pct == pytest.approx(10.0)
    assert c.method == "runs_welch" and c.note == "goodput SLOs"
    assert c.q_value is None and c.verdict == "inconclusive"


def test_a_summary_note_replaces_the_metric_note() -> None:
    c = compare(TPUT, np.array([100.0]), np.array([97.0]), SummaryOnly(), threshold_pct=3.0, note="goodput SLOs")
    assert c.note == NO_PER_RUN and c.ci_low_pct is None and c.p_value is None


def _comparison(
    metric=TPUT, change: float = -10.0, lo: float | None = -12.0, hi: float | None = -8.0, p: float | None = 0.001
) -> Comparison:
    return Comparison(metric, 3.0, 5, 5, "runs_welch", "high", "", 100.0, 100.0 + change, change, lo, hi, p)


@pytest.mark.parametrize(
    ("metric", "change", "lo", "hi", "q", "verdict"),
    [
        (TPUT, -10.0, -12.0, -8.0, 0.001, "degraded"),  # throughput down: harm
        (ITL, 10.0, 8.0, 12.0, 0.001, "degraded"),  # latency up: harm
        (TPUT, 10.0, 8.0, 12.0, 0.001, "improved"),
        (TPUT, -10.0, -12.0, -8.0, 0.2, "inconclusive"),  # not significant after BH
        (TPUT, -1.0, -2.0, 1.0, 0.3, "equivalent"),  # whole interval within +-3 %
        (TPUT, -1.0, -2.0, 0.5, 0.01, "equivalent"),
        (TPUT, -2.0, -4.0, -1.0, 0.001, "inconclusive"),  # significant but under the practical threshold
        (TPUT, -10.0, None, None, math.nan, "inconclusive"),  # no interval
    ],
)
def test_verdict_reads_the_interval_as_harm(metric, change, lo, hi, q, verdict) -> None:
    c = judged(_comparison(metric, change, lo, hi), q, 0.05)
    assert c.verdict == verdict
    assert c.q_value == (None if math.isnan(q) else q)


def test_q_values_are_benjamini_hochberg_over_the_tested_metrics_only() -> None:
    missing = Comparison(ITL, 5.0, 1, 0, "none", "none", "metric missing on one side")
    out = with_q_values([_comparison(p=0.01), missing, _comparison(p=0.04)], 0.05)
    # m = 2 (the missing one does not count): q = (0.01 * 2 / 1, 0.04 * 2 / 2); with m = 3 it would be (0.03, 0.06)
    assert [c.q_value for c in out] == [pytest.approx(0.02), None, pytest.approx(0.04)]
    assert out[1].verdict == "inconclusive" and out[0].verdict == "degraded"


def _one_run_sides(ttft_ms: dict[str, float], seconds: int = 60) -> WindowSides:
    """One run per phase, one request a second, every request with the same latencies."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    runs, reqs = [], []
    for k, (phase, ttft) in enumerate(ttft_ms.items()):
        start = t0 + timedelta(hours=k)
        runs.append({"run_id": phase, "phase": phase, "start": start, "end": start + timedelta(seconds=seconds)})
        reqs += [{"run_id": phase, "request_index": i, "time": start + timedelta(seconds=i), "ttft_ms": ttft,
                  "e2e_ms": ttft + 100.0, "output_tokens": 11, "error": None, "itl_ms": [10.0] * 10}
                 for i in range(seconds)]  # fmt: skip
    ns = pl.Datetime("ns", "UTC")
    runs_f = pl.DataFrame(runs).with_columns(pl.col("start", "end").cast(ns))
    req_f = pl.DataFrame(reqs, schema_overrides={"error": pl.String}).with_columns(pl.col("time").cast(ns))
    return WindowSides(req_f, None, runs_f, 10.0, None, None)


def test_bootstrap_of_constant_windows_gives_the_exact_ratio_as_its_interval() -> None:
    sides = _one_run_sides({"a": 100.0, "b": 120.0})
    tester = BootstrapTester(sides, "a", "b", np.random.default_rng(0), n_boot=50)
    est = tester.estimate(SPEC["ttft_ms_p50"], np.array([100.0]), np.array([120.0]))
    assert est.ratio == pytest.approx(1.2)
    assert est.ci_low == pytest.approx(1.2) and est.ci_high == pytest.approx(1.2)
    assert est.p == 0.0 and est.confidence == "low" and "block bootstrap over 10 s windows" in est.note


def test_bootstrap_with_too_few_replicates_gives_no_interval() -> None:
    sides = _one_run_sides({"a": 100.0, "b": 120.0})
    est = BootstrapTester(sides, "a", "b", np.random.default_rng(0), n_boot=10).estimate(
        SPEC["ttft_ms_p50"], np.array([100.0]), np.array([120.0])
    )
    assert est.ratio == pytest.approx(1.2) and math.isnan(est.ci_low) and math.isnan(est.p)


def test_bootstrap_is_reproducible_per_seed() -> None:
    def log_ratios(seed: int) -> np.ndarray:
        sides = _one_run_sides({"a": 100.0, "b": 120.0}, seconds=45)
        return BootstrapTester(sides, "a", "b", np.random.default_rng(seed), n_boot=30).log_ratios("output_tok_s")

    assert np.array_equal(log_ratios(1), log_ratios(1))
