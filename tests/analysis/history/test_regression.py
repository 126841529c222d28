"""Nightly regression detection: history from run summaries, suspected / confirmed, reruns, acknowledgements."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.history.regression import (
    Acknowledgement,
    RegressionConfig,
    assess_series,
    bench_test_name,
    change_point_frame,
    first_detections,
    load_acks,
    nightly_history,
    regression_backtest,
    regression_status,
    run_metrics,
    save_acks,
)
from telemetry.errors import ConfigError
from tests.analysis.history.history_sim import HistorySpec, simulate_history

FLOOR = math.log1p(0.03)


def _noise(n: int, seed: int = 0, sd: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, sd, n)


def test_stable_history_is_ok() -> None:
    assert assess_series(_noise(25), higher_is_better=True, min_magnitude_floor=FLOOR).status == "ok"


def test_a_drop_on_the_last_night_is_suspected_and_asks_for_a_rerun() -> None:
    x = np.r_[_noise(20), -0.07]
    v = assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR)
    assert v.status == "suspected" and v.rerun_requested
    assert v.change_index == 20
    assert v.ci_low < v.effect < v.ci_high < 0  # type: ignore[operator]


def test_the_same_move_in_the_good_direction_is_not_a_regression() -> None:
    x = np.r_[_noise(20), +0.07]
    assert assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR).status == "ok"
    assert assess_series(x, higher_is_better=False, min_magnitude_floor=FLOOR).status == "suspected"


def test_a_change_that_persists_the_next_night_is_confirmed() -> None:
    x = np.r_[_noise(20), -0.07 + _noise(2, seed=1)]
    v = assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR)
    assert v.status == "confirmed" and v.change_index == 20


def test_a_one_night_blip_is_not_confirmed() -> None:
    x = np.r_[_noise(20), -0.07, _noise(3, seed=2)]
    assert assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR).status == "ok"


def test_a_rerun_that_agrees_confirms_the_same_night() -> None:
    x = np.r_[_noise(20), -0.07]
    v = assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR, runs_last=[-0.07, -0.069])
    assert v.status == "confirmed" and not v.rerun_requested


def test_a_rerun_that_disagrees_leaves_it_suspected_without_another_rerun() -> None:
    x = np.r_[_noise(20), -0.07]
    v = assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR, runs_last=[-0.07, 0.001])
    assert v.status == "suspected" and not v.rerun_requested


def test_a_move_smaller_than_the_floor_is_ignored() -> None:
    x = np.r_[_noise(20, sd=0.002), -0.02]
    assert assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR).status == "ok"


def test_min_magnitude_grows_with_the_measured_noise() -> None:
    v = assess_series(_noise(25, sd=0.04), higher_is_better=True, min_magnitude_floor=FLOOR)
    assert v.min_magnitude > FLOOR  # type: ignore[operator]


def test_acknowledged_change_point_does_not_alert() -> None:
    x = np.r_[_noise(20), -0.07 + _noise(8, seed=1)]
    assert assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR).status == "confirmed"
    v = assess_series(x, higher_is_better=True, min_magnitude_floor=FLOOR, acknowledged=[20])
    assert v.status == "acknowledged"


def test_too_short_a_history_is_insufficient() -> None:
    assert assess_series([0.0, 0.1, 0.0], higher_is_better=True, min_magnitude_floor=FLOOR).status == "insufficient"


def _history(**kw: object) -> pl.DataFrame:
    frames = simulate_history(HistorySpec(**kw))  # type: ignore[arg-type]
    return nightly_history(run_metrics(frames["run_event"]))


def test_history_has_one_point_per_night_on_log_scale() -> None:
    h = _history(nights=6)
    out = h.filter(pl.col("metric") == "output_tok_s")
    assert out.height == 6
    assert out["night"].to_list()[0] == date(2026, 10, 1)
    assert out["log_value"].to_numpy() == pytest.approx(np.log(out["value"].to_numpy()))
    assert out["higher_is_better"].all()
    assert not h.filter(pl.col("metric") == "tpot_ms_mean")["higher_is_better"].any()
    assert out["test"][0] == "vllm|sim-model|c16|1024/256|baseline"


def test_reruns_of_a_night_are_kept_in_order() -> None:
    h = _history(nights=3, runs_per_night=2).filter(pl.col("metric") == "output_tok_s")
    assert h["n_runs"].to_list() == [2, 2, 2]
    assert all(len(v) == 2 for v in h["run_log_values"].to_list())


def test_run_metrics_reads_summary_rows_and_skips_others() -> None:
    meta = {
        "run_id": "r1",
        "tool": "sglang",
        "node": "n1",
        "group": "g",
        "phase": "p",
        "extra": {"test": "nightly"},
        "summary": {"output_tok_s": 100.0, "ttft_ms_p99": None},
    }
    ev = pl.DataFrame(
        {
            "time": [datetime(2026, 1, 1, tzinfo=UTC)] * 2,
            "node": ["n1"] * 2,
            "group": ["g"] * 2,
            "event": ["summary", "start"],
            "metadata_json": [json.dumps(meta), None],
        }
    )
    m = run_metrics(ev)
    assert m.select("test", "metric", "value").rows() == [("nightly", "output_tok_s", 100.0)]


def test_bench_test_name_without_a_plan_label() -> None:
    assert (
        bench_test_name({"tool": "vllm", "model": "m", "concurrency": 8, "isl": 1024, "osl": 128, "phase": "baseline"})
        == "vllm|m|c8|1024/128|baseline"
    )


def test_backtest_finds_a_7pct_drop_on_its_night() -> None:
    bt = regression_backtest(_history(nights=26, regression_night=20))
    det = first_detections(bt).filter(pl.col("metric") == "output_tok_s")
    assert dict(det.select("status", "night").rows()) == {
        "suspected": date(2026, 10, 21),
        "confirmed": date(2026, 10, 22),
    }


def test_status_and_change_points_for_the_report() -> None:
    h = _history(nights=30, regression_night=20)
    st = regression_status(h).filter(pl.col("metric") == "output_tok_s")
    assert st["status"][0] == "confirmed"
    assert st["change_night"][0] == date(2026, 10, 21)
    assert -9.0 < st["effect_pct"][0] < -5.0
    cps = change_point_frame(h).filter(pl.col("metric") == "output_tok_s")
    assert cps.select("night", "direction").rows() == [(date(2026, 10, 21), "regression")]
    assert cps["ci_low_pct"][0] < cps["effect_pct"][0] < cps["ci_high_pct"][0]


def test_acknowledgement_silences_the_status_and_marks_the_change_point() -> None:
    h = _history(nights=30, regression_night=20)
    ack = Acknowledgement(test="*", group="hive0", metric="*", night=date(2026, 10, 21), by="sre")
    st = regression_status(h, acks=[ack])
    assert set(st["status"].to_list()) <= {"ok", "acknowledged", "improved"}
    assert change_point_frame(h, acks=[ack])["acknowledged"].all()


def test_acks_round_trip_and_bad_file_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "acks.json"
    save_acks(p, [Acknowledgement("t", "g", "m", date(2026, 10, 21), comment="known")])
    assert load_acks(p) == [Acknowledgement("t", "g", "m", date(2026, 10, 21), comment="known")]
    p.write_text('[{"test": "t"}]')
    with pytest.raises(ConfigError, match=r"acks\.json"):
        load_acks(p)


def test_config_scale_linear_reports_raw_differences() -> None:
    runs = pl.DataFrame(
        {
            "time": [datetime(2026, 10, 1, 13, tzinfo=UTC) + timedelta(days=k) for k in range(12)],
            "node": ["n"] * 12,
            "group": ["g"] * 12,
            "phase": ["p"] * 12,
            "test": ["t"] * 12,
            "run_id": ["r"] * 12,
            "metric": ["temp"] * 12,
            "value": [70.0, 70.1, 69.9, 70.0, 70.1, 69.9, 70.0, 70.1, 69.9, 70.0, 70.1, 75.0],
        }
    )
    cfg = RegressionConfig(scale="linear", min_effect=0.5, metrics={"temp": False})
    st = regression_status(nightly_history(runs, cfg), cfg)
    assert st["status"][0] == "suspected"
    assert st["effect_pct"][0] == pytest.approx(5.0, abs=0.1)
