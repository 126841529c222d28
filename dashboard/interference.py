"""Frames for the Noisy-neighbours page (pure: frames in, frames out).

The analysis engine (`analysis.align`, `analysis.degradation`, `analysis.attribution`) does the statistics; the
functions here only shape what the page draws, with simple stand-ins while an engine module is missing:

- `victim_windows`: the victim's windowed p99 ITL and output tokens/s (`analysis.align.victim_windows` when
  installed, else a plain per-window quantile of the token emissions);
- `phase_summary`: per phase, the victim's runs' throughput and p99 ITL and their change against the first phase;
- `activity_windows`: each co-tenant's CPU use per window (the antagonists' activity);
- `simple_index`: a robust z-score of the victim's windowed log p99 ITL against its first phase's windows.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from telemetry.schema import TIME

WINDOW_DTYPE = pl.Datetime("ns", "UTC")


def _window(window_s: float, col: str = TIME) -> pl.Expr:
    w = round(window_s * 1e9)
    return ((pl.col(col).cast(pl.Int64) // w) * w).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")


def victim_windows(tokens: pl.DataFrame, runs: pl.DataFrame, window_s: float,
                   requests: pl.DataFrame | None = None) -> pl.DataFrame:
    """time (window start), run_id, phase, output_tok_s, itl_ms_p99, itl_n."""
    if tokens.height == 0:
        return pl.DataFrame(schema={TIME: WINDOW_DTYPE, "run_id": pl.String, "phase": pl.String,
                                    "output_tok_s": pl.Float64, "itl_ms_p99": pl.Float64, "itl_n": pl.UInt32})
    try:
        from analysis import align
    except ImportError:
        align = None
    if align is not None and requests is not None and requests.height:
        v = align.victim_windows(requests, tokens, runs, window_s, min_itl_samples=1)
        return v.rename({"window_start": TIME}).select(TIME, "run_id", "phase", "output_tok_s", "itl_ms_p99",
                                                       "itl_n").sort(TIME)
    tok = tokens if "tokens" in tokens.columns else tokens.with_columns(pl.lit(1).alias("tokens"))
    out = (
        tok.with_columns(_window(window_s).alias("_w"))
        .group_by("run_id", "_w")
        .agg((pl.col("tokens").sum() / window_s).alias("output_tok_s"),
             pl.col("itl_ms").quantile(0.99, "linear").alias("itl_ms_p99"),
             pl.col("itl_ms").is_not_null().sum().alias("itl_n"))
        .join(runs.select("run_id", "phase"), on="run_id", how="left")
        .rename({"_w": TIME})
    )
    return out.select(TIME, "run_id", "phase", "output_tok_s", "itl_ms_p99", "itl_n").sort(TIME)


def phase_summary(runs: pl.DataFrame) -> pl.DataFrame:
    """Per phase of the victim's runs: runs, mean output tok/s and p99 ITL, % change against the first phase."""
    metrics = [m for m in ("output_tok_s", "itl_ms_p99", "ttft_ms_p99", "tpot_ms_mean") if m in runs.columns]
    if runs.height == 0 or not metrics:
        return pl.DataFrame(schema={"phase": pl.String, "runs": pl.UInt32})
    per = (
        runs.sort("start")
        .group_by("phase", maintain_order=True)
        .agg(pl.len().alias("runs"), *[pl.col(m).mean() for m in metrics])
    )
    ref = per.row(0, named=True)
    return per.with_columns(
        *[((pl.col(m) / ref[m] - 1) * 100).round(2).alias(f"{m} Δ%") for m in metrics if ref[m]]
    )


def activity_windows(tenant: pl.DataFrame, window_s: float, exclude: str) -> pl.DataFrame:
    """time, antagonist, activity (mean CPU %, 100 = one core) per window of every group but ``exclude``."""
    if tenant.height == 0:
        return pl.DataFrame(schema={TIME: WINDOW_DTYPE, "antagonist": pl.String, "activity": pl.Float64})
    return (
        tenant.filter(pl.col("group") != exclude)
        .with_columns(_window(window_s).alias("_w"))
        .group_by("_w", "group")
        .agg(pl.col("cpu_pct").mean().alias("activity"))
        .rename({"_w": TIME, "group": "antagonist"})
        .sort(TIME, "antagonist")
    )


def simple_index(victim: pl.DataFrame) -> pl.DataFrame:
    """time, index: robust z of log p99 ITL against the first phase's windows (median / 1.4826·MAD)."""
    v = victim.drop_nulls("itl_ms_p99").filter(pl.col("itl_ms_p99") > 0)
    if v.height == 0:
        return pl.DataFrame(schema={TIME: WINDOW_DTYPE, "index": pl.Float64})
    first = v.sort(TIME)["phase"][0]
    base = v.filter(pl.col("phase") == first)["itl_ms_p99"].log()
    med = base.median()
    mad = (base - med).abs().median() * 1.4826 if base.len() > 1 else None
    scale = mad if mad and math.isfinite(mad) and mad > 0 else 1.0
    return v.select(TIME, ((pl.col("itl_ms_p99").log() - med) / scale).alias("index"))


def index_vs_activity(index: pl.DataFrame, activity: pl.DataFrame) -> pl.DataFrame:
    """antagonist, activity, index: one point per window and antagonist."""
    if index.height == 0 or activity.height == 0:
        return pl.DataFrame(schema={"antagonist": pl.String, "activity": pl.Float64, "index": pl.Float64})
    return activity.join(index, on=TIME, how="inner").select("antagonist", "activity", "index")


# ---- the analysis engine's tables, shaped for the page -------------------------------------------------------

PHASE_TABLE_COLUMNS = {
    "phase": "phase", "baseline_phase": "against", "metric": "metric", "unit": "unit",
    "baseline_value": "baseline", "value": "value", "change_pct": "change %", "ci_low_pct": "95 % CI low %",
    "ci_high_pct": "95 % CI high %", "q_value": "q", "verdict": "verdict", "confidence": "confidence",
    "n_runs": "runs",
}
ANTAGONIST_TABLE_COLUMNS = {
    "antagonist": "antagonist", "resource": "through", "effect_pct": "throughput effect %",
    "ci_low": "CI low %", "ci_high": "CI high %", "itl_p99_effect_pct": "p99 ITL effect %", "q_value": "q",
    "share_explained": "share explained", "design": "design", "confidence": "confidence", "evidence": "evidence",
}


def phase_table(phases: pl.DataFrame) -> pl.DataFrame:
    """The degradation engine's phase table (`analysis.degradation.PHASE_COLUMNS`), columns a reader needs."""
    cols = [c for c in PHASE_TABLE_COLUMNS if c in phases.columns]
    out = phases.filter(pl.col("change_pct").is_not_null()) if "change_pct" in phases.columns else phases
    return out.select(cols).with_columns(pl.col(pl.Float64).round(3))


def phase_chart(phases: pl.DataFrame, metric: str) -> Any:
    """Change of ``metric`` against the baseline per phase with its interval (the report's figure)."""
    from analysis.report.figures import phase_change_bars

    return phase_change_bars(phases, metric)


def antagonist_table(antagonists: pl.DataFrame) -> pl.DataFrame:
    """Ranked antagonists (`analysis.attribution.ANTAGONIST_COLUMNS`), evidence as one line of text."""
    cols = [c for c in ANTAGONIST_TABLE_COLUMNS if c in antagonists.columns]
    out = antagonists.select(cols)
    if "evidence" in out.columns and out.schema["evidence"] == pl.List(pl.String):
        out = out.with_columns(pl.col("evidence").list.join("; "))
    return out.with_columns(pl.col(pl.Float64).round(3))
