"""Live analysis: the victim window table from a serving engine's own metrics (pure: frames in, frames out).

Benchmarks and live traffic are two sources of the same victim window table (`analysis.align.victim_windows`'s
layout); everything after it (the grid, the interference index, the ranked antagonists, the TTFT knee) is shared.
Here the table comes from ``serving`` rows (one per endpoint, model and scrape interval: rates from counter deltas,
p50 / p90 / p99 from histogram bucket deltas, ``*_count`` observations; `telemetry.schema`):

- **windows**: a row counts in the window holding its interval's midpoint (``time - interval_s / 2``); per window
  and stream (node, engine, model, endpoint) rates are time-weighted means over the intervals (``interval_s``), then summed
  over streams; gauges (running, waiting requests) time-weighted means summed over streams; KV-cache usage the
  mean over streams. Windows under half covered by up, reset-free intervals are dropped.
- **quantiles** are re-aggregated by count-weighting: a window's p99 is the mean of its intervals' p99 weighted by
  their observation counts (exact when the intervals share one distribution; with a slow interval among fast ones
  it sits between the true mixture p99 and the slow interval's, i.e. it understates a short burst). A window's p99
  rests on at least `MIN_P99_OBS` observations, its p50 on `MIN_P50_OBS`, else it is null (never 0).
- **layout**: ``run_id`` (``live:<group>``), ``phase`` (``live``), ``group``, ``window_start``, ``covered_s``,
  ``tokens`` and ``output_tok_s`` (generation tokens), ``itl_n``, ``itl_ms_p50``, ``itl_ms_p99``, ``itl_ms_mean``
  (null: histograms give no mean here), ``requests_started`` (requests *finished* in the window: what the engine
  counts), ``ttft_n``, ``ttft_ms_p50``, ``ttft_ms_p99``, ``running_requests`` (mean requests in the batch),
  ``prefill_tokens`` (prompt tokens processed in the window): the load model's columns; then the serving view:
  ``requests_per_s``, ``requests_running``, ``requests_waiting``, ``prompt_tokens_per_s``, ``prompt_tokens_mean``,
  ``kv_cache_usage_pct``, ``queue_ms_p99``, ``e2e_ms_p99``, ``tpot_ms_p99``.
- **window length** (`choose_live_window_s`): the smallest step of `analysis.align.WINDOW_LADDER_S`, at least two
  scrape intervals, at which a window holds on average >= 1000 ITL observations (``metric="itl"``) or >= 150
  TTFT observations (``metric="ttft"``: one per request, so TTFT windows are longer; 1.5 x the p99's floor of 100
  so that most windows, not half, get a p99).

`live_attribution` puts the windows and the co-tenants' telemetry on one grid and runs `analysis.attribution`
for ITL and for TTFT separately (in disaggregated serving a prefill pool's neighbour shows in TTFT, a decode
pool's in ITL), with the victim's own load (running requests, prompt tokens, requests) regressed out. The design
is correlational unless a randomised on/off schedule (``run_event`` switch_on / switch_off) covers the range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import polars as pl

from analysis import align as al
from analysis import attribution as attr
from analysis.knee import Knee, ttft_knee, with_load

Frame = pl.DataFrame | pl.LazyFrame
Metric = Literal["itl", "ttft"]
METRICS: tuple[Metric, ...] = ("itl", "ttft")
LIVE_PHASE = "live"
MIN_P50_OBS = 10
MIN_P99_OBS = al.MIN_P99_SAMPLES
MIN_OBS_PER_WINDOW = {"itl": al.MIN_ITL_SAMPLES, "ttft": round(1.5 * MIN_P99_OBS)}
"""Observations a window holds on average (`choose_live_window_s`): TTFT (one per request, Poisson-like counts)
aims at 1.5 x the p99's floor, so most windows reach it rather than half of them."""
_QUANTILED = ("itl", "ttft", "tpot", "e2e", "queue")
_RATES = ("generation_tokens_per_s", "prompt_tokens_per_s", "requests_per_s")
_GAUGES = ("requests_running", "requests_waiting")

WINDOW_COLUMNS: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "phase": pl.String(),
    "group": pl.String(),
    "window_start": al.TIME_DTYPE,
    "covered_s": pl.Float64(),
    "tokens": pl.Float64(),
    "output_tok_s": pl.Float64(),
    "itl_n": pl.Int64(),
    "itl_ms_p50": pl.Float64(),
    "itl_ms_p99": pl.Float64(),
    "itl_ms_mean": pl.Float64(),
    "requests_started": pl.Float64(),
    "ttft_n": pl.Int64(),
    "ttft_ms_p50": pl.Float64(),
    "ttft_ms_p99": pl.Float64(),
    "running_requests": pl.Float64(),
    "prefill_tokens": pl.Float64(),
    "requests_per_s": pl.Float64(),
    "requests_running": pl.Float64(),
    "requests_waiting": pl.Float64(),
    "prompt_tokens_per_s": pl.Float64(),
    "prompt_tokens_mean": pl.Float64(),
    "kv_cache_usage_pct": pl.Float64(),
    "queue_ms_p99": pl.Float64(),
    "e2e_ms_p99": pl.Float64(),
    "tpot_ms_p99": pl.Float64(),
}
"""The live victim window table (module docstring): `analysis.align.victim_windows`'s columns, then the serving
view."""


def _lazy(frame: Frame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _col(names: set[str], name: str, dtype: pl.DataType = pl.Float64()) -> pl.Expr:
    return pl.col(name).cast(dtype) if name in names else pl.lit(None, dtype=dtype)


# ------------------------------------------------------------------------------------------------ what there is


def serving_groups(serving: Frame) -> pl.DataFrame:
    """node, group, first, last, rows: which groups have serving data and when (for errors and the dashboard)."""
    lf = _lazy(serving)
    names = set(lf.collect_schema().names())
    node = pl.col("node") if "node" in names else pl.lit("")
    return (
        lf.select(node.alias("node"), pl.col("group"), pl.col("time"))
        .group_by("node", "group")
        .agg(pl.col("time").min().alias("first"), pl.col("time").max().alias("last"), pl.len().alias("rows"))
        .sort("group", "node")
        .collect()
    )


def describe_groups(groups: pl.DataFrame) -> str:
    """``hive0 on n1 (2026-03-02 09:00 .. 11:00), ...`` or ``none``: the groups of `serving_groups` in words."""
    if groups.height == 0:
        return "none"
    parts = []
    for r in groups.iter_rows(named=True):
        span = f"{r['first']:%Y-%m-%d %H:%M} .. {r['last']:%Y-%m-%d %H:%M} UTC"
        where = f" on {r['node']}" if r["node"] else ""
        parts.append(f"{r['group']}{where} ({span})")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------------ windows


def _rows(serving: Frame, group: str | None, node: str | None) -> pl.LazyFrame:
    lf = _lazy(serving)
    names = set(lf.collect_schema().names())
    if group is not None:
        lf = lf.filter(pl.col("group") == group)
    if node and "node" in names:
        lf = lf.filter(pl.col("node") == node)
    if "up" in names:
        lf = lf.filter(pl.col("up").fill_null(True))
    if "counter_reset" in names:
        lf = lf.filter(~pl.col("counter_reset").fill_null(False))
    return lf


def scrape_interval_s(serving: Frame, group: str | None = None, node: str | None = None) -> float | None:
    """The median ``interval_s`` of the rows (None without one)."""
    lf = _rows(serving, group, node)
    if "interval_s" not in lf.collect_schema().names():
        return None
    v = lf.select(pl.col("interval_s").cast(pl.Float64).median()).collect().item()
    return None if v is None else float(v)


def choose_live_window_s(
    serving: Frame,
    metric: Metric = "itl",
    group: str | None = None,
    node: str | None = None,
    ladder: Sequence[float] = al.WINDOW_LADDER_S,
) -> float:
    """The smallest ``ladder`` step, at least two scrape intervals, whose windows hold on average enough
    observations of ``metric`` for a p99 (`MIN_OBS_PER_WINDOW`); the largest step when none does."""
    lf = _rows(serving, group, node)
    names = set(lf.collect_schema().names())
    cnt = f"{metric}_count"
    stats = lf.select(
        _col(names, cnt).sum().alias("n"),
        _col(names, "interval_s").sum().alias("secs"),
        _col(names, "interval_s").median().alias("step"),
        pl.struct([c for c in ("node", "engine", "model", "endpoint") if c in names] or [pl.lit(1).alias("_")])
        .n_unique()
        .alias("streams"),
    ).collect()
    n, secs, step, streams = (stats[c][0] for c in ("n", "secs", "step", "streams"))
    secs = (secs or 0.0) / max(streams or 1, 1)
    rate = (n or 0.0) / secs if secs > 0 else 0.0
    floor = 2 * (step or 0.0) * 0.95  # two scrape intervals, with room for a scraper running a little late
    for w in ladder:
        if w >= floor and rate * w >= MIN_OBS_PER_WINDOW[metric]:
            return float(w)
    return float(ladder[-1])


def live_windows(
    serving: Frame,
    window_s: float,
    *,
    group: str,
    node: str | None = None,
    min_p50_obs: int = MIN_P50_OBS,
    min_p99_obs: int = MIN_P99_OBS,
) -> pl.DataFrame:
    """The victim window table of ``group`` (`WINDOW_COLUMNS`, method in the module docstring) from ``serving`` rows
    (eager or lazy; any extra groups / nodes are filtered out)."""
    lf = _rows(serving, group, node)
    names = set(lf.collect_schema().names())
    if "interval_s" not in names:
        return pl.DataFrame(schema=WINDOW_COLUMNS)
    iv = pl.col("interval_s").cast(pl.Float64)
    mid = (
        (pl.col("time").cast(pl.Int64) - (iv * 5e8).cast(pl.Int64)).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    )
    stream = [pl.col(c) if c in names else pl.lit("").alias(c) for c in ("node", "engine", "model", "endpoint")]
    base = lf.filter(iv.is_not_null() & (iv > 0)).with_columns(mid.alias("_mid"), *stream)
    aggs: list[pl.Expr] = [iv.sum().alias("cov")]
    for r in (*_RATES, *_GAUGES):
        v = _col(names, r)
        aggs.append((v * iv).sum().alias(f"{r}__w"))
        aggs.append(iv.filter(v.is_not_null()).sum().alias(f"{r}__c"))
    kv = _col(names, "kv_cache_usage_pct")
    aggs += [(kv * iv).sum().alias("kv__w"), iv.filter(kv.is_not_null()).sum().alias("kv__c")]
    req_w = _col(names, "requests_per_s") * iv
    pm = _col(names, "prompt_tokens_mean")
    aggs += [(pm * req_w).sum().alias("pm__w"), req_w.filter(pm.is_not_null()).sum().alias("pm__c")]
    for m in _QUANTILED:
        n = _col(names, f"{m}_count")
        aggs.append(n.sum().alias(f"{m}__n"))
        for q in ("p50", "p99"):
            v = _col(names, f"{m}_ms_{q}")
            ok = v.is_not_null() & n.is_not_null() & (n > 0)
            aggs.append((v * n).filter(ok).sum().alias(f"{m}_{q}__w"))
            aggs.append(n.filter(ok).sum().alias(f"{m}_{q}__n"))
    per_stream = (
        base.with_columns(al.window_expr(window_s, "_mid").alias("window_start"))
        .group_by("window_start", "node", "engine", "model", "endpoint")
        .agg(aggs)
    )

    def rate(r: str) -> pl.Expr:
        return pl.when(pl.col(f"{r}__c") > 0).then(pl.col(f"{r}__w") / pl.col(f"{r}__c"))

    def summed(r: str) -> pl.Expr:  # null when no stream reported it, else the sum over the streams that did
        return pl.when(rate(r).is_not_null().any()).then(rate(r).sum())

    def quant(m: str, q: str, floor: int) -> pl.Expr:
        n = pl.col(f"{m}_{q}__n").sum()  # observations of the intervals that have this quantile
        return pl.when(n >= floor).then(pl.col(f"{m}_{q}__w").sum() / n)

    win = per_stream.group_by("window_start").agg(
        pl.col("cov").max().clip(upper_bound=window_s).alias("covered_s"),
        *[summed(r).alias(r) for r in (*_RATES, *_GAUGES)],
        (pl.when(pl.col("kv__c") > 0).then(pl.col("kv__w") / pl.col("kv__c"))).mean().alias("kv_cache_usage_pct"),
        (pl.col("pm__w").sum() / pl.col("pm__c").sum()).alias("prompt_tokens_mean"),
        *[pl.col(f"{m}__n").sum().cast(pl.Int64).alias(f"{m}_n") for m in _QUANTILED],
        *[quant(m, "p50", min_p50_obs).alias(f"{m}_ms_p50") for m in ("itl", "ttft")],
        *[quant(m, "p99", min_p99_obs).alias(f"{m}_ms_p99") for m in _QUANTILED],
    )
    out = (
        win.filter(pl.col("covered_s") >= window_s / 2)
        .with_columns(
            pl.lit(f"live:{group}").alias("run_id"),
            pl.lit(LIVE_PHASE).alias("phase"),
            pl.lit(group).alias("group"),
            (pl.col("generation_tokens_per_s") * pl.col("covered_s")).alias("tokens"),
            pl.col("generation_tokens_per_s").alias("output_tok_s"),
            pl.lit(None, dtype=pl.Float64).alias("itl_ms_mean"),
            (pl.col("requests_per_s") * pl.col("covered_s")).alias("requests_started"),
            pl.col("requests_running").alias("running_requests"),
            (pl.col("prompt_tokens_per_s") * pl.col("covered_s")).alias("prefill_tokens"),
            pl.when(pl.col("prompt_tokens_mean").is_finite()).then(pl.col("prompt_tokens_mean")),
        )
        .select([pl.col(c).cast(t) for c, t in WINDOW_COLUMNS.items()])
        .sort("window_start")
        .collect()
    )
    return out


# ------------------------------------------------------------------------------------------------ the grid


def live_grid(
    windows: pl.DataFrame,
    window_s: float,
    *,
    accel: Frame | None = None,
    host: Frame | None = None,
    host_core: Frame | None = None,
    tenant: Frame | None = None,
    disk: Frame | None = None,
    net: Frame | None = None,
    rdma: Frame | None = None,
    notes: Sequence[str] = (),
) -> al.Grid:
    """The co-tenants' telemetry on the live windows' grid (`analysis.align.grid_from_victim`: the same grid a
    benchmark's windows get)."""
    return al.grid_from_victim(
        windows,
        window_s,
        accel=accel,
        host=host,
        host_core=host_core,
        tenant=tenant,
        disk=disk,
        net=net,
        rdma=rdma,
        notes=tuple(notes),
    )


def metric_effects(antagonists: pl.DataFrame, metric: Metric) -> pl.DataFrame:
    """``antagonists`` (`analysis.attribution.ANTAGONIST_COLUMNS`) plus the attributed metric's p99 effect as
    ``metric_effect_pct``, ``metric_ci_low``, ``metric_ci_high`` (in %, positive = slower) and ``metric``."""
    return antagonists.with_columns(
        pl.col(f"{metric}_p99_effect_pct").alias("metric_effect_pct"),
        pl.col(f"{metric}_ci_low").alias("metric_ci_low"),
        pl.col(f"{metric}_ci_high").alias("metric_ci_high"),
        pl.lit(metric).alias("metric"),
    )


# ------------------------------------------------------------------------------------------------ the whole


@dataclass(frozen=True)
class LiveAnalysis:
    """The live analysis of one victim group over [start, end): its window table per metric, the `Attribution`
    per metric (None when it could not run: the notes say why), the TTFT knee, and the notes."""

    victim: str
    node: str | None
    start: datetime | None
    end: datetime | None
    windows: Mapping[str, pl.DataFrame]
    attributions: Mapping[str, attr.Attribution | None]
    knee: Knee | None
    design: str
    notes: tuple[str, ...] = ()
    window_s: Mapping[str, float] = field(default_factory=dict)

    def antagonists(self, metric: Metric = "itl") -> pl.DataFrame:
        """`analysis.attribution.ANTAGONIST_COLUMNS` plus ``metric`` and the metric's own p99 effect columns."""
        a = self.attributions.get(metric)
        frame = pl.DataFrame(schema=attr.ANTAGONIST_COLUMNS) if a is None else a.antagonists
        return metric_effects(frame, metric)

    def antagonists_of(self, metric: Metric = "itl") -> pl.DataFrame:
        """`antagonists` under the name `analysis.analyze.AnalysisResult` uses (the alert engine reads either)."""
        return self.antagonists(metric)


def live_attribution(
    serving: Frame,
    victim: str,
    *,
    node: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    accel: Frame | None = None,
    host: Frame | None = None,
    host_core: Frame | None = None,
    tenant: Frame | None = None,
    disk: Frame | None = None,
    net: Frame | None = None,
    rdma: Frame | None = None,
    run_events: pl.DataFrame | None = None,
    topology: pl.DataFrame | None = None,
    metrics: Sequence[Metric] = METRICS,
    window_s: float | None = None,
    q: float = 0.05,
    n_shifts: int = attr.N_SHIFTS,
    seed: int = 0,
) -> LiveAnalysis:
    """Windows, attribution per metric (ITL and TTFT) and the TTFT knee of ``victim`` from its ``serving`` rows and
    the co-tenants' telemetry (``start`` / ``end`` only label the result: pass the rows of the range)."""
    notes: list[str] = []
    wins: dict[str, pl.DataFrame] = {}
    atts: dict[str, attr.Attribution | None] = {}
    chosen: dict[str, float] = {}
    for metric in metrics:
        w_s = window_s or choose_live_window_s(serving, metric, victim, node)
        chosen[metric] = w_s
        w = live_windows(serving, w_s, group=victim, node=node)
        wins[metric] = w
        col = f"{metric}_ms_p99"
        usable = int(w[col].is_not_null().sum()) if w.height else 0
        how = "given" if window_s else f"chosen so a window holds >= {MIN_OBS_PER_WINDOW[metric]} observations"
        notes.append(
            f"{metric.upper()}: {w.height} windows of {w_s:g} s ({how}) from the engine's histograms, {usable} with "
            f"a p99 (>= {MIN_P99_OBS} observations); quantiles re-aggregated from scrape intervals by count-weighting"
        )
        if usable < attr.MIN_WINDOWS:
            atts[metric] = None
            notes.append(f"{metric.upper()} attribution skipped: {usable} windows with a p99 (< {attr.MIN_WINDOWS})")
            continue
        grid = live_grid(w, w_s, accel=accel, host=host, host_core=host_core, tenant=tenant, disk=disk, net=net,
                         rdma=rdma)  # fmt: skip
        a = attr.attribute(grid, victim, metric=metric, topology=topology, run_events=run_events, q=q,
                           n_shifts=n_shifts, seed=seed)  # fmt: skip
        atts[metric] = a
        notes.extend(f"{metric.upper()}: {n}" for n in a.notes)
    designs = {
        d for a in atts.values() if a is not None and a.antagonists.height for d in a.antagonists["design"].to_list()
    }
    design = "interventional" if designs == {"interventional"} else "mixed" if len(designs) > 1 else "correlational"
    switched = run_events is not None and run_events.height > 0
    if design == "correlational" and not (switched and not designs):  # no ranking at all: say nothing of design
        notes.append(
            "correlational: no randomised on/off schedule (run_event switch_on / switch_off) covers the range, so a "
            "co-tenant is blamed for moving with the victim's slowdown beyond its own load, not proven to cause it"
        )
    knee = None
    tw = wins.get("ttft")
    if tw is not None and tw.height:
        knee = ttft_knee(with_load(tw), "load", "ttft_ms_p99", seed=seed)
        notes.append(f"TTFT knee: {knee.summary()}")
    return LiveAnalysis(victim, node, start, end, wins, atts, knee, design, tuple(notes), chosen)


__all__ = [
    "LIVE_PHASE",
    "METRICS",
    "WINDOW_COLUMNS",
    "LiveAnalysis",
    "choose_live_window_s",
    "describe_groups",
    "live_attribution",
    "live_grid",
    "live_windows",
    "metric_effects",
    "scrape_interval_s",
    "serving_groups",
]
