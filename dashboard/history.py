"""Nightly history for the Runs & history page: one point per night and series, and the change points.

Computed by `analysis.history.regression` (history of run summaries, Otava-style change points) from the runs the store
holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import streamlit as st

from analysis.history import regression
from dashboard import data


@dataclass(frozen=True)
class History:
    points: pl.DataFrame  # series, time, value, unit, n_runs
    change_points: pl.DataFrame  # series, time, effect_pct, ci_low_pct, ci_high_pct, p, direction, acknowledged


UNITS = {"tok_s": "tokens/s", "per_s": "per s", "_ms_": "ms"}


def _unit(metric: str) -> str:
    return next((u for k, u in UNITS.items() if k in metric or metric.endswith(k.strip("_"))), "")


UNKNOWN_PARTS = {"", "?", "c?", "?/?", "none"}


def test_label(test: str | None) -> str:
    """A run's test name (`analysis.history.regression.bench_test_name`: ``tool|model|c<N>|<isl>/<osl>|<phase>``,
    ``?`` where unknown) with only its known parts: ``aiperf|?|c?|?/?|baseline`` -> ``aiperf · baseline``."""
    known = []
    for part in (p.strip() for p in str(test or "").split("|")):
        if part in UNKNOWN_PARTS:
            continue
        if part.count("/") == 1 and "?" in part:  # one of ISL / OSL known
            isl, osl = part.split("/")
            part = f"ISL {isl}" if osl == "?" else f"OSL {osl}"
        known.append(part)
    return " · ".join(known)


def _series_name(frame: pl.DataFrame) -> pl.Expr:
    """metric · group · node · test, leaving out the parts that are unknown."""
    test = pl.col("test").map_elements(test_label, return_dtype=pl.String)
    parts = [pl.col("metric"), pl.col("group"), pl.col("node"), test]
    cleaned = [pl.when(p.is_in(list(UNKNOWN_PARTS)) | p.is_null()).then(None).otherwise(p) for p in parts]
    return pl.concat_list(cleaned).list.drop_nulls().list.join(" · ")


def history_frames(history: pl.DataFrame, change_points: pl.DataFrame) -> History:
    """The regression module's history / change-point frames, keyed by one ``series`` label for plotting."""
    night_time = pl.col("night").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    pts = (
        history.with_columns(_series_name(history).alias("series"), night_time.alias("time"))
        .with_columns(pl.col("metric").map_elements(_unit, return_dtype=pl.String).alias("unit"))
        .select("series", "time", "value", "unit", "n_runs")
    )
    if change_points.height:
        cps = change_points.with_columns(_series_name(change_points).alias("series"), night_time.alias("time"))
        cps = cps.select("series", "time", "effect_pct", "ci_low_pct", "ci_high_pct", "p", "direction", "acknowledged")
    else:
        cps = pl.DataFrame(schema={"series": pl.String, "time": pl.Datetime("ns", "UTC")})
    return History(pts.sort("series", "time"), cps)


@st.cache_data(ttl=60, show_spinner=False)
def load(settings: data.Settings, days: int = 90) -> History:
    """The nightly history of the last ``days`` days of stored runs (up to the newest run)."""
    runs = data.runs(settings.store_url)
    if runs.height == 0:
        return History(pl.DataFrame(schema={"series": pl.String}), pl.DataFrame(schema={"series": pl.String}))
    newest = runs["start"].max() if "start" in runs.columns else None
    now = data.utc(newest) + timedelta(minutes=1) if isinstance(newest, datetime) else datetime.now(UTC)
    store = data.reader(settings.store_url).store
    hist = regression.store_history(store, days=days, now=now)
    cps = regression.change_point_frame(hist)
    return history_frames(hist, cps)
