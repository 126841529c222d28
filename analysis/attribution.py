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
   the index is the victim against its windows with the co-tenants off.
2. **Suspects** (`suspects`): co-tenants sharing a PCIe switch, CPU socket or cooling / power zone with the
   victim's devices per the declared topology; without a topology every co-tenant, through every resource.
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
   across suspects. The effect = the sum of its
   coefficients (sustained idle -> its busiest) in the same regression on the throughput residual
   (``effect_pct``) and on the p99 ITL residual (``itl_p99_effect_pct``), CIs from Newey–West standard
   errors, in % of the baseline level of the load model's fit. The CPI2 correlation (Zhang et al. 2013, threshold 0.35) is reported beside it (``cpi2_corr``).
5. **Resource** (`resource_evidence`): per suspect and shared resource, the victim-side mediators of its record
   (`analysis.resources.RESOURCES`: share keys, mediators, thresholds and evidence words live there) regressed on
   the suspect's activity (Newey–West t): PCIe = drop in the victim's load-adjusted PCIe rate; CPU = saturated
   cores on the victim's socket, host run queue beyond the CPUs, the victim's CPU share on an oversubscribed
   host (on a busy host every core is saturated anyway); thermal = victim clock drop, temperature; power = at-cap share. Throttle flags
   (thermal / power) rising with the suspect are hard evidence. The strongest wins; ``evidence`` lists all.

Output (`ANTAGONIST_COLUMNS`), best-first: victim, antagonist, resource, effect_pct, ci_low, ci_high,
itl_p99_effect_pct, itl_ci_low, itl_ci_high, p_value, q_value, share_explained, cpi2_corr, significant, design
(interventional | correlational), confidence (high | medium | low), evidence (list of str), shares (list of str).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from analysis import stats
from analysis.align import Grid
from analysis.resources import BY_NAME, FIELDS, RESOURCE_NAMES, RESOURCES, Mediator, Resource

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
    PCIe switch -> pcie, same socket -> cpu, ...) it shares with the victim's devices. Candidates that share
    nothing are kept with no resources (a control: if one of them turns out significant, the topology misses a
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
    for g in cands:
        mine = topology.filter(pl.col("group") == g)
        shares, res = [], []
        for r in RESOURCES:
            shared = False
            for col in r.share_keys:
                common = sorted(set(vict[col].drop_nulls().to_list()) & set(mine[col].drop_nulls().to_list()))
                if common:
                    shares.append(f"{col}={','.join(common)}")
                    shared = True
            if shared:
                res.append(r.name)
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


def interference_index(
    victim: pl.DataFrame,
    baseline_phase: str | None = None,
    baseline_mask: np.ndarray | None = None,
    load_cols: Sequence[str] = LOAD_COLS,
) -> pl.DataFrame:
    """The victim's windows (`victim_series`) plus ``resid_log_tput``, ``resid_log_itl_p99`` (log residuals),
    ``z_tput``, ``z_itl_p99`` (robust z of those), ``index``, ``fit_tput`` / ``resid_tput`` and ``fit_itl_p99`` /
    ``resid_itl_p99`` (the same load model on the linear scale, for effects in %) and ``in_baseline``.

    Baseline windows: ``baseline_mask`` if given, else ``phase == baseline_phase``, else all windows.
    """
    v = victim_series(victim)
    if v.height == 0:
        return v.with_columns(
            [
                pl.lit(None, dtype=pl.Float64).alias(c)
                for c in (
                    "fit_tput",
                    "resid_tput",
                    "fit_itl_p99",
                    "resid_itl_p99",
                    "resid_log_tput",
                    "resid_log_itl_p99",
                    "z_tput",
                    "z_itl_p99",
                    "index",
                )
            ]
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
    out = {}
    for name, col in (("tput", "output_tok_s"), ("itl_p99", "itl_ms_p99")):
        lv = v[col].cast(pl.Float64).fill_null(np.nan).to_numpy()
        ok = np.isfinite(lv)
        fit = ok & base
        out[f"fit_{name}"] = np.full(v.height, np.nan)
        out[f"resid_{name}"] = np.full(v.height, np.nan)
        if fit.sum() > xs.shape[1]:
            beta, _ = stats.ols(lv[fit], xs[fit])
            out[f"fit_{name}"][ok] = xs[ok] @ beta
            out[f"resid_{name}"][ok] = lv[ok] - out[f"fit_{name}"][ok]
    for name, col in (("tput", "output_tok_s"), ("itl_p99", "itl_ms_p99")):
        y = np.log(v[col].cast(pl.Float64).to_numpy())
        ok = np.isfinite(y)
        fit = ok & base
        resid = np.full(v.height, np.nan)
        if fit.sum() > xs.shape[1]:
            beta, _ = stats.ols(y[fit], xs[fit])
            resid[ok] = y[ok] - xs[ok] @ beta
        out[f"resid_log_{name}"] = resid
        ref = resid[fit & np.isfinite(resid)]
        out[f"z_{name}"] = stats.robust_z(resid, ref) if len(ref) else resid
    zt, zi = out["z_tput"], out["z_itl_p99"]
    index = np.where(np.isfinite(zi), (zi - zt) / 2, -zt)
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


def mediators(
    grid: Grid, victim: str, topology: pl.DataFrame | None = None, baseline_mask: np.ndarray | None = None
) -> pl.DataFrame:
    """Victim-side resource signals per victim window: window_start, then every resource's mediators
    (`analysis.resources.RESOURCES`, in record order; higher = more evidence; missing telemetry gives nulls).

    Today: ``pcie_drop`` (minus the load-adjusted log PCIe rate of the victim's devices), ``cpu_saturation``
    (saturated core share of the victim's socket(s); all sockets' max without topology), ``run_queue_excess``
    (host runnable tasks per logical CPU beyond one: threads waiting for a core), ``victim_cpu_drop`` (minus the
    victim tenant's CPU, in cores; only on an oversubscribed host, i.e. a median run queue above the CPU count,
    where a victim using less CPU is a victim denied it; else null), ``clock_drop`` (minus log mean SM clock),
    ``throttle_thermal_share``, ``temp_c``, ``throttle_power_share``, ``at_power_cap_share``.
    """
    v = victim_series(grid.victim)
    out = v.select("window_start", *WORK_COLS)
    if grid.groups.height:
        g = (
            grid.groups.filter(pl.col("group") == victim)
            .group_by("window_start")
            .agg(pl.col(f.name).sum() if f.group_agg == "sum" else pl.col(f.name).mean() for f in FIELDS)
        )
        out = out.join(g, on="window_start", how="left")
    else:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(f.name) for f in FIELDS)
    ctx = _MediatorInputs(grid, victim, topology, baseline_mask, out)
    return out.select(
        "window_start",
        *[_DERIVE[m.derive](ctx, r, m).alias(m.column) for r in RESOURCES for m in r.mediators],
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
    _contention: tuple[np.ndarray, np.ndarray] | None = None

    def contention(self) -> tuple[np.ndarray, np.ndarray]:
        """`_cpu_contention` on the victim's windows (computed once: two mediators read it)."""
        if self._contention is None:
            self._contention = _cpu_contention(self.grid, self.victim, self.frame.select("window_start"))
        return self._contention


def _field(ctx: _MediatorInputs, m: Mediator) -> pl.Series:
    if m.field is None:
        raise ValueError(f"mediator {m.column}: derivation {m.derive!r} needs a field")
    return ctx.frame[m.field]


def _load_adjusted_drop(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    """Minus the residual of the log field on the victim's own load, fitted on baseline windows."""
    out, baseline_mask, raw = ctx.frame, ctx.baseline_mask, _field(ctx, m)
    pc = np.log(np.maximum(raw.cast(pl.Float64).fill_null(np.nan).to_numpy(), 1.0))
    ok = np.isfinite(pc) & (raw.is_not_null().to_numpy())
    drop = np.full(out.height, np.nan)
    if ok.sum() > 5:
        base = ok if baseline_mask is None or len(baseline_mask) != out.height else ok & baseline_mask
        if base.sum() < MIN_WINDOWS_PER_REGRESSOR:
            base = ok
        x = _load_design(out, WORK_COLS, max_cols=int(base.sum()) // MIN_WINDOWS_PER_REGRESSOR)
        xs = _clip_to(x, base)
        beta, _ = stats.ols(pc[base], xs[base])
        drop[ok] = -(pc[ok] - xs[ok] @ beta)
    return pl.Series(m.column, drop)


def _neg_log(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        return pl.Series(m.column, -np.log(_field(ctx, m).cast(pl.Float64).to_numpy()))


def _value(ctx: _MediatorInputs, _r: Resource, m: Mediator) -> pl.Series:
    return _field(ctx, m).cast(pl.Float64)


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


def resource_evidence(
    suspect: str,
    activity: np.ndarray,
    med: pl.DataFrame,
    resources: Sequence[str],
    suspect_info: str = "",
    others: np.ndarray | None = None,
) -> tuple[str, list[str], bool]:
    """(resource, evidence lines, hard) for one suspect: the resource whose victim-side mediators move most
    with the suspect's activity, the other suspects' activity (``others``, windows x k) held fixed (throttle
    flags are hard evidence and win). ``unknown`` without evidence."""
    best, best_score, hard_any = "unknown", 0.0, False
    lines: list[str] = []
    for r in resources:
        score = 0.0
        rec = BY_NAME.get(r)
        for m in rec.mediators if rec else ():
            col, kind, label = m.column, m.kind, m.label
            if col not in med.columns:
                continue
            y = med[col].cast(pl.Float64).to_numpy()
            slope, t = _slope_t(y, activity, others)
            if not math.isfinite(t):
                continue
            if kind == "hard":
                if slope >= rec.hard_share and t >= rec.t_evidence:
                    lines.append(
                        f"{r}: {label} set in {100 * min(slope, 1.0):.0f}% more of the samples with {suspect} "
                        f"at its busiest (t={t:.1f}; hard evidence)"
                    )
                    score = max(score, t) + 10.0
                    hard_any = True
                continue
            if t >= rec.t_evidence:
                lines.append(f"{r}: {label} {m.effect(slope)} with {suspect} at its busiest (t={t:.1f})")
                if kind == "primary":
                    score = max(score, t)
        if score > best_score:
            best, best_score = r, score
    # the named resource's evidence first, hard evidence (throttle flags) before the rest
    lines.sort(key=lambda line: (not line.startswith(f"{best}:"), "hard evidence" not in line))
    if suspect_info:
        lines.append(suspect_info)
    return best, lines, hard_any


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
) -> tuple[pl.DataFrame, list[str]]:
    """The ranked antagonists of ``victim`` (`ANTAGONIST_COLUMNS`) and notes.

    ``index``: `interference_index`; ``activity``: `suspect_activity`; ``mediator_frame``: `mediators`;
    ``suspect_frame``: `suspects`. Ranking: significant (q < ``q`` and harmful) first, by effect on the index,
    then the rest by p-value.
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
    for col in ("resid_tput", "resid_itl_p99"):
        yy = idx[col].cast(pl.Float64).to_numpy()
        level = float(np.nanmean(idx[col.replace("resid_", "fit_")].cast(pl.Float64).to_numpy()[base]))
        ok = np.isfinite(yy)
        if ok.sum() < MIN_WINDOWS or not math.isfinite(level) or level <= 0:
            continue
        beta, resid = stats.ols(yy[ok], x[ok])
        cov = stats.hac_cov(x[ok], resid)
        for j, n in enumerate(names):
            sl = slice(starts[j], starts[j + 1])
            b = float(beta[sl].sum())
            se = math.sqrt(max(float(cov[sl, sl].sum()), 0.0))
            effects[f"{col}:{n}"] = tuple(100.0 * v / level for v in (b, b - 1.96 * se, b + 1.96 * se))
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
            lines.append(f"{n} shares nothing with {victim} in the declared topology")
        tp = effects.get(f"resid_tput:{n}", (math.nan,) * 3)
        it = effects.get(f"resid_itl_p99:{n}", (math.nan,) * 3)
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
                "cpi2_corr": _cpi2(acts[j], idx["resid_log_itl_p99"].cast(pl.Float64).to_numpy(), base),
                "significant": sig,
                "design": designs[j],
                "confidence": conf,
                "evidence": lines,
                "shares": shares,
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
    (`SUSPECT_COLUMNS`) and the notes of each step. ``grid`` is the aligned input (for callers that draw it)."""

    victim: str
    window_s: float
    index: pl.DataFrame
    activity: pl.DataFrame
    antagonists: pl.DataFrame
    suspects: pl.DataFrame
    notes: tuple[str, ...] = ()
    grid: Grid | None = field(default=None, repr=False, compare=False)


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
) -> Attribution:
    """Steps 1-5 of the module docstring on one victim's grid: suspects, their activity, the interference index
    (against ``baseline_phase``, or the windows where no suspect is active when the victim has no baseline
    phase; with no load model under a randomised schedule), mediators and the ranked antagonists."""
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
    index = interference_index(grid.victim, baseline_phase=baseline_phase, baseline_mask=base_mask, load_cols=load_cols)
    no_p99 = int(index["itl_ms_p99"].null_count()) if index.height else 0
    if no_p99:
        notes.append(
            f"{no_p99} of {index.height} victim windows have too few ITLs for a p99; the index uses their "
            "throughput only"
        )
    med = mediators(grid, victim, topology, index["in_baseline"].to_numpy() if index.height else None)
    med = index.select("window_start").join(med, on="window_start", how="left")
    ranked, more = rank_antagonists(
        index, act, med, sus, victim=victim, window_s=grid.window_s, q=q, n_shifts=n_shifts, seed=seed
    )
    notes.extend(more)
    if ranked.height and not ranked["significant"].any():
        notes.append(f"no co-tenant significantly slows {victim} (q >= {q})")
    return Attribution(victim, grid.window_s, index, act, ranked, sus, tuple(notes), grid)
