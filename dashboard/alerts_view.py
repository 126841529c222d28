"""Alerts as the dashboard shows them: the alert engine's persisted state, flattened to frames.

The state is read by the engine's own reader (`analysis.alerts.engine.read_state`) from its state directory:
``--alert-state`` (env ``NEIGHBORSCOPE_ALERT_STATE``: the directory, or its ``state.json``), else ``alerts/`` in or
beside the store directory (the engine's default). Alerts are shown in Alertmanager's shape (``labels``,
``annotations``, ``startsAt``, ``endsAt``, ``status`` firing | resolved, as `Alert.to_dict` writes them);
silences as their matchers, period, author and comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from analysis.alerts import engine
from analysis.alerts.rules import Silence
from dashboard import data
from telemetry.errors import ConfigError

ALERT_SCHEMA = {
    "status": pl.String,
    "alertname": pl.String,
    "severity": pl.String,
    "node": pl.String,
    "device": pl.String,
    "victim": pl.String,
    "antagonist": pl.String,
    "summary": pl.String,
    "starts_at": pl.Datetime("us", "UTC"),
    "ends_at": pl.Datetime("us", "UTC"),
    "silenced": pl.Boolean,
    "labels": pl.String,
    "annotations": pl.String,
}
SILENCE_SCHEMA = {
    "matchers": pl.String,
    "starts_at": pl.Datetime("us", "UTC"),
    "ends_at": pl.Datetime("us", "UTC"),
    "created_by": pl.String,
    "comment": pl.String,
}


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


def _label(labels: dict[str, Any], name: str) -> str | None:
    """A label's value; the engine's "none" placeholder (a label that does not apply) is absent."""
    value = labels.get(name)
    return None if value in (None, "", "none") else str(value)


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
        rows.append(
            {
                "status": status,
                "alertname": labels.get("alertname"),
                "severity": labels.get("severity"),
                "node": _label(labels, "node"),
                "device": _label(labels, "device"),
                "victim": _label(labels, "victim"),
                "antagonist": _label(labels, "antagonist"),
                "summary": ann.get("summary") or ann.get("description"),
                "starts_at": _when(a.get("startsAt")),
                "ends_at": ends,
                "silenced": bool(a.get("silenced", False)),
                "labels": ", ".join(f"{k}={v}" for k, v in sorted(labels.items())),
                "annotations": "; ".join(f"{k}: {v}" for k, v in sorted(ann.items())),
            }
        )
    if not rows:
        return pl.DataFrame(schema=ALERT_SCHEMA)
    return pl.DataFrame(rows, schema=ALERT_SCHEMA).sort(["status", "starts_at"], descending=[False, True])


def silences_frame(items: list[Silence]) -> pl.DataFrame:
    """The engine's silences as rows, matchers written as Alertmanager does (``name=value``, ``name=~regex``)."""
    rows = [
        {
            "matchers": ", ".join(
                f"{k}={v}" if not v.startswith("~") else f"{k}=~{v[1:]}" for k, v in sorted(s.matchers.items())
            ),
            "starts_at": data.utc(s.starts_at),
            "ends_at": data.utc(s.ends_at),
            "created_by": s.created_by or None,
            "comment": s.comment or None,
        }
        for s in items
    ]
    return pl.DataFrame(rows, schema=SILENCE_SCHEMA) if rows else pl.DataFrame(schema=SILENCE_SCHEMA)


def find_state(settings: data.Settings) -> Path | None:
    """The engine's state directory: ``--alert-state`` (a directory, or the ``state.json`` in one), else
    ``alerts/`` in or beside the store directory when it holds a state file."""
    if settings.alert_state:
        p = Path(settings.alert_state)
        return p.parent if p.name == engine.STATE_FILE else p
    return next((p for p in settings.beside_store("alerts") if (p / engine.STATE_FILE).is_file()), None)


@st.cache_data(ttl=data.CACHE_TTL_S, show_spinner=False)
def load_state(settings: data.Settings) -> AlertState:
    """The alert engine's current alerts and silences (empty frames when it has not run yet)."""
    state_dir = find_state(settings)
    if state_dir is None or not (state_dir / engine.STATE_FILE).is_file():
        return AlertState(alerts_frame([]), silences_frame([]), None)
    state = engine.read_state(state_dir)
    return AlertState(
        alerts_frame([a.to_dict() for a in state.book.alerts.values()]),
        silences_frame(state.silences),
        str(state_dir / engine.STATE_FILE),
    )


def firing_banner(settings: data.Settings) -> None:
    """The firing alerts, on top of the overview."""
    try:
        state = load_state(settings)
    except (OSError, ConfigError) as exc:
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
