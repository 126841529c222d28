"""The TTFT knee figure (report and dashboard): TTFT against load, the fitted bend and its interval.

from analysis.knee import ttft_knee, with_load
from analysis.figures.knee import knee_figure
w = with_load(windows)
fig = knee_figure(w, ttft_knee(w))
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import polars as pl

from analysis.figures.style import GREY, LABELS, MAX_POINTS, color, empty_figure, style
from analysis.knee import Knee

LOAD_LABEL = "load (concurrency × input tokens)"
KNEE_BAND = "rgba(225,29,72,0.12)"


def knee_figure(windows: pl.DataFrame, knee: Knee, title: str | None = None) -> go.Figure:
    """One point per window (``knee.load_col`` against ``knee.ttft_col``), the fitted hinge (or the straight line
    when there is no knee), a vertical line at the knee with its 95 % interval shaded, and the verdict in words."""
    metric = LABELS.get(knee.ttft_col, knee.ttft_col)
    title = title or f"TTFT knee: {metric} against load"
    cols = {knee.load_col, knee.ttft_col}
    if not cols <= set(windows.columns):
        return empty_figure(f"no knee: {knee.reason or 'no load / TTFT columns'}", title)
    f = windows.select(
        pl.col(knee.load_col).cast(pl.Float64).alias("x"), pl.col(knee.ttft_col).cast(pl.Float64).alias("y")
    ).filter(pl.col("x").is_finite() & pl.col("y").is_finite())
    if f.height == 0:
        return empty_figure(f"no knee: {knee.reason or 'no window has both load and TTFT'}", title)
    if f.height > MAX_POINTS:  # a deterministic thinning: every k-th point in load order
        f = f.sort("x").gather_every(-(-f.height // MAX_POINTS))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=f["x"].to_numpy(),
            y=f["y"].to_numpy(),
            mode="markers",
            name="windows",
            marker={"color": color(0), "size": 6, "opacity": 0.6},
            hovertemplate="load %{x:,.0f}<br>%{y:.1f} ms<extra></extra>",
        )
    )
    lo, hi = float(f["x"].min()), float(f["x"].max())
    xs = np.linspace(lo, hi, 200)
    if knee.load is not None and lo <= knee.load <= hi:
        xs = np.unique(np.append(xs, knee.load))
    fit = knee.predict(xs)
    if np.isfinite(fit).any():
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=fit,
                mode="lines",
                name="two-segment fit" if knee.found else ("best bend (not a knee)" if knee.load else "straight line"),
                line={"color": color(3) if knee.found else GREY, "width": 2, "dash": "solid" if knee.found else "dot"},
                hoverinfo="skip",
            )
        )
    if knee.found and knee.load is not None:
        if knee.load_ci_low is not None and knee.load_ci_high is not None:
            fig.add_vrect(x0=knee.load_ci_low, x1=knee.load_ci_high, fillcolor=KNEE_BAND, line_width=0, layer="below")
        fig.add_vline(x=knee.load, line={"color": color(3), "width": 1, "dash": "dash"})
    fig.add_annotation(
        text=knee.summary() if knee.found else f"no knee: {knee.reason}",
        x=0.01,
        y=0.98,
        xref="paper",
        yref="paper",
        xanchor="left",
        yanchor="top",
        showarrow=False,
        font={"size": 11, "color": GREY},
        align="left",
    )
    fig.update_xaxes(title_text=LOAD_LABEL, rangemode="tozero")
    fig.update_yaxes(title_text=f"{metric} (ms)", rangemode="tozero")
    fig.update_layout(hovermode="closest")
    return style(fig, title)


__all__ = ["knee_figure"]
