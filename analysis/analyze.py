"""The whole analysis in one call: phase table + ranked antagonists + notes (`AnalysisResult`).

Public API::

    from analysis.analyze import analyze, analyze_frames, analyze_bench_files, AnalysisResult

    res = analyze(store, victim="hive0")                      # reads the store (lazy scans), then analyze_frames
    res = analyze_frames(runs, requests, tokens, victim="hive0",      # pure: frames in
                         telemetry=TelemetryFrames(accel=..., host=..., host_core=..., tenant=..., run_events=...,
                                                   topology=topo_frame),
                         options=AnalysisOptions(seed=0))
    res = analyze_bench_files(["seed000.txt"], blocks=[("baseline", "hive0"), ("dual", "hive0"), ...])
    res.phases        # pl.DataFrame, analysis.degradation.PHASE_COLUMNS
    res.antagonists   # pl.DataFrame, analysis.attribution.ANTAGONIST_COLUMNS (= res.attribution.antagonists)
    res.attribution   # analysis.attribution.Attribution: index, activity, antagonists, suspects, notes (or None)
    res.notes         # tuple[str, ...]
    res.to_json()     # {"schema_version", "victim", "window_s", "phases": [...], "antagonists": [...], "notes": [...]}

The JSON schema is documented in docs/analysis.md. Store reading is the only I/O here; the rest is pure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from analysis import attribution as attr
from analysis.align import align
from analysis.degradation import PHASE_COLUMNS, Thresholds, phase_degradation, runs_frame
from telemetry.errors import ConfigError
from telemetry.store.base import TelemetryStore
from telemetry.topology import lookup as topology_lookup

SCHEMA_VERSION = 1
TELEMETRY_PAD_S = 60.0


Frame = pl.DataFrame | pl.LazyFrame


@dataclass(frozen=True)
class TelemetryFrames:
    """The telemetry around the victim's runs (schema frames, eager or lazy; None = not collected), the
    ``run_event`` switch_on / switch_off rows of a randomised schedule, and the topology
    (`telemetry.topology.TOPOLOGY_COLUMNS`)."""

    accel: Frame | None = None
    host: Frame | None = None
    host_core: Frame | None = None
    tenant: Frame | None = None
    run_events: pl.DataFrame | None = None
    topology: pl.DataFrame | None = None


@dataclass(frozen=True)
class AnalysisOptions:
    """How to analyse: the baseline phase (one, or per group), the phase order, the degradation thresholds
    (`analysis.degradation.Thresholds`; default seeded with ``seed``), the grid's window (None: chosen from the
    data), circular shifts of the permutation test, and the seed."""

    baseline: str | Mapping[str, str] | None = None
    phase_order: Sequence[str] | None = None
    thresholds: Thresholds | None = None
    window_s: float | None = None
    n_shifts: int = attr.N_SHIFTS
    seed: int = 0


@dataclass(frozen=True)
class AnalysisResult:
    """What `neighborscope analyze` reports: the phase table, the notes, and the victim's `Attribution` (None
    when attribution did not run: no victim, no per-token data or no telemetry; the notes say which)."""

    victim: str | None
    phases: pl.DataFrame
    notes: tuple[str, ...] = ()
    attribution: attr.Attribution | None = field(default=None, repr=False, compare=False)

    @property
    def antagonists(self) -> pl.DataFrame:
        """The ranked antagonists (`analysis.attribution.ANTAGONIST_COLUMNS`; empty without attribution)."""
        if self.attribution is None:
            return pl.DataFrame(schema=attr.ANTAGONIST_COLUMNS)
        return self.attribution.antagonists

    @property
    def window_s(self) -> float | None:
        return None if self.attribution is None else self.attribution.window_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "victim": self.victim,
            "window_s": self.window_s,
            "phases": [_clean(r) for r in self.phases.to_dicts()],
            "antagonists": [_clean(r) for r in self.antagonists.to_dicts()],
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        elif isinstance(v, datetime):
            v = v.isoformat()
        out[k] = v
    return out


# ------------------------------------------------------------------------------------------------ pure


def analyze_frames(
    runs: pl.DataFrame,
    requests: pl.DataFrame | None = None,
    tokens: Frame | None = None,
    *,
    victim: str | None = None,
    telemetry: TelemetryFrames | None = None,
    options: AnalysisOptions | None = None,
) -> AnalysisResult:
    """Phase table for the victim's group (every group when ``victim`` is None) and, when the victim has
    per-token data and telemetry, its `Attribution`. ``runs``: `analysis.degradation.runs_frame`."""
    tel = telemetry or TelemetryFrames()
    opt = options or AnalysisOptions()
    th = opt.thresholds or Thresholds(seed=opt.seed)
    if runs.height == 0:
        raise ConfigError("no benchmark runs to analyse (check --store / --run / --phase / --victim)")
    if victim and victim not in runs["group"].to_list():
        known = sorted(set(runs["group"].to_list()))
        raise ConfigError(f"no benchmark runs of group {victim!r}; groups with runs: {known}")
    tok_df = tokens.collect() if isinstance(tokens, pl.LazyFrame) else tokens
    phases = phase_degradation(runs, requests, tok_df, baseline=opt.baseline, phase_order=opt.phase_order,
                               groups=[victim] if victim else None, thresholds=th)
    notes = _phase_notes(runs, phases, victim, th)
    attribution = None
    if victim is None:
        notes.append("no --victim: phase table for every group, no attribution")
    elif tok_df is None or tok_df.height == 0 or requests is None or requests.height == 0:
        notes.append(f"no per-token data for {victim}: attribution needs per-request / per-token benchmark output "
                     "(summaries alone cannot be put on the telemetry grid)")
    elif tel.accel is None and tel.tenant is None:
        notes.append("no telemetry: attribution skipped")
    else:
        v_runs = runs.filter((pl.col("group") == victim) & pl.col("start").is_not_null() & pl.col("end").is_not_null())
        ids = v_runs["run_id"].to_list()
        grid = align(requests.filter(pl.col("run_id").is_in(ids)), tok_df.filter(pl.col("run_id").is_in(ids)), v_runs,
                     accel=tel.accel, host=tel.host, host_core=tel.host_core, tenant=tel.tenant,
                     window_s=opt.window_s)
        bases = phases.filter(pl.col("group") == victim)["baseline_phase"].unique().to_list()
        bphase = opt.baseline if isinstance(opt.baseline, str) else (bases[0] if bases else None)
        attribution = attr.attribute(grid, victim, baseline_phase=bphase, topology=tel.topology,
                                     run_events=tel.run_events, q=th.q, n_shifts=opt.n_shifts, seed=opt.seed)
        notes.extend(attribution.notes)
    return AnalysisResult(victim=victim, phases=phases, notes=tuple(notes), attribution=attribution)


def _phase_notes(runs: pl.DataFrame, phases: pl.DataFrame, victim: str | None, th: Thresholds) -> list[str]:
    """What limits the phase table: groups with one phase only, comparisons without per-run uncertainty."""
    notes = []
    for g in ([victim] if victim else runs["group"].unique(maintain_order=True).to_list()):
        n_ph = runs.filter(pl.col("group") == g)["phase"].n_unique()
        if n_ph < 2:
            notes.append(f"{g or '(no group)'} has runs in {n_ph} phase(s) only: no phase comparison (import runs "
                         "with --phase, or pass --blocks with --bench)")
    for m, n in phases.group_by("method").len().iter_rows():
        if m == "summary_only":
            notes.append(f"{n} comparison(s) from printed summaries only: the change is exact, but there is no "
                         "per-run uncertainty (no interval, no verdict beyond 'inconclusive'); rerun with K >= 2 "
                         "runs per phase or per-request output for intervals")
        elif m == "window_bootstrap":
            notes.append(f"{n} comparison(s) with one run per phase: block bootstrap over "
                         f"{th.bootstrap_window_s:g} s windows, low confidence (under-covers); K >= 5 runs per "
                         "phase give honest intervals")
    return notes


# ------------------------------------------------------------------------------------------------ I/O edges


def _lazy_or_eager(store: TelemetryStore, measurement: str, start: datetime, end: datetime,
                   tags: Mapping[str, Any] | None = None) -> Frame | None:
    """A lazy scan where the store scans lazily (embedded Parquet), else the rows (None when there are none)."""
    if measurement not in store.measurements():
        return None
    if store.lazy_scan:
        return store.scan(measurement, start, end, tags=tags)
    frame = store.query(measurement, start, end, tags=tags)
    return frame if frame.height else None


def analyze(
    store: Any,
    victim: str | None = None,
    *,
    run_ids: Sequence[str] | None = None,
    phases: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    node: str | None = None,
    topology: pl.DataFrame | None = None,
    baseline: str | Mapping[str, str] | None = None,
    phase_order: Sequence[str] | None = None,
    thresholds: Thresholds | None = None,
    window_s: float | None = None,
    n_shifts: int = attr.N_SHIFTS,
    seed: int = 0,
) -> AnalysisResult:
    """Read the runs (and their requests / tokens artifacts) and the telemetry around them from ``store``, then
    `analyze_frames`. Runs are selected by ``run_ids`` / ``phases`` / ``node`` / time range (a run counts when
    it starts in [start, end)). ``topology`` None: the lookup rule of `telemetry.topology.lookup` (the store's
    ``topology/<node>`` artifact of the runs' node)."""
    from analysis.ingest.model import list_runs, load_requests, load_tokens

    tags: dict[str, Any] = {}
    if node:
        tags["node"] = node
    runs = list_runs(store, tags or None)
    if run_ids:
        want = set(run_ids)
        runs = [r for r in runs if r.run_id in want]
        missing = want - {r.run_id for r in runs}
        if missing:
            raise ConfigError(f"unknown run id(s) {sorted(missing)} in the store")
    if phases:
        runs = [r for r in runs if r.phase in set(phases)]
    if start is not None:
        runs = [r for r in runs if r.start is not None and r.start >= start]
    if end is not None:
        runs = [r for r in runs if r.start is not None and r.start < end]
    # the last stored summary of a run id wins
    runs = list({r.run_id: r for r in runs}.values())
    rf = runs_frame(runs)
    if rf.height == 0:
        raise ConfigError("no benchmark runs in the store match (import some with `neighborscope import bench`)")
    req_frames, tok_frames = [], []
    analysed = [r for r in runs if r.group == victim] if victim else runs
    for r in analysed:
        req = load_requests(store, r.run_id)
        if req is not None and req.height:
            req_frames.append(req)
            tok = load_tokens(store, r.run_id)
            if tok.height:
                tok_frames.append(_tokens_compat(tok))
    requests = pl.concat(req_frames, how="diagonal_relaxed") if req_frames else None
    tokens = pl.concat(tok_frames, how="diagonal_relaxed") if tok_frames else None
    accel = host = host_core = tenant = events = None
    v_runs = rf.filter(pl.col("group") == victim) if victim else rf.head(0)
    if victim and v_runs.height and v_runs["start"].null_count() < v_runs.height:
        lo = v_runs["start"].min() - timedelta(seconds=TELEMETRY_PAD_S)
        hi = v_runs["end"].max() + timedelta(seconds=TELEMETRY_PAD_S)
        ntag = {"node": node} if node else None
        accel = _lazy_or_eager(store, "accel", lo, hi, ntag)
        host = _lazy_or_eager(store, "host", lo, hi, ntag)
        host_core = _lazy_or_eager(store, "host_core", lo, hi, ntag)
        tenant = _lazy_or_eager(store, "tenant", lo, hi, ntag)
        ev = store.query("run_event", lo, hi, tags={"event": ["switch_on", "switch_off"]}) \
            if "run_event" in store.measurements() else None
        events = ev if ev is not None and ev.height else None
        if topology is None:
            found = topology_lookup(None, store, sorted({r.node for r in runs if r.node}) or [node or ""])
            topology = found[0] if found else None
    telemetry = TelemetryFrames(accel, host, host_core, tenant, events, topology)
    options = AnalysisOptions(baseline, phase_order, thresholds, window_s, n_shifts, seed)
    return analyze_frames(rf, requests, tokens, victim=victim, telemetry=telemetry, options=options)


def _tokens_compat(tok: pl.DataFrame) -> pl.DataFrame:
    """Only the columns analysis uses; run_id as Categorical (a run's tokens repeat one id millions of times)."""
    keep = [c for c in ("run_id", "request_index", "time", "itl_ms", "tokens") if c in tok.columns]
    return tok.select(keep).with_columns(pl.col("run_id").cast(pl.Categorical))


def parse_blocks(spec: str | Sequence[str]) -> list[tuple[str, str]]:
    """``"baseline/hive0,dual/hive0,dual/hive1"`` (or a list of ``phase/group``) -> [(phase, group), ...]."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for i, item in enumerate(x.strip() for x in items):
        if not item:
            continue
        phase, sep, group = item.partition("/")
        if not sep or not phase or not group:
            raise ConfigError(f"--blocks item {i + 1} {item!r}: expected PHASE/GROUP (e.g. baseline/hive0)")
        out.append((phase.strip(), group.strip()))
    return out


def bench_runs(paths: Sequence[str | Path], blocks: Sequence[tuple[str, str]] | None = None, *,
               phase: str = "", group: str = "", node: str = "", fmt: str | None = None) -> list[Any]:
    """Parse benchmark files into runs; ``blocks`` maps the k-th run found (in file order) to (phase, group)."""
    from analysis.ingest.importer import parse_bench_files

    runs = parse_bench_files(paths, run_id="bench", phase=phase, group=group, node=node, fmt=fmt)
    if blocks:
        if len(blocks) != len(runs):
            titles = [str(r.extra.get("title", r.source)) for r in runs]
            raise ConfigError(f"--blocks lists {len(blocks)} block(s) but the file(s) hold {len(runs)} run(s): "
                              f"{titles}")
        from dataclasses import replace

        runs = [replace(r, phase=p, group=g) for r, (p, g) in zip(runs, blocks, strict=True)]
    elif any(not r.phase or not r.group for r in runs):
        raise ConfigError("the benchmark runs carry no phase / group: pass --blocks PHASE/GROUP,... (one per run, "
                          "in file order) or --phase / --group for a single run")
    return runs


def analyze_bench_files(
    paths: Sequence[str | Path],
    blocks: Sequence[tuple[str, str]] | None = None,
    *,
    victim: str | None = None,
    baseline: str | Mapping[str, str] | None = None,
    phase_order: Sequence[str] | None = None,
    thresholds: Thresholds | None = None,
    fmt: str | None = None,
    seed: int = 0,
) -> AnalysisResult:
    """The phase table straight from benchmark files (no store, no telemetry, no attribution)."""
    runs = bench_runs(paths, blocks, fmt=fmt)
    if phase_order is None and blocks:
        phase_order = list(dict.fromkeys(p for p, _ in blocks))
    rf = runs_frame(runs)
    reqs = [r.requests for r in runs if r.requests is not None and r.requests.height]
    requests = pl.concat(reqs, how="diagonal_relaxed") if reqs else None
    tokens = None
    if requests is not None:
        from analysis.ingest.model import tokens_frame

        tokens = tokens_frame(requests)
    res = analyze_frames(rf, requests, tokens, options=AnalysisOptions(baseline, phase_order, thresholds,
                                                                       seed=seed))
    if victim:
        if victim not in rf["group"].to_list():
            raise ConfigError(f"no block of group {victim!r}; groups: {sorted(set(rf['group'].to_list()))}")
        phases = res.phases.filter(pl.col("group") == victim)
    else:
        phases = res.phases
    notes = [n for n in res.notes if not n.startswith("no --victim")]
    notes.append("benchmark files only: no telemetry, so no attribution")
    return AnalysisResult(victim=victim, phases=phases, notes=tuple(notes))


def empty_result(victim: str | None = None) -> AnalysisResult:
    return AnalysisResult(victim, pl.DataFrame(schema=PHASE_COLUMNS))


__all__ = ["AnalysisOptions", "AnalysisResult", "TelemetryFrames", "analyze", "analyze_bench_files", "analyze_frames",
           "bench_runs", "empty_result", "parse_blocks"]
