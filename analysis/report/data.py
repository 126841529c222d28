"""What the report reads from the store for one window (the only I/O of the report besides writing files).

`read_report_data(store, start, end)` returns a `ReportData`: the window's accelerator / host / tenant telemetry
(only the fields the report draws), the benchmark runs that started in the window with their per-token (or
per-request) latencies, and the history of runs over ``history_days`` before ``end``.
"""

from __future__ import annotations

import contextlib
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


def _query(store: Any, name: str, start: datetime | None, end: datetime | None,
           fields: tuple[str, ...] | None = None) -> pl.DataFrame:
    try:
        return store.query(name, start=start, end=end, fields=list(fields) if fields else None)
    except Exception:  # an unknown field on an old store: read them all
        try:
            return store.query(name, start=start, end=end)
        except Exception:
            return empty_frame(name)


def _runs(store: Any, start: datetime | None, end: datetime) -> list[dict[str, Any]]:
    ev = _query(store, "run_event", start, end)
    if ev.is_empty() or "event" not in ev.columns:
        return []
    return runs_from_events(ev)


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


def _artifacts(store: Any, runs: list[dict[str, Any]], what: str) -> dict[str, pl.DataFrame]:
    out: dict[str, pl.DataFrame] = {}
    for r in runs:
        frame = None
        with contextlib.suppress(Exception):
            frame = store.read_artifact(f"bench/{r['run_id']}/{what}")
        if frame is not None and frame.height:
            out[r["run_id"]] = frame
    return out


def _tokens(store: Any, runs: list[dict[str, Any]]) -> dict[str, pl.DataFrame]:
    """Per run, the tokens layout: the stored artifact, else derived from the requests artifact
    (`analysis.ingest.model.load_tokens`)."""
    from analysis.ingest.model import load_tokens

    out: dict[str, pl.DataFrame] = {}
    for r in runs:
        frame = None
        with contextlib.suppress(Exception):
            frame = load_tokens(store, r["run_id"])
        if frame is not None and frame.height:
            out[r["run_id"]] = frame
    return out


def _concat(frames: dict[str, pl.DataFrame]) -> pl.DataFrame | None:
    if not frames:
        return None
    return pl.concat([f.with_columns(pl.col("time").dt.cast_time_unit("ns")) if "time" in f.columns else f
                      for f in frames.values()], how="diagonal_relaxed")


def read_latency(store: Any, runs: list[dict[str, Any]], start: datetime, end: datetime,
                 tokens: dict[str, pl.DataFrame] | None = None) -> pl.DataFrame:
    """Per-token ITL of the runs (artifact ``bench/<run_id>/tokens``) or, without tokens, the per-request
    ``itl_ms_mean`` of `bench_request` rows. Columns: time, run_id, group, phase, itl_ms, source."""
    frames = []
    tags = {r["run_id"]: (r.get("group") or "", r.get("phase") or "") for r in runs}
    toks = tokens if tokens is not None else _tokens(store, runs)
    for rid, (group, phase) in tags.items():
        tok = toks.get(rid)
        if tok is not None and tok.height and "itl_ms" in tok.columns:
            frames.append(tok.filter(pl.col("itl_ms").is_not_null()).select(
                "time", pl.lit(rid).alias("run_id"), pl.lit(group).alias("group"), pl.lit(phase).alias("phase"),
                pl.col("itl_ms").cast(pl.Float64), pl.lit("token").alias("source")))
    have = {f["run_id"][0] for f in frames if f.height}
    missing = [r for r in tags if r not in have]
    if missing:
        br = _query(store, "bench_request", start, end)
        if br.height:
            br = br.filter(pl.col("run_id").is_in(missing) & pl.col("itl_ms_mean").is_not_null())
            frames.append(br.select("time", "run_id", "group", "phase", pl.col("itl_ms_mean").alias("itl_ms"),
                                    pl.lit("request").alias("source")))
    if not frames:
        return pl.DataFrame(schema={"time": pl.Datetime("ns", "UTC"), "run_id": pl.String, "group": pl.String,
                                    "phase": pl.String, "itl_ms": pl.Float64, "source": pl.String})
    return pl.concat([f.with_columns(pl.col("time").dt.cast_time_unit("ns")) for f in frames]).sort("time")


def read_topology(store: Any, store_name: str, runs: list[dict[str, Any]]) -> pl.DataFrame | None:
    """The topology the attribution uses (`telemetry.topology.lookup`): ``topology.json`` in or beside the store
    directory (as the simulator and the demo write it), else the store's ``topology/<node>`` artifact of the
    runs' node, else None. A file that is not a topology is a `ConfigError` (the report would otherwise
    attribute without it, silently)."""
    nodes = sorted({r.get("node") or "" for r in runs} - {""})
    found = topology.lookup(topology.store_file(store_name), store, nodes)
    return found[0] if found else None


def read_analyses(store: Any, victims: list[str], start: datetime, end: datetime, *, thresholds: Any = None,
                  topology: pl.DataFrame | None = None, seed: int = 0,
                  step: Step = _no_step) -> tuple[dict[str, Any], list[str]]:
    """`analysis.analyze.analyze` per victim over the runs that started in ``[start, end)`` (phase table and
    ranked antagonists). Returns (victim -> AnalysisResult, notes)."""
    from analysis.analyze import analyze

    out: dict[str, Any] = {}
    notes: list[str] = []
    for v in victims:
        step(f"attribution for {v} (permutation tests)")
        try:
            out[v] = analyze(store, v, start=start, end=end, topology=topology, thresholds=thresholds, seed=seed)
        except Exception as exc:  # one victim failing must not lose the report
            notes.append(f"analysis of {v} failed: {exc}")
    return out, notes


def read_report_data(store: Any, start: datetime, end: datetime, *, history_days: float = 30.0,
                     step: Step = _no_step, store_name: str = "", victims: list[str] | None = None,
                     thresholds: Any = None, seed: int = 0) -> ReportData:
    """Read everything the report needs for ``[start, end)``; ``step`` is told what is being read.

    ``victims``: groups to attribute (default: every group with a benchmark run in the window)."""
    step("reading accelerator telemetry")
    accel = _query(store, "accel", start, end, ("node", "device", "group", "model", *ACCEL_FIELDS))
    step("reading host and tenant telemetry")
    host = _query(store, "host", start, end)
    tenant = _query(store, "tenant", start, end, ("cpu_pct",))
    step("reading benchmark runs")
    run_event = _query(store, "run_event", start, end)
    runs = _runs(store, start, end)
    step("reading per-request and per-token latencies")
    tokens = _tokens(store, runs)
    requests = _artifacts(store, runs, "requests")
    latency = read_latency(store, runs, start, end, tokens)
    step("reading run history")
    h0 = end - timedelta(days=history_days)
    events = _query(store, "run_event", h0, end)
    events = events.filter(pl.col("event") == "summary") if events.height else events
    history = runs_from_events(events)
    groups = list(dict.fromkeys(r.get("group") or "" for r in runs if r.get("group")))
    want = [g for g in (victims if victims is not None else groups) if g in groups]
    analyses, notes = read_analyses(store, want, start, end, thresholds=thresholds,
                                    topology=read_topology(store, store_name, runs), seed=seed,
                                    step=step) if want else ({}, [])
    return ReportData(history_events=events, analyses=analyses, notes=notes, start=start, end=end, accel=accel, host=host, tenant=tenant, run_event=run_event, runs=runs,
                      latency=latency, history=history, store=store_name, run_objects=run_objects(runs, notes),
                      requests=_concat(requests), tokens=_concat(tokens))


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
                notes.append(f"run {r.get('run_id')} left out of the phase table: its record is not a benchmark run "
                             f"({exc})")
    return out
