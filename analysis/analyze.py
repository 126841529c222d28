"""The whole analysis in one call: phase table + ranked antagonists + notes (`AnalysisResult`).

Public API::

    from analysis.analyze import analyze, analyze_frames, analyze_bench_files, AnalysisResult

    res = analyze(store, victim="hive0")                      # reads the store (lazy scans), then analyze_frames
    res = analyze_frames(runs, requests, tokens, victim="hive0",      # pure: frames in
                         telemetry=TelemetryFrames(accel=..., host=..., host_core=..., tenant=..., run_events=...,
                                                   topology=topo_frame),
                         options=AnalysisOptions(seed=0))
    res = analyze_bench_files(["seed000.txt"], blocks=[("baseline", "hive0"), ("dual", "hive0"), ...])
    res = analyze(store, victim="hive0", start=t0, end=t1, source="live")  # from the engine's serving metrics
    res.phases        # pl.DataFrame, analysis.degradation.PHASE_COLUMNS
    res.antagonists   # pl.DataFrame, analysis.attribution.ANTAGONIST_COLUMNS (= res.attribution.antagonists)
    res.attribution   # analysis.attribution.Attribution: index, activity, antagonists, suspects, notes (or None)
    res.attributions  # {"itl": Attribution | None, "ttft": Attribution | None}: decode and prefill, separately
    res.antagonists_of("ttft")  # ranked antagonists on TTFT windows (the prefill side)
    res.knee          # analysis.knee.Knee: the load beyond which TTFT rises sharply (or why there is none)
    res.source        # "bench" (benchmark runs in the store) or "live" (serving metrics, `analysis.live`)
    res.notes         # tuple[str, ...]
    res.unreadable    # ((path, reason), ...): store files that could not be read (the result is incomplete)
    res.to_json()     # {"schema_version", "victim", "source", "range", "window_s", "phases", "antagonists",
                      #  "antagonists_ttft", "knee", "notes", "complete", "unreadable_inputs"}

Benchmarks and live serving data are two sources of the same victim window table (`analysis.align.victim_windows`,
`analysis.live.live_windows`); `analyze` chooses the source (``source="auto"``: the victim's benchmark runs in
the range when there are any, else its serving rows) and everything after the table is shared.

The JSON schema is documented in docs/analysis.md. Store reading is the only I/O here; the rest is pure. What
`analyze` derives from the store it keeps there (`analysis.derived`: per run its token aggregates, per analysis the
telemetry windows, keyed by the files read), so a second analysis of the same runs reads those instead of every
token and sample (docs/analysis-performance.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from analysis import attribution as attr
from analysis.align import TokenAggregates, WindowCache, align, run_seconds
from analysis.degradation import PHASE_COLUMNS, Thresholds, has_rows, phase_degradation, runs_frame
from analysis.derived import TelemetryWindowCache, files_identity, is_derived, stored_token_aggregates
from analysis.knee import Knee, ttft_knee, with_load
from analysis.stats import blas_threads
from telemetry.errors import ConfigError, StoreError
from telemetry.store.base import TelemetryStore
from telemetry.topology import lookup as topology_lookup

SCHEMA_VERSION = 1
TELEMETRY_PAD_S = 60.0
LIVE_DEFAULT_SPAN_S = 2 * 3600.0
Source = Literal["auto", "bench", "live"]


Frame = pl.DataFrame | pl.LazyFrame


@dataclass(frozen=True)
class TelemetryFrames:
    """The telemetry around the victim's runs (schema frames, eager or lazy; None = not collected), the
    ``run_event`` switch_on / switch_off rows of a randomised schedule, the topology
    (`telemetry.topology.TOPOLOGY_COLUMNS`), and the ``disk`` / ``net`` / ``rdma`` measurements."""

    accel: Frame | None = None
    host: Frame | None = None
    host_core: Frame | None = None
    tenant: Frame | None = None
    run_events: pl.DataFrame | None = None
    topology: pl.DataFrame | None = None
    disk: Frame | None = None
    net: Frame | None = None
    rdma: Frame | None = None
    cache: WindowCache | None = None
    """Where the window aggregates of these frames are kept between analyses (`analysis.derived`); None: none."""

    def any_activity(self) -> bool:
        """Whether any co-tenant activity was collected (accelerators, tenants, disks, NICs, RDMA)."""
        return any(f is not None for f in (self.accel, self.tenant, self.disk, self.net, self.rdma))


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
    unreadable: tuple[tuple[str, str], ...] = ()
    """(path, reason) of every store file that could not be read and was left out: the result is incomplete."""
    attributions: Mapping[str, attr.Attribution | None] = field(default_factory=dict, repr=False, compare=False)
    """Per victim metric (``itl``: decode, ``ttft``: prefill), the `Attribution` on that metric's windows."""
    knee: Knee | None = field(default=None, compare=False)
    """The TTFT knee of the victim's windows (`analysis.knee`), None when the windows have no TTFT."""
    source: str = "bench"
    """Where the victim window table came from: ``bench`` (benchmark runs) or ``live`` (serving metrics)."""
    start: datetime | None = None
    end: datetime | None = None
    node: str | None = None
    """The victim's node (live: the node whose serving rows and co-tenants were analysed)."""
    windows: pl.DataFrame | None = field(default=None, repr=False, compare=False)
    """The victim window table the knee was read from (live: TTFT windows; bench: the grid's victim windows)."""

    @property
    def complete(self) -> bool:
        """False when store files could not be read (``unreadable``): what they hold is missing from the result."""
        return not self.unreadable

    @property
    def antagonists(self) -> pl.DataFrame:
        """The ranked antagonists (`analysis.attribution.ANTAGONIST_COLUMNS`; empty without attribution)."""
        if self.attribution is None:
            return pl.DataFrame(schema=attr.ANTAGONIST_COLUMNS)
        return self.attribution.antagonists

    @property
    def window_s(self) -> float | None:
        return None if self.attribution is None else self.attribution.window_s

    def antagonists_of(self, metric: str = "itl") -> pl.DataFrame:
        """The ranked antagonists on ``metric``'s windows (``itl`` = `antagonists`; ``ttft``: the prefill side)."""
        a = self.attribution if metric == "itl" and metric not in self.attributions else self.attributions.get(metric)
        return pl.DataFrame(schema=attr.ANTAGONIST_COLUMNS) if a is None else a.antagonists

    def to_dict(self) -> dict[str, Any]:
        ttft = self.attributions.get("ttft")
        return {
            "schema_version": SCHEMA_VERSION,
            "victim": self.victim,
            "source": self.source,
            "range": {"from": _iso(self.start), "until": _iso(self.end)},
            "node": self.node,
            "window_s": self.window_s,
            "window_s_ttft": None if ttft is None else ttft.window_s,
            "phases": [_clean(r) for r in self.phases.to_dicts()],
            "antagonists": [_clean(r) for r in self.antagonists.to_dicts()],
            "antagonists_ttft": [_clean(r) for r in self.antagonists_of("ttft").to_dicts()],
            "knee": None if self.knee is None else self.knee.to_dict(),
            "notes": list(self.notes),
            "complete": self.complete,
            "unreadable_inputs": [{"path": p, "reason": r} for p, r in self.unreadable],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


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
    aggregated: TokenAggregates | None = None,
) -> AnalysisResult:
    """Phase table for the victim's group (every group when ``victim`` is None) and, when the victim has
    per-token data and telemetry, its `Attribution`. ``runs``: `analysis.degradation.runs_frame`. BLAS runs on one
    thread meanwhile (`analysis.stats.blas_threads`: the matrices are small, more threads only burn CPU).
    ``aggregated``: the `analysis.align.TokenAggregates` of the victim's tokens, computed already (e.g. kept in the
    store, `analysis.derived`): the per-run ITL quantiles and the windows are then taken from it, not from
    ``tokens`` (still needed for a window bootstrap, which reads one phase's runs)."""
    with blas_threads(1):
        return _analyze_frames(
            runs, requests, tokens, victim=victim, telemetry=telemetry, options=options, aggregated=aggregated
        )


def _analyze_frames(
    runs: pl.DataFrame,
    requests: pl.DataFrame | None,
    tokens: Frame | None,
    *,
    victim: str | None,
    telemetry: TelemetryFrames | None,
    options: AnalysisOptions | None,
    aggregated: TokenAggregates | None = None,
) -> AnalysisResult:
    tel = telemetry or TelemetryFrames()
    opt = options or AnalysisOptions()
    th = opt.thresholds or Thresholds(seed=opt.seed)
    if runs.height == 0:
        raise ConfigError("no benchmark runs to analyse (check --store / --run / --phase / --victim)")
    if victim and victim not in runs["group"].to_list():
        known = sorted(set(runs["group"].to_list()))
        raise ConfigError(f"no benchmark runs of group {victim!r}; groups with runs: {known}")
    # lazy tokens stay lazy (a scan of per-run files): every consumer reads a few runs at a time
    tok_df = tokens
    baselines = baseline_phases(
        runs.filter(pl.col("group") == victim) if victim else runs, opt.baseline, opt.phase_order
    )
    phases = phase_degradation(
        runs,
        requests,
        tok_df,
        baseline=baselines,
        phase_order=opt.phase_order,
        groups=[victim] if victim else None,
        thresholds=th,
        run_itl=aggregated.runs if aggregated is not None and victim else None,
    )
    notes = _phase_notes(runs, phases, victim, th)
    attributions: dict[str, attr.Attribution | None] = {}
    knee = None
    windows = None
    if victim is None:
        notes.append("no --victim: phase table for every group, no attribution")
    elif tok_df is None or not has_rows(tok_df) or requests is None or requests.height == 0:
        notes.append(
            f"no per-token data for {victim}: attribution needs per-request / per-token benchmark output "
            "(summaries alone cannot be put on the telemetry grid)"
        )
    elif not tel.any_activity():
        notes.append("no telemetry: attribution skipped")
    else:
        v_runs = runs.filter((pl.col("group") == victim) & pl.col("start").is_not_null() & pl.col("end").is_not_null())
        ids = v_runs["run_id"].to_list()
        grid = align(
            requests.filter(pl.col("run_id").is_in(ids)),
            _of_runs(tok_df, ids),
            v_runs,
            accel=tel.accel,
            host=tel.host,
            host_core=tel.host_core,
            tenant=tel.tenant,
            disk=tel.disk,
            net=tel.net,
            rdma=tel.rdma,
            window_s=opt.window_s,
            aggregated=None if aggregated is None else aggregated.of_runs(ids),
            cache=tel.cache,
        )
        bases = phases.filter(pl.col("group") == victim)["baseline_phase"].unique().to_list()
        bphase = opt.baseline if isinstance(opt.baseline, str) else (bases[0] if bases else None)
        for metric in ("itl", "ttft"):
            a = attr.attribute(
                grid,
                victim,
                baseline_phase=bphase,
                topology=tel.topology,
                run_events=tel.run_events,
                q=th.q,
                n_shifts=opt.n_shifts,
                seed=opt.seed,
                metric=metric,
            )
            attributions[metric] = a
            seen = set() if metric == "itl" else set(attributions["itl"].notes)  # type: ignore[union-attr]
            notes.extend(n if metric == "itl" else f"TTFT: {n}" for n in a.notes if n not in seen)
        windows = grid.victim
        knee = _knee(windows, opt.seed)
        if knee is not None:
            notes.append(f"TTFT knee: {knee.summary()}")
    return AnalysisResult(
        victim=victim,
        phases=phases,
        notes=tuple(_dedup(notes)),
        attribution=attributions.get("itl"),
        attributions=attributions,
        knee=knee,
        windows=windows,
    )


def _of_runs(frame: Frame, ids: Sequence[str]) -> Frame:
    """The rows of ``frame`` whose run_id is one of ``ids``; ``frame`` itself (no copy: a week of tokens is 10^8
    rows) when every row already is; a lazy frame filtered lazily."""
    if isinstance(frame, pl.LazyFrame):
        return frame.filter(pl.col("run_id").is_in(list(ids)))
    have = frame.select(pl.col("run_id").unique().cast(pl.String))["run_id"].to_list()
    if set(have) <= set(ids):
        return frame
    return frame.filter(pl.col("run_id").is_in(list(ids)))


def _dedup(notes: Sequence[str]) -> list[str]:
    """The notes in order, each once (ITL and TTFT attribution repeat the grid's notes)."""
    return list(dict.fromkeys(notes))


def _knee(windows: pl.DataFrame, seed: int) -> Knee | None:
    """The TTFT knee of the victim's windows (p99 where the windows have one, else p50); None without TTFT."""
    col = next(
        (c for c in ("ttft_ms_p99", "ttft_ms_p50") if c in windows.columns and windows[c].is_not_null().any()), None
    )
    if col is None:
        return None
    return ttft_knee(with_load(windows), "load", col, seed=seed)


def baseline_phases(
    runs: pl.DataFrame, baseline: str | Mapping[str, str] | None = None, phase_order: Sequence[str] | None = None
) -> dict[str, str]:
    """The baseline phase of each group of ``runs`` (`analysis.degradation.runs_frame`): ``baseline`` when given
    (one name, or one per group), else the phase named ``baseline``, else the group's first phase (``phase_order``,
    else by start time). A ``baseline`` that a group does not have is a `ConfigError` naming the phases it has."""
    out: dict[str, str] = {}
    for group in runs["group"].unique(maintain_order=True).to_list():
        part = runs.filter(pl.col("group") == group)
        have = part.sort("start", nulls_last=True, maintain_order=True)["phase"].unique(maintain_order=True).to_list()
        if phase_order:
            have = [p for p in phase_order if p in have] + [p for p in have if p not in phase_order]
        wanted = baseline.get(group) if isinstance(baseline, Mapping) else baseline
        if wanted is not None:
            if wanted not in have:
                raise ConfigError(
                    f"--baseline {wanted!r}: {group or '(no group)'} has no runs in phase {wanted!r}; "
                    f"its phases: {have}"
                )
            out[group] = wanted
        elif have:
            out[group] = "baseline" if "baseline" in have else have[0]
    return out


_INVENTED_TIME = ("file_mtime", "file_mtime_chain", "unknown")
"""`analysis.ingest.model.Run.time_source` values that are no wall-clock start: the file's modification time minus
the run's duration (when a summary is pasted into a file, that is the import time), or nothing at all."""


def has_wall_clock_start(run: Any) -> bool:
    """Whether ``run`` (an `analysis.ingest.model.Run`) started at a known wall-clock time: its ``timed`` flag where
    the importer sets one, else a start that was not made up from the file's modification time."""
    timed = getattr(run, "timed", None)
    if timed is not None:
        return bool(timed)
    return run.start is not None and (getattr(run, "time_source", "") or "") not in _INVENTED_TIME


def import_position(run: Any) -> int | None:
    """The run's import sequence number (`analysis.ingest.model.Run.import_seq`), None when it has none."""
    seq = getattr(run, "import_seq", None)
    return None if seq is None else int(seq)


def run_time(run: Any) -> datetime | None:
    """When the run counts for a time range (--start / --end, a report's window): its wall-clock start, else its
    import time (``import_seq`` is the import's ``time.time_ns()``), else None."""
    if has_wall_clock_start(run):
        return run.start
    seq = import_position(run)
    return None if seq is None else datetime.fromtimestamp(seq / 1e9, UTC)


def in_import_order(runs: Sequence[Any]) -> list[Any]:
    """``runs`` by import sequence number where every run has one; else as given (the store's order)."""
    seqs = [import_position(r) for r in runs]
    if runs and all(s is not None for s in seqs):
        return [runs[i] for i in sorted(range(len(runs)), key=lambda i: (seqs[i], i))]
    return list(runs)


def phase_order_of(runs: Sequence[Any]) -> tuple[list[str], str | None]:
    """(phases in order, note). When every run has a wall-clock start, phases by their first run's start. Else (a
    printed summary has no start) in import order, which the note says; where the importer recorded no import
    sequence number, in the order the runs' files were written (a made-up start's end is its file's time)."""
    if not runs:
        return [], None
    if all(has_wall_clock_start(r) for r in runs):
        ordered = sorted(range(len(runs)), key=lambda i: (runs[i].start, i))
        return list(dict.fromkeys(runs[i].phase or "" for i in ordered)), None
    if all(import_position(r) is not None for r in runs):
        ordered_runs, how = in_import_order(runs), "import order"
    elif all(r.end is not None for r in runs):
        ordered_runs = [runs[i] for i in sorted(range(len(runs)), key=lambda i: (runs[i].end, i))]
        how = "the order their files were written"
    else:
        ordered_runs, how = list(runs), "the store's order"
    phases = list(dict.fromkeys(r.phase or "" for r in ordered_runs))
    untimed = [r.run_id for r in ordered_runs if not has_wall_clock_start(r)]
    shown = ", ".join(untimed[:3]) + (f" and {len(untimed) - 3} more" if len(untimed) > 3 else "")
    note = (
        f"{len(untimed)} run(s) have no wall-clock start ({shown}; printed summaries carry none), so phases "
        f"are in {how}: {' -> '.join(p or '(none)' for p in phases)} (--phase-order changes it)"
    )
    return phases, note


def _phase_notes(runs: pl.DataFrame, phases: pl.DataFrame, victim: str | None, th: Thresholds) -> list[str]:
    """What limits the phase table: groups with one phase only, comparisons without per-run uncertainty."""
    notes = []
    for g in [victim] if victim else runs["group"].unique(maintain_order=True).to_list():
        n_ph = runs.filter(pl.col("group") == g)["phase"].n_unique()
        if n_ph < 2:
            notes.append(
                f"{g or '(no group)'} has runs in {n_ph} phase(s) only: no phase comparison (import runs "
                "with --phase, or pass --blocks with --bench)"
            )
    for m, n in phases.group_by("method").len().iter_rows():
        if m == "summary_only":
            notes.append(
                f"{n} comparison(s) from printed summaries only: the change is exact, but there is no "
                "per-run uncertainty (no interval, no verdict beyond 'inconclusive'); rerun with K >= 2 "
                "runs per phase or per-request output for intervals"
            )
        elif m == "window_bootstrap":
            notes.append(
                f"{n} comparison(s) with one run per phase: block bootstrap over "
                f"{th.bootstrap_window_s:g} s windows, low confidence (under-covers); K >= 5 runs per "
                "phase give honest intervals"
            )
    return notes


# ------------------------------------------------------------------------------------------------ I/O edges


def _lazy_or_eager(
    store: TelemetryStore, measurement: str, start: datetime, end: datetime, tags: Mapping[str, Any] | None = None
) -> Frame | None:
    """A lazy scan where the store scans lazily (embedded Parquet), else the rows (None when there are none)."""
    if measurement not in store.measurements():
        return None
    if store.lazy_scan:
        return store.scan(measurement, start, end, tags=tags)
    frame = store.query(measurement, start, end, tags=tags)
    return frame if frame.height else None


TELEMETRY_MEASUREMENTS = ("accel", "host", "host_core", "tenant", "host_disk", "host_net", "rdma")
"""The measurements `read_telemetry` reads around the victim (co-tenant activity and shared-resource signals)."""


def read_telemetry(
    store: TelemetryStore,
    start: datetime,
    end: datetime,
    *,
    node: str | None = None,
    topology: pl.DataFrame | None = None,
    nodes: Sequence[str] = (),
) -> TelemetryFrames:
    """`TelemetryFrames` from ``store`` over [start, end) (lazy scans where the store scans lazily): every
    measurement of `TELEMETRY_MEASUREMENTS` (of ``node`` when given), the ``run_event`` switch_on / switch_off rows,
    and the topology (``topology``, else `telemetry.topology.lookup` for ``nodes``)."""
    ntag = {"node": node} if node else None
    frames = {m: _lazy_or_eager(store, m, start, end, ntag) for m in TELEMETRY_MEASUREMENTS}
    ev = (
        store.query("run_event", start, end, tags={"event": ["switch_on", "switch_off"]})
        if "run_event" in store.measurements()
        else None
    )
    if topology is None:
        found = topology_lookup(None, store, list(nodes) or [node or ""])
        topology = found[0] if found else None
    return TelemetryFrames(
        frames["accel"],
        frames["host"],
        frames["host_core"],
        frames["tenant"],
        ev if ev is not None and ev.height else None,
        topology,
        frames["host_disk"],
        frames["host_net"],
        frames["rdma"],
    )


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
    source: Source = "auto",
    runs: Sequence[Any] | None = None,
) -> AnalysisResult:
    """Read the runs (and their requests / tokens artifacts) and the telemetry around them from ``store``, then
    `analyze_frames`. Runs are selected by ``run_ids`` / ``phases`` / ``node`` / time range (a run counts when
    it starts in [start, end); a run without a wall-clock start counts at its import time). ``topology`` None: the
    lookup rule of `telemetry.topology.lookup` (the store's ``topology/<node>`` artifact of the runs' node).

    ``source``: ``bench`` (the benchmark runs), ``live`` (the victim's ``serving`` rows in [start, end):
    `analyze_live`) or ``auto``: the victim's benchmark runs when the selection holds any, else its serving rows."""
    from analysis.ingest.model import list_runs, load_requests

    if source not in ("auto", "bench", "live"):
        raise ConfigError(f"--source {source!r}: expected auto, bench or live")
    live_kw = dict(start=start, end=end, node=node, topology=topology, thresholds=thresholds, window_s=window_s,
                   n_shifts=n_shifts, seed=seed)  # fmt: skip
    if source == "live":
        return analyze_live(store, victim, **live_kw)  # type: ignore[arg-type]

    tags: dict[str, Any] = {}
    if node:
        tags["node"] = node
    if runs is None:
        runs = list_runs(store, tags or None)
    elif node:
        runs = [r for r in runs if r.node == node]
    if run_ids:
        want = set(run_ids)
        runs = [r for r in runs if r.run_id in want]
        missing = want - {r.run_id for r in runs}
        if missing:
            raise ConfigError(f"unknown run id(s) {sorted(missing)} in the store")
    if phases:
        runs = [r for r in runs if r.phase in set(phases)]
    if start is not None:
        runs = [r for r in runs if (t := run_time(r)) is not None and t >= start]
    if end is not None:
        runs = [r for r in runs if (t := run_time(r)) is not None and t < end]
    # the last stored summary of a run id wins
    runs = in_import_order(list({r.run_id: r for r in runs}.values()))
    no_runs = source == "auto" and victim and not run_ids and not any(r.group == victim for r in runs)
    if no_runs and _has_serving(store, victim, node):  # type: ignore[arg-type]
        return analyze_live(store, victim, **live_kw)  # type: ignore[arg-type]
    if no_runs:
        from analysis.live import describe_groups, serving_groups

        have = serving_groups(store.scan("serving")) if "serving" in store.measurements() else pl.DataFrame()
        raise ConfigError(
            f"no benchmark runs of group {victim!r} match and it has no serving data"
            f"{f' on {node}' if node else ''}; groups with runs: {sorted({r.group for r in runs})}; groups with "
            f"serving data: {describe_groups(have)}"
        )
    order_note = None
    if phase_order is None:
        phase_order, order_note = phase_order_of([r for r in runs if r.group == victim] if victim else runs)
    rf = runs_frame(runs)
    if rf.height == 0:
        raise ConfigError("no benchmark runs in the store match (import some with `neighborscope import bench`)")
    req_frames, broken = [], []
    tok_scans: dict[str, pl.LazyFrame] = {}
    analysed = [r for r in runs if r.group == victim] if victim else runs
    for r in analysed:
        try:
            req = load_requests(store, r.run_id)
            tok = _scan_tokens(store, r.run_id) if req is not None and req.height else None
        except StoreError as exc:  # an unreadable artifact: the store lists its file among unreadable_files
            broken.append(f"{r.run_id} ({exc})")
            continue
        if req is not None and req.height and tok is not None:
            req_frames.append(req)
            tok_scans[r.run_id] = tok
        elif req is not None and req.height:
            req_frames.append(req)
    requests = pl.concat(req_frames, how="diagonal_relaxed") if req_frames and not broken else None
    # one lazy frame over the runs' token files: its consumers read a few runs at a time, never all of them
    tokens = pl.concat(list(tok_scans.values()), how="diagonal_relaxed") if tok_scans and not broken else None
    v_runs = rf.filter(pl.col("group") == victim) if victim else rf.head(0)
    aggregated = None
    if victim and tokens is not None:
        # what the analysis reads of the victim's tokens, kept in the store per run (`analysis.derived`): the
        # first analysis of a run reads its tokens once, later ones read its aggregates only
        spans = v_runs.filter(pl.col("start").is_not_null() & pl.col("end").is_not_null())
        aggregated = stored_token_aggregates(store, tok_scans, run_seconds(spans), window_s)
    elif tokens is not None and tokens.select(pl.len()).collect().item() <= EAGER_TOKEN_ROWS:
        # no victim (every group's phase table): up to EAGER_TOKEN_ROWS the tokens are read once, not per consumer
        tokens = tokens.collect().with_columns(pl.col("run_id").cast(pl.Categorical))
    telemetry = TelemetryFrames()
    if victim and v_runs.height and v_runs["start"].null_count() < v_runs.height:
        lo = v_runs["start"].min() - timedelta(seconds=TELEMETRY_PAD_S)
        hi = v_runs["end"].max() + timedelta(seconds=TELEMETRY_PAD_S)
        nodes = sorted({r.node for r in runs if r.node}) or [node or ""]
        telemetry = read_telemetry(store, lo, hi, node=node, topology=topology, nodes=nodes)
        idents = {m: files_identity(store, m, lo, hi) for m in TELEMETRY_MEASUREMENTS if m in store.measurements()}
        telemetry = replace(
            telemetry,
            cache=TelemetryWindowCache(store, {m: f"node={node}|{i}" for m, i in idents.items() if i is not None}),
        )
    options = AnalysisOptions(baseline, phase_order, thresholds, window_s, n_shifts, seed)
    result = analyze_frames(
        rf, requests, tokens, victim=victim, telemetry=telemetry, options=options, aggregated=aggregated
    )
    notes = [*([order_note] if order_note else []), *result.notes]
    if source == "auto" and victim and _has_serving(store, victim, node):
        notes.append(
            f"analysed from {victim}'s benchmark runs; the store also holds its serving engine's metrics: "
            "--source live analyses the production traffic instead"
        )
    if broken:  # one phase per request against another per summary would not compare like with like
        notes.insert(
            0,
            f"per-request data of {len(broken)} run(s) could not be read ({'; '.join(broken[:2])}): every "
            "phase is compared from the runs' summaries only, and there is no attribution",
        )
    unreadable = tuple(u for u in unreadable_inputs(store) if not is_derived(u[0]))  # derived: recomputed
    listed = {path for path, _ in unreadable}
    unreadable += tuple(
        (f"artifact of run {b.split(' ', 1)[0]}", b.split(" ", 1)[1].strip("()"))
        for b in broken
        if not any(path in b for path in listed)
    )
    return replace(result, notes=tuple(notes), unreadable=unreadable)


def _has_serving(store: TelemetryStore, victim: str, node: str | None) -> bool:
    if "serving" not in store.measurements():
        return False
    series = store.series("serving")
    if series.height == 0 or "group" not in series.columns:
        return False
    hit = series.filter(pl.col("group") == victim)
    if node and "node" in hit.columns:
        hit = hit.filter(pl.col("node") == node)
    return hit.height > 0


def live_range(store: TelemetryStore, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end) of a live analysis: as given; a missing end is the newest serving row (the store's clock, not
    this machine's); a missing start is `LIVE_DEFAULT_SPAN_S` before the end."""
    if end is None:
        bounds = store.time_bounds("serving") if "serving" in store.measurements() else None
        end = (bounds[1] + timedelta(seconds=1)).replace(microsecond=0) if bounds else datetime.now(UTC)
    if start is None:
        start = end - timedelta(seconds=LIVE_DEFAULT_SPAN_S)
    if start >= end:
        raise ConfigError(
            f"the range {start.isoformat()} .. {end.isoformat()} is empty (--from must be before --until)"
        )
    return start, end


def analyze_live(
    store: TelemetryStore,
    victim: str | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    node: str | None = None,
    topology: pl.DataFrame | None = None,
    thresholds: Thresholds | None = None,
    window_s: float | None = None,
    n_shifts: int = attr.N_SHIFTS,
    seed: int = 0,
) -> AnalysisResult:
    """The victim's live analysis from the store: its ``serving`` rows in [start, end) (`live_range`), the
    co-tenants' telemetry of its node around them (`read_telemetry`), then `analysis.live.live_attribution` (ITL
    and TTFT attribution, the TTFT knee). No phases: live traffic has no baseline phase (the load model is fitted
    on windows where no suspect was active). A victim without serving rows in the range is a `ConfigError` naming
    the groups that have serving data and when."""
    from analysis.live import describe_groups, live_attribution, serving_groups

    have = serving_groups(store.scan("serving") if "serving" in store.measurements() else pl.DataFrame(
        schema={"time": pl.Datetime("ns", "UTC"), "node": pl.String, "group": pl.String}))  # fmt: skip
    if not victim:
        raise ConfigError(f"a live analysis needs --victim GROUP; groups with serving data: {describe_groups(have)}")
    start, end = live_range(store, start, end)
    tags: dict[str, Any] = {"group": victim}
    if node:
        tags["node"] = node
    rows = store.query("serving", start, end, tags=tags) if "serving" in store.measurements() else pl.DataFrame()
    if rows.height == 0:
        raise ConfigError(
            f"no serving rows of group {victim!r}{f' on {node}' if node else ''} between {start.isoformat()} and "
            f"{end.isoformat()}; groups with serving data: {describe_groups(have)}"
        )
    nodes = sorted(set(rows["node"].drop_nulls().to_list())) if "node" in rows.columns else []
    if len(nodes) > 1 and not node:
        raise ConfigError(f"group {victim!r} is served on several nodes {nodes}: pass --node (co-tenants are per node)")
    vnode = node or (nodes[0] if nodes else None)
    th = thresholds or Thresholds(seed=seed)
    pad = timedelta(seconds=TELEMETRY_PAD_S)
    tel = read_telemetry(store, start - pad, end + pad, node=vnode, topology=topology, nodes=nodes)
    with blas_threads(1):
        live = live_attribution(rows, victim, node=vnode, start=start, end=end, accel=tel.accel, host=tel.host,
                                host_core=tel.host_core, tenant=tel.tenant, disk=tel.disk, net=tel.net,
                                rdma=tel.rdma, run_events=tel.run_events, topology=tel.topology, window_s=window_s,
                                q=th.q, n_shifts=n_shifts, seed=seed)  # fmt: skip
    notes = [
        f"live: {victim} on {vnode or '(no node)'} from the serving engine's metrics, {start.isoformat()} .. "
        f"{end.isoformat()} ({rows.height} scrape intervals); no benchmark runs, no phase table",
        *live.notes,
    ]
    if not tel.any_activity():
        notes.append("no co-tenant telemetry (accel, tenant, disk, net, rdma) in the range: nothing to attribute")
    return AnalysisResult(
        victim=victim,
        phases=pl.DataFrame(schema=PHASE_COLUMNS),
        notes=tuple(_dedup(notes)),
        attribution=live.attributions.get("itl"),
        unreadable=unreadable_inputs(store),
        attributions=dict(live.attributions),
        knee=live.knee,
        source="live",
        start=start,
        end=end,
        node=vnode,
        windows=live.windows.get("ttft"),
    )


def unreadable_inputs(store: TelemetryStore) -> tuple[tuple[str, str], ...]:
    """(path, reason) of the store files its reads so far skipped because they could not be read."""
    return tuple((str(path), str(reason)) for path, reason in store.unreadable_files())


EAGER_TOKEN_ROWS = 20_000_000
"""Without a victim (every group's phase table, no token aggregates kept), up to this many tokens (about a day of a
busy victim, ~560 MB as analysis keeps them) `analyze` reads them into memory once; beyond, they stay a lazy scan of
the runs' files (a week: 10^8 tokens, 2.8 GB) that each consumer reads a few runs at a time. With a victim the
tokens are read once, by `analysis.derived.stored_token_aggregates`, and only where their aggregates are not kept."""

TOKEN_COLUMNS = ("run_id", "request_index", "time", "itl_ms", "tokens")
"""The tokens layout's columns analysis reads."""


def _scan_tokens(store: TelemetryStore, run_id: str) -> pl.LazyFrame | None:
    """A run's tokens as a lazy frame (None: none): the store's lazy scan of its artifact where it has one
    (`scan_artifact`: only the file's footer is read here, so an unreadable file is a `StoreError` now), else the
    rows read (`analysis.ingest.model.load_tokens`: the artifact, or the requests' ITL lists)."""
    from analysis.ingest.model import artifact_key, load_tokens

    scan = getattr(store, "scan_artifact", None)
    lf = scan(artifact_key(run_id, "tokens")) if scan is not None else None
    if lf is not None:
        names = lf.collect_schema().names()
        keep = [c for c in TOKEN_COLUMNS if c in names]
        return lf.select(keep).with_columns(pl.col("run_id").cast(pl.String))
    tok = load_tokens(store, run_id)
    return _tokens_compat(tok).with_columns(pl.col("run_id").cast(pl.String)).lazy() if tok.height else None


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


def bench_runs(
    paths: Sequence[str | Path],
    blocks: Sequence[tuple[str, str]] | None = None,
    *,
    phase: str = "",
    group: str = "",
    node: str = "",
    fmt: str | None = None,
) -> list[Any]:
    """Parse benchmark files into runs; ``blocks`` maps the k-th run found (in file order) to (phase, group)."""
    from analysis.ingest.importer import parse_bench_files

    runs = parse_bench_files(paths, run_id="bench", phase=phase, group=group, node=node, fmt=fmt)
    if blocks:
        if len(blocks) != len(runs):
            titles = [str(r.extra.get("title", r.source)) for r in runs]
            raise ConfigError(
                f"--blocks lists {len(blocks)} block(s) but the file(s) hold {len(runs)} run(s): {titles}"
            )
        runs = [replace(r, phase=p, group=g) for r, (p, g) in zip(runs, blocks, strict=True)]
    elif any(not r.phase or not r.group for r in runs):
        raise ConfigError(
            "the benchmark runs carry no phase / group: pass --blocks PHASE/GROUP,... (one per run, "
            "in file order) or --phase / --group for a single run"
        )
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
    res = analyze_frames(rf, requests, tokens, options=AnalysisOptions(baseline, phase_order, thresholds, seed=seed))
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


__all__ = [
    "AnalysisOptions",
    "AnalysisResult",
    "TelemetryFrames",
    "analyze",
    "analyze_bench_files",
    "analyze_frames",
    "analyze_live",
    "bench_runs",
    "empty_result",
    "live_range",
    "parse_blocks",
    "read_telemetry",
]
