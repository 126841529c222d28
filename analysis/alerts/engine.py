"""The alert engine around the pure core: config (alerts.toml), persisted state, inputs from the store, notifiers.

One evaluation (`evaluate_once`)::

    config (alerts.toml) + state.json  ->  inputs from the store (recent accel, last seen per node, the nightly
    findings cache, the degradation table, the live analysis of every victim group with serving data over each
    live rule's lookback)  ->  analysis.alerts.rules.evaluate  ->  notifiers (Alertmanager, webhook, log)  ->
    state.json (atomic rename)

The nightly findings (`analysis.history.regression` statuses and `analysis.history.thermal` findings) are recomputed by
`refresh_nightly` (the scheduler's nightly job, or ``neighborscope alerts --refresh``) and cached as Parquet in the
state directory, so the every-minute evaluation stays cheap. Silences live in the state file (``silences``, in
Alertmanager's shape) and in alerts.toml ``[[silence]]`` tables.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from analysis.alerts.alertmanager import NotifyError, post_alertmanager, post_webhook, write_log
from analysis.alerts.rules import (
    LIVE_SCHEMA,
    AlertBook,
    AlertInputs,
    Rule,
    Silence,
    Transition,
    alerts_frame,
    builtin_rules,
    due,
    evaluate,
    mark_sent,
)
from analysis.history.regression import RegressionConfig
from analysis.history.thermal import ThermalConfig
from telemetry.config import Duration, load_toml_model, model_from_dict
from telemetry.errors import ConfigError

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
REGRESSIONS_CACHE = "regressions.parquet"
THERMAL_FITS_CACHE = "thermal_fits.parquet"
THERMAL_CACHE = "thermal_findings.parquet"
DEGRADATION_CACHE = "degradation.parquet"
ACKS_FILE = "acks.json"
RERUNS_FILE = "reruns_requested.json"


class Notifier(BaseModel):
    """A ``[[notifier]]``: where alerts go. ``repeat_interval``: resend a still-firing alert after this long
    (Alertmanager default 0 = every evaluation, which refreshes it; webhook / log default 4 h)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["alertmanager", "webhook", "log"]
    name: str = ""
    url: str = ""
    path: str = "-"
    repeat_interval_s: Duration | None = Field(None, alias="repeat_interval")
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "node"])
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: Duration = Field(5.0, alias="timeout")

    def key(self) -> str:
        return self.name or f"{self.kind}:{self.url or self.path}"

    def repeat_s(self) -> float:
        if self.repeat_interval_s is not None:
            return self.repeat_interval_s
        return 0.0 if self.kind == "alertmanager" else 4 * 3600.0


class EngineSettings(BaseModel):
    """The ``[alerts]`` table."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    state_dir: str | None = None
    dashboard_url: str = ""
    external_url: str = ""
    builtin_rules: bool = True
    resolved_retention_s: Duration = Field(900.0, alias="resolved_retention")
    history_days: int = 60
    stale_lookback_s: Duration = Field(6 * 3600.0, alias="stale_lookback")
    heartbeat_measurement: str = "agent"


class AlertsConfig(BaseModel):
    """alerts.toml: ``[alerts]``, ``[[rule]]``, ``[[notifier]]``, ``[[silence]]``, ``[regression]``, ``[thermal]``.

    ``[regression]`` and ``[thermal]`` are the detectors' own settings (`analysis.history.regression.RegressionConfig`,
    `analysis.history.thermal.ThermalConfig`), validated as they are: one model each, no copy here."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alerts: EngineSettings = Field(default_factory=EngineSettings)
    rule: list[Rule] = Field(default_factory=list)
    notifier: list[Notifier] = Field(default_factory=list)
    silence: list[Silence] = Field(default_factory=list)
    regression: RegressionConfig = Field(default_factory=RegressionConfig)
    thermal: ThermalConfig = Field(default_factory=ThermalConfig)

    def rules(self) -> list[Rule]:
        """Built-in rules (unless disabled), each replaced by a ``[[rule]]`` of the same name, plus the others."""
        own = {r.name: r for r in self.rule}
        base = builtin_rules() if self.alerts.builtin_rules else []
        merged = [own.pop(r.name, r) for r in base]
        return [*merged, *own.values()]


def load_config(path: Path | str | None) -> AlertsConfig:
    """alerts.toml (None: the defaults: built-in rules, a log notifier on stderr)."""
    if path is None:
        return model_from_dict(AlertsConfig, {"notifier": [{"kind": "log"}]}, "defaults")
    cfg = load_toml_model(path, AlertsConfig)
    names = [r.name for r in cfg.rule]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{path}: rule: duplicate rule name(s) {dup}")
    for i, n in enumerate(cfg.notifier):
        if n.kind in ("alertmanager", "webhook") and not n.url:
            raise ConfigError(f"{path}: notifier[{i}].url: a {n.kind} notifier needs a url")
    return cfg


def state_dir_for(cfg: AlertsConfig, store: str | None) -> Path:
    """The state directory: ``[alerts] state_dir``, else ``alerts/`` beside a directory store, else ./alerts."""
    if cfg.alerts.state_dir:
        return Path(cfg.alerts.state_dir)
    if store and "://" not in store:
        return Path(store).resolve().parent / "alerts"
    return Path("neighborscope-data/alerts")


# ---------------------------------------------------------------------------------------------------------------
# State file (alerts + silences), atomic and locked


@dataclass
class EngineState:
    book: AlertBook = field(default_factory=AlertBook)
    silences: list[Silence] = field(default_factory=list)


def _silence_to_am(s: Silence) -> dict[str, Any]:
    return {
        "id": s.id, "comment": s.comment, "createdBy": s.created_by,
        "startsAt": s.starts_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "endsAt": s.ends_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "matchers": [{"name": k, "value": v.removeprefix("~"), "isRegex": v.startswith("~"), "isEqual": True}
                     for k, v in sorted(s.matchers.items())],
    }  # fmt: skip


def _silence_from_am(d: dict[str, Any]) -> Silence:
    matchers = {m["name"]: ("~" if m.get("isRegex") else "") + m["value"] for m in d.get("matchers", [])}
    return Silence(matchers=matchers, starts_at=d["startsAt"], ends_at=d["endsAt"], comment=d.get("comment", ""),
                   created_by=d.get("createdBy", ""), id=d.get("id", ""))  # fmt: skip


def read_state(state_dir: Path) -> EngineState:
    """The persisted state (empty when the engine never ran). A corrupt file is a `ConfigError` naming it."""
    p = state_dir / STATE_FILE
    if not p.exists():
        return EngineState()
    try:
        doc = json.loads(p.read_text())
        return EngineState(AlertBook.from_dict(doc), [_silence_from_am(s) for s in doc.get("silences", [])])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{p}: unreadable alert state ({exc}); move it away to start afresh") from None


def write_state(state_dir: Path, state: EngineState) -> None:
    """Write the state atomically (temp file, fsync, rename)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    doc = state.book.to_dict()
    doc["silences"] = [_silence_to_am(s) for s in state.silences]
    tmp = state_dir / f".{STATE_FILE}.{uuid.uuid4().hex}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, state_dir / STATE_FILE)


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """An exclusive lock on the state directory: one evaluation at a time (scheduler and CLI)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def add_silence(
    state_dir: Path,
    matchers: dict[str, str],
    starts_at: datetime,
    ends_at: datetime,
    comment: str = "",
    created_by: str = "neighborscope",
) -> Silence:
    """Persist a silence (e.g. for a planned stress experiment); returns it with its id."""
    sil = Silence(matchers=matchers, starts_at=starts_at, ends_at=ends_at, comment=comment, created_by=created_by,
                  id=uuid.uuid4().hex[:12])  # fmt: skip
    with locked(state_dir):
        st = read_state(state_dir)
        st.silences.append(sil)
        write_state(state_dir, st)
    return sil


def expire_silence(state_dir: Path, silence_id: str, now: datetime | None = None) -> bool:
    """End silence ``silence_id`` now; False when unknown."""
    now = now or datetime.now(UTC)
    with locked(state_dir):
        st = read_state(state_dir)
        hit = False
        for i, s in enumerate(st.silences):
            if s.id == silence_id:
                st.silences[i] = s.model_copy(update={"ends_at": min(s.ends_at, now)})
                hit = True
        write_state(state_dir, st)
    return hit


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def _read_cache(path: Path) -> pl.DataFrame | None:
    return pl.read_parquet(path) if path.exists() else None


def _write_cache(path: Path, frame: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def last_seen(store: Any, now: datetime, lookback_s: float, measurement: str = "agent") -> pl.DataFrame:
    """node, last_seen: the newest row per node of ``measurement`` in the lookback; nodes the store knows but
    that sent nothing in it get ``now - lookback`` (so they stay stale instead of vanishing)."""
    schema = {"node": pl.String(), "last_seen": pl.Datetime("us", "UTC")}
    start = now - timedelta(seconds=lookback_s)
    try:
        rows = store.query(measurement, start=start, end=now + timedelta(seconds=1))
    except Exception as exc:  # a store without the measurement yet
        log.debug("last_seen: %s", exc)
        rows = pl.DataFrame()
    seen = (rows.group_by("node").agg(pl.col("time").max().alias("last_seen")) if rows.height
            else pl.DataFrame(schema=schema))  # fmt: skip
    seen = seen.with_columns(pl.col("last_seen").dt.cast_time_unit("us")).cast(schema)  # type: ignore[arg-type]
    try:
        known = store.series(measurement)
        nodes = set(known["node"].to_list()) if known.height and "node" in known.columns else set()
    except Exception:
        nodes = set()
    missing = sorted(nodes - set(seen["node"].to_list()))
    if missing:
        seen = pl.concat([seen, pl.DataFrame({"node": missing, "last_seen": [start] * len(missing)}, schema=schema)])
    return seen.sort("node")


def refresh_nightly(store: Any, cfg: AlertsConfig, state_dir: Path, now: datetime | None = None) -> dict[str, int]:
    """Recompute the nightly findings (regression statuses, thermal fits and findings) into the state directory."""
    from analysis.history.regression import load_acks, regression_status, store_history
    from analysis.history.thermal import nightly_residuals, thermal_findings, thermal_fits

    now = now or datetime.now(UTC)
    rcfg, tcfg = cfg.regression, cfg.thermal
    hist = store_history(store, rcfg, days=cfg.alerts.history_days, now=now)
    status = regression_status(hist, rcfg, load_acks(state_dir / ACKS_FILE))
    _write_cache(state_dir / REGRESSIONS_CACHE, status)
    reruns = sorted({(r["node"], r["test"], r["group"]) for r in status.filter(pl.col("rerun_requested")).to_dicts()})
    (state_dir / RERUNS_FILE).write_text(
        json.dumps(
            [{"node": n, "test": t, "group": g, "requested_at": now.isoformat()} for n, t, g in reruns], indent=1
        )
        + "\n"
    )
    # thermal fits: one night at a time, reusing the cached nights (the newest is always recomputed)
    cached = _read_cache(state_dir / THERMAL_FITS_CACHE)
    done: set[date] = set(cached["night"].to_list()) if cached is not None and cached.height else set()
    fits = [cached] if cached is not None and cached.height else []
    offset = timedelta(hours=tcfg.night_offset_h)
    last = (now - offset).date()
    first = last - timedelta(days=cfg.alerts.history_days)
    if done:  # recompute only from the night before the newest cached one (it may have grown since)
        first = max(first, max(done) - timedelta(days=1))
    todo = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    for night in todo:  # one night at a time: a night of 1 Hz telemetry is millions of rows
        start = datetime(night.year, night.month, night.day, tzinfo=UTC) + offset
        accel = store.query("accel", start=start, end=min(now, start + timedelta(days=1)),
                            fields=["temp_c", "power_w", "throttle_thermal", "throttle_power"])  # fmt: skip
        if accel.height:
            f = thermal_fits(accel, tcfg).filter(pl.col("night") == night)
            fits = [x.filter(pl.col("night") != night) for x in fits] + [f]
    all_fits = pl.concat(fits, how="diagonal_relaxed").sort("node", "device", "night") if fits else None
    if all_fits is not None:
        _write_cache(state_dir / THERMAL_FITS_CACHE, all_fits)
        findings = thermal_findings(all_fits, nightly_residuals(all_fits, tcfg), tcfg)
        _write_cache(state_dir / THERMAL_CACHE, findings)
    return {"histories": status.height, "thermal_nights": 0 if all_fits is None else all_fits["night"].n_unique()}


def degradation_alert_frame(antagonists: pl.DataFrame, node: str) -> pl.DataFrame:
    """`analysis.attribution` antagonists (``effect_pct`` = change of the victim's throughput, negative = slower)
    as the noisy-neighbour rule's input: slowdown in % (positive = slower) with its CI, per antagonist."""
    schema = {"node": pl.String(), "victim": pl.String(), "antagonist": pl.String(), "resource": pl.String(),
              "metric": pl.String(), "effect_pct": pl.Float64(), "ci_low_pct": pl.Float64(),
              "ci_high_pct": pl.Float64(), "q": pl.Float64()}  # fmt: skip
    if antagonists.height == 0:
        return pl.DataFrame(schema=schema)
    return (
        antagonists.select(
            pl.lit(node).alias("node"),
            "victim",
            "antagonist",
            "resource",
            pl.lit("output_tok_s").alias("metric"),
            (-pl.col("effect_pct")).alias("effect_pct"),
            (-pl.col("ci_high")).alias("ci_low_pct"),
            (-pl.col("ci_low")).alias("ci_high_pct"),
            pl.col("q_value").alias("q"),
        )
        .filter(pl.col("effect_pct").is_not_null())
        .cast(schema)
    )  # type: ignore[arg-type]


def refresh_degradation(
    store: Any, state_dir: Path, now: datetime | None = None, since_s: float = 86400.0, n_shifts: int = 199
) -> int:
    """Run `analysis.analyze` per (node, victim group) over the runs of the last ``since_s`` seconds and cache the
    antagonists as ``degradation.parquet`` (the noisy-neighbour rule's input); returns its rows. A failing
    analysis is logged and skipped."""
    from analysis.analyze import analyze

    now = now or datetime.now(UTC)
    start = now - timedelta(seconds=since_s)
    ev = store.query("run_event", start=start, end=now, tags={"event": "summary"})
    parts = []
    for node, group in sorted(set(ev.select("node", "group").iter_rows())) if ev.height else []:
        try:
            res = analyze(store, group, node=node or None, start=start, end=now, n_shifts=n_shifts, source="bench")
        except Exception as exc:
            log.warning("degradation of %s on %s: %s", group, node, exc)
            continue
        parts.append(degradation_alert_frame(res.antagonists, node or ""))
    frame = pl.concat(parts) if parts else degradation_alert_frame(pl.DataFrame(), "")
    _write_cache(state_dir / DEGRADATION_CACHE, frame)
    return frame.height


def live_alert_frame(result: Any, rule: str = "", metrics: Sequence[str] = ("itl", "ttft")) -> pl.DataFrame:
    """An `analysis.analyze.AnalysisResult` of a live analysis as the live noisy-neighbour rule's input
    (`analysis.alerts.rules.LIVE_SCHEMA`): per metric and antagonist, the effect on the victim's p99 of that metric
    in % (positive = slower) with its interval, q, design, confidence and evidence."""
    rows = []
    for metric in metrics:
        for r in result.antagonists_of(metric).iter_rows(named=True):
            rows.append({
                "rule": rule, "node": result.node or "", "victim": r["victim"], "antagonist": r["antagonist"],
                "resource": r["resource"], "metric": metric, "effect_pct": r.get(f"{metric}_p99_effect_pct"),
                "ci_low_pct": r.get(f"{metric}_ci_low"), "ci_high_pct": r.get(f"{metric}_ci_high"),
                "q": r["q_value"], "design": r["design"], "confidence": r["confidence"],
                "evidence": "; ".join(r["evidence"] or []), "range_from": result.start, "range_until": result.end,
            })  # fmt: skip
    return pl.DataFrame(rows, schema=LIVE_SCHEMA)


def refresh_live(store: Any, rules: Sequence[Rule], now: datetime) -> pl.DataFrame:
    """The live analysis (`analysis.analyze.analyze_live`) of every (node, victim group) with serving rows in each
    enabled live rule's lookback, as `live_alert_frame` rows. A group that cannot be analysed (too few windows, no
    co-tenant telemetry) is logged and skipped: it has no candidates, so its alerts clear with hysteresis."""
    from analysis.analyze import analyze_live
    from analysis.degradation import Thresholds
    from telemetry.errors import NeighborscopeError

    live_rules = [r for r in rules if r.kind == "noisy_neighbour_live" and r.enabled]
    if not live_rules or "serving" not in store.measurements():
        return pl.DataFrame(schema=LIVE_SCHEMA)
    parts = []
    for rule in live_rules:
        start = now - timedelta(seconds=rule.lookback_s)
        rows = store.query("serving", start, now, fields=["interval_s"])
        pairs = sorted(set(rows.select("node", "group").iter_rows())) if rows.height else []
        # window_s given in the rule: the analysis grid's window (a short lookback needs short windows); else adaptive
        window_s = rule.window_s if "window_s" in rule.model_fields_set else None
        for node, group in pairs:
            try:
                res = analyze_live(store, group, start=start, end=now, node=node or None,
                                   thresholds=Thresholds(q=rule.fdr), window_s=window_s,
                                   n_shifts=rule.shifts)  # fmt: skip
            except (NeighborscopeError, ValueError) as exc:
                log.info("live analysis of %s on %s: %s", group, node, exc)
                continue
            parts.append(live_alert_frame(res, rule.name, rule.metrics))
    return pl.concat(parts) if parts else pl.DataFrame(schema=LIVE_SCHEMA)


def gather_inputs(store: Any, cfg: AlertsConfig, state_dir: Path, now: datetime, rules: Sequence[Rule]) -> AlertInputs:
    """The frames the rules read at ``now``: recent accel rows, last-seen per node, the cached nightly findings, the
    degradation table (``degradation.parquet`` in the state directory, written by the analysis) and the live
    analysis of the serving data (`refresh_live`, every evaluation)."""
    window = max((r.window_s for r in rules if r.kind.startswith("thermal_t")), default=60.0)
    accel = None
    if any(r.kind in ("thermal_temperature", "thermal_throttling") for r in rules):
        accel = store.query("accel", start=now - timedelta(seconds=window), end=now + timedelta(seconds=1),
                            fields=["temp_c", "throttle_thermal"])  # fmt: skip
    seen = None
    if any(r.kind == "stale_telemetry" for r in rules):
        seen = last_seen(store, now, cfg.alerts.stale_lookback_s, cfg.alerts.heartbeat_measurement)
    return AlertInputs(
        accel=accel,
        last_seen=seen,
        degradation=_read_cache(state_dir / DEGRADATION_CACHE),
        regressions=_read_cache(state_dir / REGRESSIONS_CACHE),
        thermal=_read_cache(state_dir / THERMAL_CACHE),
        dashboard_url=cfg.alerts.dashboard_url,
        live=refresh_live(store, rules, now) if any(r.kind == "noisy_neighbour_live" for r in rules) else None,
    )


# ---------------------------------------------------------------------------------------------------------------
# One evaluation


@dataclass(frozen=True)
class EvalResult:
    transitions: list[Transition]
    sent: dict[str, int]
    errors: dict[str, str]
    book: AlertBook


def notify(cfg: AlertsConfig, book: AlertBook, now: datetime) -> tuple[AlertBook, dict[str, int], dict[str, str]]:
    """Send what each notifier owes (`analysis.alerts.rules.due`); mark delivered alerts. Failures are returned,
    not raised: an undelivered alert stays due and goes out at the next evaluation."""
    sent: dict[str, int] = {}
    errors: dict[str, str] = {}
    for n in cfg.notifier:
        key = n.key()
        todo = due(book, key, now, n.repeat_s())
        if not todo:
            continue
        try:
            if n.kind == "alertmanager":
                post_alertmanager(n.url, todo, generator_url=cfg.alerts.external_url, timeout_s=n.timeout_s,
                                  headers=n.headers)  # fmt: skip
            elif n.kind == "webhook":
                post_webhook(
                    n.url,
                    todo,
                    group_by=n.group_by,
                    external_url=cfg.alerts.external_url,
                    generator_url=cfg.alerts.external_url,
                    timeout_s=n.timeout_s,
                    headers=n.headers,
                )
            else:
                write_log(None if n.path == "-" else n.path, todo, now)
        except (NotifyError, OSError) as exc:
            errors[key] = str(exc)
            log.warning("notifier %s: %s", key, exc)
            continue
        book = mark_sent(book, key, todo, now)
        sent[key] = len(todo)
    return book, sent, errors


def evaluate_once(
    cfg: AlertsConfig, store: Any, state_dir: Path, now: datetime | None = None, inputs: AlertInputs | None = None
) -> EvalResult:
    """Load the state, evaluate every rule, notify, save. ``inputs`` replaces the store reads (tests, replays)."""
    now = now or datetime.now(UTC)
    rules = cfg.rules()
    with locked(state_dir):
        st = read_state(state_dir)
        inp = inputs if inputs is not None else gather_inputs(store, cfg, state_dir, now, rules)
        book, transitions = evaluate(rules, st.book, inp, now, [*cfg.silence, *st.silences],
                                     cfg.alerts.resolved_retention_s)  # fmt: skip
        book, sent, errors = notify(cfg, book, now)
        st.book = book
        st.silences = [s for s in st.silences if s.ends_at > now - timedelta(days=7)]
        write_state(state_dir, st)
    return EvalResult(transitions, sent, errors, book)


def current_alerts(state_dir: Path | str) -> pl.DataFrame:
    """The alerts of the persisted state as a frame (`analysis.alerts.rules.ALERTS_SCHEMA`): for the report."""
    return alerts_frame(read_state(Path(state_dir)).book)
