"""The alert engine against a real HTTP receiver on loopback: payload format, for, hysteresis, resolution,
dedup and state across restarts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from analysis.alerts.engine import AlertsConfig, evaluate_once, read_state
from analysis.alerts.rules import AlertInputs
from telemetry.config import model_from_dict
from tests.analysis.alerts.alert_receiver import RecordingReceiver

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
V4_KEYS = {
    "receiver",
    "status",
    "alerts",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "version",
    "groupKey",
    "truncatedAlerts",
}
V4_ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _config(url: str, rules: list[dict] | None = None, builtin: bool = False) -> AlertsConfig:
    return model_from_dict(
        AlertsConfig,
        {
            "alerts": {
                "builtin_rules": builtin,
                "dashboard_url": "http://dash.local/?page=alerts",
                "external_url": "http://ns.local",
            },
            "rule": rules or [],
            "notifier": [
                {"kind": "webhook", "url": f"{url}/hook", "name": "hook"},
                {"kind": "alertmanager", "url": url, "name": "am"},
            ],
        },
        "test",
    )


NOISY = {
    "name": "NoisyNeighborDegradation",
    "kind": "noisy_neighbour",
    "severity": "warning",
    "for": "5m",
    "enter_pct": 10.0,
    "exit_pct": 5.0,
}


def _degradation(ci_low: float, effect: float, ci_high: float) -> AlertInputs:
    frame = pl.DataFrame(
        {
            "node": ["n1"],
            "victim": ["hive0"],
            "antagonist": ["hive1"],
            "resource": ["pcie"],
            "metric": ["output_tok_s"],
            "effect_pct": [effect],
            "ci_low_pct": [ci_low],
            "ci_high_pct": [ci_high],
            "q": [0.001],
        }
    )
    return AlertInputs(degradation=frame, dashboard_url="http://dash.local/?page=alerts")


def _accel(temp: float, now: datetime, node: str = "n1") -> AlertInputs:
    times = [now - timedelta(seconds=s) for s in range(0, 60, 5)]
    frame = pl.DataFrame(
        {
            "time": times,
            "node": [node] * len(times),
            "device": ["gpu0"] * len(times),
            "group": ["hive0"] * len(times),
            "temp_c": [temp] * len(times),
            "throttle_thermal": [False] * len(times),
        }
    )
    return AlertInputs(accel=frame.with_columns(pl.col("time").dt.cast_time_unit("ns")))


def test_webhook_payload_follows_alertmanager_v4(tmp_path: Path) -> None:
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [{**NOISY, "for": 0}])
        evaluate_once(cfg, None, tmp_path, T0, _degradation(12.0, 15.0, 18.0))
        payloads = rx.bodies("/hook")
    assert len(payloads) == 1
    p = payloads[0]
    assert set(p) == V4_KEYS
    assert p["version"] == "4" and p["status"] == "firing" and p["truncatedAlerts"] == 0
    assert p["groupLabels"] == {"alertname": "NoisyNeighborDegradation", "node": "n1"}
    assert p["externalURL"] == "http://ns.local"
    assert p["groupKey"] == '{}:{alertname="NoisyNeighborDegradation", node="n1"}'
    (a,) = p["alerts"]
    assert set(a) == V4_ALERT_KEYS
    assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert RFC3339.match(a["startsAt"])
    assert re.fullmatch(r"[0-9a-f]{16}", a["fingerprint"])
    for label in ("alertname", "severity", "node", "victim", "antagonist", "resource"):
        assert a["labels"][label]
    assert (a["labels"]["victim"], a["labels"]["antagonist"], a["labels"]["resource"]) == ("hive0", "hive1", "pcie")
    for ann in ("summary", "effect", "ci_low", "ci_high", "dashboard_url"):
        assert ann in a["annotations"]
    assert float(a["annotations"]["ci_low"]) == 12.0 and float(a["annotations"]["ci_high"]) == 18.0
    assert a["annotations"]["dashboard_url"].startswith("http://dash.local/?page=alerts&")
    assert p["commonLabels"] == a["labels"]


def test_alertmanager_api_gets_postable_alerts(tmp_path: Path) -> None:
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [{**NOISY, "for": 0}])
        evaluate_once(cfg, None, tmp_path, T0, _degradation(12.0, 15.0, 18.0))
        evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=1), _degradation(1.0, 2.0, 3.0))
        sent = rx.bodies("/api/v2/alerts")
    assert len(sent) == 2
    firing, resolved = sent[0][0], sent[1][0]
    assert set(firing) == {"labels", "annotations", "startsAt", "generatorURL"}
    assert resolved["endsAt"] == "2026-11-23T12:01:00.000000Z"
    assert firing["labels"] == resolved["labels"]


def test_pending_becomes_firing_only_after_for(tmp_path: Path) -> None:
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [NOISY])
        states = []
        for minute in range(7):
            res = evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=minute), _degradation(12.0, 15.0, 18.0))
            states.append(next(iter(res.book.alerts.values())).state)
            if minute < 5:
                assert rx.bodies("/hook") == []
        assert states == ["pending"] * 5 + ["firing"] * 2
        assert len(rx.bodies("/hook")) == 1


def test_pending_alert_that_clears_is_dropped_unsent(tmp_path: Path) -> None:
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [NOISY])
        evaluate_once(cfg, None, tmp_path, T0, _degradation(12.0, 15.0, 18.0))
        res = evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=1), _degradation(1.0, 2.0, 3.0))
        assert res.book.alerts == {}
        assert rx.requests == []


def test_no_flapping_inside_the_hysteresis_band(tmp_path: Path) -> None:
    """Enter when the CI lower bound > 10 %; stay firing while the upper bound >= 5 %; resolve below."""
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [{**NOISY, "for": 0}])
        seq = [(12, 15, 18), (8, 11, 14), (3, 7, 11), (9, 12, 15), (2, 6, 9), (11, 13, 16), (0.5, 2, 4.5)]
        states = []
        for minute, (lo, eff, hi) in enumerate(seq):
            res = evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=minute), _degradation(lo, eff, hi))
            states.append(next(iter(res.book.alerts.values())).state)
        assert states == ["firing"] * 6 + ["resolved"]
        statuses = [a["status"] for a in rx.alerts("/hook")]
        assert statuses == ["firing", "resolved"]


def test_below_enter_threshold_never_fires(tmp_path: Path) -> None:
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [{**NOISY, "for": 0}])
        for minute, lo in enumerate([9.9, 8.0, 9.5, 7.0]):
            evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=minute), _degradation(lo, lo + 3, lo + 6))
        assert rx.requests == []


def test_resolution_is_sent_with_ends_at(tmp_path: Path) -> None:
    rule = {
        "name": "GpuTemperatureHigh",
        "kind": "thermal_temperature",
        "severity": "critical",
        "threshold_c": 85,
        "for": "2m",
    }
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [rule])
        for minute, temp in enumerate([90, 90, 90, 90, 70]):
            now = T0 + timedelta(minutes=minute)
            evaluate_once(cfg, None, tmp_path, now, _accel(temp, now))
        alerts = rx.alerts("/hook")
    assert [a["status"] for a in alerts] == ["firing", "resolved"]
    assert alerts[1]["endsAt"] == "2026-11-23T12:04:00.000000Z"
    assert alerts[0]["startsAt"] == alerts[1]["startsAt"] == "2026-11-23T12:02:00.000000Z"
    assert alerts[0]["labels"]["gpu"] == "gpu0" and alerts[0]["labels"]["resource"] == "thermal"


def test_keep_firing_for_holds_a_brief_dip(tmp_path: Path) -> None:
    rule = {
        "name": "GpuTemperatureHigh",
        "kind": "thermal_temperature",
        "threshold_c": 85,
        "for": 0,
        "keep_firing_for": "3m",
    }
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [rule])
        states = []
        for minute, temp in enumerate([90, 70, 70, 90, 70, 70, 70, 70]):
            now = T0 + timedelta(minutes=minute)
            res = evaluate_once(cfg, None, tmp_path, now, _accel(temp, now))
            states.append(next(iter(res.book.alerts.values())).state)
        assert states == ["firing"] * 7 + ["resolved"]
        assert [a["status"] for a in rx.alerts("/hook")] == ["firing", "resolved"]


def test_repeated_evaluations_send_one_webhook_notification(tmp_path: Path) -> None:
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [{**NOISY, "for": 0}])
        for minute in range(10):
            res = evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=minute), _degradation(12.0, 15.0, 18.0))
        assert len(res.book.alerts) == 1
        assert len(rx.bodies("/hook")) == 1
        # Alertmanager is refreshed every evaluation (it dedups by labels): one alert, one fingerprint
        am = rx.alerts("/api/v2/alerts")
        assert len(am) == 10 and len({tuple(sorted(a["labels"].items())) for a in am}) == 1


def test_webhook_repeats_after_repeat_interval(tmp_path: Path) -> None:
    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [{**NOISY, "for": 0}])
        for minute in range(0, 300, 30):
            evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=minute), _degradation(12.0, 15.0, 18.0))
        assert len(rx.bodies("/hook")) == 2  # at 0 and at 4 h


def test_state_survives_a_restart(tmp_path: Path) -> None:
    """A new engine (fresh config object, state read from disk) continues the pending timer and does not resend."""
    with RecordingReceiver() as rx:
        evaluate_once(_config(rx.url, [NOISY]), None, tmp_path, T0, _degradation(12.0, 15.0, 18.0))
        evaluate_once(
            _config(rx.url, [NOISY]), None, tmp_path, T0 + timedelta(minutes=3), _degradation(12.0, 15.0, 18.0)
        )
        res = evaluate_once(
            _config(rx.url, [NOISY]), None, tmp_path, T0 + timedelta(minutes=5), _degradation(12.0, 15.0, 18.0)
        )
        assert next(iter(res.book.alerts.values())).state == "firing"
        assert len(rx.bodies("/hook")) == 1
        evaluate_once(
            _config(rx.url, [NOISY]), None, tmp_path, T0 + timedelta(minutes=6), _degradation(12.0, 15.0, 18.0)
        )
        assert len(rx.bodies("/hook")) == 1
    saved = read_state(tmp_path).book
    (alert,) = saved.alerts.values()
    assert alert.active_at == T0 and alert.fired_at == T0 + timedelta(minutes=5)
    assert alert.notified["hook"]["state"] == "firing"


def test_unreachable_receiver_retries_at_next_evaluation(tmp_path: Path) -> None:
    with RecordingReceiver(status=503) as rx:
        cfg = _config(rx.url, [{**NOISY, "for": 0}])
        res = evaluate_once(cfg, None, tmp_path, T0, _degradation(12.0, 15.0, 18.0))
        assert set(res.errors) == {"hook", "am"}
        rx.status = 200
        res = evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=1), _degradation(12.0, 15.0, 18.0))
        assert res.errors == {}
        assert len(rx.bodies("/hook")) == 2  # the failed attempt and the retry


def test_silenced_alert_is_tracked_but_not_sent(tmp_path: Path) -> None:
    from analysis.alerts.engine import add_silence

    with RecordingReceiver() as rx:
        cfg = _config(rx.url, [{**NOISY, "for": 0}])
        add_silence(
            tmp_path,
            {"node": "n1", "alertname": "~Noisy.*"},
            T0 - timedelta(minutes=1),
            T0 + timedelta(minutes=10),
            "planned stress test",
        )
        res = evaluate_once(cfg, None, tmp_path, T0, _degradation(12.0, 15.0, 18.0))
        (alert,) = res.book.alerts.values()
        assert alert.state == "firing" and alert.silenced
        assert rx.requests == []
        evaluate_once(cfg, None, tmp_path, T0 + timedelta(minutes=11), _degradation(12.0, 15.0, 18.0))
        assert [a["status"] for a in rx.alerts("/hook")] == ["firing"]
