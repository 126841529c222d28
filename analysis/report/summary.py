"""Build the report's single source of truth, ``summary.json``, plus the frames its figures draw.

`build_report(data, options) -> Report` is pure (frames in, a dict and frames out). The HTML is rendered from
``Report.summary`` only (text and tables) and ``Report.frames`` (figures), so what the page says is exactly what
``summary.json`` says.

Each section comes from its analysis module, imported normally: an error there fails the report (it is not
hidden behind an estimate). ``summary["sources"]`` names the module of each section.

- phase table: `analysis.degradation` (`phase_degradation` for the changes, intervals and verdicts, `phase_values`
  for every phase's values, a group with one phase only included). Where degradation has no interval (one
  printed summary per phase: method ``summary_only``), the change is worded against its threshold and marked
  "(unconfirmed)".
- antagonists: `analysis.analyze` per victim; victims it did not attribute (no per-token data) get the estimate
  here: the victim's p99 ITL per window vs each co-tenant's activity (accelerator power, or CPU for host-only
  tenants), effect = median p99 while on / while off - 1, 95 % CI by a seeded bootstrap over windows.
  Correlational only; co-tenants always on together are flagged as confounded.
- thermal: `analysis.history.thermal.thermal_profile` / `device_thermal_profile`, worded by `analysis.report.profile`.
- history: `analysis.history.regression` (nightly history, regression status, change points).
- prefill vs decode: `analysis.analyze` attributes on TTFT windows as well as ITL (``antagonists`` are the ITL /
  decode side; ``prefill_decode.ttft_antagonists`` the TTFT / prefill side, reported separately: a prefill pool's
  neighbour shows in TTFT, a decode pool's in ITL) and `analysis.knee` finds the load (concurrency x input length)
  beyond which the victim's TTFT rises sharply (``prefill_decode.knees``; the figure: `analysis.figures.knee`).

Sections without data (no runs, no accelerator telemetry, no runs in the history window) say so explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from analysis import degradation
from analysis.analyze import baseline_phases, in_import_order, phase_order_of
from analysis.history import regression
from analysis.history.thermal import ThermalLimits, device_thermal_profile, thermal_profile
from analysis.report.data import ReportData
from analysis.report.profile import thermal_finding_lines

SCHEMA_VERSION = 1

# key, label, unit, direction (+1: higher is better)
PHASE_METRICS: tuple[tuple[str, str, str, int], ...] = (
    ("output_tok_s", "Output throughput", "tok/s", +1),
    ("tpot_ms_p50", "Median TPOT", "ms", -1),
    ("tpot_ms_p99", "P99 TPOT", "ms", -1),
    ("itl_ms_p50", "Median ITL", "ms", -1),
    ("itl_ms_p99", "P99 ITL", "ms", -1),
    ("ttft_ms_p50", "Median TTFT", "ms", -1),
    ("ttft_ms_p99", "P99 TTFT", "ms", -1),
    ("e2e_ms_p99", "P99 E2E latency", "ms", -1),
)
HISTORY_METRICS = (("output_tok_s", "tok/s"), ("itl_ms_p99", "ms"))
NO_RUNS = "no benchmark runs in this window"
NO_ACCEL = "no accelerator telemetry in this window"
NO_HISTORY = "no benchmark runs in the history window"


@dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report: thresholds of practical significance, thermal limits, windows."""

    limits: ThermalLimits = field(default_factory=ThermalLimits)
    delta_throughput_pct: float = 3.0
    delta_latency_pct: float = 5.0
    window_s: int = 60
    min_tokens_per_window: int = 200
    active_share: float = 0.5  # active = above idle + this share of the group's observed idle-to-busiest swing
    history_days: float = 30.0
    seed: int = 0
    bootstrap: int = 400
    victims: tuple[str, ...] | None = None  # groups to attribute; None = every group with a run


@dataclass
class Report:
    summary: dict[str, Any]
    frames: dict[str, pl.DataFrame]


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _num(v: Any, nd: int = 3) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, nd) if math.isfinite(f) else None


# ------------------------------------------------------------------------------------------------ phases


def degradation_thresholds(options: ReportOptions) -> degradation.Thresholds:
    """The report's thresholds as `analysis.degradation.Thresholds` (p50s use the throughput threshold)."""
    return degradation.Thresholds(
        throughput_pct=options.delta_throughput_pct,
        p50_pct=options.delta_throughput_pct,
        p99_pct=options.delta_latency_pct,
        seed=options.seed,
    )


def _change_verdict(r: dict[str, Any]) -> str:
    """`analysis.degradation`'s verdict; where it has no interval (``summary_only``: one printed summary per phase,
    so degradation can only say "inconclusive"), the change against degradation's threshold, marked unconfirmed."""
    if r["ci_low_pct"] is not None and r["ci_high_pct"] is not None:
        return r["verdict"] or "inconclusive"
    worse = (-1.0 if r["higher_is_better"] else 1.0) * r["change_pct"]  # > 0 when worse
    if worse >= r["threshold_pct"]:
        return "degraded (unconfirmed)"
    if -worse >= r["threshold_pct"]:
        return "improved (unconfirmed)"
    return "no meaningful change"


def phase_rows(
    runs: list[Any], requests: pl.DataFrame | None, tokens: pl.DataFrame | None, options: ReportOptions
) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, method notes) of the phase table: one row per group and phase (the group's baseline first), its
    values and its changes vs the baseline, all from `analysis.degradation`.

    ``runs``: `analysis.ingest.model.Run` values; ``requests`` / ``tokens``: their per-request / per-token layouts
    (None for summary-only runs). The baseline is the phase named ``baseline``, else the group's first. A group
    with one phase only has its values and no changes."""
    if not runs:
        return [], []
    runs = in_import_order(runs)
    order, order_note = phase_order_of(runs)
    frame = degradation.runs_frame(runs)
    # a group compares per request only when every one of its runs has its requests (some may be summaries, or
    # an artifact may not have been readable); the others compare their printed summaries
    have = set() if requests is None or requests.is_empty() else set(requests["run_id"].unique().to_list())
    per_request = [
        g
        for g in frame["group"].unique(maintain_order=True).to_list()
        if have and set(frame.filter(pl.col("group") == g)["run_id"].to_list()) <= have
    ]
    partial = [
        g
        for g in frame["group"].unique(maintain_order=True).to_list()
        if g not in per_request and have & set(frame.filter(pl.col("group") == g)["run_id"].to_list())
    ]
    th = degradation_thresholds(options)
    parts = [
        degradation.phase_degradation(
            part, req, tok, baseline=baseline_phases(part, None, order), phase_order=order, thresholds=th
        )
        for part, req, tok in (
            (frame.filter(pl.col("group").is_in(per_request)), requests, tokens),
            (frame.filter(~pl.col("group").is_in(per_request)), None, None),
        )
        if part.height
    ]
    table = pl.concat(parts) if parts else degradation.phase_degradation(frame.head(0))
    values = {
        (g, p, m): v
        for g, p, m, v in degradation.phase_values(frame, requests, tokens)
        .select("group", "phase", "metric", "value")
        .iter_rows()
    }
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for r in runs:
        k = (r.group or "", r.phase or "")
        n, q = counts.get(k, (0, 0))
        counts[k] = (n + 1, q + int(_num((r.summary or {}).get("completed"), 0) or 0))
    keys = [k for k, *_ in PHASE_METRICS]
    rows: list[dict[str, Any]] = []
    for group in dict.fromkeys(r.group or "" for r in runs):
        part = table.filter(pl.col("group") == group)
        mine = list(dict.fromkeys(r.phase or "" for r in runs if (r.group or "") == group))
        base = part["baseline_phase"][0] if part.height else ("baseline" if "baseline" in mine else mine[0])
        order = [base, *part["phase"].unique(maintain_order=True).to_list()]
        for phase in [*order, *(p for p in mine if p not in order)]:
            n, q = counts.get((group, phase), (0, 0))
            row: dict[str, Any] = {
                "group": group,
                "phase": phase,
                "baseline": base,
                "runs": n,
                "requests": q,
                "metrics": {k: _num(values.get((group, phase, k))) for k in keys},
                "changes": {},
            }
            for k in keys if phase != base else ():
                m = part.filter((pl.col("phase") == phase) & (pl.col("metric") == k))
                if m.is_empty() or m["change_pct"][0] is None:
                    row["changes"][k] = None
                    continue
                r0 = m.row(0, named=True)
                row["changes"][k] = {
                    "pct": _num(r0["change_pct"], 2),
                    "ci_low_pct": _num(r0["ci_low_pct"], 2),
                    "ci_high_pct": _num(r0["ci_high_pct"], 2),
                    "p": _num(r0["p_value"], 4),
                    "q": _num(r0["q_value"], 4),
                    "interval": r0["method"] or "",
                    "confidence": r0["confidence"],
                    "verdict": _change_verdict(r0),
                    "note": r0["note"] or "",
                }
            rows.append(row)
    notes = sorted({n for n in table["note"].drop_nulls().to_list() if n})
    notes = [
        f"{g or '(no group)'}: not every run has per-request data, so its phases are compared from the runs' "
        "summaries only"
        for g in partial
    ] + notes
    return rows, [order_note, *notes] if order_note else notes


# ------------------------------------------------------------------------------------------------ attribution


def victim_p99_series(latency: pl.DataFrame, window_s: int, min_samples: int, trim_s: float = 30.0) -> pl.DataFrame:
    """Victim p99 ITL per window: columns time, group, itl_ms_p99, samples.

    The first and last ``trim_s`` seconds (at most a seventh) of every run are left out (ramp-up is all prefill, the drain a
    shrinking batch: neither is interference); windows with fewer than ``min_samples`` ITLs are dropped
    (per-request ITL means need fewer: ``min_samples // 20``)."""
    if latency.height:
        t0, t1 = pl.col("time").min().over("run_id"), pl.col("time").max().over("run_id")
        span_ms = (t1 - t0).dt.total_milliseconds()
        trim = pl.min_horizontal(pl.lit(int(trim_s * 1000)), span_ms // 7)
        latency = latency.filter(
            (pl.col("time") >= t0 + pl.duration(milliseconds=trim))
            & (pl.col("time") <= t1 - pl.duration(milliseconds=trim))
        )
    if latency.is_empty():
        return pl.DataFrame(
            schema={
                "time": pl.Datetime("ns", "UTC"),
                "group": pl.String,
                "itl_ms_p99": pl.Float64,
                "samples": pl.UInt32,
            }
        )
    need = pl.when(pl.col("source").first() == "token").then(min_samples).otherwise(max(3, min_samples // 20))
    return (
        latency.sort("time")
        .group_by_dynamic("time", every=f"{window_s}s", group_by="group")
        .agg(
            pl.col("itl_ms").quantile(0.99, "linear").alias("itl_ms_p99"),
            pl.len().alias("samples"),
            pl.col("source").first(),
        )
        .filter(pl.col("samples") >= need)
        .drop("source")
        .sort("group", "time")
    )


def activity_series(accel: pl.DataFrame, tenant: pl.DataFrame, window_s: int) -> pl.DataFrame:
    """Activity per co-tenant group and window: columns time, group, value, unit. Groups with accelerators: their
    summed board power (``W``; every vendor reports power, not every one utilisation); host-only groups: their
    processes' CPU (``% CPU``, 100 = one core)."""
    frames = []
    if accel.height and "power_w" in accel.columns and "group" in accel.columns:
        per_tick = (
            accel.filter(pl.col("group").is_not_null() & pl.col("power_w").is_not_null())
            .group_by("group", "time")
            .agg(pl.col("power_w").sum())
        )
        if per_tick.height:
            frames.append(
                per_tick.sort("time")
                .group_by_dynamic("time", every=f"{window_s}s", group_by="group")
                .agg(pl.col("power_w").mean().alias("value"))
                .with_columns(pl.lit("W").alias("unit"))
            )
    with_accel = set(frames[0]["group"].unique()) if frames else set()
    if tenant.height and "cpu_pct" in tenant.columns:
        t = tenant.filter(~pl.col("group").is_in(list(with_accel)) & pl.col("cpu_pct").is_not_null())
        if t.height:
            frames.append(
                t.sort("time")
                .group_by_dynamic("time", every=f"{window_s}s", group_by="group")
                .agg(pl.col("cpu_pct").mean().alias("value"))
                .with_columns(pl.lit("% CPU").alias("unit"))
            )
    if not frames:
        return pl.DataFrame(
            schema={"group": pl.String, "time": pl.Datetime("ns", "UTC"), "value": pl.Float64, "unit": pl.String}
        )
    return pl.concat([f.select("group", pl.col("time").dt.cast_time_unit("ns"), "value", "unit") for f in frames])


def _bootstrap_ratio(on: np.ndarray, off: np.ndarray, b: int, rng: np.random.Generator) -> tuple[float, float]:
    i = rng.integers(0, len(on), (b, len(on)))
    j = rng.integers(0, len(off), (b, len(off)))
    r = np.median(on[i], axis=1) / np.median(off[j], axis=1)
    lo, hi = np.percentile(r, [2.5, 97.5])
    return 100 * (lo - 1), 100 * (hi - 1)


def antagonist_ranking(p99: pl.DataFrame, activity: pl.DataFrame, options: ReportOptions) -> list[dict[str, Any]]:
    """Co-tenants ranked by how much worse each victim's windowed p99 ITL is while they are active."""
    out: list[dict[str, Any]] = []
    if p99.is_empty() or activity.is_empty():
        return out
    rng = np.random.default_rng(options.seed)
    for victim in p99["group"].unique(maintain_order=True).to_list():
        v = p99.filter(pl.col("group") == victim).select("time", "itl_ms_p99")
        masks: dict[str, np.ndarray] = {}
        joined: dict[str, pl.DataFrame] = {}
        for ant in activity["group"].unique(maintain_order=True).to_list():
            if ant == victim:
                continue
            a = activity.filter(pl.col("group") == ant)
            j = v.join(a.select("time", "value"), on="time", how="inner")
            lo, hi = a["value"].min(), a["value"].max()
            if j.height < 6 or lo is None or hi is None or hi - lo <= 0.1 * abs(hi):
                continue  # never clearly idle and busy: nothing to compare
            masks[ant] = (j["value"] >= lo + options.active_share * (hi - lo)).to_numpy()
            joined[ant] = j
        for ant, on in masks.items():
            j = joined[ant]
            x = j["itl_ms_p99"].to_numpy()
            n_on, n_off = int(on.sum()), int((~on).sum())
            if n_on < 3 or n_off < 3:
                continue
            effect = 100 * (float(np.median(x[on])) / float(np.median(x[~on])) - 1)
            lo, hi = _bootstrap_ratio(x[on], x[~on], options.bootstrap, rng)
            confounded = sorted(o for o, m in masks.items() if o != ant and len(m) == len(on) and (m == on).all())
            evidence = [
                f"{n_on} windows of {options.window_s} s with {ant} active, {n_off} without",
                f"median p99 ITL {np.median(x[on]):.1f} ms while active vs {np.median(x[~on]):.1f} ms without",
            ]
            if confounded:
                evidence.append(f"always active together with {', '.join(confounded)}: cannot be told apart")
            out.append(
                {
                    "victim": victim,
                    "antagonist": ant,
                    "resource": None,
                    "throughput_effect_pct": None,
                    "throughput_ci_low_pct": None,
                    "throughput_ci_high_pct": None,
                    "itl_p99_effect_pct": _num(effect, 2),
                    "itl_p99_ci_low_pct": _num(lo, 2),
                    "itl_p99_ci_high_pct": _num(hi, 2),
                    "p": None,
                    "q": None,
                    "share_explained": None,
                    "design": "correlational",
                    "confidence": "low",
                    "confounded_with": confounded,
                    "evidence": evidence,
                    "significant": bool(lo > 0 and effect >= options.delta_latency_pct),
                }
            )
    out.sort(key=lambda r: (r["victim"], -(r["itl_p99_effect_pct"] or 0.0)))
    for rank, r in enumerate(out, 1):
        r["rank"] = rank
    return out


def antagonists_from_analysis(analyses: dict[str, Any], metric: str = "itl") -> list[dict[str, Any]]:
    """Ranked antagonists of `analysis.analyze.AnalysisResult` values (``ANTAGONIST_COLUMNS``), per victim, on
    ``metric``'s windows (``itl``: decode; ``ttft``: prefill, with the p99 TTFT effect too)."""
    out: list[dict[str, Any]] = []
    for victim, res in analyses.items():
        for r in res.antagonists_of(metric).iter_rows(named=True):
            members = r["antagonist"].split("+")
            out.append(
                {
                    "victim": victim,
                    "antagonist": r["antagonist"],
                    "resource": None if r["resource"] in (None, "unknown") else r["resource"],
                    "throughput_effect_pct": _num(r["effect_pct"], 2),
                    "throughput_ci_low_pct": _num(r["ci_low"], 2),
                    "throughput_ci_high_pct": _num(r["ci_high"], 2),
                    "itl_p99_effect_pct": _num(r["itl_p99_effect_pct"], 2),
                    "itl_p99_ci_low_pct": _num(r["itl_ci_low"], 2),
                    "itl_p99_ci_high_pct": _num(r["itl_ci_high"], 2),
                    **(
                        {
                            "ttft_p99_effect_pct": _num(r.get("ttft_p99_effect_pct"), 2),
                            "ttft_p99_ci_low_pct": _num(r.get("ttft_ci_low"), 2),
                            "ttft_p99_ci_high_pct": _num(r.get("ttft_ci_high"), 2),
                        }
                        if metric == "ttft"
                        else {}
                    ),
                    "p": _num(r["p_value"], 4),
                    "q": _num(r["q_value"], 4),
                    "share_explained": _num(r["share_explained"], 4),
                    "design": r["design"],
                    "confidence": r["confidence"],
                    "significant": bool(r["significant"]),
                    "source": getattr(res, "source", "bench"),
                    "confounded_with": members if len(members) > 1 else [],
                    "evidence": list(r["evidence"] or [])
                    + (
                        [f"cannot be told apart: {', '.join(members)} were always active together"]
                        if len(members) > 1
                        else []
                    ),
                }
            )
    return out


def prefill_decode(analyses: dict[str, Any]) -> tuple[dict[str, Any], dict[str, pl.DataFrame]]:
    """The prefill side of each victim's analysis: its antagonists on TTFT windows (ranked, significant first) and
    its TTFT knee (`analysis.knee.Knee.to_dict` plus ``victim``), and per victim the windows the knee was read from
    (frame ``knee:<victim>``, with the ``load`` column) for `analysis.figures.knee.knee_figure`."""
    from analysis.knee import with_load

    items = antagonists_from_analysis(analyses, "ttft")
    items.sort(key=lambda a: (not a["significant"], a["victim"]))
    for rank, a in enumerate(items, 1):
        a["rank"] = rank
    knees, frames = [], {}
    for victim, res in analyses.items():
        if res.knee is None:
            continue
        knees.append({"victim": victim, **res.knee.to_dict()})
        if res.windows is not None:
            frames[f"knee:{victim}"] = with_load(res.windows)
    if not analyses:
        note = "no attribution ran in this window"
    elif not items and not knees:
        note = "the victims' windows have no TTFT (per-request benchmark output gives it)"
    else:
        note = "ok"
    return {"ttft_antagonists": items, "knees": knees, "note": note}, frames


def _antagonists(data: ReportData, o: ReportOptions) -> tuple[list[dict[str, Any]], pl.DataFrame, str]:
    """(items, victim p99 windows, source): `analysis.analyze` results when there are any, else the estimate."""
    p99 = victim_p99_series(data.latency, o.window_s, o.min_tokens_per_window)
    if o.victims is not None:
        p99 = p99.filter(pl.col("group").is_in(list(o.victims)))
    if data.analyses:
        items = antagonists_from_analysis(data.analyses)
        done = set(data.analyses)
        rest = p99.filter(~pl.col("group").is_in(list(done)))
        if rest.height:  # victims the analysis could not attribute (e.g. no per-token data): the estimate
            items += antagonist_ranking(rest, activity_series(data.accel, data.tenant, o.window_s), o)
        return items, p99, "analysis.analyze (attribution.rank_antagonists)"
    return (
        antagonist_ranking(p99, activity_series(data.accel, data.tenant, o.window_s), o),
        p99,
        "analysis.report.summary.antagonist_ranking",
    )


# ------------------------------------------------------------------------------------------------ history


HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "time": pl.Datetime("ns", "UTC"), "group": pl.String(), "phase": pl.String(), "metric": pl.String(),
    "unit": pl.String(), "value": pl.Float64(), "run_id": pl.String(),
}  # fmt: skip


def _test_phase(test: str) -> str:
    return test.rsplit("|", 1)[-1] if "|" in test else test


def history_from_regression(hist: pl.DataFrame) -> pl.DataFrame:
    """`analysis.history.regression.nightly_history` output as the history frame of `history_lines` (one point per night)."""
    units = dict(HISTORY_METRICS)
    f = hist.filter(pl.col("metric").is_in(list(units)))
    return f.select(
        pl.col("night").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias("time"),
        "group",
        pl.col("test").map_elements(_test_phase, return_dtype=pl.String).alias("phase"),
        "metric",
        pl.col("metric").replace_strict(units, default="").alias("unit"),
        "value",
        pl.col("test").alias("run_id"),
    ).sort("time")


def _history(
    data: ReportData, o: ReportOptions
) -> tuple[pl.DataFrame, list[dict[str, Any]], list[dict[str, Any]], str]:
    """(history frame, change points, regressions, source): `analysis.history.regression` over the ``run_event`` summary
    rows of the history window (``data.history_events``); none without runs there."""
    if data.history_events is None or data.history_events.is_empty():
        return pl.DataFrame(schema=HISTORY_SCHEMA), [], [], "none"
    cfg = regression.RegressionConfig(min_effect=o.delta_throughput_pct / 100.0)
    hist = regression.nightly_history(regression.run_metrics(data.history_events, cfg.metrics), cfg)
    status = regression.regression_status(hist, cfg)
    cpf = regression.change_point_frame(hist, cfg)
    cps = [
        {
            "group": r["group"],
            "phase": _test_phase(r["test"]),
            "test": r["test"],
            "metric": r["metric"],
            "time": r["night"].isoformat(),
            "index": r["index"],
            "effect_pct": _num(r["effect_pct"], 2),
            "ci_low_pct": _num(r["ci_low_pct"], 2),
            "ci_high_pct": _num(r["ci_high_pct"], 2),
            "p": _num(r["p"], 6),
            "direction": r["direction"],
            "acknowledged": r["acknowledged"],
        }
        for r in cpf.iter_rows(named=True)
    ]
    regs = []
    for r in status.filter(pl.col("status").is_in(["suspected", "confirmed"])).iter_rows(named=True):
        regs.append(
            {
                "group": r["group"],
                "test": r["test"],
                "metric": r["metric"],
                "node": r["node"],
                "status": r["status"],
                "night": r["night"].isoformat(),
                "change_pct": _num(r["effect_pct"], 2),
                "ci_low_pct": _num(r["ci_low_pct"], 2),
                "ci_high_pct": _num(r["ci_high_pct"], 2),
                "text": (
                    f"{r['status'].capitalize()} regression: {r['group']} {r['metric']} "
                    f"{_fmt_pct(r['effect_pct'])} on {r['night'].isoformat()} "
                    f"({_test_phase(r['test'])}, 95 % CI {_fmt_pct(r['ci_low_pct'])} to "
                    f"{_fmt_pct(r['ci_high_pct'])})."
                ),
            }
        )
    return history_from_regression(hist), cps, regs, "analysis.history.regression"


# ------------------------------------------------------------------------------------------------ verdict


def _fmt_pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def _verdict(s: dict[str, Any]) -> dict[str, Any]:
    lines: list[dict[str, str]] = [{"topic": "note", "text": n} for n in s["notes"]]
    status = "OK"

    def bump(level: str) -> None:
        nonlocal status
        rank = {"NO DATA": 0, "OK": 1, "WATCH": 2, "ATTENTION": 3}
        if rank[level] > rank[status]:
            status = level

    # regressions
    regs = s["regressions"]["items"]
    if regs:
        bump("ATTENTION")
        for r in regs[:5]:
            lines.append(
                {"topic": "regression", "text": r.get("text") or f"{r.get('metric')} changed {r.get('change_pct')}"}
            )
    else:
        lines.append({"topic": "regression", "text": s["regressions"]["note"]})
    # degradation per phase
    worst: list[str] = []
    for row in s["phases"]["rows"]:
        for key, label, _unit, _d in PHASE_METRICS:
            ch = row["changes"].get(key)
            if ch and ch["verdict"].startswith("degraded"):
                ci = (
                    ""
                    if ch["ci_low_pct"] is None
                    else f" (95 % CI {_fmt_pct(ch['ci_low_pct'])} to {_fmt_pct(ch['ci_high_pct'])})"
                )
                unconf = " — one run per phase, no interval" if ch["ci_low_pct"] is None else ""
                worst.append(
                    f"{row['group']}: {label} {_fmt_pct(ch['pct'])} in {row['phase']} vs {row['baseline']}{ci}{unconf}"
                )
                bump("ATTENTION" if ch["verdict"] == "degraded" else "WATCH")
    if not s["phases"]["rows"]:
        lines.append({"topic": "degradation", "text": f"No degradation verdict: {NO_RUNS}."})
    elif worst:
        lines.extend({"topic": "degradation", "text": w + "."} for w in worst[:6])
    else:
        lines.append(
            {
                "topic": "degradation",
                "text": "No co-tenant phase slowed any group beyond the thresholds "
                f"({s['options']['delta_throughput_pct']:.0f} % throughput, "
                f"{s['options']['delta_latency_pct']:.0f} % latency).",
            }
        )
    # antagonists
    ants = s["antagonists"]["items"]
    sig = [a for a in ants if a.get("significant")]
    if sig:
        for a in sig[:3]:
            res = f" through {a['resource']}" if a.get("resource") else ""
            eff = []
            if a.get("throughput_effect_pct") is not None:
                eff.append(
                    f"throughput {_fmt_pct(a['throughput_effect_pct'])} (95 % CI "
                    f"{_fmt_pct(a['throughput_ci_low_pct'])} to {_fmt_pct(a['throughput_ci_high_pct'])})"
                )
            if a.get("itl_p99_effect_pct") is not None:
                eff.append(
                    f"p99 ITL {_fmt_pct(a['itl_p99_effect_pct'])} (95 % CI "
                    f"{_fmt_pct(a['itl_p99_ci_low_pct'])} to {_fmt_pct(a['itl_p99_ci_high_pct'])})"
                )
            q = f", q = {a['q']:.3f}" if a.get("q") is not None else ""
            lines.append(
                {
                    "topic": "antagonist",
                    "text": (
                        f"{a['antagonist']} slows {a['victim']}{res}: {' and '.join(eff)} at its busiest; "
                        f"{a['design']}, {a['confidence']} confidence{q}."
                    ),
                }
            )
        bump(
            "ATTENTION"
            if any(a["design"] == "interventional" or a["confidence"] == "high" for a in sig[:3])
            else "WATCH"
        )
    elif ants:
        victims = sorted({a["victim"] for a in ants})
        lines.append(
            {
                "topic": "antagonist",
                "text": f"No co-tenant is to blame for {', '.join(victims)}: no antagonist's effect is significant.",
            }
        )
    else:
        lines.append({"topic": "antagonist", "text": f"No attribution: {s['antagonists']['note']}."})
    # thermal
    prof = s["thermal"]["nodes"]
    if not prof:
        lines.append({"topic": "thermal", "text": f"No thermal verdict: {NO_ACCEL}."})
    else:
        for r in prof:
            rng = "" if r["gpu_min_c"] is None else f"accelerators {r['gpu_min_c']:.0f}–{r['gpu_max_c']:.0f} °C"
            avg = "" if r["gpu_avg_c"] is None else f" (average {r['gpu_avg_c']:.0f} °C)"
            pw = "" if r["power_avg_w"] is None else f", {r['power_avg_w']:.0f} W average per accelerator"
            lines.append(
                {"topic": "thermal", "text": f"Node {r['node']} is {r['status']}: {rng}{avg}{pw}; {r['reason']}."}
            )
        for f in s["thermal"]["findings"][:4]:
            if not f.startswith("Node "):
                lines.append({"topic": "thermal", "text": f})
        worst_t = max((r["status"] for r in prof), key=lambda x: ("COOL", "OK", "WARM", "HOT").index(x))
        if worst_t == "HOT":
            bump("ATTENTION")
        elif worst_t == "WARM":
            bump("WATCH")
    if not s["phases"]["rows"] and not prof and not s["history"]["points"]:
        status = "NO DATA"
    bad = s.get("unreadable_inputs") or []
    if bad:  # never an all-clear (nor "no data") on a partial read
        shown = "; ".join(f"{b['path']} ({b['reason']})" for b in bad[:5]) + (
            f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        )
        lines.insert(
            0,
            {
                "topic": "incomplete",
                "text": f"{len(bad)} input(s) could not be read and were left out, "
                f"so every section below may miss what they hold: {shown}.",
            },
        )
        if status != "ATTENTION":
            status = "INCOMPLETE"
    headline = {
        "OK": "No noisy-neighbour slowdown, regression or thermal problem found.",
        "WATCH": "Something to watch: see the lines below.",
        "ATTENTION": "Attention: a slowdown, regression or thermal limit was found.",
        "NO DATA": "No data in this window: nothing to judge.",
        "INCOMPLETE": "Incomplete: some inputs could not be read, so this report cannot say that all is clear.",
    }[status]
    if bad and status == "ATTENTION":
        headline += f" The result is incomplete: {len(bad)} input(s) could not be read."
    return {"status": status, "headline": headline, "lines": lines, "complete": not bad}


# ------------------------------------------------------------------------------------------------ build


def _run_meta(r: dict[str, Any], requests: pl.DataFrame | None = None) -> dict[str, Any]:
    """One row of the runs table: the run's metadata; where the tool's file did not say the ISL / OSL or the
    concurrency, what the run itself shows: mean input / output tokens per completed request and the number of
    requests in flight for most of the run (``*_source``: ``config`` = the tool's settings, ``measured`` = from the
    run's requests; None = not known)."""
    sm = r.get("summary") or {}
    extra = r.get("extra") or {}
    completed = _num(sm.get("completed"), 0)
    isl, osl, conc = r.get("isl"), r.get("osl"), r.get("concurrency")
    tokens_source = "config" if isl is not None or osl is not None else None
    if isl is None and osl is None and completed:
        total_in, total_out = sm.get("total_input_tokens"), sm.get("total_output_tokens")
        isl = None if total_in is None else round(float(total_in) / completed)
        osl = None if total_out is None else round(float(total_out) / completed)
        tokens_source = "measured" if isl is not None or osl is not None else None
    conc_source = "config" if conc is not None else None
    if conc is None:
        conc = typical_in_flight(requests, r.get("run_id"))
        conc_source = "measured" if conc is not None else None
    return {
        "run_id": r.get("run_id"),
        "node": r.get("node") or "",
        "group": r.get("group") or "",
        "phase": r.get("phase") or "",
        "tool": r.get("tool"),
        "tool_version": r.get("tool_version"),
        "model": r.get("model") or extra.get("model"),
        "backend": r.get("backend"),
        "isl": isl,
        "osl": osl,
        "tokens_source": tokens_source,
        "concurrency": None if conc is None else int(conc),
        "concurrency_source": conc_source,
        "num_prompts": r.get("num_prompts"),
        "tp": r.get("tp"),
        "start": r.get("start"),
        "end": r.get("end"),
        "timing": r.get("timing"),
        "completed": completed,
        "output_tok_s": _num(sm.get("output_tok_s"), 2),
        "duration_s": _num(sm.get("duration_s"), 2),
    }


def typical_in_flight(requests: pl.DataFrame | None, run_id: str | None) -> int | None:
    """The number of requests of run ``run_id`` in flight for the longest total time (start ``time`` to start +
    ``e2e_ms``): a fixed-concurrency run's concurrency, not a momentary peak where one request starts a millisecond
    before another ends. None without per-request times (``unaligned`` requests all share the run start)."""
    if requests is None or run_id is None or not {"run_id", "time", "e2e_ms", "timing"} <= set(requests.columns):
        return None
    req = requests.filter(
        (pl.col("run_id") == run_id) & pl.col("e2e_ms").is_not_null() & (pl.col("timing") != "unaligned")
    )
    if req.height == 0:
        return None
    start = req["time"].dt.epoch("us").to_numpy()
    end = start + (req["e2e_ms"].to_numpy() * 1000.0).astype(np.int64)
    times = np.concatenate([start, end])
    steps = np.concatenate([np.ones(len(start), np.int64), -np.ones(len(end), np.int64)])
    order = np.lexsort((steps, times))  # at equal times an end (-1) goes before a start (+1)
    level = np.cumsum(steps[order])[:-1]
    held = np.diff(times[order])
    if held.sum() <= 0:
        return None
    return int(np.argmax(np.bincount(level, weights=held)))


def build_report(
    data: ReportData, options: ReportOptions | None = None, *, generated_at: datetime | None = None, step: Any = None
) -> Report:
    """The summary dict (``summary.json``) and the frames of the figures, from one window's data."""
    o = options or ReportOptions()
    tell = step or (lambda _m: None)
    sources: dict[str, str] = {}
    frames: dict[str, pl.DataFrame] = {}

    tell("phase table")
    if data.runs:
        rows, phase_notes = phase_rows(data.run_objects, data.requests, data.tokens, o)
        sources["phases"] = "analysis.degradation.phase_degradation"
    else:
        rows, phase_notes, sources["phases"] = [], [], "none"
    frames["phases"] = phase_frame(rows)

    tell("attribution")
    ants, p99, sources["antagonists"] = _antagonists(data, o)
    act = activity_series(data.accel, data.tenant, o.window_s)
    frames["victim_p99"], frames["activity"] = p99, act
    ants.sort(key=lambda a: (not a["significant"], a["victim"]))
    for rank, a in enumerate(ants, 1):
        a["rank"] = rank
    if not data.runs and not ants:
        ant_note = NO_RUNS
    elif p99.is_empty() and not ants:
        ant_note = "no per-token or per-request latencies in this window"
    elif act.is_empty():
        ant_note = "no co-tenant activity (accelerator utilisation or tenant CPU) in this window"
    else:
        ant_note = "co-tenants were never both active and idle while a benchmark ran" if not ants else "ok"

    tell("prefill vs decode")
    pd_section, knee_frames = prefill_decode(data.analyses)
    frames.update(knee_frames)
    sources["prefill_decode"] = "analysis.analyze (attribution on TTFT windows), analysis.knee.ttft_knee"

    tell("thermal profile")
    nodes = thermal_profile(data.accel, data.host, o.limits)
    devices = device_thermal_profile(data.accel, o.limits)
    sources["thermal"] = "analysis.history.thermal.thermal_profile"
    frames["thermal_nodes"], frames["thermal_devices"] = nodes, devices
    frames["accel"] = data.accel
    findings = thermal_finding_lines(nodes, devices, o.limits) if nodes.height else []

    tell("history and change points")
    hist, cps, regressions, sources["history"] = _history(data, o)
    frames["history"] = hist
    frames["change_points"] = pl.DataFrame(
        [{"group": c["group"], "phase": c["phase"], "metric": c["metric"], "time": c["time"]} for c in cps],
        schema={"group": pl.String, "phase": pl.String, "metric": pl.String, "time": pl.String},
    )
    n_hist = len({r.get("run_id") for r in data.history})
    if hist.is_empty():
        reg_note = f"No regression check: {NO_HISTORY}."
    else:
        reg_note = (
            f"No regression: {n_hist} run(s) over the last {o.history_days:g} days, no suspected or confirmed change."
        )

    devices_meta = (
        data.accel.select("node", "device", "vendor", "model", "group").unique().sort("node", "device")
        if data.accel.height and {"vendor", "model"} <= set(data.accel.columns)
        else data.accel.select([c for c in ("node", "device", "group", "model") if c in data.accel.columns]).unique()
    )
    s: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "title": "neighborscope nightly report",
        "generated_at": _iso(generated_at or datetime.now(UTC)),
        "window": {"start": _iso(data.start), "end": _iso(data.end)},
        "store": data.store,
        "options": {
            "delta_throughput_pct": o.delta_throughput_pct,
            "delta_latency_pct": o.delta_latency_pct,
            "window_s": o.window_s,
            "history_days": o.history_days,
            "active_share": o.active_share,
            "seed": o.seed,
        },
        "phases": {
            "metrics": [
                {"key": k, "label": lab, "unit": u, "higher_is_better": d > 0} for k, lab, u, d in PHASE_METRICS
            ],
            "rows": rows,
            "note": "ok" if rows else NO_RUNS,
            "method_notes": phase_notes,
        },
        "antagonists": {
            "items": ants,
            "note": ant_note,
            "window_s": o.window_s,
            "method_notes": sorted({n for res in data.analyses.values() for n in res.notes}),
        },
        "prefill_decode": pd_section,
        "thermal": {
            "limits": o.limits.to_dict(),
            "nodes": nodes.to_dicts(),
            "devices": devices.to_dicts(),
            "findings": findings,
            "note": "ok" if nodes.height else NO_ACCEL,
        },
        "history": {
            "days": o.history_days,
            "points": hist.height,
            "runs": len(data.history),
            "change_points": cps,
            "note": "ok" if hist.height else NO_HISTORY,
        },
        "regressions": {"items": regressions, "note": reg_note},
        "alerts": [],
        "runs": [_run_meta(r, data.requests) for r in data.runs],
        "metadata": {
            "nodes": sorted(set(data.accel["node"].unique().to_list())) if "node" in data.accel.columns else [],
            "accelerators": devices_meta.height,
            "vendors": sorted(set(data.accel["vendor"].drop_nulls().unique().to_list()))
            if "vendor" in data.accel.columns
            else [],
            "accel_rows": data.accel.height,
            "host_rows": data.host.height,
            "runs": len(data.runs),
            "latency_source": (data.latency["source"].unique().sort().to_list() if data.latency.height else []),
        },
        "sources": sources,
        "notes": list(data.notes),
        "unreadable_inputs": [{"path": p, "reason": r} for p, r in data.unreadable],
    }
    s["verdict"] = _verdict(s)
    return Report(summary=s, frames=frames)


def phase_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The phase table long: group, phase, metric, unit, value, change_pct, ci_low_pct, ci_high_pct, verdict."""
    units = {k: u for k, _l, u, _d in PHASE_METRICS}
    out = []
    for r in rows:
        for key in units:
            ch = r["changes"].get(key) or {}
            out.append(
                {
                    "group": r["group"],
                    "phase": r["phase"],
                    "metric": key,
                    "unit": units[key],
                    "value": r["metrics"].get(key),
                    "change_pct": ch.get("pct"),
                    "ci_low_pct": ch.get("ci_low_pct"),
                    "ci_high_pct": ch.get("ci_high_pct"),
                    "verdict": ch.get("verdict", "baseline"),
                }
            )
    return pl.DataFrame(
        out,
        schema={
            "group": pl.String,
            "phase": pl.String,
            "metric": pl.String,
            "unit": pl.String,
            "value": pl.Float64,
            "change_pct": pl.Float64,
            "ci_low_pct": pl.Float64,
            "ci_high_pct": pl.Float64,
            "verdict": pl.String,
        },
    )
