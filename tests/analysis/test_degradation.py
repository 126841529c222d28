"""Phase degradation: seed 000's exact numbers, honest intervals, verdicts, the A/A false-alarm rate."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.analyze import analyze_bench_files, parse_blocks
from analysis.degradation import NO_PER_RUN, RUNS_SCHEMA, Thresholds, phase_degradation
from tests.analysis.simdata import sim_frames

SEED000 = Path(__file__).parents[1] / "fixtures" / "bench" / "vllm" / "seed000_inferencex_sglang_mi300x_blog.txt"
BLOCKS = parse_blocks("baseline/hive0,dual/hive0,dual/hive1,stress/hive0,stress/hive1")


def _row(table: pl.DataFrame, group: str, phase: str, metric: str) -> dict:
    rows = table.filter((pl.col("group") == group) & (pl.col("phase") == phase) & (pl.col("metric") == metric))
    assert rows.height == 1, (group, phase, metric, rows)
    return rows.row(0, named=True)


@pytest.fixture(scope="module")
def seed000() -> pl.DataFrame:
    return analyze_bench_files([SEED000], BLOCKS).phases


def test_seed000_hive0_throughput_is_exactly_the_blog_numbers(seed000: pl.DataFrame) -> None:
    dual = _row(seed000, "hive0", "dual", "output_tok_s")
    stress = _row(seed000, "hive0", "stress", "output_tok_s")
    assert dual["baseline_value"] == 822.10 and dual["value"] == 813.02
    assert stress["value"] == 805.12
    assert round(dual["change_pct"], 2) == -1.10
    assert round(stress["change_pct"], 2) == -2.07


def test_seed000_hive0_p99_itl_is_exactly_the_blog_numbers(seed000: pl.DataFrame) -> None:
    dual = _row(seed000, "hive0", "dual", "itl_ms_p99")
    stress = _row(seed000, "hive0", "stress", "itl_ms_p99")
    assert (dual["baseline_value"], dual["value"], stress["value"]) == (411.67, 416.67, 437.30)
    assert round(stress["change_pct"], 2) == 6.23
    assert round(dual["change_pct"], 2) == 1.21


def test_seed000_hive1_compares_stress_with_its_dual_baseline(seed000: pl.DataFrame) -> None:
    tput = _row(seed000, "hive1", "stress", "output_tok_s")
    itl = _row(seed000, "hive1", "stress", "itl_ms_p99")
    assert tput["baseline_phase"] == "dual"
    assert (tput["baseline_value"], tput["value"]) == (804.64, 789.46)
    assert round(tput["change_pct"], 2) == round(100 * (789.46 / 804.64 - 1), 2) == -1.89
    assert round(itl["change_pct"], 2) == round(100 * (478.71 / 420.28 - 1), 2)


def test_summary_only_reports_no_interval_and_says_so(seed000: pl.DataFrame) -> None:
    assert set(seed000["method"]) == {"summary_only"}
    assert seed000["ci_low_pct"].null_count() == seed000.height
    assert seed000["q_value"].null_count() == seed000.height
    assert set(seed000["verdict"]) == {"inconclusive"}
    assert set(seed000["note"]) == {NO_PER_RUN}


def test_prefill_and_decode_sides_are_reported_separately(seed000: pl.DataFrame) -> None:
    sides = dict(zip(seed000["metric"], seed000["side"], strict=False))
    assert sides["ttft_ms_p99"] == "prefill"
    assert sides["itl_ms_p99"] == sides["tpot_ms_p99"] == "decode"
    assert sides["output_tok_s"] == "throughput"


def test_victim_filter_keeps_only_its_group() -> None:
    res = analyze_bench_files([SEED000], BLOCKS, victim="hive0")
    assert set(res.phases["group"]) == {"hive0"}
    assert res.phases["phase"].unique(maintain_order=True).to_list() == ["dual", "stress"]


def _runs(values: dict[str, list[float]], metric: str = "output_tok_s") -> pl.DataFrame:
    rows = []
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for phase, vals in values.items():
        for i, v in enumerate(vals):
            start = t0 + timedelta(hours=len(rows))
            rows.append(
                {
                    "run_id": f"{phase}{i}",
                    "group": "g",
                    "phase": phase,
                    "node": "n",
                    "start": start,
                    "end": start + timedelta(minutes=10),
                    "timing": "summary_only",
                    metric: v,
                }
            )
    return (
        pl.DataFrame(rows)
        .with_columns(
            [
                pl.lit(None, dtype=dt).alias(c)
                for c, dt in RUNS_SCHEMA.items()
                if c not in ("run_id", "group", "phase", "node", "start", "end", "timing", metric)
            ]
        )
        .with_columns(pl.col("start").cast(pl.Datetime("ns", "UTC")), pl.col("end").cast(pl.Datetime("ns", "UTC")))
    )


def test_repeated_runs_give_a_welch_interval_on_the_log_ratio() -> None:
    rng = np.random.default_rng(1)
    base = list(1000 * np.exp(rng.normal(0, 0.01, 6)))
    slow = list(900 * np.exp(rng.normal(0, 0.01, 6)))
    row = phase_degradation(_runs({"a": base, "b": slow})).row(0, named=True)
    assert row["method"] == "runs_welch" and row["confidence"] == "high"
    ratio = math.exp(np.mean(np.log(slow)) - np.mean(np.log(base)))
    assert row["change_pct"] == pytest.approx(100 * (ratio - 1))
    assert row["ci_low_pct"] < row["change_pct"] < row["ci_high_pct"]
    assert row["p_check"] is not None  # Mann-Whitney beside Welch
    assert row["verdict"] == "degraded"


def test_small_differences_with_tight_runs_are_equivalent() -> None:
    rng = np.random.default_rng(2)
    base = list(1000 * np.exp(rng.normal(0, 0.003, 5)))
    same = list(1001 * np.exp(rng.normal(0, 0.003, 5)))
    assert phase_degradation(_runs({"a": base, "b": same}))["verdict"][0] == "equivalent"


def test_two_runs_per_side_are_medium_confidence_and_noisy_ones_inconclusive() -> None:
    row = phase_degradation(_runs({"a": [1000.0, 1100.0], "b": [900.0, 1050.0]})).row(0, named=True)
    assert row["confidence"] == "medium"
    assert row["verdict"] == "inconclusive"


def test_lower_is_better_metrics_degrade_upward() -> None:
    rows = phase_degradation(
        _runs({"a": [400.0, 402, 398, 401, 399], "b": [460.0, 462, 458, 461, 459]}, metric="itl_ms_p99")
    )
    row = rows.row(0, named=True)
    assert row["metric"] == "itl_ms_p99" and row["verdict"] == "degraded" and row["change_pct"] > 0


def test_q_values_are_benjamini_hochberg_across_metrics() -> None:
    f = sim_frames("pcie_antagonist", 3, phase_s=150, num_prompts=0, telemetry=False)
    tab = phase_degradation(f.runs, f.requests, f.tokens, thresholds=Thresholds(n_boot=300))
    p = tab["p_value"].to_numpy()
    from scipy.stats import false_discovery_control

    assert np.allclose(tab["q_value"].to_numpy(), false_discovery_control(p, method="bh"))


def test_one_run_per_phase_with_requests_uses_a_low_confidence_window_bootstrap() -> None:
    f = sim_frames("pcie_antagonist", 1, phase_s=150, num_prompts=0, telemetry=False)
    tab = phase_degradation(f.runs, f.requests, f.tokens, thresholds=Thresholds(n_boot=300))
    row = _row(tab, "hive0", "stress", "itl_ms_p99")
    assert row["method"] == "window_bootstrap" and row["confidence"] == "low"
    assert row["ci_low_pct"] < row["change_pct"] < row["ci_high_pct"]
    assert row["verdict"] == "degraded"  # the simulated PCIe antagonist adds ~+20 % p99 ITL
    assert _row(tab, "hive0", "stress", "goodput_pct")["note"].startswith("goodput SLOs")


AA_SEEDS = 200


@pytest.mark.slow
def test_aa_false_alarm_rate_is_at_most_five_percent_over_200_seeds() -> None:
    """Two baseline phases of the same configuration: any 'degraded' verdict is a false alarm."""
    flagged = []
    for seed in range(AA_SEEDS):
        f = sim_frames("aa", seed, phase_s=90, num_prompts=0, telemetry=False)
        tab = phase_degradation(f.runs, f.requests, f.tokens, thresholds=Thresholds(n_boot=200, seed=seed))
        if (tab["verdict"] == "degraded").any():
            flagged.append(seed)
    assert len(flagged) / AA_SEEDS <= 0.05, flagged
