"""What the Noisy-neighbours page shows of the analysis (pure: the analysis' frames in, the page's frames out).

The analysis (`analysis.analyze.analyze`) does the statistics and returns them; nothing here recomputes any:

- `phase_table` / `phase_chart`: the degradation engine's phase table, columns a reader needs, and its figure;
- `antagonist_table`: the ranked antagonists, evidence as one line of text;
- `linked`: the linked charts' frames from the victim's `analysis.attribution.Attribution` (its windows, the
  interference index, the top suspects' activity, index-vs-activity points).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from analysis import figures as fg
from analysis.attribution import Attribution
from telemetry.schema import TIME

PHASE_TABLE_COLUMNS = {
    "phase": "phase",
    "baseline_phase": "against",
    "metric": "metric",
    "unit": "unit",
    "baseline_value": "baseline",
    "value": "value",
    "change_pct": "change %",
    "ci_low_pct": "95 % CI low %",
    "ci_high_pct": "95 % CI high %",
    "q_value": "q",
    "verdict": "verdict",
    "confidence": "confidence",
    "n_runs": "runs",
}
ANTAGONIST_TABLE_COLUMNS = {
    "antagonist": "antagonist",
    "resource": "through",
    "effect_pct": "throughput effect %",
    "ci_low": "CI low %",
    "ci_high": "CI high %",
    "itl_p99_effect_pct": "p99 ITL effect %",
    "q_value": "q",
    "share_explained": "share explained",
    "design": "design",
    "confidence": "confidence",
    "evidence": "evidence",
}


def phase_table(phases: pl.DataFrame) -> pl.DataFrame:
    """The degradation engine's phase table (`analysis.degradation.PHASE_COLUMNS`), columns a reader needs."""
    cols = [c for c in PHASE_TABLE_COLUMNS if c in phases.columns]
    out = phases.filter(pl.col("change_pct").is_not_null()) if "change_pct" in phases.columns else phases
    return out.select(cols).with_columns(pl.col(pl.Float64).round(3))


def phase_chart(phases: pl.DataFrame, metric: str) -> Any:
    """Change of ``metric`` against the baseline per phase with its interval (the report's figure)."""
    return fg.phase_change_bars(phases, metric)


def antagonist_table(antagonists: pl.DataFrame) -> pl.DataFrame:
    """Ranked antagonists (`analysis.attribution.ANTAGONIST_COLUMNS`), evidence as one line of text."""
    cols = [c for c in ANTAGONIST_TABLE_COLUMNS if c in antagonists.columns]
    out = antagonists.select(cols)
    if "evidence" in out.columns and out.schema["evidence"] == pl.List(pl.String):
        out = out.with_columns(pl.col("evidence").list.join("; "))
    return out.with_columns(pl.col(pl.Float64).round(3))


def index_vs_activity(index: pl.DataFrame, activity: pl.DataFrame) -> pl.DataFrame:
    """antagonist, activity, index: one point per window and antagonist."""
    if index.height == 0 or activity.height == 0:
        return pl.DataFrame(schema={"antagonist": pl.String, "activity": pl.Float64, "index": pl.Float64})
    return activity.join(index, on=TIME, how="inner").select("antagonist", "activity", "index")


@dataclass(frozen=True)
class Linked:
    """Frames of the linked charts: victim windows, antagonist activity, index-vs-activity points."""

    victim: pl.DataFrame  # time, itl_ms_p99, output_tok_s
    activity: pl.DataFrame  # time, antagonist, activity
    scatter: pl.DataFrame  # antagonist, activity, index
    activity_title: str
    index_title: str
    index_note: str


def linked(attribution: Attribution, top: int = 3) -> Linked:
    """The victim's windows, the activity of its ``top`` suspects (ranked antagonists first, merged ones by
    member) and the index against that activity, as the attribution computed them."""
    act = attribution.activity.rename({"window_start": TIME, "suspect": "antagonist"})
    ranked: list[str] = []
    for name in attribution.antagonists["antagonist"].to_list():
        ranked += [m for m in str(name).split("+") if m not in ranked]
    ranked += [a for a in act["antagonist"].unique(maintain_order=True).to_list() if a not in ranked]
    act = act.filter(pl.col("antagonist").is_in(ranked[:top])).select(TIME, "antagonist", "activity")
    windows = attribution.index.rename({"window_start": TIME})
    return Linked(
        windows.select(TIME, "itl_ms_p99", "output_tok_s"),
        act,
        index_vs_activity(windows.select(TIME, "index"), act),
        "activity (0 = idle, 1 = busiest)",
        "interference index (z, + = slower than own load explains)",
        f"Interference index from the attribution engine ({attribution.window_s:g} s windows): the "
        "victim's throughput and p99 ITL residuals after its own load, robustly standardised against the "
        "baseline. Points that climb with an antagonist's activity point at it.",
    )
