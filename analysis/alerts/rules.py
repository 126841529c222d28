"""The alert engine's pure core: rules (TOML models), alert state, and one evaluation step.

``evaluate(rules, book, inputs, now, silences) -> (book', transitions)`` is a pure function: the state before,
the frames the rules read and the clock in; the state after and what changed out. No I/O: reading the store,
POSTing to Alertmanager and saving the state are `analysis.alerts.engine` and `analysis.alerts.alertmanager`.

Semantics follow Prometheus alerting rules (analysis-methods.md §5):

- A rule yields *candidates*: label sets with annotations, each ``active`` (condition true) or, for hysteresis
  rules, ``hold`` (past the exit threshold not yet: an alert already pending / firing stays active).
- New active candidate → **pending** (``active_at = now``); pending for ``for`` → **firing**; ``for = 0`` fires at
  once. Pending and no longer active → dropped (never notified). Firing and no longer active → kept firing for
  ``keep_firing_for`` (counted from the first evaluation that found it inactive, as Prometheus does), then
  **resolved** (``ends_at = now``). Resolved entries
  are kept ``resolved_retention_s`` so the resolution can be sent, then dropped.
- Identity = label set: the fingerprint is Alertmanager's (FNV-1a 64 over the sorted label names and values), so
  repeated evaluations update one alert (dedup), and a restart that loads the saved book continues it.
- Silences (matchers + time window) keep the state machine running but mark the alert ``silenced``: notifiers skip
  it (planned interference experiments).

Built-in rule kinds (`RuleKind`): ``thermal_temperature`` (temperature above ``threshold_c`` for the whole
``window``, ``for`` a duration), ``thermal_throttling`` (thermal-throttled fraction of the window above
``throttle_fraction``), ``noisy_neighbour`` (the nightly degradation: q below ``fdr`` and its CI lower bound above
``enter_pct``; resolve when ``exit_field`` falls below ``exit_pct``), ``noisy_neighbour_live`` (the live analysis of
the serving engines' metrics over a rolling ``lookback``: an antagonist with q below ``fdr`` whose effect on the
victim's p99 ITL or TTFT has its interval's lower bound above ``enter_pct``; resolves after ``clear_after``
consecutive evaluations below ``exit_pct``), ``perf_regression`` (`analysis.history.regression` statuses), ``thermal_regression``
(`analysis.history.thermal` findings), ``stale_telemetry`` (a node silent for ``intervals`` × ``interval``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from telemetry.config import Duration

AlertStateName = Literal["pending", "firing", "resolved"]
RuleKind = Literal[
    "thermal_temperature", "thermal_throttling", "noisy_neighbour", "noisy_neighbour_live", "perf_regression",
    "thermal_regression", "stale_telemetry",
]  # fmt: skip
Severity = Literal["critical", "warning", "info"]

ZERO_TIME = "0001-01-01T00:00:00Z"
#: labels every alert carries (``none`` where a label does not apply)
CORE_LABELS = ("alertname", "severity", "node", "victim", "antagonist", "resource")
#: annotations every alert carries (empty string where a value does not apply)
CORE_ANNOTATIONS = ("summary", "effect", "ci_low", "ci_high", "dashboard_url")


class Rule(BaseModel):
    """One alert rule (a ``[[rule]]`` table of alerts.toml). Parameters that do not apply to ``kind`` are ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(description="alertname")
    kind: RuleKind
    severity: Severity = "warning"
    for_s: Duration = Field(0.0, alias="for")
    keep_firing_for_s: Duration = Field(0.0, alias="keep_firing_for")
    enabled: bool = True
    clear_after: int = Field(
        1, ge=1, description="a firing alert resolves only after this many consecutive evaluations found it clear"
    )
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str | None = Field(None, description="summary template: {node}, {victim}, {value}, ... from the labels")
    # thermal
    threshold_c: float = 85.0
    window_s: Duration = 60.0
    throttle_fraction: float = Field(0.1, ge=0, le=1)
    # noisy neighbour (percent slowdown, positive = slower)
    enter_pct: float = 10.0
    exit_pct: float = 5.0
    exit_field: Literal["ci_high", "effect"] = "ci_high"
    fdr: float = Field(0.05, gt=0, le=1, description="q-value gate: an effect alerts only when q < fdr")
    # live noisy neighbour
    lookback_s: Duration = Field(1800.0, alias="lookback", description="rolling window of the live analysis")
    metrics: list[Literal["itl", "ttft"]] = Field(default_factory=lambda: ["itl", "ttft"])
    shifts: int = Field(999, ge=0, description="circular shifts of the permutation test (0 = every offset)")
    # regressions
    statuses: list[Literal["suspected", "confirmed"]] = Field(default_factory=lambda: ["suspected", "confirmed"])
    severity_suspected: Severity = "warning"
    severity_confirmed: Severity = "critical"
    # stale telemetry
    interval_s: Duration = 10.0
    intervals: int = Field(3, ge=1)


class Silence(BaseModel):
    """Mute alerts whose labels match every matcher (exact value, or a regex after ``~``) between two times."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str = ""
    created_by: str = ""
    id: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.matchers.items():
            have = labels.get(k, "")
            if v.startswith("~"):
                if not re.fullmatch(v[1:], have):
                    return False
            elif have != v:
                return False
        return True


def builtin_rules() -> list[Rule]:
    """The default rule set: what `neighborscope alerts` evaluates unless alerts.toml replaces a rule by name."""
    return [
        Rule(name="GpuTemperatureHigh", kind="thermal_temperature", severity="critical", threshold_c=85.0,
             window_s=60, **{"for": "5m", "keep_firing_for": "5m"}),
        Rule(name="GpuThermalThrottling", kind="thermal_throttling", severity="warning", throttle_fraction=0.1,
             window_s=60, **{"for": "5m", "keep_firing_for": "5m"}),
        Rule(name="NoisyNeighborDegradation", kind="noisy_neighbour", severity="warning", enter_pct=10.0,
             exit_pct=5.0, fdr=0.05, **{"for": "5m", "keep_firing_for": "10m"}),
        Rule(name="PerfRegression", kind="perf_regression", severity="critical"),
        Rule(name="ThermalRegression", kind="thermal_regression", severity="critical"),
        Rule(name="TelemetryStale", kind="stale_telemetry", severity="warning", interval_s=10, intervals=3),
        Rule(name="NoisyNeighbour", kind="noisy_neighbour_live", severity="warning", enter_pct=10.0, exit_pct=5.0,
             exit_field="effect", fdr=0.05, clear_after=3, **{"lookback": "30m", "for": "2m"}),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Alerts and their state


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over sorted (name, 0xff, value, 0xff), 16 hex digits."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for chunk in (name.encode(), b"\xff", str(labels[name]).encode(), b"\xff"):
            for byte in chunk:
                h ^= byte
                h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@dataclass(frozen=True)
class Alert:
    """One alert instance (identified by its labels). Times are UTC datetimes."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: AlertStateName
    active_at: datetime
    last_active_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    silenced: bool = False
    value: float | None = None
    notified: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # notifier -> {state, at}
    keep_firing_since: datetime | None = None
    clear_count: int = 0  # consecutive evaluations that found a firing alert clear (hysteresis: `Rule.clear_after`)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the engine's fields plus Alertmanager's (``status``, ``startsAt``, ``endsAt``, ``fingerprint``)
        so readers that know Alertmanager's shape (the dashboard) read it as is."""
        return {
            "fingerprint": self.fingerprint, "status": "resolved" if self.state == "resolved" else self.state,
            "startsAt": _iso(self.fired_at or self.active_at),
            "endsAt": _iso(self.resolved_at) if self.state == "resolved" else ZERO_TIME,
            "labels": dict(self.labels), "annotations": dict(self.annotations), "state": self.state,
            "active_at": _iso(self.active_at), "last_active_at": _iso(self.last_active_at),
            "fired_at": _iso(self.fired_at), "resolved_at": _iso(self.resolved_at), "silenced": self.silenced,
            "value": self.value, "notified": {k: dict(v) for k, v in self.notified.items()},
            "keep_firing_since": _iso(self.keep_firing_since), "clear_count": self.clear_count,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        return cls(
            labels=dict(d["labels"]), annotations=dict(d.get("annotations", {})), state=d["state"],
            active_at=_dt(d["active_at"]), last_active_at=_dt(d["last_active_at"]),  # type: ignore[arg-type]
            fired_at=_dt(d.get("fired_at")), resolved_at=_dt(d.get("resolved_at")),
            silenced=bool(d.get("silenced", False)), value=d.get("value"),
            notified={k: dict(v) for k, v in d.get("notified", {}).items()},
            keep_firing_since=_dt(d.get("keep_firing_since")), clear_count=int(d.get("clear_count", 0)),
        )  # fmt: skip


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dt(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class AlertBook:
    """Every known alert by fingerprint (the persisted state)."""

    alerts: Mapping[str, Alert] = field(default_factory=dict)
    evaluated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "evaluated_at": _iso(self.evaluated_at),
                "alerts": {fp: a.to_dict() for fp, a in sorted(self.alerts.items())}}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AlertBook:
        return cls({fp: Alert.from_dict(a) for fp, a in d.get("alerts", {}).items()}, _dt(d.get("evaluated_at")))


@dataclass(frozen=True)
class Transition:
    """A change of one alert's state: ``before`` is None for a new alert, ``after`` None when it was dropped."""

    fingerprint: str
    before: AlertStateName | None
    after: AlertStateName | None
    alert: Alert


@dataclass(frozen=True)
class Candidate:
    """What a rule saw for one label set this evaluation."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    active: bool
    hold: bool = False
    value: float | None = None


@dataclass(frozen=True)
class AlertInputs:
    """The frames the rules read (any may be empty / None: its rules then see nothing).

    - ``accel``: recent ``accel`` rows (time, node, device, group, temp_c, throttle_thermal) for the thermal rules;
    - ``last_seen``: node, last_seen (Datetime UTC) per node known in the lookback (stale telemetry);
    - ``degradation``: node, victim, antagonist, resource, metric, effect_pct, ci_low_pct, ci_high_pct[, q]
      (positive = the victim is slower);
    - ``regressions``: `analysis.history.regression.STATUS_SCHEMA` rows;
    - ``thermal``: `analysis.history.thermal.FINDING_SCHEMA` rows;
    - ``live``: `LIVE_SCHEMA` rows: the live analysis of each victim group with serving data over each live rule's
      lookback (one row per victim, antagonist and metric; positive effect = the victim is slower).
    """

    accel: pl.DataFrame | None = None
    last_seen: pl.DataFrame | None = None
    degradation: pl.DataFrame | None = None
    regressions: pl.DataFrame | None = None
    thermal: pl.DataFrame | None = None
    dashboard_url: str = ""
    live: pl.DataFrame | None = None


LIVE_SCHEMA: dict[str, pl.DataType] = {
    "rule": pl.String(), "node": pl.String(), "victim": pl.String(), "antagonist": pl.String(),
    "resource": pl.String(), "metric": pl.String(), "effect_pct": pl.Float64(), "ci_low_pct": pl.Float64(),
    "ci_high_pct": pl.Float64(), "q": pl.Float64(), "design": pl.String(), "confidence": pl.String(),
    "evidence": pl.String(), "range_from": pl.Datetime("us", "UTC"), "range_until": pl.Datetime("us", "UTC"),
}  # fmt: skip
"""The live noisy-neighbour rule's input (`AlertInputs.live`): ``rule`` names the rule whose lookback it was
computed for; ``evidence`` is the attribution's evidence lines joined with ``; ``."""


# ---------------------------------------------------------------------------------------------------------------
# Candidates per rule kind


def _fmt(v: float | None, digits: int = 1) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _labels(rule: Rule, severity: str | None = None, **values: str) -> dict[str, str]:
    base = {"alertname": rule.name, "severity": severity or rule.severity, "node": "none", "victim": "none",
            "antagonist": "none", "resource": "none"}  # fmt: skip
    base.update({k: (v if v else "none") for k, v in values.items()})
    base.update(rule.labels)
    return base


def _annotations(
    rule: Rule, labels: Mapping[str, str], default_summary: str, dashboard_url: str, **values: str
) -> dict[str, str]:
    summary = default_summary
    if rule.summary:
        try:
            summary = rule.summary.format(**labels, **values)
        except (KeyError, IndexError, ValueError):
            summary = rule.summary
    out = {"summary": summary, "effect": "", "ci_low": "", "ci_high": "", "dashboard_url": dashboard_url}
    out.update(values)
    return out


def _dash(inputs: AlertInputs, **params: str) -> str:
    if not inputs.dashboard_url:
        return ""
    query = "&".join(f"{k}={v}" for k, v in params.items() if v and v != "none")
    return (
        f"{inputs.dashboard_url}{'&' if '?' in inputs.dashboard_url else '?'}{query}" if query else inputs.dashboard_url
    )


def _recent(frame: pl.DataFrame | None, now: datetime, window_s: float) -> pl.DataFrame | None:
    if frame is None or frame.height == 0:
        return None
    return frame.filter((pl.col("time") > now - timedelta(seconds=window_s)) & (pl.col("time") <= now))


def _thermal_temperature(rule: Rule, inputs: AlertInputs, now: datetime) -> list[Candidate]:
    f = _recent(inputs.accel, now, rule.window_s)
    if f is None or "temp_c" not in f.columns or f.height == 0:
        return []
    grp = pl.col("group").first() if "group" in f.columns else pl.lit("")
    agg = (
        f.filter(pl.col("temp_c").is_not_null())
        .group_by("node", "device")
        .agg(pl.col("temp_c").min().alias("tmin"), pl.col("temp_c").max().alias("tmax"), grp.alias("group"))
    )
    out = []
    for r in agg.iter_rows(named=True):
        labels = _labels(rule, node=r["node"], victim=r["group"] or "", resource="thermal", gpu=r["device"])
        summary = f"{r['device']} on {r['node']} at {r['tmax']:.0f}°C (above {rule.threshold_c:.0f}°C for the last {rule.window_s:.0f} s)"
        ann = _annotations(
            rule,
            labels,
            summary,
            _dash(inputs, node=r["node"], device=r["device"]),
            effect=_fmt(r["tmax"]),
            value=_fmt(r["tmax"]),
        )
        out.append(Candidate(labels, ann, active=r["tmin"] > rule.threshold_c, value=r["tmax"]))
    return out


def _thermal_throttling(rule: Rule, inputs: AlertInputs, now: datetime) -> list[Candidate]:
    f = _recent(inputs.accel, now, rule.window_s)
    if f is None or "throttle_thermal" not in f.columns or f.height == 0:
        return []
    grp = pl.col("group").first() if "group" in f.columns else pl.lit("")
    agg = (
        f.filter(pl.col("throttle_thermal").is_not_null())
        .group_by("node", "device")
        .agg(pl.col("throttle_thermal").cast(pl.Float64).mean().alias("frac"), grp.alias("group"))
    )
    out = []
    for r in agg.iter_rows(named=True):
        labels = _labels(rule, node=r["node"], victim=r["group"] or "", resource="thermal", gpu=r["device"])
        summary = f"{r['device']} on {r['node']} thermally throttled {100 * r['frac']:.0f} % of the last {rule.window_s:.0f} s"
        ann = _annotations(
            rule,
            labels,
            summary,
            _dash(inputs, node=r["node"], device=r["device"]),
            effect=_fmt(100 * r["frac"]),
            value=_fmt(r["frac"], 3),
        )
        out.append(Candidate(labels, ann, active=r["frac"] > rule.throttle_fraction, value=r["frac"]))
    return out


def _noisy_neighbour(rule: Rule, inputs: AlertInputs, now: datetime) -> list[Candidate]:
    f = inputs.degradation
    if f is None or f.height == 0:
        return []
    out = []
    for r in f.iter_rows(named=True):
        lo, hi, eff = r.get("ci_low_pct"), r.get("ci_high_pct"), r.get("effect_pct")
        if lo is None or eff is None:
            continue
        exit_value = hi if rule.exit_field == "ci_high" and hi is not None else eff
        labels = _labels(rule, node=r.get("node") or "", victim=r.get("victim") or "",
                         antagonist=r.get("antagonist") or "", resource=r.get("resource") or "",
                         metric=r.get("metric") or "")  # fmt: skip
        summary = (
            f"{labels['victim']} on {labels['node']} is {eff:.1f} % slower ({labels.get('metric', '')}) "
            f"while {labels['antagonist']} runs, through {labels['resource']} (95 % CI {lo:.1f} to {_fmt(hi)} %)"
        )
        qv = r.get("q")
        significant = qv is not None and math.isfinite(qv) and qv < rule.fdr
        ann = _annotations(rule, labels, summary, _dash(inputs, node=labels["node"], victim=labels["victim"]),
                           effect=_fmt(eff, 2), ci_low=_fmt(lo, 2), ci_high=_fmt(hi, 2),
                           q_value=_fmt(qv, 4))  # fmt: skip
        out.append(Candidate(labels, ann, active=significant and lo > rule.enter_pct, hold=exit_value >= rule.exit_pct,
                             value=eff))  # fmt: skip
    return out


_METRIC_WORDS = {"itl": "p99 inter-token latency (decode)", "ttft": "p99 time to first token (prefill)"}


def noisy_neighbours_url(base: str, node: str, victim: str, start: datetime | None, end: datetime | None) -> str:
    """The dashboard's noisy-neighbour page on ``victim`` of ``node`` over [start, end): ``<base>/noisy-neighbours?
    node=...&victim=...&from=...&until=...`` (``base``: the ``[alerts] dashboard_url``, its query dropped; "" when
    no dashboard is configured)."""
    from urllib.parse import urlencode, urlsplit, urlunsplit

    if not base:
        return ""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/noisy-neighbours"
    params = {"node": node, "victim": victim, "from": _iso_s(start), "until": _iso_s(end)}
    query = urlencode({k: v for k, v in params.items() if v and v != "none"})
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def _iso_s(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _noisy_neighbour_live(rule: Rule, inputs: AlertInputs, now: datetime) -> list[Candidate]:
    f = inputs.live
    if f is None or f.height == 0:
        return []
    if "rule" in f.columns:
        f = f.filter(pl.col("rule").is_null() | (pl.col("rule") == rule.name))
    f = f.filter(pl.col("metric").is_in(list(rule.metrics)))
    out = []
    for r in f.iter_rows(named=True):
        lo, hi, eff, qv = r.get("ci_low_pct"), r.get("ci_high_pct"), r.get("effect_pct"), r.get("q")
        if eff is None or not math.isfinite(eff):
            continue
        significant = qv is not None and math.isfinite(qv) and qv < rule.fdr
        exit_value = hi if rule.exit_field == "ci_high" and hi is not None else eff
        labels = _labels(rule, node=r.get("node") or "", victim=r.get("victim") or "",
                         antagonist=r.get("antagonist") or "", resource=r.get("resource") or "",
                         metric=r.get("metric") or "")  # fmt: skip
        words = _METRIC_WORDS.get(labels["metric"], labels["metric"])
        summary = (
            f"{labels['antagonist']} slows {labels['victim']} on {labels['node']}: {words} {eff:+.1f} % "
            f"(95 % CI {_fmt(lo)} to {_fmt(hi)} %, q = {_fmt(qv, 3)}) through {labels['resource']}, "
            f"{r.get('design') or 'correlational'}, over the last {rule.lookback_s / 60:.0f} min of live traffic"
        )
        url = noisy_neighbours_url(inputs.dashboard_url, labels["node"], labels["victim"], r.get("range_from"),
                                   r.get("range_until"))  # fmt: skip
        ann = _annotations(rule, labels, summary, url, effect=_fmt(eff, 2), ci_low=_fmt(lo, 2), ci_high=_fmt(hi, 2),
                           q_value=_fmt(qv, 4), metric=labels["metric"], design=r.get("design") or "",
                           confidence=r.get("confidence") or "", evidence=r.get("evidence") or "",
                           range_from=_iso_s(r.get("range_from")), range_until=_iso_s(r.get("range_until")))  # fmt: skip
        active = significant and lo is not None and lo > rule.enter_pct
        out.append(Candidate(labels, ann, active=active, hold=exit_value >= rule.exit_pct, value=eff))
    return out


_HEADLINE = ("output_tok_s", "total_tok_s", "requests_per_s", "tpot_ms_mean", "itl_ms_p99", "ttft_ms_p99")


def _perf_regression(rule: Rule, inputs: AlertInputs, now: datetime) -> list[Candidate]:
    f = inputs.regressions
    if f is None or f.height == 0:
        return []
    hits = f.filter(pl.col("status").is_in(list(rule.statuses)))
    out = []
    for (node, test, group), part in hits.group_by(["node", "test", "group"], maintain_order=True):
        rows = part.to_dicts()
        rows.sort(key=lambda r: (_HEADLINE.index(r["metric"]) if r["metric"] in _HEADLINE else 99, r["metric"]))
        head = rows[0]
        confirmed = any(r["status"] == "confirmed" for r in rows)
        sev = rule.severity_confirmed if confirmed else rule.severity_suspected
        labels = _labels(rule, sev, node=str(node), victim=str(group), antagonist="none", resource="performance",
                         test=str(test))  # fmt: skip
        moved = ", ".join(f"{r['metric']} {r['effect_pct']:+.1f} %" for r in rows)
        state = "confirmed" if confirmed else "suspected (rerun requested)"
        summary = f"{state} regression of {test} on {node}/{group} since night {head['change_night']}: {moved}"
        ann = _annotations(rule, labels, summary, _dash(inputs, node=str(node), victim=str(group)),
                           effect=_fmt(head["effect_pct"], 2), ci_low=_fmt(head["ci_low_pct"], 2),
                           ci_high=_fmt(head["ci_high_pct"], 2), metric=head["metric"],
                           change_night=str(head["change_night"]), status="confirmed" if confirmed else "suspected",
                           rerun_requested=str(any(r["rerun_requested"] for r in rows)).lower(),
                           description="; ".join(f"{r['metric']}: {r['evidence']}" for r in rows))  # fmt: skip
        out.append(Candidate(labels, ann, active=True, value=head["effect_pct"]))
    return out


def _thermal_regression(rule: Rule, inputs: AlertInputs, now: datetime) -> list[Candidate]:
    f = inputs.thermal
    if f is None or f.height == 0:
        return []
    hits = f.filter(pl.col("status").is_in(list(rule.statuses)))
    out = []
    for (node, device), part in hits.group_by(["node", "device"], maintain_order=True):
        rows = sorted(part.to_dicts(), key=lambda r: r["metric"] != "c_per_w")
        head = rows[0]
        confirmed = any(r["status"] == "confirmed" for r in rows)
        sev = rule.severity_confirmed if confirmed else rule.severity_suspected
        labels = _labels(rule, sev, node=str(node), victim=str(device), antagonist="none", resource="thermal",
                         gpu=str(device))  # fmt: skip
        unit = {"c_per_w": "°C/W", "residual_c": "°C"}
        moved = ", ".join(f"{r['metric']} {r['effect']:+.3g} {unit.get(r['metric'], '')}" for r in rows)
        summary = f"{device} on {node} runs hotter for the same power since night {head['change_night']}: {moved}"
        ann = _annotations(rule, labels, summary, _dash(inputs, node=str(node), device=str(device)),
                           effect=_fmt(head["effect"], 4), ci_low=_fmt(head["ci_low"], 4),
                           ci_high=_fmt(head["ci_high"], 4), metric=head["metric"],
                           change_night=str(head["change_night"]), peer_z=_fmt(head.get("peer_z"), 2),
                           status="confirmed" if confirmed else "suspected")  # fmt: skip
        out.append(Candidate(labels, ann, active=True, value=head["effect"]))
    return out


def _stale(rule: Rule, inputs: AlertInputs, now: datetime) -> list[Candidate]:
    f = inputs.last_seen
    if f is None or f.height == 0:
        return []
    limit = rule.interval_s * rule.intervals
    out = []
    for r in f.iter_rows(named=True):
        age = (now - r["last_seen"]).total_seconds()
        labels = _labels(rule, node=r["node"], resource="telemetry")
        summary = (
            f"no telemetry from {r['node']} for {age:.0f} s ({rule.intervals} intervals of {rule.interval_s:.0f} s)"
        )
        ann = _annotations(
            rule,
            labels,
            summary,
            _dash(inputs, node=r["node"]),
            effect=_fmt(age, 0),
            last_seen=_iso(r["last_seen"]) or "",
        )
        out.append(Candidate(labels, ann, active=age > limit, value=age))
    return out


_KINDS = {
    "thermal_temperature": _thermal_temperature,
    "thermal_throttling": _thermal_throttling,
    "noisy_neighbour": _noisy_neighbour,
    "noisy_neighbour_live": _noisy_neighbour_live,
    "perf_regression": _perf_regression,
    "thermal_regression": _thermal_regression,
    "stale_telemetry": _stale,
}


def candidates(rule: Rule, inputs: AlertInputs, now: datetime) -> list[Candidate]:
    """What ``rule`` sees in ``inputs`` at ``now`` (one candidate per label set)."""
    return _KINDS[rule.kind](rule, inputs, now) if rule.enabled else []


# ---------------------------------------------------------------------------------------------------------------
# One evaluation


def evaluate(
    rules: Sequence[Rule],
    book: AlertBook,
    inputs: AlertInputs,
    now: datetime,
    silences: Iterable[Silence] = (),
    resolved_retention_s: float = 900.0,
) -> tuple[AlertBook, list[Transition]]:
    """One evaluation step (Prometheus semantics, see the module docstring): the new book and the transitions."""
    active_sil = [s for s in silences if s.active(now)]
    by_name = {r.name: r for r in rules}
    seen: dict[str, Candidate] = {}
    for rule in rules:
        for c in candidates(rule, inputs, now):
            seen[fingerprint(c.labels)] = c
    alerts: dict[str, Alert] = {}
    transitions: list[Transition] = []
    for fp in sorted(set(book.alerts) | set(seen)):
        old = book.alerts.get(fp)
        cand = seen.get(fp)
        rule = by_name.get((cand.labels if cand else old.labels).get("alertname", "")) if (cand or old) else None
        new = _step(old, cand, rule, now, resolved_retention_s)
        if new is not None:
            new = replace(new, silenced=any(s.matches(new.labels) for s in active_sil))
            alerts[fp] = new
        before = old.state if old else None
        after = new.state if new else None
        if before != after:
            transitions.append(Transition(fp, before, after, new or old))  # type: ignore[arg-type]
    return AlertBook(alerts, now), transitions


def _step(
    old: Alert | None, cand: Candidate | None, rule: Rule | None, now: datetime, retention_s: float
) -> Alert | None:
    for_s = rule.for_s if rule else 0.0
    keep_s = rule.keep_firing_for_s if rule else 0.0
    live = old is not None and old.state in ("pending", "firing")
    is_active = cand is not None and (cand.active or (live and cand.hold))
    if is_active:
        assert cand is not None
        if not live:
            fresh = Alert(cand.labels, cand.annotations, "pending", now, now, value=cand.value)
            return replace(fresh, state="firing", fired_at=now) if for_s <= 0 else fresh
        assert old is not None
        upd = replace(old, annotations=cand.annotations, last_active_at=now, value=cand.value, keep_firing_since=None,
                      clear_count=0)  # fmt: skip
        if old.state == "pending" and (now - old.active_at).total_seconds() >= for_s:
            return replace(upd, state="firing", fired_at=now)
        return upd
    if old is None:
        return None
    if old.state == "pending":
        return None
    if old.state == "firing":
        # hysteresis: a firing alert resolves only after `clear_after` consecutive clear evaluations
        clear_after = rule.clear_after if rule is not None else 1
        if old.clear_count + 1 < clear_after:
            upd = replace(old, clear_count=old.clear_count + 1)
            return replace(upd, annotations=cand.annotations) if cand is not None else upd
        # Prometheus: keep firing for keep_firing_for counted from the first evaluation that found it inactive
        since = old.keep_firing_since or now
        if rule is not None and keep_s > 0 and (now - since).total_seconds() < keep_s:
            return replace(old, keep_firing_since=since)
        return replace(old, state="resolved", resolved_at=now, keep_firing_since=None, clear_count=0)
    # resolved: keep for a while so the resolution can be (re)sent
    if old.resolved_at is not None and (now - old.resolved_at).total_seconds() > retention_s:
        return None
    return old


# ---------------------------------------------------------------------------------------------------------------
# What to notify


def due(book: AlertBook, notifier: str, now: datetime, repeat_s: float) -> list[Alert]:
    """Alerts ``notifier`` must send now: firing ones not yet sent as firing (or last sent ``repeat_s`` ago),
    resolved ones it had sent as firing. Silenced firing alerts are held back."""
    out = []
    for a in book.alerts.values():
        sent = a.notified.get(notifier)
        if a.state == "firing" and not a.silenced:
            if sent is None or sent.get("state") != "firing" or (now - _dt(sent["at"])).total_seconds() >= repeat_s:
                out.append(a)
        elif a.state == "resolved" and sent is not None and sent.get("state") == "firing":
            out.append(a)
    return sorted(out, key=lambda a: (a.name, a.fingerprint))


def mark_sent(book: AlertBook, notifier: str, sent: Iterable[Alert], now: datetime) -> AlertBook:
    """The book with ``sent`` recorded as delivered by ``notifier`` at ``now``."""
    alerts = dict(book.alerts)
    for a in sent:
        cur = alerts.get(a.fingerprint)
        if cur is None:
            continue
        notified = {**cur.notified, notifier: {"state": cur.state, "at": _iso(now) or ""}}
        alerts[a.fingerprint] = replace(cur, notified=notified)
    return replace(book, alerts=alerts)


ALERTS_SCHEMA: dict[str, pl.DataType] = {
    "fingerprint": pl.String(), "alertname": pl.String(), "state": pl.String(), "severity": pl.String(),
    "node": pl.String(), "victim": pl.String(), "antagonist": pl.String(), "resource": pl.String(),
    "summary": pl.String(), "effect": pl.String(), "ci_low": pl.String(), "ci_high": pl.String(),
    "dashboard_url": pl.String(), "active_at": pl.Datetime("us", "UTC"), "fired_at": pl.Datetime("us", "UTC"),
    "resolved_at": pl.Datetime("us", "UTC"), "silenced": pl.Boolean(), "labels_json": pl.String(),
}  # fmt: skip


def alerts_frame(book: AlertBook) -> pl.DataFrame:
    """The book as a frame (`ALERTS_SCHEMA`), firing first, then pending, then resolved."""
    import json

    order = {"firing": 0, "pending": 1, "resolved": 2}
    rows = []
    for fp, a in sorted(book.alerts.items(), key=lambda kv: (order[kv[1].state], kv[1].name, kv[0])):
        rows.append({
            "fingerprint": fp, "alertname": a.name, "state": a.state, **{k: a.labels.get(k, "") for k in CORE_LABELS[1:]},
            **{k: a.annotations.get(k, "") for k in CORE_ANNOTATIONS}, "active_at": a.active_at,
            "fired_at": a.fired_at, "resolved_at": a.resolved_at, "silenced": a.silenced,
            "labels_json": json.dumps(dict(a.labels), sort_keys=True),
        })  # fmt: skip
    return pl.DataFrame(rows, schema=ALERTS_SCHEMA)
