"""Alerts as the dashboard shows them: read from the alert engine's persisted state, flattened to frames.

The state is the alert engine's ``state.json`` (`analysis.alerts.engine`, which writes each alert in Alertmanager's
shape too): ``--alert-state`` (env ``NEIGHBORSCOPE_ALERT_STATE``, a file or the engine's state directory), else
``alerts/state.json`` in or beside the store directory (the engine's default), or ``alert_state.json``. Alerts follow the Alertmanager shape (``labels``, ``annotations``,
``startsAt``, ``endsAt``, ``status`` firing | resolved); silences have ``matchers``, ``startsAt``, ``endsAt``,
``createdBy``, ``comment``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from dashboard import data

STATE_NAMES = ("alerts/state.json", "alert_state.json", "alerts.json")
ALERT_SCHEMA = {"status": pl.String, "alertname": pl.String, "severity": pl.String, "node": pl.String,
                "summary": pl.String, "starts_at": pl.Datetime("us", "UTC"), "ends_at": pl.Datetime("us", "UTC"),
                "silenced": pl.Boolean, "labels": pl.String, "annotations": pl.String}


@dataclass(frozen=True)
class AlertState:
    alerts: pl.DataFrame
    silences: pl.DataFrame
    source: str | None


def _when(text: Any) -> datetime | None:
    if not text or not isinstance(text, str) or text.startswith("0001-01-01"):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return data.utc(value)


def alerts_frame(items: list[dict[str, Any]], now: datetime | None = None) -> pl.DataFrame:
    """Alertmanager-shaped alerts as rows (status firing unless resolved or ended before ``now``)."""
    now = now or datetime.now(UTC)
    rows = []
    for a in items:
        labels = a.get("labels") or {}
        ann = a.get("annotations") or {}
        ends = _when(a.get("endsAt"))
        status = a.get("status") or ("resolved" if ends and ends <= now else "firing")
        if isinstance(status, dict):  # Alertmanager API v2 GET form: {"state": "active" | "suppressed"}
            status = "firing" if status.get("state") == "active" else str(status.get("state"))
        rows.append({
            "status": status, "alertname": labels.get("alertname"), "severity": labels.get("severity"),
            "node": labels.get("node"), "summary": ann.get("summary") or ann.get("description"),
            "starts_at": _when(a.get("startsAt")), "ends_at": ends, "silenced": bool(a.get("silenced", False)),
            "labels": ", ".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "annotations": "; ".join(f"{k}: {v}" for k, v in sorted(ann.items())),
        })
    if not rows:
        return pl.DataFrame(schema=ALERT_SCHEMA)
    return pl.DataFrame(rows, schema=ALERT_SCHEMA).sort(["status", "starts_at"], descending=[False, True])


def silences_frame(items: list[dict[str, Any]]) -> pl.DataFrame:
    rows = []
    for s in items:
        matchers = s.get("matchers") or []
        text = ", ".join(f"{m.get('name')}{'=~' if m.get('isRegex') else '='}{m.get('value')}" for m in matchers
                         if isinstance(m, dict))
        rows.append({"matchers": text, "starts_at": _when(s.get("startsAt")), "ends_at": _when(s.get("endsAt")),
                     "created_by": s.get("createdBy"), "comment": s.get("comment")})
    schema = {"matchers": pl.String, "starts_at": pl.Datetime("us", "UTC"), "ends_at": pl.Datetime("us", "UTC"),
              "created_by": pl.String, "comment": pl.String}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def find_state(settings: data.Settings) -> Path | None:
    if settings.alert_state:
        p = Path(settings.alert_state)
        return p / "state.json" if p.is_dir() else p
    for name in STATE_NAMES:
        for p in settings.beside_store(name):
            if p.is_file():
                return p
    return None


@st.cache_data(ttl=data.CACHE_TTL_S, show_spinner=False)
def load_state(settings: data.Settings) -> AlertState:
    """The alert engine's current alerts and silences (empty frames when it has not run yet)."""
    path = find_state(settings)
    if path is None or not path.is_file():
        return AlertState(alerts_frame([]), silences_frame([]), None)
    doc = json.loads(path.read_text())
    if isinstance(doc, list):
        doc = {"alerts": doc}
    alerts = doc.get("alerts") or []
    if isinstance(alerts, dict):  # keyed by fingerprint
        alerts = list(alerts.values())
    silences = doc.get("silences") or []
    return AlertState(alerts_frame(alerts), silences_frame(silences), str(path))


def firing_banner(settings: data.Settings) -> None:
    """The firing alerts, on top of the overview."""
    try:
        state = load_state(settings)
    except (OSError, json.JSONDecodeError) as exc:
        st.warning(f"could not read the alert state: {exc}")
        return
    firing = state.alerts.filter(pl.col("status") == "firing")
    if firing.height == 0:
        if state.source:
            st.success("No alerts firing.")
        return
    for row in firing.head(5).iter_rows(named=True):
        sev = row["severity"] or "warning"
        text = f"**{row['alertname']}** ({sev}) on {row['node'] or '—'}: {row['summary'] or row['labels']}"
        (st.error if sev == "critical" else st.warning)(text, icon=":material/notifications_active:")
    if firing.height > 5:
        st.caption(f"… and {firing.height - 5} more on the Alerts page.")
