"""The look every figure shares (report and dashboard): colours, units and labels, the transparent grey style, the
"nothing to draw" and "loading" placeholders, and the trace type for a figure's density.

Backgrounds are transparent and text / grid colours a mid grey, so a figure reads on a light or a dark page (the
report's page switches the font colour with ``prefers-color-scheme``; the dashboard's plotly view applies its
theme). Every axis names its unit.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import plotly.graph_objects as go
import polars as pl

MAX_POINTS = 1500  # per trace of a report figure (`analysis.figures.reduce.reduce_series`)
WEBGL_MIN_POINTS = 40_000
GREY = "#8a8f98"
GRID = "rgba(138,143,152,0.25)"
PALETTE = ("#3b82f6", "#f97316", "#10b981", "#e11d48", "#8b5cf6", "#eab308", "#06b6d4", "#64748b")
BAND_COLOURS = (
    "rgba(99,110,250,0.10)",
    "rgba(239,85,59,0.10)",
    "rgba(0,204,150,0.10)",
    "rgba(171,99,250,0.10)",
    "rgba(255,161,90,0.10)",
    "rgba(25,211,243,0.10)",
)
BAND_LABEL_SHIFT_PX = 24  # a run band's label sits this far above its panel's top, clear of the subplot title
SCALES = {
    "temp_c": "Inferno",
    "power_w": "Viridis",
    "pcie_bytes_per_s": "Cividis",
    "util_pct": "Blues",
    "throttled": "Reds",
}
UNITS = {
    "temp_c": "°C",
    "power_w": "W",
    "util_pct": "%",
    "sm_clock_mhz": "MHz",
    "itl_ms_p99": "ms",
    "output_tok_s": "tok/s",
}
LABELS = {
    "temp_c": "temperature",
    "power_w": "board power",
    "util_pct": "utilisation",
    "sm_clock_mhz": "core clock",
    "output_tok_s": "output throughput",
    "itl_ms_p99": "p99 ITL",
    "itl_ms_p50": "median ITL",
    "tpot_ms_p50": "median TPOT",
    "tpot_ms_p99": "p99 TPOT",
    "ttft_ms_p50": "median TTFT",
    "ttft_ms_p99": "p99 TTFT",
}


def style(fig: go.Figure, title: str | None = None, height: int = 360) -> go.Figure:
    """Transparent, grey-on-anything look with a title and a legend above the plot."""
    fig.update_layout(
        title={"text": title or "", "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"color": GREY, "size": 12},
        height=height,
        margin={"l": 60, "r": 60, "t": 56, "b": 48},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0,
            "xanchor": "right",
            "x": 1.0,
            "bgcolor": "rgba(0,0,0,0)",
        },
        hovermode="x unified",
    )
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
    return fig


def empty_figure(message: str, title: str | None = None) -> go.Figure:
    """A figure that says, in words, that there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(
        text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14, "color": GREY}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, title, height=200)


def loading_figure(message: str, height: int = 300) -> go.Figure:
    """An empty chart that says what is being loaded: drawn at the chart's place before its query runs, so the
    browser fetches and starts plotly.js (a 4.7 MB module, over a second to evaluate on a slow core) while the
    server is still reading the store, instead of after it."""
    fig = go.Figure()
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 14})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def antagonist_colors(names: Iterable[str]) -> dict[str, str]:
    """One colour per antagonist name, in the order given (rank first), for every chart that draws antagonists
    (`analysis.figures.runs.victim_vs_antagonists`, `index_scatter`): pass the same map to each and a name has
    the same colour in all of them. A merged antagonist (``a+b``) gives each member its colour too. The first
    two palette colours are left to the victim's own traces."""
    colors: dict[str, str] = {}
    for name in names:
        for key in (str(name), *str(name).split("+")):
            if key not in colors:
                colors[key] = PALETTE[(len(colors) + 2) % len(PALETTE)]
    return colors


def plain_number(value: float | None) -> str:
    """A bar label as a plain number with thousands separators, never scientific notation: ``71520.4`` ->
    ``71,520``; ``812.34`` -> ``812``; ``41.27`` -> ``41.3``; ``0.1234`` -> ``0.12``; None or NaN -> ``""``."""
    if value is None:
        return ""
    v = float(value)
    if v != v:  # NaN
        return ""
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    return f"{v:,.{digits}f}"


def epoch_ms(times: pl.Series) -> np.ndarray:
    """Times as float milliseconds since the epoch: a date axis reads them, and they travel as compact binary
    arrays (plotly base64) instead of one ISO string per point."""
    return times.dt.epoch("ms").cast(pl.Float64).to_numpy()


def line_trace(points_in_figure: int) -> type[go.Scatter] | type[go.Scattergl]:
    """WebGL (``Scattergl``) for a dense figure, SVG (``Scatter``) below `WEBGL_MIN_POINTS`: with traces already
    cut to 2,000 points, SVG draws sooner than WebGL starts up in a browser without a GPU (software GL), and SVG
    figures draw with the dashboard's small plotly.js bundle (`dashboard.plotly_view`); WebGL needs the full one."""
    return go.Scattergl if points_in_figure >= WEBGL_MIN_POINTS else go.Scatter
