"""What the report reads from the store for one window (the only I/O of the report besides writing files).

`read_report_data(store, start, end)` returns a `ReportData`: the window's accelerator / host / tenant telemetry
(only the fields the report draws), the benchmark runs that started in the window with their per-token (or
per-request) latencies, and the history of runs over ``history_days`` before ``end``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from telemetry import topology
from telemetry.schema import empty_frame

ACCEL_FIELDS = ("temp_c", "power_w", "util_pct", "throttle_thermal", "sm_clock_mhz")
HOST_FIELDS = ("cpu_util_pct",)

Step = Callable[[str], None]


def _no_step(_: str) -> None:
    return None


@dataclass
class ReportData:
    """Frames of one report window. ``runs`` holds one dict per run (`analysis.ingest.model.Run` fields)."""

    start: datetime
    end: datetime
    accel: pl.DataFrame
    host: pl.DataFrame
    tenant: pl.DataFrame
    run_event: pl.DataFrame
    runs: list[dict[str, Any]]
    latency: pl.DataFrame  # time, run_id, group, phase, itl_ms (per token) or per request (source column)
    history: list[dict[str, Any]]
    run_objects: list[Any] = field(default_factory=list)  # analysis.ingest.model.Run (no requests attached)
    requests: pl.DataFrame | None = None  # requests layout of the runs (analysis.ingest.model)
    tokens: pl.DataFrame | None = None  # tokens layout of the runs
    history_events: pl.DataFrame | None = None  # run_event summary rows of the history window
    analyses: dict[str, Any] = field(default_factory=dict)  # victim -> analysis.analyze.AnalysisResult
    store: str = ""
    notes: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """(path or input, reason) of what could not be read: the report is incomplete (never an all-clear)."""


class _Unreadable:
    """What this report's reads could not read (besides the files the store itself skipped)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, what: str, exc: BaseException) -> None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.items.append((what, reason))


def _query(
    store: Any,
    name: str,
    start: datetime | None,
    end: datetime | None,
    fields: tuple[str, ...] | None = None,
    unreadable: _Unreadable | None = None,
    node: str | None = None,
) -> pl.DataFrame:
    """The rows of ``name`` in [start, end) (of ``node`` only, when given); a measurement the store does not hold is
    empty. A read that fails is recorded in ``unreadable`` (and the rows are empty: the report says so and is
    incomplete, never silent), or raised without one."""
    if name not in store.measurements():
        return empty_frame(name)
    tags = {"node": node} if node else None
    try:
        return store.query(name, start=start, end=end, tags=tags, fields=list(fields) if fields else None)
    except Exception:
        try:
            return store.query(name, start=start, end=end, tags=tags)
        except Exception as exc:
            if unreadable is None:
                raise
            unreadable.add(f"measurement {name}", exc)
            return empty_frame(name)


def runs_from_events(ev: pl.DataFrame) -> list[dict[str, Any]]:
    """The runs of ``run_event`` rows: one dict per ``summary`` row (its ``metadata_json``), in time order."""
    import json

    if ev.is_empty() or "event" not in ev.columns:
        return []
    rows = ev.filter(pl.col("event") == "summary").sort("time")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for rid, text in zip(rows["run_id"], rows["metadata_json"], strict=True):
        if not text or rid in seen:
            continue
        seen.add(rid)
        try:
            d = json.loads(text)
        except ValueError:
            continue
        d.setdefault("run_id", rid)
        out.append(d)
    return out


def _artifacts(
    store: Any, runs: list[dict[str, Any]], what: str, unreadable: _Unreadable | None = None
) -> dict[str, pl.DataFrame]:
    out: dict[str, pl.DataFrame] = {}
    for r in runs:
        frame = None
        try:
            frame = store.read_artifact(f"bench/{r['run_id']}/{what}")
        except Exception as exc:
            if unreadable is None:
                raise
            unreadable.add(f"artifact bench/{r['run_id']}/{what}", exc)
        if frame is not None and frame.height:
            out[r["run_id"]] = frame
    return out


def _tokens(store: Any, runs: list[dict[str, Any]], unreadable: _Unreadable | None = None) -> dict[str, pl.DataFrame]:
    """Per run, the tokens layout: the stored artifact, else derived from the requests artifact
    (`analysis.ingest.model.load_tokens`)."""
    from analysis.ingest.model import load_tokens

    out: dict[str, pl.DataFrame] = {}
    for r in runs:
        frame = None
        try:
            frame = load_tokens(store, r["run_id"])
        except Exception as exc:
            if unreadable is None:
                raise
            unreadable.add(f"artifact bench/{r['run_id']}/tokens", exc)
        if frame is not None and frame.height:
            out[r["run_id"]] = frame
    return out


def _concat(frames: dict[str, pl.DataFrame]) -> pl.DataFrame | None:
    if not frames:
        return None
    return pl.concat(
        [f.with_columns(pl.col("time").dt.cast_time_unit("ns")) if "time" in f.columns else f for f in frames.values()],
        how="diagonal_relaxed",
    )


def read_latency(
    store: Any,
    runs: list[dict[str, Any]],
    start: datetime,
    end: datetime,
    tokens: dict[str, pl.DataFrame] | None = None,
    unreadable: _Unreadable | None = None,
    node: str | None = None,
) -> pl.DataFrame:
    """Per-token ITL of the runs (artifact ``bench/<run_id>/tokens``) or, without tokens, the per-request
    ``itl_ms_mean`` of `bench_request` rows (``node``'s only, when given). Columns: time, run_id, group, phase,
    itl_ms, source."""
    frames = []
    tags = {r["run_id"]: (r.get("group") or "", r.get("phase") or "") for r in runs}
    toks = tokens if tokens is not None else _tokens(store, runs, unreadable)
    for rid, (group, phase) in tags.items():
        tok = toks.get(rid)
        if tok is not None and tok.height and "itl_ms" in tok.columns:
            frames.append(
                tok.filter(pl.col("itl_ms").is_not_null()).select(
                    "time",
                    pl.lit(rid).alias("run_id"),
                    pl.lit(group).alias("group"),
                    pl.lit(phase).alias("phase"),
                    pl.col("itl_ms").cast(pl.Float64),
                    pl.lit("token").alias("source"),
                )
            )
    have = {f["run_id"][0] for f in frames if f.height}
    missing = [r for r in tags if r not in have]
    if missing:
        br = _query(store, "bench_request", start, end, unreadable=unreadable, node=node)
        if br.height:
            br = br.filter(pl.col("run_id").is_in(missing) & pl.col("itl_ms_mean").is_not_null())
            frames.append(
                br.select(
                    "time",
                    "run_id",
                    "group",
                    "phase",
                    pl.col("itl_ms_mean").alias("itl_ms"),
                    pl.lit("request").alias("source"),
                )
            )
    if not frames:
        return pl.DataFrame(
            schema={
                "time": pl.Datetime("ns", "UTC"),
                "run_id": pl.String,
                "group": pl.String,
                "phase": pl.String,
                "itl_ms": pl.Float64,
                "source": pl.String,
            }
        )
    return pl.concat([f.with_columns(pl.col("time").dt.cast_time_unit("ns")) for f in frames]).sort("time")


def read_topology(store: Any, store_name: str, runs: list[dict[str, Any]]) -> pl.DataFrame | None:
    """The topology the attribution uses (`telemetry.topology.lookup`): ``topology.json`` in or beside the store
    directory (as the simulator and the demo write it), else the store's ``topology/<node>`` artifact of the
    runs' node, else None. A file that is not a topology is a `ConfigError` (the report would otherwise
    attribute without it, silently)."""
    nodes = sorted({r.get("node") or "" for r in runs} - {""})
    found = topology.lookup(topology.store_file(store_name), store, nodes)
    return found[0] if found else None


def read_analyses(
    store: Any,
    victims: list[str],
    start: datetime,
    end: datetime,
    *,
    thresholds: Any = None,
    topology: pl.DataFrame | None = None,
    seed: int = 0,
    step: Step = _no_step,
    node: str | None = None,
    runs: Any = None,
) -> tuple[dict[str, Any], list[str]]:
    """`analysis.analyze.analyze` per victim over the runs that started in ``[start, end)`` (phase table and
    ranked antagonists); ``node``: that node's runs and telemetry only; ``runs``: the runs already listed
    (`analysis.ingest.model.Run`; a fleet's night lists them once). Returns (victim -> AnalysisResult, notes)."""
    from analysis.analyze import analyze

    out: dict[str, Any] = {}
    notes: list[str] = []
    for v in victims:
        step(f"attribution for {v} (permutation tests)")
        try:
            out[v] = analyze(store, v, start=start, end=end, topology=topology, thresholds=thresholds, seed=seed,
                             source="bench", node=node, runs=runs)  # fmt: skip
        except Exception as exc:  # one victim failing must not lose the report
            notes.append(f"analysis of {v} failed: {exc}")
    return out, notes


def read_live_analyses(
    store: Any,
    skip: list[str],
    start: datetime,
    end: datetime,
    *,
    victims: list[str] | None = None,
    thresholds: Any = None,
    seed: int = 0,
    step: Step = _no_step,
    node: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """`analysis.analyze.analyze_live` of each group with ``serving`` rows in ``[start, end)`` (production traffic,
    the serving engine's own metrics) that is not in ``skip`` (groups with benchmark runs: analysed from those);
    only ``victims`` when given, only ``node``'s when given. A group served on several nodes is analysed per node
    (``group@node``)."""
    from analysis.analyze import analyze_live
    from telemetry.errors import NeighborscopeError

    if "serving" not in store.measurements():
        return {}, []
    rows = store.query("serving", start, end, tags={"node": node} if node else None, fields=["interval_s"])
    if rows.height == 0:
        return {}, []
    pairs = sorted(set(rows.select("node", "group").iter_rows()))
    out: dict[str, Any] = {}
    notes: list[str] = []
    for node, group in pairs:
        if not group or group in skip or (victims is not None and group not in victims):
            continue
        several = sum(1 for _, g in pairs if g == group) > 1
        key = f"{group}@{node}" if several else group
        step(f"live attribution for {key} (serving metrics)")
        try:
            out[key] = analyze_live(store, group, start=start, end=end, node=node or None, thresholds=thresholds,
                                    seed=seed)  # fmt: skip
        except (NeighborscopeError, ValueError) as exc:
            notes.append(f"live analysis of {key}: {exc}")
    return out, notes


def read_report_data(
    store: Any,
    start: datetime,
    end: datetime,
    *,
    history_days: float = 30.0,
    step: Step = _no_step,
    store_name: str = "",
    victims: list[str] | None = None,
    thresholds: Any = None,
    seed: int = 0,
    node: str | None = None,
    run_list: Any = None,
) -> ReportData:
    """Read everything the report needs for ``[start, end)``; ``step`` is told what is being read.

    ``victims``: groups to attribute (default: every group with a benchmark run in the window). ``node``: that
    node's telemetry, runs and analyses only (a fleet's nightly report draws one node at a time:
    `analysis.report.fleet`); ``run_list``: the runs already listed (`analysis.ingest.model.Run`), handed to the
    analysis so that it does not list the store's runs again."""
    bad = _Unreadable()
    step("reading accelerator telemetry")
    accel, accel_notes = with_device_labels(
        _query(store, "accel", start, end, ("node", "device", "group", "model", *ACCEL_FIELDS), bad, node)
    )
    step("reading host and tenant telemetry")
    host = _query(store, "host", start, end, unreadable=bad, node=node)
    tenant = _query(store, "tenant", start, end, ("cpu_pct",), bad, node)
    step("reading benchmark runs")
    run_event = _query(store, "run_event", start, end, unreadable=bad, node=node)
    runs = runs_from_events(run_event) if "event" in run_event.columns else []
    step("reading per-request and per-token latencies")
    tokens = _tokens(store, runs, bad)
    requests = _artifacts(store, runs, "requests", bad)
    latency = read_latency(store, runs, start, end, tokens, bad, node)
    step("reading run history")
    h0 = end - timedelta(days=history_days)
    events = _query(store, "run_event", h0, end, unreadable=bad, node=node)
    events = events.filter(pl.col("event") == "summary") if events.height else events
    history = runs_from_events(events)
    groups = list(dict.fromkeys(r.get("group") or "" for r in runs if r.get("group")))
    want = [g for g in (victims if victims is not None else groups) if g in groups]
    analyses, notes = (
        read_analyses(
            store,
            want,
            start,
            end,
            thresholds=thresholds,
            topology=read_topology(store, store_name, runs),
            seed=seed,
            step=step,
            node=node,
            runs=run_list,
        )
        if want
        else ({}, [])
    )
    step("reading serving metrics (live traffic)")
    live, live_notes = read_live_analyses(
        store, groups, start, end, victims=victims, thresholds=thresholds, seed=seed, step=step, node=node
    )
    analyses.update(live)
    notes = [*notes, *live_notes]
    skipped = unreadable_store_files(store)  # what the store skipped; then what else failed, once per file
    unreadable = list(
        dict.fromkeys(
            [*skipped, *((what, why) for what, why in bad.items if not any(path in why for path, _ in skipped))]
        )
    )
    return ReportData(
        history_events=events,
        analyses=analyses,
        notes=[*accel_notes, *notes],
        start=start,
        end=end,
        accel=accel,
        host=host,
        tenant=tenant,
        run_event=run_event,
        runs=runs,
        latency=latency,
        history=history,
        store=store_name,
        run_objects=run_objects(runs, notes),
        requests=_concat(requests),
        tokens=_concat(tokens),
        unreadable=unreadable,
    )


def unreadable_store_files(store: Any) -> list[tuple[str, str]]:
    """(path, reason) of the files the store skipped in its reads so far because they could not be read."""
    return [(str(path), str(reason)) for path, reason in store.unreadable_files()]


UNKNOWN_DEVICE = "device unknown"
"""The label of ``accel`` rows without a ``device`` tag (the collector accepts them; the report names them)."""


def with_device_labels(accel: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """``accel`` with rows that carry no ``device`` (or ``node``) tag labelled `UNKNOWN_DEVICE` (``node unknown``),
    and a note saying how many there were, so that they are shown, not lost or crashed on."""
    notes = []
    for tag, label in (("node", "node unknown"), ("device", UNKNOWN_DEVICE)):
        if tag not in accel.columns:
            if accel.height:
                accel = accel.with_columns(pl.lit(label).alias(tag))
                notes.append(f"{accel.height} accelerator row(s) have no {tag} tag: shown as '{label}'.")
            continue
        n = accel[tag].null_count()
        if n:
            accel = accel.with_columns(pl.col(tag).fill_null(label))
            notes.append(f"{n} accelerator row(s) have no {tag} tag: shown as '{label}'.")
    return accel, notes


def run_objects(runs: list[dict[str, Any]], notes: list[str] | None = None) -> list[Any]:
    """The runs as `analysis.ingest.model.Run` values (what `analysis.degradation` reads). A run whose record is not
    a `Run` (fields missing or of the wrong type) is left out, and said so in ``notes``."""
    import json

    from analysis.ingest.model import Run

    out = []
    for r in runs:
        try:
            out.append(Run.from_json(json.dumps(r)))
        except (TypeError, ValueError) as exc:
            if notes is not None:
                notes.append(
                    f"run {r.get('run_id')} left out of the phase table: its record is not a benchmark run ({exc})"
                )
    return out
