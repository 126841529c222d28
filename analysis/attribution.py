"""Attribution: who hurts the victim, through which shared resource, with what confidence.

Public API (pure, frames in, frames out)::

    topo = telemetry.topology.read_file("topology.json")           # optional (`telemetry.topology`)
    res = attribute(grid, "hive0", baseline_phase="baseline", topology=topo)  # all of the below: `Attribution`
    sus = suspects("hive0", grid, topo)                               # who could interfere, and via what
    idx = interference_index(grid.victim, baseline_phase="baseline")  # load-adjusted victim slowdown
    act = suspect_activity(grid, sus, schedule=switch_schedule(run_events, grid.window_s))
    med = mediators(grid, "hive0", topo)                              # victim-side resource signals
    ranked = rank_antagonists(idx, act, med, sus, victim="hive0")     # ANTAGONIST_COLUMNS

Method (analysis-methods.md §6b):

1. **Interference index** (`interference_index`): per window, the victim's log output tok/s and log p99 ITL
   are regressed on its own load (mean running requests, prefill tokens) with OLS fitted on baseline windows;
   the residuals are robustly standardised (median / 1.4826 MAD of the baseline residuals) and combined as
   ``index = (z_itl_p99 - z_tput) / 2`` (positive = slower than the victim's own load explains). At most one
   regressor per 10 baseline windows. With a randomised on/off schedule there is no load model (``load_cols=()``):
   the index is the victim against its windows with the co-tenants off. ``metric="ttft"`` (prefill): the p99
   TTFT and the request rate instead (``index = (z_ttft_p99 - z_req_rate) / 2``).
2. **Suspects** (`suspects`): co-tenants sharing a resource's share key with the victim per the declared
   topology (PCIe switch, socket, NUMA node, NIC, disk, cooling / power zone; memory is host-wide); without a
   topology every co-tenant, through every resource.
3. **Activity** (`suspect_activity`): 0..1 per window: the group's summed accelerator power scaled to its
   observed range (every vendor reports power), or its tenant CPU for host-only groups; for a co-tenant switched
   on / off by a randomised schedule (run_event switch_on / switch_off, >= 3 on and >= 3 off blocks) the
   schedule itself (design ``interventional``). Co-tenants whose activity moves together (|r| > 0.95) are merged
   (``tt+furiosa``): the data cannot tell them apart.
4. **Primary score** (`rank_antagonists`): one joint OLS of the index on every suspect's activity at lags
   0..3 windows plus a 60 s exponential smoothing (thermal is slow); a randomised schedule enters as itself (on vs
   off, lag 0). Per suspect: the drop in residual sum of squares when its columns join (partial R², reported as
   ``share_explained``), p by circular-shift permutation (999 shifts; keeps autocorrelation) or, for a randomised
   schedule, by re-arranging its on / off segments (`stats.segment_shuffle_pvalue`), q by Benjamini–Hochberg
   across suspects. The effect = exp(the sum of its coefficients) - 1 (sustained idle -> its busiest) in the same
   regression on the log residual of throughput (``effect_pct``) and of p99 ITL (``itl_p99_effect_pct``): the
   signal's ratio to what the victim's own load predicts, CIs from Newey–West standard errors, in %. The CPI2 correlation (Zhang et al. 2013, threshold 0.35) is reported beside it (``cpi2_corr``).
5. **Resource** (`resource_evidence`): per suspect and shared resource, the victim-side mediators of its record
   (`analysis.resources.RESOURCES`: share keys, mediators, thresholds and evidence words live there) regressed on
   the suspect's activity (Newey–West t): PCIe = drop in the victim's load-adjusted PCIe rate; CPU = saturated
   cores on the victim's socket, host run queue beyond the CPUs, the victim's CPU share on an oversubscribed
   host, its CPU pressure and CFS throttling; memory bandwidth = its resctrl MBM falling, its CPU time per token
   rising; memory = its memory pressure, refaults, major faults; storage = its I/O pressure, its disk's latency;
   network = its NIC's load and drops, its RDMA ports' credit waits, congestion notifications, ECN marks;
   thermal = victim clock drop; power = at-cap share. Throttle flags (thermal / power) rising with the suspect
   are hard evidence. The strongest wins; where two cannot be told apart (Williams' test on their best signals,
   or a signal that cannot rule the other out and the other unmeasured) both are named (``"memory or
   storage_io"``) with the reason; ``evidence`` lists all.

Output (`ANTAGONIST_COLUMNS`), best-first: victim, antagonist, resource, effect_pct, ci_low, ci_high,
itl_p99_effect_pct, itl_ci_low, itl_ci_high, p_value, q_value, share_explained, cpi2_corr, significant, design
(interventional | correlational), confidence (high | medium | low), evidence (list of str), shares (list of str),
metric (itl | ttft), ttft_p99_effect_pct, ttft_ci_low, ttft_ci_high.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

from analysis import stats
from analysis.align import Grid
from analysis.resources import (
    BY_NAME,
    FIELDS,
    MEASUREMENT_KEYS,
    RESOURCE_NAMES,
    RESOURCES,
    TIE_P,
    VICTIM_ROWS,
    Mediator,
    Resource,
    fields_of,
)

LAGS = (0, 1, 2, 3)
SMOOTH_S = 60.0
N_SHIFTS = 999
CPI2_THRESHOLD = 0.35
MERGE_CORR = 0.95
MIN_WINDOWS = 20
MIN_POWER_SWING = 0.10  # a group is busy at some point when its power swings >= 10 % of idle-to-limit
MIN_ACTIVITY_SD = 0.02  # activity (0..1) that never moves more than this cannot be tested

ANTAGONIST_COLUMNS: dict[str, pl.DataType] = {
    "victim": pl.String(),
    "antagonist": pl.String(),
    "resource": pl.String(),
    "effect_pct": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "itl_p99_effect_pct": pl.Float64(),
    "itl_ci_low": pl.Float64(),
    "itl_ci_high": pl.Float64(),
    "p_value": pl.Float64(),
    "q_value": pl.Float64(),
    "share_explained": pl.Float64(),
    "cpi2_corr": pl.Float64(),
    "significant": pl.Boolean(),
    "design": pl.String(),
    "confidence": pl.String(),
    "evidence": pl.List(pl.String()),
    "shares": pl.List(pl.String()),
    "metric": pl.String(),
    "ttft_p99_effect_pct": pl.Float64(),
    "ttft_ci_low": pl.Float64(),
    "ttft_ci_high": pl.Float64(),
}

SUSPECT_COLUMNS: dict[str, pl.DataType] = {
    "suspect": pl.String(),
    "shares": pl.List(pl.String()),
    "resources": pl.List(pl.String()),
    "reason": pl.String(),
}

# ------------------------------------------------------------------------------------------------ topology


def suspects(
    victim: str, grid: Grid, topology: pl.DataFrame | None = None, exclude: Sequence[str] = ()
) -> pl.DataFrame:
    """Co-tenants that could interfere with ``victim`` (`SUSPECT_COLUMNS`).

    Candidates are the groups seen in the grid (accelerator groups and tenants) other than the victim. With a
    topology, a candidate is a suspect through each resource one of whose share keys (`Resource.share_keys`: same
    PCIe switch -> pcie, same socket -> cpu and memory_bandwidth, ...) it shares with the victim's devices, plus
    the host-wide resources (no share key: memory) when it is on the victim's node. Candidates that share
    nothing declared are kept with no resources (a control: if one of them turns out significant, the topology misses a
    path, and its resource is searched among all). Without a topology every candidate is a suspect through every
    resource.
    """
    seen: list[str] = []
    for frame in (grid.groups, grid.tenants):
        if frame.height and "group" in frame.columns:
            seen.extend(g for g in frame["group"].unique().to_list() if g)
    cands = [g for g in dict.fromkeys(sorted(seen)) if g != victim and g not in exclude]
    rows = []
    if topology is None or topology.height == 0:
        for g in cands:
            rows.append(
                {
                    "suspect": g,
                    "shares": [],
                    "resources": list(RESOURCE_NAMES),
                    "reason": "no topology declared: every co-tenant is a suspect",
                }
            )
        return pl.DataFrame(rows, schema=SUSPECT_COLUMNS)
    vict = topology.filter(pl.col("group") == victim)
    v_nodes = set(vict["node"].drop_nulls().to_list()) if "node" in vict.columns else set()
    for g in cands:
        mine = topology.filter(pl.col("group") == g)
        shares, res = [], []
        m_nodes = set(mine["node"].drop_nulls().to_list()) if "node" in mine.columns else set()
        same_host = not v_nodes or not m_nodes or bool(v_nodes & m_nodes)
        for r in RESOURCES:
            shared = False
            for col in r.share_keys:
                common = sorted(set(vict[col].drop_nulls().to_list()) & set(mine[col].drop_nulls().to_list()))
                if common:
                    share = f"{col}={','.join(common)}"
                    if share not in shares:
                        shares.append(share)
                    shared = True
            if shared:
                res.append(r.name)
        if res and same_host:
            # host-wide resources (no share key: memory) are shared by every co-tenant on the victim's node;
            # a suspect sharing nothing declared stays a control (searched among all resources if significant)
            res = [r.name for r in RESOURCES if r.name in res or not r.share_keys]
        if mine.height == 0:
            rows.append(
                {
                    "suspect": g,
                    "shares": [],
                    "resources": list(RESOURCE_NAMES),
                    "reason": "not in the declared topology: suspect through every resource",
                }
            )
        elif res:
            rows.append({"suspect": g, "shares": shares, "resources": res, "reason": "shares " + "; ".join(shares)})
        else:
            rows.append(
                {
                    "suspect": g,
                    "shares": [],
                    "resources": [],
                    "reason": "shares nothing with the victim in the declared topology (tested as a control)",
                }
            )
    return pl.DataFrame(rows, schema=SUSPECT_COLUMNS)


# ------------------------------------------------------------------------------------------------ index


# The victim's own load, regressed out of a correlational design. Caveat: a closed-loop benchmark (fixed
# concurrency) starts fewer requests and prefills fewer tokens per window when the victim is slowed, so
# ``requests_started`` / ``prefill_tokens`` are partly outcomes of the interference: regressing them out shrinks
# effects toward zero (conservative, never a false alarm). A randomised on/off design needs no load model at all
# (`analysis.analyze` passes ``load_cols=()`` then): its schedule is independent of the victim's load.
LOAD_COLS = ("running_requests", "prefill_tokens", "requests_started")
# A mediator (the victim's PCIe rate) is compared with the work the victim actually did.
WORK_COLS = LOAD_COLS
MIN_WINDOWS_PER_REGRESSOR = 10  # the load model fits at most n_baseline / 10 columns (intercept included)


def _load_design(frame: pl.DataFrame, cols: Sequence[str] = LOAD_COLS, max_cols: int | None = None) -> np.ndarray:
    """Intercept, the load columns, and sqrt / square of each (a flexible, still linear, load model), cut to
    ``max_cols`` columns: the transforms go first, then the later load columns (never more regressors than the
    windows can carry). Constant columns are left out."""
    base = [np.ones(frame.height)]
    lin, extra = [], []
    for c in cols:
        if c not in frame.columns:
            continue
        v = frame[c].cast(pl.Float64).fill_null(0.0).to_numpy()
        scale = np.nanmax(np.abs(v)) if v.size else 0.0
        if not scale or np.nanstd(v) < 1e-9 * scale:
            continue
        u = v / scale
        lin.append(u)
        extra.extend([np.sqrt(np.abs(u)), u * u])
    x = base + lin + extra
    if max_cols is not None:
        x = x[: max(1, max_cols)]
    return np.column_stack(x)


def _clip_to(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Load columns clipped to their range on the baseline windows (no extrapolation of the load model),
    then scaled to unit spread there (conditioning)."""
    lo, hi = x[base].min(axis=0), x[base].max(axis=0)
    xc = np.clip(x, lo, hi)
    sd = xc[base].std(axis=0)
    sd[sd == 0] = 1.0
    sd[0] = 1.0
    return xc / sd


def _design(frame: pl.DataFrame, cols: Sequence[str]) -> np.ndarray:
    x = [np.ones(frame.height)]
    for c in cols:
        v = frame[c].cast(pl.Float64).fill_null(0.0).to_numpy()
        x.append(v)
    return np.column_stack(x)


def victim_series(victim: pl.DataFrame) -> pl.DataFrame:
    """The victim's windows with output, one row per window_start (where two runs of the victim overlap, the
    one covering more of the window), in time order."""
    return (
        victim.filter(pl.col("output_tok_s") > 0)
        .sort(["window_start", "covered_s", "tokens"], descending=[False, True, True])
        .unique("window_start", keep="first", maintain_order=True)
    )


Metric = Literal["itl", "ttft"]
SIGNALS: dict[str, str] = {
    "tput": "output_tok_s",
    "itl_p99": "itl_ms_p99",
    "req_rate": "requests_per_s",
    "ttft_p99": "ttft_ms_p99",
}
"""The victim's performance signals (name -> victim window column) the index and the effects read."""
METRICS: dict[str, tuple[str, str]] = {"itl": ("tput", "itl_p99"), "ttft": ("req_rate", "ttft_p99")}
"""Which (rate, latency) signals make the interference index: decode (ITL p99 and output tok/s) or prefill (TTFT
p99 and the request rate)."""


def interference_index(
    victim: pl.DataFrame,
    baseline_phase: str | None = None,
    baseline_mask: np.ndarray | None = None,
    load_cols: Sequence[str] = LOAD_COLS,
    metric: Metric = "itl",
) -> pl.DataFrame:
    """The victim's windows (`victim_series`) plus, for each signal of `SIGNALS` the table has (``tput``,
    ``itl_p99``, ``req_rate``, ``ttft_p99``): ``fit_<s>`` / ``resid_<s>`` (the load model on the linear scale, for
    effects in %), ``resid_log_<s>`` (log residual) and ``z_<s>`` (its robust z), then ``index`` and
    ``in_baseline``. ``metric`` picks the index's signals (`METRICS`): ``itl``: ``index = (z_itl_p99 -
    z_tput) / 2``; ``ttft``: ``(z_ttft_p99 - z_req_rate) / 2`` (positive = slower than the victim's own load
    explains; a window without the latency counts through the rate alone, and the other way round).

    Baseline windows: ``baseline_mask`` if given, else ``phase == baseline_phase``, else all windows.
    """
    if metric not in METRICS:
        raise ValueError(f"interference_index: metric must be one of {sorted(METRICS)}, not {metric!r}")
    v = victim_series(victim)
    cols = [f"{k}_{s}" for s in SIGNALS for k in ("fit", "resid", "resid_log", "z")]
    if v.height == 0:
        return v.with_columns(
            [pl.lit(None, dtype=pl.Float64).alias(c) for c in (*cols, "index")]
            + [pl.lit(None, dtype=pl.Boolean).alias("in_baseline")]
        )
    if baseline_mask is not None:
        base = np.asarray(baseline_mask, dtype=bool)
    elif baseline_phase is not None:
        base = (v["phase"] == baseline_phase).to_numpy()
    else:
        base = np.ones(v.height, dtype=bool)
    if base.sum() < MIN_WINDOWS_PER_REGRESSOR:
        # too few baseline windows even for a level: fit on all (conservative: the slowdown shrinks the effect)
        base = np.ones(v.height, dtype=bool)
    x = _load_design(v, load_cols, max_cols=int(base.sum()) // MIN_WINDOWS_PER_REGRESSOR)
    xs = _clip_to(x, base)
    out = {c: np.full(v.height, np.nan) for c in cols}
    for name, col in SIGNALS.items():
        if col not in v.columns:
            continue
        lv = v[col].cast(pl.Float64).fill_null(np.nan).to_numpy()
        if name == "req_rate" and "covered_s" in v.columns:
            # a window that started no request is the slowest, not a missing one: half a request per window at least
            lv = np.fmax(lv, 0.5 / v["covered_s"].cast(pl.Float64).fill_null(np.nan).to_numpy())
        ok = np.isfinite(lv)
        fit = ok & base
        if fit.sum() > xs.shape[1]:
            beta, _ = stats.ols(lv[fit], xs[fit])
            out[f"fit_{name}"][ok] = xs[ok] @ beta
            out[f"resid_{name}"][ok] = lv[ok] - out[f"fit_{name}"][ok]
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(lv)
        ok = np.isfinite(y)
        fit = ok & base
        resid = out[f"resid_log_{name}"]
        if fit.sum() > xs.shape[1]:
            beta, _ = stats.ols(y[fit], xs[fit])
            resid[ok] = y[ok] - xs[ok] @ beta
        ref = resid[fit & np.isfinite(resid)]
        out[f"z_{name}"] = stats.robust_z(resid, ref) if len(ref) else resid
    rate, lat = METRICS[metric]
    zr, zl = out[f"z_{rate}"], out[f"z_{lat}"]
    index = np.where(np.isfinite(zl) & np.isfinite(zr), (zl - zr) / 2, np.where(np.isfinite(zl), zl, -zr))
    return v.with_columns(
        *[pl.Series(k, val) for k, val in out.items()],
        pl.Series("index", index),
        pl.Series("in_baseline", base),
    )


# ------------------------------------------------------------------------------------------------ activity


def switch_schedule(run_events: pl.DataFrame, window_s: float) -> pl.DataFrame:
    """On/off schedule of co-tenants from run_event switch_on / switch_off rows: window_start, group, on (0/1),
    one row per window where the state is known (from the first event to the last).
    Uses the ``tenant`` field (else the ``group`` tag) to name the co-tenant."""
    if run_events.height == 0 or "event" not in run_events.columns:
        return pl.DataFrame(schema={"window_start": pl.Datetime("ns", "UTC"), "group": pl.String, "on": pl.Float64})
    ev = run_events.filter(pl.col("event").is_in(["switch_on", "switch_off"]))
    if ev.height == 0:
        return pl.DataFrame(schema={"window_start": pl.Datetime("ns", "UTC"), "group": pl.String, "on": pl.Float64})
    name = pl.coalesce(pl.col("tenant"), pl.col("group")) if "tenant" in ev.columns else pl.col("group")
    ev = ev.select(
        pl.col("time").cast(pl.Datetime("ns", "UTC")),
        name.alias("group"),
        (pl.col("event") == "switch_on").cast(pl.Float64).alias("on"),
    ).sort("time")
    w_ns = round(window_s * 1e9)
    t0 = int(ev["time"].cast(pl.Int64).min() // w_ns * w_ns)
    t1 = int(ev["time"].cast(pl.Int64).max())
    out = []
    for (g,), part in ev.group_by("group"):
        # an hour either side: before its first event a co-tenant was in the other state (an event is a switch)
        g0 = t0 - w_ns * round(3600e9 / w_ns)
        grid = pl.DataFrame({"window_start": pl.Series(np.arange(g0, t1 + w_ns * 3600, w_ns), dtype=pl.Int64)})
        grid = grid.with_columns(pl.col("window_start").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))
        # state at the window's midpoint
        mid = grid.with_columns((pl.col("window_start") + pl.duration(nanoseconds=w_ns // 2)).alias("time"))
        part = part.sort("time")
        # before its first event a co-tenant was in the other state (an event is a switch)
        first = part.head(1).with_columns(
            pl.lit(g0 - 1, dtype=pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias("time"),
            (1.0 - pl.col("on")).alias("on"),
        )
        part = pl.concat([first.select("time", "on"), part.select("time", "on")]).sort("time")
        j = mid.join_asof(part, on="time", strategy="backward")
        out.append(j.select("window_start", pl.lit(g).alias("group"), "on").drop_nulls("on"))
    return pl.concat(out)


def _blocks(on: np.ndarray) -> tuple[int, int]:
    """Number of on-blocks and off-blocks in a 0/1 series."""
    if len(on) == 0:
        return 0, 0
    b = on > 0.5
    starts = np.flatnonzero(np.diff(np.concatenate([[not b[0]], b])) != 0)
    vals = b[starts]
    return int(vals.sum()), int((~vals).sum())


def suspect_activity(
    grid: Grid, suspect_frame: pl.DataFrame, schedule: pl.DataFrame | None = None, min_blocks: int = 3
) -> pl.DataFrame:
    """Activity 0..1 of each suspect on the victim's windows: window_start, suspect, activity, design.

    ``design`` is ``interventional`` where ``schedule`` (`switch_schedule`) switched the suspect on and off at
    least ``min_blocks`` times each during the victim's windows, else ``correlational`` (measured activity).
    """
    wins = grid.victim.select("window_start").unique().sort("window_start")
    frames = []
    for g in suspect_frame["suspect"].to_list():
        series = None
        design = "correlational"
        if schedule is not None and schedule.height:
            s = wins.join(
                schedule.filter(pl.col("group") == g).select("window_start", "on"), on="window_start", how="left"
            )
            on = s["on"].to_numpy().astype(float)
            if np.isfinite(on).all():
                n_on, n_off = _blocks(on)
                if n_on >= min_blocks and n_off >= min_blocks:
                    series, design = on, "interventional"
        if series is None and grid.groups.height:
            gp = grid.groups.filter(pl.col("group") == g)
            if gp.height:
                p = wins.join(
                    gp.group_by("window_start").agg(pl.col("power_w").sum(), pl.col("power_limit_w").sum()),
                    on="window_start",
                    how="left",
                )
                power = p["power_w"].to_numpy().astype(float)
                limit = (
                    float(np.nanmax(p["power_limit_w"].to_numpy().astype(float)))
                    if p["power_limit_w"].is_not_null().any()
                    else math.nan
                )
                if np.isfinite(power).any():
                    series = _scale_power(power, limit)
        if series is None and grid.tenants.height:
            c = (
                wins.join(
                    grid.tenants.filter(pl.col("group") == g).select("window_start", "cpu_pct"),
                    on="window_start",
                    how="left",
                )["cpu_pct"]
                .to_numpy()
                .astype(float)
            )
            if np.isfinite(c).any():
                series = np.clip(np.nan_to_num(c, nan=0.0) / max(float(np.nanmax(c)), 100.0), 0, 1)
        if series is None:
            continue
        frames.append(
            wins.with_columns(pl.lit(g).alias("suspect"), pl.Series("activity", series), pl.lit(design).alias("design"))
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "window_start": pl.Datetime("ns", "UTC"),
                "suspect": pl.String,
                "activity": pl.Float64,
                "design": pl.String,
            }
        )
    return pl.concat(frames)


def _scale_power(power: np.ndarray, limit: float) -> np.ndarray:
    """Power above the group's idle floor (1st percentile) as a share of its observed swing to the 99th
    percentile: 0 idle, 1 at its busiest. A group whose swing is under `MIN_POWER_SWING` of its headroom to
    the power limit never got busy: scaled by the headroom instead (stays near 0, so it is not testable)."""
    x = np.where(np.isfinite(power), power, np.nan)
    lo, hi = float(np.nanpercentile(x, 1)), float(np.nanpercentile(x, 99))
    head = limit - lo if math.isfinite(limit) and limit > lo else hi - lo
    if not math.isfinite(lo) or head <= 0 or hi - lo < MIN_POWER_SWING * head:
        # never busy: noise around idle, scaled by the headroom (stays ~0, cannot be tested)
        return np.nan_to_num(np.clip((x - lo) / max(head, 1e-9), 0, 1), nan=0.0) if head > 0 else np.zeros_like(x)
    return np.nan_to_num(np.clip((x - lo) / (hi - lo), 0, 1), nan=0.0)


# ------------------------------------------------------------------------------------------------ mediators


def _agg(name: str, how: str) -> pl.Expr:
    return {"sum": pl.col(name).sum(), "max": pl.col(name).max()}.get(how, pl.col(name).mean())


def _victim_values(topology: pl.DataFrame | None, victim: str, column: str) -> list[str]:
    if topology is None or topology.height == 0 or column not in topology.columns:
        return []
    return topology.filter(pl.col("group") == victim)[column].drop_nulls().unique().to_list()


def victim_measurement(grid: Grid, victim: str, measurement: str, topology: pl.DataFrame | None = None) -> pl.DataFrame:
    """The victim's rows of a window frame (`Grid.measurement`) combined per window, columns renamed
    ``<measurement>.<column>``: ``tenant``: the victim's group; ``host``: the victim's node(s) per the topology
    (else every node); ``disk`` / ``net`` / ``rdma``: its disks / NICs per the topology (`VICTIM_ROWS`; else, or
    when none matches, every row). Rows combine as each field's ``group_agg`` says (base columns: tenant summed,
    host averaged)."""
    frame = grid.measurement(measurement)
    keys = MEASUREMENT_KEYS[measurement]
    if frame.height == 0:
        return pl.DataFrame(schema={"window_start": frame.schema.get("window_start", pl.Datetime("ns", "UTC"))})
    if measurement == "tenant":
        frame = frame.filter(pl.col("group") == victim)
    else:
        nodes = _victim_values(topology, victim, "node")
        if nodes and "node" in frame.columns and frame.filter(pl.col("node").is_in(nodes)).height:
            frame = frame.filter(pl.col("node").is_in(nodes))
        if measurement in VICTIM_ROWS:
            topo_col, tag = VICTIM_ROWS[measurement]
            mine = _victim_values(topology, victim, topo_col)
            if mine and tag in frame.columns and frame.filter(pl.col(tag).is_in(mine)).height:
                frame = frame.filter(pl.col(tag).is_in(mine))
    how = {f.name: f.group_agg for f in fields_of(measurement)}
    default = "sum" if measurement == "tenant" else "mean"
    values = [c for c in frame.columns if c not in ("window_start", *keys)]
    return frame.group_by("window_start").agg(_agg(c, how.get(c, default)).alias(f"{measurement}.{c}") for c in values)


def mediators(
    grid: Grid,
    victim: str,
    topology: pl.DataFrame | None = None,
    baseline_mask: np.ndarray | None = None,
    load_cols: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Victim-side resource signals per victim window: window_start, then every resource's mediators
    (`analysis.resources.RESOURCES`, in record order; higher = more evidence; missing telemetry gives nulls).

    Each is its record's ``derive`` (`_DERIVE`) on the victim's windows: its load columns and output, its
    accelerator group's fields, and its rows of host / tenant / disk / net / rdma (`victim_measurement`). E.g.
    ``pcie_drop`` (minus the load-adjusted log PCIe rate of the victim's devices), ``cpu_saturation`` (saturated
    core share of the victim's socket(s); all sockets' max without topology), ``run_queue_excess`` (host runnable
    tasks per logical CPU beyond one), ``victim_cpu_drop`` (minus the victim tenant's CPU, in cores; only on an
    oversubscribed host), ``victim_cpu_pressure`` / ``victim_mem_pressure`` / ``victim_io_pressure`` (the
    victim's own PSI stall time beyond its load), ``victim_cpu_per_token`` (its CPU time per token, a CPI proxy),
    ``link_saturation`` (its NIC's load), ``clock_drop`` (minus log mean SM clock), throttle shares.

    "Beyond its load" is a fit on ``load_cols`` (default `WORK_COLS`) over the baseline windows; ``()`` under a
    randomised schedule, as for the index: the victim's load reacts to its slowdown (fewer requests in flight
    while it is starved), so a load model there explains the victim's stall away.
    """
    v = victim_series(grid.victim)
    out = v.select("window_start", *WORK_COLS, "output_tok_s")
    if grid.groups.height:
        g = (
            grid.groups.filter(pl.col("group") == victim)
            .group_by("window_start")
            .agg(_agg(f.name, f.group_agg) for f in FIELDS)
        )
        out = out.join(g, on="window_start", how="left")
    else:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(f.name) for f in FIELDS)
    for meas in ("host", "tenant", "host_disk", "host_net", "rdma"):
        vm = victim_measurement(grid, victim, meas, topology)
        if vm.width > 1:
            out = out.join(vm, on="window_start", how="left")
    ctx = _MediatorInputs(
        grid, victim, topology, baseline_mask, out, tuple(WORK_COLS if load_cols is None else load_cols)
    )
    return out.select(
        "window_start",
        *[_DERIVE[m.derive](ctx, r, m).fill_nan(None).alias(m.column) for r in RESOURCES for m in r.mediators],
    )


@dataclass
class _MediatorInputs:
    """What a mediator derivation reads: the grid, the victim, the topology, its baseline windows and ``frame``
    (the victim's windows with its load columns and the victim group's resource fields)."""

    grid: Grid
    victim: str
    topology: pl.DataFrame | None
    baseline_mask: np.ndarray | None
    frame: pl.DataFrame
    load_cols: tuple[str, ...] = tuple(WORK_COLS)
    _contention: tuple[np.ndarray, np.ndarray] | None = None

    def contention(self) -> tuple[np.ndarray, np.ndarray]:
        """`_cpu_contention` on the victim's windows (computed once: two mediators read it)."""
        if self._contention is None:
            self._contention = _cpu_contention(self.grid, self.victim, self.frame.select("window_start"))
        return self._contention


def _field(ctx: _MediatorInputs, m: Mediator, name: str | None = None) -> pl.Series:
    """The victim frame's column ``name`` (default the mediator's field); all null where the telemetry lacks it."""
    name = name or m.field
    if name is None:
        raise ValueError(f"mediator {m.column}: derivation {m.derive!r} needs a field")
    if name not in ctx.frame.columns:
        return pl.Series(name, [None] * ctx.frame.height, dtype=pl.Float64)
    return ctx.frame[name].cast(pl.Float64)


def _load_residual(ctx: _MediatorInputs, values: np.ndarray) -> np.ndarray:
    """``values`` minus their fit on the victim's own load (`_load_design` of `WORK_COLS`), fitted on the
    baseline windows (all where there are too few); NaN where ``values`` is."""
    out, baseline_mask = ctx.frame, ctx.baseline_mask
    ok = np.isfinite(values)
    res = np.full(out.height, np.nan)
    if ok.sum() > 5:
        base = ok if baseline_mask is None or len(baseline_mask) != out.height else ok & baseline_mask
        if base.sum() < MIN_WINDOWS_PER_REGRESSOR:
            base = ok
        x = _load_design(out, ctx.load_cols, max_cols=int(base.sum()) // MIN_WINDOWS_PER_REGRESSOR)
        xs = _clip_to(x, base)
        beta, _ = stats.ols(values[base], xs[base])
        res[ok] = values[ok] - xs[ok] @ beta
    return res


def _load_adjusted_drop(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    """Minus the residual of the log field on the victim's own load, fitted on baseline windows."""
    raw = _field(ctx, m).fill_null(np.nan).to_numpy()
    return pl.Series(m.column, -_load_residual(ctx, np.log(np.maximum(raw, 1.0))))


def _load_adjusted_rise(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    """The residual of the field (a stall time, a fault rate) on the victim's own load: what its load does not
    explain."""
    return pl.Series(m.column, _load_residual(ctx, _field(ctx, m).fill_null(np.nan).to_numpy()))


def _cpu_per_token_rise(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    """The log of the victim's CPU time per output token (``field``: its CPU %, over ``output_tok_s``), beyond
    its own load: cycles stalled on memory (or on a core shared with a busy sibling thread) count as busy, so
    the victim burns more CPU per token while not being denied CPU (a CPI proxy, CPI2's signal)."""
    cpu = _field(ctx, m).fill_null(np.nan).to_numpy()
    tput = ctx.frame["output_tok_s"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(cpu / tput)
    y[~np.isfinite(y)] = np.nan
    return pl.Series(m.column, _load_residual(ctx, y))


def _link_saturation(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    """The victim's NIC load: the larger of its rx / tx bytes as a share of the link speed (8 bits per byte,
    Mbit/s), or of its observed peak (99th percentile) where the driver gives no speed (a veth, a shaped link)."""
    rx = _field(ctx, m, "host_net.rx_bytes_per_s").fill_null(np.nan).to_numpy()
    tx = _field(ctx, m, "host_net.tx_bytes_per_s").fill_null(np.nan).to_numpy()
    speed = _field(ctx, m, "host_net.speed_mbit_per_s").fill_null(np.nan).to_numpy()
    with np.errstate(invalid="ignore"):
        load = np.fmax(rx, tx)
    out = np.full(len(load), np.nan)
    if not np.isfinite(load).any():
        return pl.Series(m.column, out)
    by_speed = np.isfinite(speed) & (speed > 0)
    out[by_speed] = load[by_speed] * 8 / (speed[by_speed] * 1e6)
    peak = float(np.nanpercentile(load, 99))
    rest = ~by_speed & np.isfinite(load)
    if peak > 0:
        out[rest] = load[rest] / peak
    return pl.Series(m.column, out)


def _neg_log(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        return pl.Series(m.column, -np.log(_field(ctx, m).fill_null(np.nan).to_numpy()))


def _value(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    return _field(ctx, m).alias(m.column)


def _socket_max(ctx: _MediatorInputs, r: Resource, m: Mediator) -> pl.Series:
    """Highest saturated-core share among the victim's sockets (the resource's share key in the topology; every
    socket without one)."""
    grid, wins = ctx.grid, ctx.frame.select("window_start")
    if not grid.sockets.height:
        return pl.Series(m.column, [None] * wins.height, dtype=pl.Float64)
    socks = None
    if ctx.topology is not None and ctx.topology.height:
        socks = ctx.topology.filter(pl.col("group") == ctx.victim)[r.share_keys[0]].drop_nulls().unique().to_list()
    s = grid.sockets if not socks else grid.sockets.filter(pl.col("socket").is_in(socks))
    s = s.group_by("window_start").agg(pl.col("saturated_core_share").max().alias(m.column))
    return wins.join(s, on="window_start", how="left")[m.column].cast(pl.Float64)


def _run_queue_excess(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    return pl.Series(m.column, ctx.contention()[0]).fill_nan(None)


def _victim_cpu_drop(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    return pl.Series(m.column, ctx.contention()[1]).fill_nan(None)


_DERIVE = {
    "load_adjusted_drop": _load_adjusted_drop,
    "load_adjusted_rise": _load_adjusted_rise,
    "cpu_per_token_rise": _cpu_per_token_rise,
    "link_saturation": _link_saturation,
    "neg_log": _neg_log,
    "value": _value,
    "socket_max": _socket_max,
    "run_queue_excess": _run_queue_excess,
    "victim_cpu_drop": _victim_cpu_drop,
}
"""How each `analysis.resources.Mediator.derive` is computed per victim window (name -> function)."""


def _cpu_contention(grid: Grid, victim: str, wins: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per window: host runnable tasks per logical CPU beyond one (``procs_running / cpu_count - 1``, >= 0), and
    minus the victim tenant's CPU in cores, kept only when the host is oversubscribed (median run queue above
    the CPU count). On a busy host every core is saturated with or without the antagonist, so the saturated-core
    share stays flat; the run queue and the victim's own CPU share are what move."""
    nan = np.full(wins.height, np.nan)
    rq = nan.copy()
    oversubscribed = False
    h = grid.host
    if h.height and {"procs_running", "cpu_count"} <= set(h.columns):
        hh = wins.join(
            h.group_by("window_start").agg(pl.col("procs_running").mean(), pl.col("cpu_count").mean()),
            on="window_start",
            how="left",
        )
        pr = hh["procs_running"].cast(pl.Float64).to_numpy()
        cc = hh["cpu_count"].cast(pl.Float64).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = pr / cc
        rq = np.where(np.isfinite(ratio), np.clip(ratio - 1.0, 0.0, None), np.nan)
        oversubscribed = bool(np.isfinite(ratio).any() and np.nanmedian(ratio) > 1.0)
    vcpu = nan.copy()
    t = grid.tenants
    if oversubscribed and t.height and "group" in t.columns:
        c = (
            wins.join(
                t.filter(pl.col("group") == victim).group_by("window_start").agg(pl.col("cpu_pct").mean()),
                on="window_start",
                how="left",
            )["cpu_pct"]
            .cast(pl.Float64)
            .to_numpy()
        )
        vcpu = -c / 100.0
    return rq, vcpu


def _slope_t(y: np.ndarray, a: np.ndarray, others: np.ndarray | None = None) -> tuple[float, float]:
    """Coefficient of ``a`` and its Newey–West t in y ~ 1 + a + others."""
    ok = np.isfinite(y) & np.isfinite(a)
    if ok.sum() < MIN_WINDOWS or np.std(a[ok]) < 1e-9 or np.std(y[ok]) < 1e-12:
        return math.nan, math.nan
    cols = [np.ones(ok.sum()), a[ok]]
    if others is not None and others.size:
        cols.extend(others[ok].T)
    x = np.column_stack(cols)
    beta, resid = stats.ols(y[ok], x)
    cov = stats.hac_cov(x, resid)
    se = math.sqrt(max(cov[1, 1], 1e-300))
    return float(beta[1]), float(beta[1] / se)


@dataclass
class _Found:
    """What one resource's mediators showed for one suspect."""

    score: float = 0.0  # best t of a primary mediator past the threshold (+10 for hard evidence)
    hard: bool = False
    specific: bool = False  # a passing primary mediator that rules out every other resource by itself
    measured: bool = False  # some primary / hard mediator had data (so "nothing" means nothing)
    context: bool = False
    ambiguous: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    signal: np.ndarray | None = None  # the best primary / hard mediator (the one compared with other resources')
    t: float = math.nan


def resource_evidence(
    suspect: str,
    activity: np.ndarray,
    med: pl.DataFrame,
    resources: Sequence[str],
    suspect_info: str = "",
    others: np.ndarray | None = None,
) -> tuple[str, list[str], bool]:
    """(resource, evidence lines, hard) for one suspect: the resource whose victim-side mediators move most
    with the suspect's activity, the other suspects' activity (``others``, windows x k) held fixed.

    Throttle flags are hard evidence and win. Where no signal separates two resources the answer names both
    (``"memory_bandwidth or cpu"``) with a line saying why they cannot be told apart: their best signals'
    correlations with the suspect's activity do not differ (Williams' test, p >= `analysis.resources.TIE_P`;
    `analysis.stats.dependent_corr_test`), or the winner's only evidence is a signal that cannot rule
    the other out (`Mediator.ambiguous_with`) and the other's own signals were not measured or show evidence too
    (measured and flat rules it out). With context
    evidence alone, the resource(s) it points at, said so. ``unknown`` only without any evidence."""
    found: dict[str, _Found] = {}
    lines: list[str] = []
    for r in resources:
        rec = BY_NAME.get(r)
        if rec is None:
            continue
        f = found.setdefault(r, _Found())
        for m in rec.mediators:
            if m.column not in med.columns:
                continue
            y = med[m.column].cast(pl.Float64).fill_null(np.nan).to_numpy()
            if m.kind != "context" and np.isfinite(y).sum() >= MIN_WINDOWS:
                f.measured = True
            slope, t = _slope_t(y, activity, others)
            if not math.isfinite(t):
                continue
            if m.kind == "hard":
                if slope >= rec.hard_share and t >= rec.t_evidence:
                    lines.append(
                        f"{r}: {m.label} set in {100 * min(slope, 1.0):.0f}% more of the samples with {suspect} "
                        f"at its busiest (t={t:.1f}; hard evidence)"
                    )
                    if not f.hard or t > f.t:
                        f.signal, f.t = y, t
                    f.score = max(f.score, t) + 10.0
                    f.hard = f.specific = True
                continue
            if t < rec.t_evidence:
                continue
            lines.append(f"{r}: {m.label} {m.effect(slope)} with {suspect} at its busiest (t={t:.1f})")
            if m.kind == "primary":
                if not f.hard and not t <= f.t:
                    f.signal, f.t = y, t
                f.score = max(f.score, t)
                f.labels = (*f.labels, m.label)
                if m.ambiguous_with:
                    f.ambiguous = tuple(dict.fromkeys((*f.ambiguous, *m.ambiguous_with)))
                else:
                    f.specific = True
            else:
                f.context = True
    named, why = _name_resources(found, resources, activity, others)
    resource = " or ".join(named) if named else "unknown"
    # the named resources' evidence first, hard evidence (throttle flags) before the rest
    lines.sort(key=lambda line: (not any(line.startswith(f"{n}:") for n in named), "hard evidence" not in line))
    if why:
        lines.insert(0, f"{resource}: {why}")
    if suspect_info:
        lines.append(suspect_info)
    return resource, lines, any(f.hard for f in found.values())


def _partial(v: np.ndarray, others: np.ndarray | None, ok: np.ndarray) -> np.ndarray:
    """``v`` on the rows ``ok``, residualised on an intercept and the other suspects' activity."""
    cols = [np.ones(ok.sum())]
    if others is not None and others.size:
        cols.extend(np.asarray(others)[ok].T)
    return stats.ols(v[ok], np.column_stack(cols))[1]


def _name_resources(
    found: dict[str, _Found], resources: Sequence[str], activity: np.ndarray, others: np.ndarray | None
) -> tuple[list[str], str]:
    """The resource(s) to name, best first, and why several are named (empty when one is clear)."""
    ranked = sorted((r for r, f in found.items() if f.score > 0), key=lambda r: -found[r].score)
    if not ranked:
        ctx = [r for r, f in found.items() if f.context]
        if not ctx:
            return [], ""
        why = "context evidence only (signals that the suspect uses it, none that the victim stalls on it)"
        if len(ctx) > 1:
            why = "cannot be told apart: " + why
        return ctx, why
    best = ranked[0]
    top = found[best]
    named = [best]
    reasons = []
    # statistically indistinguishable: the runner-up's best signal correlates with the suspect's activity about
    # as well as the winner's (Williams' test on the two dependent correlations; hard evidence only ties hard)
    for r in ranked[1:]:
        f = found[r]
        if f.hard != top.hard or f.signal is None or top.signal is None:
            continue
        ok = np.isfinite(activity) & np.isfinite(top.signal) & np.isfinite(f.signal)
        if ok.sum() < MIN_WINDOWS:
            continue
        a = _partial(activity, others, ok)
        _, p = stats.dependent_corr_test(a, _partial(top.signal, others, ok), _partial(f.signal, others, ok))
        if math.isfinite(p) and p >= TIE_P:
            named.append(r)
            reasons.append(
                f"their victim-side signals move with the suspect about as closely ({best} t={top.t:.1f}, "
                f"{r} t={f.t:.1f}; the correlations do not differ, Williams' test p={p:.2f})"
            )
    # the winner rests only on a signal that cannot rule another resource out, whose own signals are missing
    if not top.specific:
        for amb in top.ambiguous:
            if amb in named or amb not in resources:
                continue
            other = found.get(amb)
            if other is not None and other.measured and other.score == 0:
                continue  # its own signals were measured and show nothing: ruled out
            named.append(amb)
            has_own = other is not None and other.score > 0
            whose = "which has evidence of its own" if has_own else "whose own signals were not measured"
            reasons.append(f"{best}'s only evidence ({'; '.join(top.labels)}) would also come from {amb}, {whose}")
    if len(named) == 1:
        return named, ""
    return named, "cannot be told apart: " + "; ".join(reasons)


# ------------------------------------------------------------------------------------------------ ranking


def _lagged(a: np.ndarray, window_s: float) -> np.ndarray:
    cols = []
    for lag in LAGS:
        cols.append(np.concatenate([np.full(lag, a[0]), a[: len(a) - lag]]) if lag else a)
    alpha = 1 - math.exp(-window_s / SMOOTH_S)
    sm = np.empty_like(a)
    acc = a[0]
    for i, x in enumerate(a):
        acc = acc + alpha * (x - acc)
        sm[i] = acc
    cols.append(sm)
    return np.column_stack(cols)


def _cpi2(activity: np.ndarray, resid_itl: np.ndarray, base: np.ndarray) -> float:
    """CPI2's antagonist correlation with c = exp(load-adjusted log p99 ITL), c_thr = 2 sigma of baseline."""
    ok = np.isfinite(resid_itl)
    ref = resid_itl[ok & base]
    if len(ref) < 5 or activity[ok].sum() <= 0:
        return math.nan
    med = np.median(ref)
    sd = 1.4826 * np.median(np.abs(ref - med)) or np.std(ref) or 1.0
    c, c_thr = np.exp(np.clip(resid_itl[ok], -50, 50)), math.exp(med + 2 * sd)
    u = activity[ok]
    terms = np.where(c > c_thr, u * (1 - c_thr / c), u * (c / c_thr - 1))
    return float(np.clip(terms.sum() / u.sum(), -1, 1))


def _merge_collinear(names: list[str], acts: list[np.ndarray], designs: list[str]):
    groups: list[list[int]] = []
    for i, a in enumerate(acts):
        for grp in groups:
            b = acts[grp[0]]
            if np.std(a) > 0 and np.std(b) > 0 and abs(np.corrcoef(a, b)[0, 1]) > MERGE_CORR:
                grp.append(i)
                break
        else:
            groups.append([i])
    out_names = ["+".join(names[i] for i in grp) for grp in groups]
    out_acts = [np.mean([acts[i] for i in grp], axis=0) for grp in groups]
    out_designs = [
        "interventional" if all(designs[i] == "interventional" for i in grp) else "correlational" for grp in groups
    ]
    return out_names, out_acts, out_designs, groups


def rank_antagonists(
    index: pl.DataFrame,
    activity: pl.DataFrame,
    mediator_frame: pl.DataFrame,
    suspect_frame: pl.DataFrame,
    *,
    victim: str,
    window_s: float,
    q: float = 0.05,
    n_shifts: int = N_SHIFTS,
    seed: int = 0,
    metric: Metric = "itl",
) -> tuple[pl.DataFrame, list[str]]:
    """The ranked antagonists of ``victim`` (`ANTAGONIST_COLUMNS`) and notes.

    ``index``: `interference_index`; ``activity``: `suspect_activity`; ``mediator_frame``: `mediators`;
    ``suspect_frame``: `suspects`. Ranking: significant (q < ``q`` and harmful) first, by effect on the index,
    then the rest by p-value. ``metric``: the index's signals (`METRICS`); ``effect_pct`` is the effect on its
    rate (output tok/s for ``itl``, requests/s for ``ttft``); ``itl_p99_effect_pct`` and ``ttft_p99_effect_pct``
    are reported whichever the metric (null where the victim table lacks them).
    """
    notes: list[str] = []
    idx = index.filter(pl.col("index").is_finite()).sort("window_start")
    if idx.height < MIN_WINDOWS or activity.height == 0:
        notes.append(
            f"attribution skipped: {idx.height} usable victim windows, "
            f"{activity['suspect'].n_unique() if activity.height else 0} suspects with telemetry"
        )
        return pl.DataFrame(schema=ANTAGONIST_COLUMNS), notes
    wins = idx.select("window_start")
    mediator_frame = wins.join(mediator_frame, on="window_start", how="left")
    names, acts, designs = [], [], []
    for (name,), part in activity.group_by("suspect", maintain_order=True):
        a = wins.join(part.select("window_start", "activity"), on="window_start", how="left")["activity"]
        arr = a.fill_null(0.0).to_numpy().astype(float)
        if np.std(arr) < MIN_ACTIVITY_SD:
            notes.append(f"{name}: activity never changed while {victim} ran, so it cannot be tested")
            continue
        names.append(name)
        acts.append(arr)
        designs.append(part["design"][0])
    if not names:
        return pl.DataFrame(schema=ANTAGONIST_COLUMNS), notes
    names, acts, designs, _ = _merge_collinear(names, acts, designs)
    for n in names:
        if "+" in n:
            notes.append(f"{n.replace('+', ' and ')} switched together: their effects cannot be separated")
    y = idx["index"].to_numpy()
    # a randomised schedule: its on vs off windows (lag 0), p from re-arranging its on / off segments; measured
    # activity: lags and smoothing (slow mechanisms), p from circular shifts
    blocks = [a[:, None] if d == "interventional" else _lagged(a, window_s) for a, d in zip(acts, designs, strict=True)]
    starts = np.cumsum([1] + [b.shape[1] for b in blocks])
    controls = np.ones((len(y), 1))
    rng = np.random.default_rng(seed)
    min_shift = max(1, math.ceil(SMOOTH_S / window_s))
    _, stat, p = stats.circular_shift_pvalues(
        y, blocks, controls, n_shifts if n_shifts > 0 else None, rng, min_shift=min(min_shift, len(y) // 4)
    )
    for j, d in enumerate(designs):
        if d == "interventional":
            p[j] = stats.segment_shuffle_pvalue(y, blocks, j, controls, n_shifts if n_shifts > 0 else N_SHIFTS, rng)
    x = np.column_stack([controls, *blocks])
    beta_i, resid_i = stats.ols(y, x)
    rss_full = float(resid_i @ resid_i)
    tss = float(((y - y.mean()) ** 2).sum()) or 1.0
    qv = stats.bh(p)
    base = idx["in_baseline"].fill_null(False).to_numpy()
    out_rows = []
    effects: dict[str, tuple[float, float, float]] = {}
    rate_sig, lat_sig = METRICS[metric]
    # effects as ratios: the log residual (the victim's signal over what its own load predicts) regressed on the
    # activity, exp(slope) - 1 in %; on the log scale a few windows of a backlog (p99 ITL 10x for a minute after
    # a switch-off) weigh as ratios, not as hundreds of ms that swamp the interval (issue 16's e2e run)
    for col in (f"resid_{rate_sig}", "resid_itl_p99", "resid_ttft_p99"):
        log_col = col.replace("resid_", "resid_log_")
        if log_col not in idx.columns:
            continue
        yy = idx[log_col].cast(pl.Float64).to_numpy()
        ok = np.isfinite(yy)
        if ok.sum() < MIN_WINDOWS:
            continue
        beta, resid = stats.ols(yy[ok], x[ok])
        cov = stats.hac_cov(x[ok], resid)
        for j, n in enumerate(names):
            sl = slice(starts[j], starts[j + 1])
            b = float(beta[sl].sum())
            se = math.sqrt(max(float(cov[sl, sl].sum()), 0.0))
            effects[f"{col}:{n}"] = tuple(100.0 * math.expm1(min(v, 50.0)) for v in (b, b - 1.96 * se, b + 1.96 * se))
    for j, n in enumerate(names):
        sl = slice(starts[j], starts[j + 1])
        harm = float(beta_i[sl].sum())
        members = [s for s in n.split("+")]
        info = suspect_frame.filter(pl.col("suspect").is_in(members))
        res = sorted({r for lst in info["resources"].to_list() for r in lst})
        shares = sorted({s for lst in info["shares"].to_list() for s in lst})
        others = np.column_stack([a for i, a in enumerate(acts) if i != j]) if len(acts) > 1 else None
        resource, lines, hard = resource_evidence(
            n, acts[j], mediator_frame, res or list(RESOURCE_NAMES), others=others
        )
        if not res and info.height:
            lines.append(f"{n} shares nothing with {victim} in the declared topology but the host's memory")
        tp = effects.get(f"resid_{rate_sig}:{n}", (math.nan,) * 3)
        it = effects.get(f"resid_itl_p99:{n}", (math.nan,) * 3)
        tt = effects.get(f"resid_ttft_p99:{n}", (math.nan,) * 3)
        sig = bool(math.isfinite(qv[j]) and qv[j] < q and harm > 0)
        if designs[j] == "interventional" and sig:
            conf = "high"
        elif sig and (hard or resource != "unknown"):
            conf = "medium"
        else:
            conf = "low"
        if designs[j] == "interventional":
            lines.insert(0, f"estimated from the randomised on/off schedule of {n} (interventional)")
        out_rows.append(
            {
                "victim": victim,
                "antagonist": n,
                "resource": resource,
                "effect_pct": _num(tp[0]),
                "ci_low": _num(tp[1]),
                "ci_high": _num(tp[2]),
                "itl_p99_effect_pct": _num(it[0]),
                "itl_ci_low": _num(it[1]),
                "itl_ci_high": _num(it[2]),
                "p_value": float(p[j]),
                "q_value": float(qv[j]),
                "share_explained": float(stat[j] / tss) if math.isfinite(stat[j]) else None,
                "cpi2_corr": _cpi2(acts[j], idx[f"resid_log_{lat_sig}"].cast(pl.Float64).to_numpy(), base),
                "significant": sig,
                "design": designs[j],
                "confidence": conf,
                "evidence": lines,
                "shares": shares,
                "metric": metric,
                "ttft_p99_effect_pct": _num(tt[0]),
                "ttft_ci_low": _num(tt[1]),
                "ttft_ci_high": _num(tt[2]),
                "_harm": harm,
            }
        )
    n_int = sum(d == "interventional" for d in designs)
    how = []
    if n_int < len(names):
        how.append(
            f"{len(names) - n_int} measured suspect(s) x lags {list(LAGS)} windows + {SMOOTH_S:g} s smoothing, "
            f"p by {n_shifts} circular shifts"
        )
    if n_int:
        how.append(
            f"{n_int} randomised schedule(s) on vs off, p by {n_shifts if n_shifts > 0 else N_SHIFTS} "
            "re-arrangements of their on / off segments"
        )
    notes.append(
        f"joint regression of the interference index on {'; '.join(how)}: R^2 = {1 - rss_full / tss:.2f}; "
        "q by Benjamini-Hochberg across suspects"
    )
    out_rows.sort(key=lambda r: (not r["significant"], -r["_harm"] if r["significant"] else r["p_value"]))
    for r in out_rows:
        r.pop("_harm")
    return pl.DataFrame(out_rows, schema=ANTAGONIST_COLUMNS), notes


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


# ------------------------------------------------------------------------------------------------ the whole


@dataclass(frozen=True)
class Attribution:
    """What attribution found for one victim: ``index`` (`interference_index`: the victim's windows, its
    itl_ms_p99 / output_tok_s and the interference ``index``), ``activity`` (`suspect_activity`: window_start,
    suspect, activity 0..1, design), ``antagonists`` (`rank_antagonists`, `ANTAGONIST_COLUMNS`), ``suspects``
    (`SUSPECT_COLUMNS`) and the notes of each step. ``grid`` is the aligned input (for callers that draw it);
    ``metric`` the victim signal the index rests on (``itl`` | ``ttft``)."""

    victim: str
    window_s: float
    index: pl.DataFrame
    activity: pl.DataFrame
    antagonists: pl.DataFrame
    suspects: pl.DataFrame
    notes: tuple[str, ...] = ()
    grid: Grid | None = field(default=None, repr=False, compare=False)
    metric: Metric = "itl"


def attribute(
    grid: Grid,
    victim: str,
    *,
    baseline_phase: str | None = None,
    topology: pl.DataFrame | None = None,
    run_events: pl.DataFrame | None = None,
    q: float = 0.05,
    n_shifts: int = N_SHIFTS,
    seed: int = 0,
    metric: Metric = "itl",
) -> Attribution:
    """Steps 1-5 of the module docstring on one victim's grid: suspects, their activity, the interference index
    (against ``baseline_phase``, or the windows where no suspect is active when the victim has no baseline
    phase; with no load model under a randomised schedule), mediators and the ranked antagonists.

    ``metric`` is the victim performance signal the index and the test rest on: ``itl`` (decode: p99 ITL and
    output tok/s) or ``ttft`` (prefill: p99 TTFT and the request rate of the victim windows)."""
    if metric not in METRICS:
        raise ValueError(f"attribute: metric must be one of {sorted(METRICS)}, not {metric!r}")
    notes = list(grid.notes)
    schedule = switch_schedule(run_events, grid.window_s) if run_events is not None else None
    sus = suspects(victim, grid, topology)
    if sus.height == 0:
        notes.append(f"no co-tenant shares a resource with {victim} in the declared topology")
    act = suspect_activity(grid, sus, schedule)
    base_mask = None
    phases = grid.victim["phase"]
    if (baseline_phase is None or baseline_phase not in phases.to_list() or phases.n_unique() < 2) and act.height:
        # one continuous run: fit the load model on windows where no suspect is active
        quiet = act.group_by("window_start").agg(pl.col("activity").max().alias("a"))
        v = victim_series(grid.victim).join(quiet, on="window_start", how="left")
        base_mask = (v["a"].fill_null(0.0) < 0.1).to_numpy()
        notes.append(
            "no baseline phase for the victim: its load model is fitted on windows where no suspect was active"
        )
    load_cols: tuple[str, ...] = LOAD_COLS
    if act.height and (act["design"] == "interventional").any():
        # randomised on/off: the schedule is independent of the victim's own load, so the effect comes from on vs
        # off windows with no load regression (the victim's load reacts to its slowdown: a bad control)
        load_cols = ()
        notes.append(
            "interventional design: the interference index is the victim's slowdown against the windows "
            "with every switched co-tenant off, with no load model"
        )
    index = interference_index(
        grid.victim, baseline_phase=baseline_phase, baseline_mask=base_mask, load_cols=load_cols, metric=metric
    )
    lat_col = SIGNALS[METRICS[metric][1]]
    if metric == "ttft":
        notes.append("victim signal: p99 TTFT and request rate per window (prefill)")
    no_p99 = int(index[lat_col].null_count()) if index.height and lat_col in index.columns else index.height
    if no_p99:
        what = "ITLs" if metric == "itl" else "requests"
        rate = "throughput" if metric == "itl" else "request rate"
        notes.append(
            f"{no_p99} of {index.height} victim windows have too few {what} for a p99; the index uses their {rate} only"
        )
    med = mediators(
        grid,
        victim,
        topology,
        index["in_baseline"].to_numpy() if index.height else None,
        load_cols=None if load_cols else (),  # interventional: no load model for the mediators either
    )
    med = index.select("window_start").join(med, on="window_start", how="left")
    ranked, more = rank_antagonists(
        index, act, med, sus, victim=victim, window_s=grid.window_s, q=q, n_shifts=n_shifts, seed=seed, metric=metric
    )
    notes.extend(more)
    if ranked.height and not ranked["significant"].any():
        notes.append(f"no co-tenant significantly slows {victim} (q >= {q})")
    return Attribution(victim, grid.window_s, index, act, ranked, sus, tuple(notes), grid, metric)
