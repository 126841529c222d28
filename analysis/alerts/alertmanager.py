"""Notifications: Alertmanager's API, a generic webhook with Alertmanager's v4 payload, and a log. The edge.

Payload builders are pure (`postable_alerts`, `webhook_payload`, `log_lines`); `post_alertmanager`,
`post_webhook` and `write_log` do the I/O (httpx, one short timeout, errors raised as `NotifyError` so the engine
records the failure and retries at the next evaluation: an alert not marked as sent is sent again).

- **Alertmanager** ``POST {url}/api/v2/alerts``: a JSON list of ``{labels, annotations, startsAt, endsAt,
  generatorURL}``. Firing alerts are re-sent every evaluation (``repeat`` 0): Alertmanager dedups by labels and
  resolves an alert not refreshed within its ``resolve_timeout``; a resolution carries ``endsAt``.
- **Webhook** (Alertmanager's ``webhook_config`` receiver format, version "4"): one POST per group (``group_by``
  labels, default alertname + node) with ``receiver, status, alerts[], groupLabels, commonLabels,
  commonAnnotations, externalURL, version, groupKey, truncatedAlerts``; each alert ``status, labels, annotations,
  startsAt, endsAt (0001-01-01T00:00:00Z while firing), generatorURL, fingerprint``. Sent on change and every
  ``repeat_interval`` (4 h) while firing.
- **Log**: one JSON object per alert and notification, appended to a file or stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from analysis.alerts.rules import ZERO_TIME, Alert, _iso
from telemetry.errors import NeighborscopeError


class NotifyError(NeighborscopeError):
    """A notification could not be delivered (receiver down, non-2xx answer)."""


def _status(a: Alert) -> str:
    return "resolved" if a.state == "resolved" else "firing"


def _ends_at(a: Alert) -> str:
    return (_iso(a.resolved_at) or ZERO_TIME) if a.state == "resolved" else ZERO_TIME


def postable_alerts(alerts: Sequence[Alert], generator_url: str = "") -> list[dict[str, Any]]:
    """Alertmanager API v2 ``PostableAlerts``: firing alerts without ``endsAt``, resolved ones with it."""
    out = []
    for a in alerts:
        item: dict[str, Any] = {
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "startsAt": _iso(a.fired_at or a.active_at),
            "generatorURL": generator_url,
        }
        if a.state == "resolved":
            item["endsAt"] = _iso(a.resolved_at)
        out.append(item)
    return out


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def webhook_payload(
    alerts: Sequence[Alert],
    receiver: str,
    group_labels: Mapping[str, str],
    external_url: str = "",
    generator_url: str = "",
) -> dict[str, Any]:
    """Alertmanager's webhook payload (version "4") for one group of alerts."""
    items = [
        {
            "status": _status(a),
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "startsAt": _iso(a.fired_at or a.active_at),
            "endsAt": _ends_at(a),
            "generatorURL": generator_url,
            "fingerprint": a.fingerprint,
        }
        for a in alerts
    ]
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    return {
        "receiver": receiver,
        "status": "firing" if any(i["status"] == "firing" for i in items) else "resolved",
        "alerts": items,
        "groupLabels": dict(group_labels),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def group_alerts(alerts: Sequence[Alert], group_by: Sequence[str]) -> list[tuple[dict[str, str], list[Alert]]]:
    """Alerts grouped by the values of ``group_by`` labels (Alertmanager's ``group_by``), in a stable order."""
    groups: dict[tuple[str, ...], list[Alert]] = {}
    for a in alerts:
        groups.setdefault(tuple(a.labels.get(k, "") for k in group_by), []).append(a)
    return [(dict(zip(group_by, k, strict=True)), v) for k, v in sorted(groups.items())]


def log_lines(alerts: Sequence[Alert], now: datetime) -> list[str]:
    """One JSON line per alert: time, status, fingerprint, labels, annotations."""
    return [
        json.dumps({"time": _iso(now), "status": _status(a), "state": a.state, "fingerprint": a.fingerprint,
                    "labels": dict(a.labels), "annotations": dict(a.annotations),
                    "startsAt": _iso(a.fired_at or a.active_at), "endsAt": _ends_at(a)}, sort_keys=True)
        for a in alerts
    ]  # fmt: skip


def _post(client: httpx.Client, url: str, body: Any, headers: Mapping[str, str]) -> None:
    try:
        resp = client.post(url, json=body, headers=dict(headers))
    except httpx.HTTPError as exc:
        raise NotifyError(f"POST {url}: {exc.__class__.__name__}: {exc}") from None
    if resp.status_code >= 300:
        raise NotifyError(f"POST {url}: HTTP {resp.status_code}: {resp.text[:200]}")


def post_alertmanager(
    url: str,
    alerts: Sequence[Alert],
    *,
    generator_url: str = "",
    timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
) -> None:
    """POST the alerts to Alertmanager's ``/api/v2/alerts`` (``url`` is its base URL)."""
    if not alerts:
        return
    target = url.rstrip("/") + "/api/v2/alerts"
    with client or httpx.Client(timeout=timeout_s) as c:
        _post(c, target, postable_alerts(alerts, generator_url), headers or {})


def post_webhook(
    url: str,
    alerts: Sequence[Alert],
    *,
    receiver: str = "neighborscope",
    group_by: Sequence[str] = ("alertname", "node"),
    external_url: str = "",
    generator_url: str = "",
    timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
) -> int:
    """POST one v4 payload per group to ``url``; returns the number of POSTs."""
    if not alerts:
        return 0
    n = 0
    with client or httpx.Client(timeout=timeout_s) as c:
        for labels, group in group_alerts(alerts, group_by):
            _post(c, url, webhook_payload(group, receiver, labels, external_url, generator_url), headers or {})
            n += 1
    return n


def write_log(path: Path | str | None, alerts: Sequence[Alert], now: datetime) -> None:
    """Append one JSON line per alert to ``path`` (stderr when None or ``-``)."""
    lines = log_lines(alerts, now)
    if not lines:
        return
    if path is None or str(path) == "-":
        for line in lines:
            print(line, file=sys.stderr)
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
