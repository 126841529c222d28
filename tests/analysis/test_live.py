"""Live analysis (`analysis.live`): the victim window table from serving rows, on literal rows with a known answer,
then attribution on simulated serving rows (`tests.analysis.alerts.serving_sim`, a test double for an engine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analysis.live import (
    WINDOW_COLUMNS,
    choose_live_window_s,
    describe_groups,
    live_attribution,
    live_windows,
    serving_groups,
)
from tests.analysis.alerts.serving_sim import scenario

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _rows(*rows: dict) -> pl.DataFrame:
    base = {"node": "n1", "group": "hive0", "engine": "vllm", "model": "m", "interval_s": 5.0, "up": True,
            "counter_reset": False}  # fmt: skip
    return pl.DataFrame([{**base, **r} for r in rows]).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))


def test_window_quantiles_are_count_weighted_over_scrape_intervals() -> None:
    f = _rows(
        {"time": T0 + timedelta(seconds=5), "itl_ms_p99": 10.0, "itl_ms_p50": 4.0, "itl_count": 100},
        {"time": T0 + timedelta(seconds=10), "itl_ms_p99": 20.0, "itl_ms_p50": 8.0, "itl_count": 300},
    )
    (w,) = live_windows(f, 10, group="hive0").iter_rows(named=True)
    assert w["itl_n"] == 400
    assert w["itl_ms_p99"] == pytest.approx((100 * 10 + 300 * 20) / 400)
    assert w["itl_ms_p50"] == pytest.approx((100 * 4 + 300 * 8) / 400)
    assert w["window_start"] == T0 and w["covered_s"] == 10.0


def test_a_quantile_on_too_few_observations_is_null_not_zero() -> None:
    f = _rows(
        {"time": T0 + timedelta(seconds=5), "ttft_ms_p99": 300.0, "ttft_ms_p50": 100.0, "ttft_count": 40},
        {"time": T0 + timedelta(seconds=10), "ttft_ms_p99": 200.0, "ttft_ms_p50": 90.0, "ttft_count": 40},
        {"time": T0 + timedelta(seconds=15), "ttft_ms_p99": 200.0, "ttft_ms_p50": 90.0, "ttft_count": 4},
        {"time": T0 + timedelta(seconds=20), "ttft_ms_p99": None, "ttft_ms_p50": None, "ttft_count": 0},
    )
    w = live_windows(f, 10, group="hive0")
    assert w["ttft_n"].to_list() == [80, 4]
    assert w["ttft_ms_p99"].to_list() == [None, None]  # 80 < 100 observations for a p99
    assert w["ttft_ms_p50"].to_list()[0] == pytest.approx(95.0) and w["ttft_ms_p50"][1] is None  # 4 < 10
    assert w["queue_ms_p99"].null_count() == 2  # the engine exposes no queue histogram: absent, not 0
    assert w["itl_ms_mean"].null_count() == 2


def test_rates_sum_over_models_without_double_counting_time() -> None:
    f = _rows(
        *[
            {
                "time": T0 + timedelta(seconds=s),
                "model": m,
                "generation_tokens_per_s": g,
                "requests_running": r,
                "requests_per_s": 2.0,
                "prompt_tokens_per_s": 2000.0,
                "prompt_tokens_mean": pm,
            }
            for s in (5, 10)
            for m, g, r, pm in (("a", 100.0, 4.0, 1000.0), ("b", 300.0, 2.0, 500.0))
        ]
    )
    (w,) = live_windows(f, 10, group="hive0").iter_rows(named=True)
    assert w["covered_s"] == 10.0
    assert w["output_tok_s"] == 400.0 and w["tokens"] == 4000.0
    assert w["requests_running"] == w["running_requests"] == 6.0
    assert w["requests_per_s"] == 4.0 and w["requests_started"] == 40.0
    assert w["prefill_tokens"] == 40_000.0
    assert w["prompt_tokens_mean"] == pytest.approx(750.0)  # weighted by requests


def test_down_scrapes_and_counter_resets_do_not_count() -> None:
    f = _rows(
        {"time": T0 + timedelta(seconds=5), "generation_tokens_per_s": 100.0},
        {"time": T0 + timedelta(seconds=10), "generation_tokens_per_s": None, "up": False},
        {"time": T0 + timedelta(seconds=15), "generation_tokens_per_s": None, "counter_reset": True},
        {"time": T0 + timedelta(seconds=20), "generation_tokens_per_s": 300.0},
    )
    w = live_windows(f, 10, group="hive0")
    # each 10 s window keeps one 5 s interval: half covered, kept; the rate is that interval's, not diluted
    assert w["covered_s"].to_list() == [5.0, 5.0]
    assert w["output_tok_s"].to_list() == [100.0, 300.0]


def test_a_row_counts_in_the_window_of_its_interval_midpoint() -> None:
    f = _rows({"time": T0 + timedelta(seconds=12), "interval_s": 5.0, "generation_tokens_per_s": 1.0})
    assert live_windows(f, 10, group="hive0")["window_start"].to_list() == [T0 + timedelta(seconds=0)]


def test_layout_is_the_victim_window_table_and_other_groups_are_left_out() -> None:
    f = pl.concat(
        [
            _rows({"time": T0 + timedelta(seconds=5), "generation_tokens_per_s": 1.0}),
            _rows({"time": T0 + timedelta(seconds=5), "group": "other", "generation_tokens_per_s": 9.0}),
        ]
    )
    w = live_windows(f, 10, group="hive0")
    assert dict(w.schema) == WINDOW_COLUMNS
    assert w["output_tok_s"].to_list() == [1.0]
    assert (w["run_id"][0], w["phase"][0], w["group"][0]) == ("live:hive0", "live", "hive0")


def test_window_length_gives_a_p99_enough_observations() -> None:
    s = scenario(minutes=10, seed=0)
    assert choose_live_window_s(s.serving, "itl") == 10.0  # >= 2 scrapes of 5 s, ~2,000 ITLs per 10 s
    assert choose_live_window_s(s.serving, "ttft") == 60.0  # ~3 requests/s: 100 TTFTs need 60 s


def test_serving_groups_say_who_has_data_and_when() -> None:
    s = scenario(minutes=10, seed=0)
    g = serving_groups(s.serving)
    assert g.select("node", "group", "rows").rows() == [("n1", "hive0", 120)]
    assert describe_groups(g) == "hive0 on n1 (2026-03-02 09:00 .. 2026-03-02 09:10 UTC)"
    assert describe_groups(g.head(0)) == "none"


def test_live_attribution_blames_a_decode_neighbour_on_itl_only() -> None:
    s = scenario(minutes=45, itl_effect=0.3, seed=1)
    la = live_attribution(s.serving, "hive0", node="n1", tenant=s.tenant, n_shifts=199)
    itl = la.antagonists("itl").row(0, named=True)
    assert (itl["antagonist"], itl["design"], itl["significant"]) == ("batch1", "correlational", True)
    assert itl["metric_ci_low"] <= 30.0 <= itl["metric_ci_high"] + 5  # truth: +30 % p99 ITL while on
    ttft = la.antagonists("ttft")
    assert not ttft["significant"].any()
    assert la.design == "correlational"
    assert any(n.startswith("correlational:") for n in la.notes)
    assert la.window_s == {"itl": 10.0, "ttft": 60.0}


def test_a_randomised_schedule_makes_the_live_design_interventional() -> None:
    s = scenario(minutes=45, itl_effect=0.3, seed=1)
    la = live_attribution(s.serving, "hive0", tenant=s.tenant, run_events=s.run_events, n_shifts=199)
    top = la.antagonists("itl").row(0, named=True)
    assert (top["antagonist"], top["design"], top["significant"]) == ("batch1", "interventional", True)
    assert la.design == "interventional"
    assert not any(n.startswith("correlational:") for n in la.notes)


def test_live_attribution_reads_the_ttft_knee_from_concurrency_times_input_length() -> None:
    s = scenario(minutes=45, seed=5, knee_load=15_000)
    la = live_attribution(s.serving, "hive0", tenant=s.tenant, n_shifts=0, metrics=("ttft",))
    assert la.knee is not None and la.knee.found, la.knee
    assert la.knee.load_ci_low - 2_000 <= 15_000 <= la.knee.load_ci_high + 2_000
