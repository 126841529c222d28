"""The pure core of the alert engine: durations, fingerprints, rule kinds, the state machine, what is due."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from analysis.alerts.rules import (
    AlertBook,
    AlertInputs,
    Rule,
    Silence,
    alerts_frame,
    builtin_rules,
    candidates,
    due,
    evaluate,
    fingerprint,
    mark_sent,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_fingerprint_ignores_label_order_and_is_16_hex_digits() -> None:
    a = fingerprint({"alertname": "X", "node": "n1"})
    assert a == fingerprint({"node": "n1", "alertname": "X"})
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != fingerprint({"alertname": "X", "node": "n2"})


def test_fingerprint_of_the_empty_label_set_is_the_fnv_offset_basis() -> None:
    assert fingerprint({}) == "cbf29ce484222325"  # Alertmanager's emptyLabelSignature


def test_builtin_rules_cover_every_kind_once() -> None:
    kinds = [r.kind for r in builtin_rules()]
    assert sorted(kinds) == sorted(
        {
            "thermal_temperature",
            "thermal_throttling",
            "noisy_neighbour",
            "noisy_neighbour_live",
            "perf_regression",
            "thermal_regression",
            "stale_telemetry",
        }
    )


def _rule(**kw: object) -> Rule:
    return Rule.model_validate({"name": "R", **kw})


def test_temperature_rule_needs_the_whole_window_above_threshold() -> None:
    times = [NOW - timedelta(seconds=s) for s in (0, 20, 40)]
    accel = pl.DataFrame(
        {
            "time": times * 2,
            "node": ["n1"] * 6,
            "device": ["gpu0"] * 3 + ["gpu1"] * 3,
            "group": ["g"] * 6,
            "temp_c": [90.0, 91, 89, 90, 84, 92],
        }
    )
    c = {
        x.labels["gpu"]: x.active
        for x in candidates(_rule(kind="thermal_temperature", threshold_c=85), AlertInputs(accel=accel), NOW)
    }
    assert c == {"gpu0": True, "gpu1": False}


def test_throttling_rule_uses_the_throttled_fraction() -> None:
    accel = pl.DataFrame(
        {
            "time": [NOW - timedelta(seconds=s) for s in range(10)],
            "node": ["n1"] * 10,
            "device": ["gpu0"] * 10,
            "throttle_thermal": [True] * 2 + [False] * 8,
        }
    )
    (c,) = candidates(_rule(kind="thermal_throttling", throttle_fraction=0.1), AlertInputs(accel=accel), NOW)
    assert c.active and c.value == pytest.approx(0.2)


def test_stale_rule_counts_intervals() -> None:
    seen = pl.DataFrame({"node": ["n1", "n2"], "last_seen": [NOW - timedelta(seconds=20), NOW - timedelta(seconds=40)]})
    out = {
        c.labels["node"]: c.active
        for c in candidates(_rule(kind="stale_telemetry", interval_s=10, intervals=3), AlertInputs(last_seen=seen), NOW)
    }
    assert out == {"n1": False, "n2": True}


def _regressions(status: str, metric: str = "output_tok_s") -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "node": "n1",
                "test": "t",
                "group": "hive0",
                "metric": metric,
                "night": date(2026, 11, 22),
                "status": status,
                "change_night": date(2026, 11, 22),
                "effect_pct": -7.0,
                "ci_low_pct": -9.0,
                "ci_high_pct": -5.0,
                "p": 1e-5,
                "noise_pct": 1.0,
                "min_magnitude_pct": 3.0,
                "rerun_requested": status == "suspected",
                "evidence": "e",
                "n_nights": 21,
            }
        ]
    )


def test_perf_regression_severity_follows_the_status() -> None:
    rule = builtin_rules()[3]
    (s,) = candidates(rule, AlertInputs(regressions=_regressions("suspected")), NOW)
    (c,) = candidates(rule, AlertInputs(regressions=_regressions("confirmed")), NOW)
    assert s.labels["severity"] == "warning" and s.annotations["rerun_requested"] == "true"
    assert c.labels["severity"] == "critical"
    assert c.annotations["effect"] == "-7.00" and c.annotations["ci_low"] == "-9.00"
    assert candidates(rule, AlertInputs(regressions=_regressions("acknowledged")), NOW) == []


def test_perf_regression_groups_the_metrics_of_one_test_into_one_alert() -> None:
    frame = pl.concat([_regressions("confirmed", "tpot_ms_mean"), _regressions("confirmed", "output_tok_s")])
    (c,) = candidates(builtin_rules()[3], AlertInputs(regressions=frame), NOW)
    assert c.annotations["metric"] == "output_tok_s"
    assert "tpot_ms_mean" in c.annotations["summary"]


def test_disabled_rule_sees_nothing() -> None:
    assert (
        candidates(
            _rule(kind="perf_regression", enabled=False), AlertInputs(regressions=_regressions("confirmed")), NOW
        )
        == []
    )


def test_summary_template_fills_labels() -> None:
    rule = _rule(kind="perf_regression", summary="{victim} on {node} slower")
    (c,) = candidates(rule, AlertInputs(regressions=_regressions("confirmed")), NOW)
    assert c.annotations["summary"] == "hive0 on n1 slower"


def test_evaluate_is_pure_and_reports_transitions() -> None:
    rule = _rule(kind="perf_regression", **{"for": "2m"})
    inputs = AlertInputs(regressions=_regressions("confirmed"))
    book0 = AlertBook()
    book1, t1 = evaluate([rule], book0, inputs, NOW)
    assert book0.alerts == {}
    assert [(t.before, t.after) for t in t1] == [(None, "pending")]
    book2, t2 = evaluate([rule], book1, inputs, NOW + timedelta(minutes=2))
    assert [(t.before, t.after) for t in t2] == [("pending", "firing")]
    book3, t3 = evaluate([rule], book2, AlertInputs(), NOW + timedelta(minutes=3))
    assert [(t.before, t.after) for t in t3] == [("firing", "resolved")]
    book4, t4 = evaluate([rule], book3, AlertInputs(), NOW + timedelta(hours=1))
    assert book4.alerts == {} and [(t.before, t.after) for t in t4] == [("resolved", None)]


def test_due_and_mark_sent() -> None:
    rule = _rule(kind="perf_regression")
    book, _ = evaluate([rule], AlertBook(), AlertInputs(regressions=_regressions("confirmed")), NOW)
    todo = due(book, "hook", NOW, 3600)
    assert len(todo) == 1
    book = mark_sent(book, "hook", todo, NOW)
    assert due(book, "hook", NOW + timedelta(minutes=5), 3600) == []
    assert len(due(book, "hook", NOW + timedelta(hours=1), 3600)) == 1
    assert len(due(book, "other", NOW, 3600)) == 1  # each notifier keeps its own record


def test_resolution_is_due_only_where_the_firing_was_sent() -> None:
    rule = _rule(kind="perf_regression")
    book, _ = evaluate([rule], AlertBook(), AlertInputs(regressions=_regressions("confirmed")), NOW)
    book = mark_sent(book, "hook", due(book, "hook", NOW, 3600), NOW)
    book, _ = evaluate([rule], book, AlertInputs(), NOW + timedelta(minutes=1))
    assert [a.state for a in due(book, "hook", NOW, 3600)] == ["resolved"]
    assert due(book, "never-sent", NOW, 3600) == []


def test_silence_matchers_exact_and_regex_within_their_window() -> None:
    s = Silence(matchers={"node": "n1", "alertname": "~Perf.*"}, starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    assert s.matches({"node": "n1", "alertname": "PerfRegression"})
    assert not s.matches({"node": "n2", "alertname": "PerfRegression"})
    assert not s.matches({"node": "n1", "alertname": "ThermalRegression"})
    assert s.active(NOW) and not s.active(NOW + timedelta(hours=1))


def test_alerts_frame_for_the_report() -> None:
    rule = _rule(kind="perf_regression")
    book, _ = evaluate([rule], AlertBook(), AlertInputs(regressions=_regressions("confirmed")), NOW)
    frame = alerts_frame(book)
    row = frame.row(0, named=True)
    assert (row["alertname"], row["state"], row["node"], row["victim"], row["resource"]) == (
        "R",
        "firing",
        "n1",
        "hive0",
        "performance",
    )
    assert row["effect"] == "-7.00"


def test_book_round_trips_through_json() -> None:
    rule = _rule(kind="perf_regression")
    book, _ = evaluate([rule], AlertBook(), AlertInputs(regressions=_regressions("confirmed")), NOW)
    again = AlertBook.from_dict(book.to_dict())
    assert again == book
    doc = book.to_dict()["alerts"]
    (a,) = doc.values()
    assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z" and a["startsAt"].endswith("Z")


def test_antagonists_become_slowdowns_for_the_noisy_neighbour_rule() -> None:
    from analysis.alerts.engine import degradation_alert_frame

    ant = pl.DataFrame(
        {
            "victim": ["hive0"],
            "antagonist": ["hive1"],
            "resource": ["pcie"],
            "effect_pct": [-12.0],
            "ci_low": [-15.0],
            "ci_high": [-11.0],
            "q_value": [0.001],
        }
    )
    row = degradation_alert_frame(ant, "n1").row(0, named=True)
    assert (row["effect_pct"], row["ci_low_pct"], row["ci_high_pct"]) == (12.0, 11.0, 15.0)
    (c,) = candidates(builtin_rules()[2], AlertInputs(degradation=degradation_alert_frame(ant, "n1")), NOW)
    assert c.active and c.labels["antagonist"] == "hive1" and c.labels["resource"] == "pcie"
