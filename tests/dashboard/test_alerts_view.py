"""Alertmanager-shaped alerts and silences become rows the Alerts page can show."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.alerts_view import alerts_frame, silences_frame

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_alert_without_status_is_firing_until_it_ends():
    frame = alerts_frame([
        {"labels": {"alertname": "A"}, "startsAt": "2026-03-02T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z"},
        {"labels": {"alertname": "B"}, "startsAt": "2026-03-02T09:00:00Z", "endsAt": "2026-03-02T10:00:00Z"},
    ], now=NOW)
    assert dict(zip(frame["alertname"], frame["status"], strict=True)) == {"A": "firing", "B": "resolved"}


def test_alert_labels_and_annotations_are_kept_as_text():
    frame = alerts_frame([{"labels": {"alertname": "A", "node": "n1", "severity": "critical"},
                           "annotations": {"summary": "s", "q_value": "0.01"}}], now=NOW)
    row = frame.row(0, named=True)
    assert row["labels"] == "alertname=A, node=n1, severity=critical"
    assert row["annotations"] == "q_value: 0.01; summary: s"
    assert row["summary"] == "s"


def test_silence_matchers_read_like_alertmanager():
    frame = silences_frame([{"matchers": [{"name": "node", "value": "n.*", "isRegex": True}], "createdBy": "x"}])
    assert frame["matchers"].to_list() == ["node=~n.*"]
