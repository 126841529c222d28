"""Alertmanager-shaped alerts and silences become rows the Alerts page can show."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.alerts_view import alerts_frame, silences_frame

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_alert_without_status_is_firing_until_it_ends():
    frame = alerts_frame(
        [
            {"labels": {"alertname": "A"}, "startsAt": "2026-03-02T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z"},
            {"labels": {"alertname": "B"}, "startsAt": "2026-03-02T09:00:00Z", "endsAt": "2026-03-02T10:00:00Z"},
        ],
        now=NOW,
    )
    assert dict(zip(frame["alertname"], frame["status"], strict=True)) == {"A": "firing", "B": "resolved"}


def test_alert_labels_and_annotations_are_kept_as_text():
    frame = alerts_frame(
        [
            {
                "labels": {"alertname": "A", "node": "n1", "severity": "critical"},
                "annotations": {"summary": "s", "q_value": "0.01"},
            }
        ],
        now=NOW,
    )
    row = frame.row(0, named=True)
    assert row["labels"] == "alertname=A, node=n1, severity=critical"
    assert row["annotations"] == "q_value: 0.01; summary: s"
    assert row["summary"] == "s"


def test_silence_matchers_read_like_alertmanager():
    from analysis.alerts.rules import Silence

    frame = silences_frame(
        [Silence(matchers={"node": "~n.*", "alertname": "A"}, starts_at=NOW, ends_at=NOW, created_by="x")]
    )
    assert frame["matchers"].to_list() == ["alertname=A, node=~n.*"]
    assert frame["created_by"].to_list() == ["x"]


def test_the_alert_engines_state_file_is_read_as_is(tmp_path):
    from analysis.alerts.engine import EngineState, write_state
    from analysis.alerts.rules import Alert, AlertBook, Silence
    from dashboard.alerts_view import load_state
    from dashboard.settings import Settings

    labels = {"alertname": "NoisyNeighborDegradation", "severity": "critical", "node": "n1", "victim": "hive0"}
    alert = Alert(
        labels=labels,
        annotations={"summary": "hive0 slowed by tt"},
        state="firing",
        active_at=NOW,
        last_active_at=NOW,
        fired_at=NOW,
    )
    silence = Silence(matchers={"node": "n1"}, starts_at=NOW, ends_at=NOW.replace(hour=18), created_by="sre")
    write_state(tmp_path / "alerts", EngineState(AlertBook({alert.fingerprint: alert}, NOW), [silence]))
    state = load_state(Settings(str(tmp_path / "store"), None, None, None, 30))
    assert state.source == str(tmp_path / "alerts" / "state.json")
    named = load_state(Settings(str(tmp_path / "elsewhere"), None, None, str(tmp_path / "alerts" / "state.json"), 30))
    assert named.alerts.equals(state.alerts)
    assert state.alerts.select("alertname", "status", "summary").rows() == [
        ("NoisyNeighborDegradation", "firing", "hive0 slowed by tt")
    ]
    assert state.silences["matchers"].to_list() == ["node=n1"]
