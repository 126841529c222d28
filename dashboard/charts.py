"""Plotly figures of the dashboard (frames in, figures out; no Streamlit, no store).

Dense traces are ``Scattergl``; callers hand in frames already reduced to a few thousand points per trace
(`dashboard.downsample`). Every axis has a title with its unit. Colours come from the active template, so the
Streamlit light and dark themes both stay readable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from telemetry.schema import TIME

BAND_COLOURS = ("rgba(99,110,250,0.10)", "rgba(239,85,59,0.10)", "rgba(0,204,150,0.10)", "rgba(171,99,250,0.10)",
                "rgba(255,161,90,0.10)", "rgba(25,211,243,0.10)")
WEBGL_MIN_POINTS = 40_000
SCALES = {"temp_c": "Inferno", "power_w": "Viridis", "pcie_bytes_per_s": "Cividis", "util_pct": "Blues",
          "throttled": "Reds"}


def epoch_ms(times: pl.Series) -> np.ndarray:
    """Times as float milliseconds since the epoch: a date axis reads them, and they travel as compact binary
    arrays (plotly base64) instead of one ISO string per point."""
    return times.dt.epoch("ms").cast(pl.Float64).to_numpy()


def heatmap_figure(
    frame: pl.DataFrame,
    field: str,
    title: str,
    unit: str,
    device_groups: Mapping[str, str],
    flags: Mapping[str, str] | None = None,
    scale: float = 1.0,
) -> go.Figure:
    """Devices (rows, grouped) × time bins (columns) of ``field``; groups outlined, flagged devices marked.

    ``device_groups`` orders the rows (device -> group, in display order); ``flags`` adds a marker to a
    device's label (e.g. "throttled 6%", "stale"). ``scale`` divides values (e.g. 1e9 for GB/s).
    """
    flags = flags or {}
    devices = list(device_groups)
    times = frame[TIME].unique().sort() if frame.height else pl.Series(TIME, [], pl.Datetime("ns", "UTC"))
    wide = (
        frame.select(TIME, "device", pl.col(field) / scale)
        .pivot(on=TIME, index="device", values=field, aggregate_function="mean")
        if frame.height
        else pl.DataFrame({"device": []}, schema={"device": pl.String})
    )
    lookup = {row[0]: row[1:] for row in wide.iter_rows()}
    # rows as one float array (NaN = no sample: a gap, never 0): plotly sends it as a compact binary array
    z = np.array([[np.nan if v is None else v for v in lookup.get(d, [None] * len(times))] for d in devices],
                 dtype=np.float64).reshape(len(devices), len(times))
    labels = [f"{d} · {flags[d]}" if d in flags else d for d in devices]
    fig = go.Figure(
        go.Heatmap(
            # rows are categories named by their labels, so the hover names the device without a per-cell
            # customdata array (which doubled the browser's drawing time)
            z=z, x=times.to_list(), y=labels, colorscale=SCALES.get(field, "Viridis"),
            colorbar={"title": {"text": unit}, "x": 1.07, "xanchor": "left"}, hoverongaps=False,
            hovertemplate="%{y}<br>%{x}<br>%{z:.3g} " + unit + "<extra></extra>",
        )
    )
    # outline each group (hive, tenant) and label it on the right
    order: list[tuple[str, int, int]] = []
    for i, d in enumerate(devices):
        g = device_groups[d] or "—"
        if order and order[-1][0] == g:
            order[-1] = (g, order[-1][1], i)
        else:
            order.append((g, i, i))
    for g, lo, hi in order:
        fig.add_shape(type="rect", xref="paper", x0=0, x1=1, y0=lo - 0.5, y1=hi + 0.5,
                      line={"width": 2, "color": "#888"}, fillcolor="rgba(0,0,0,0)")
        fig.add_annotation(xref="paper", x=1.0, xanchor="left", y=(lo + hi) / 2, text=f" {g}", showarrow=False,
                           font={"size": 11})
    fig.update_layout(
        title=title, height=max(320, 16 * len(devices) + 120), margin={"l": 10, "r": 20, "t": 40, "b": 40},
        xaxis_title="time (UTC)",
        yaxis={"title": "device", "type": "category", "categoryorder": "array", "categoryarray": labels,
               "autorange": "reversed"},
    )
    return fig


def bands(events: pl.DataFrame, group: str | Sequence[str] | None = None) -> list[dict]:
    """Shaded bands from run_event rows: one per benchmark run (start → end) of ``group`` (one or several; None:
    every group), labelled phase · run."""
    if events.height == 0:
        return []
    groups = [group] if isinstance(group, str) else group
    ev = events if not groups else events.filter(pl.col("group").is_in(list(groups)))
    starts = ev.filter(pl.col("event") == "start").group_by("run_id").agg(pl.col(TIME).min(), pl.col("phase").first())
    ends = ev.filter(pl.col("event") == "end").group_by("run_id").agg(pl.col(TIME).max().alias("end"))
    both = starts.join(ends, on="run_id", how="inner").sort(TIME)
    return [
        {"x0": r[TIME], "x1": r["end"], "label": f"{r['phase'] or ''} · {r['run_id']}", "phase": r["phase"] or ""}
        for r in both.iter_rows(named=True)
    ]


def phase_bands(events: pl.DataFrame) -> list[dict]:
    """Bands per phase (between consecutive phase changes of the run_event stream), when runs have phases."""
    if events.height == 0:
        return []
    runs = bands(events)
    by_phase: dict[str, dict] = {}
    for b in runs:
        p = by_phase.setdefault(b["phase"], {"x0": b["x0"], "x1": b["x1"], "label": b["phase"], "phase": b["phase"]})
        p["x0"], p["x1"] = min(p["x0"], b["x0"]), max(p["x1"], b["x1"])
    return sorted(by_phase.values(), key=lambda b: b["x0"])


def add_bands(fig: go.Figure, spans: Sequence[dict], rows: int = 1) -> None:
    colours: dict[str, str] = {}
    for b in spans:
        colour = colours.setdefault(b["phase"], BAND_COLOURS[len(colours) % len(BAND_COLOURS)])
        for r in range(1, rows + 1):
            kw = {"row": r, "col": 1} if rows > 1 else {}
            fig.add_vrect(x0=b["x0"], x1=b["x1"], fillcolor=colour, line_width=0, layer="below", **kw)
        fig.add_annotation(x=b["x0"], y=0.99, yref="y domain", xanchor="left", yanchor="top", text=b["label"],
                           showarrow=False, font={"size": 10}, bgcolor="rgba(128,128,128,0.12)")


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


def line_trace(points_in_figure: int) -> type[go.Scatter] | type[go.Scattergl]:
    """WebGL (``Scattergl``) for a dense figure, SVG (``Scatter``) below `WEBGL_MIN_POINTS`: with traces already
    cut to 2,000 points, SVG draws sooner than WebGL starts up in a browser without a GPU (software GL), and SVG
    figures draw with the dashboard's small plotly.js bundle (`dashboard.plotly_view`); WebGL needs the full one."""
    return go.Scattergl if points_in_figure >= WEBGL_MIN_POINTS else go.Scatter


def timeseries_panels(panels: Sequence[dict], spans: Sequence[dict] = (), height_per_panel: int = 260) -> go.Figure:
    """Stacked panels on one shared time axis.

    Each panel: ``{"frame", "y", "by" (trace column or None), "title", "unit"}``; frames are already reduced.
    """
    trace = line_trace(sum(p["frame"].height for p in panels))
    n = max(len(panels), 1)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[p["title"] for p in panels])
    for i, p in enumerate(panels, start=1):
        frame: pl.DataFrame = p["frame"]
        by = p.get("by")
        parts = frame.partition_by(by, as_dict=True, maintain_order=True) if by and frame.height else {(None,): frame}
        for key, part in parts.items():
            name = str(key[0]) if key[0] is not None else p["y"]
            fig.add_trace(
                trace(x=epoch_ms(part[TIME]), y=part[p["y"]].cast(pl.Float64).to_numpy(), mode="lines",
                      name=name, legendgroup=f"p{i}", legendgrouptitle_text=p["title"] if by else None,
                      hovertemplate=f"{name}<br>%{{x}}<br>%{{y:.4g}} {p['unit']}<extra></extra>"),
                row=i, col=1,
            )
        fig.update_yaxes(title_text=p["unit"], row=i, col=1)
    fig.update_xaxes(type="date")
    fig.update_xaxes(title_text="time (UTC)", row=n, col=1)
    add_bands(fig, spans, rows=n)
    fig.update_layout(height=height_per_panel * n + 80, margin={"l": 10, "r": 10, "t": 50, "b": 40},
                      legend={"groupclick": "toggleitem"}, hovermode="x unified")
    return fig


def victim_vs_antagonists(victim: pl.DataFrame, activity: pl.DataFrame, victim_name: str,
                          spans: Sequence[dict] = (), activity_title: str = "CPU % (100 = 1 core)") -> go.Figure:
    """Victim windowed p99 ITL and throughput over time, above the antagonists' activity, on one time axis.

    ``victim``: time, itl_ms_p99, output_tok_s; ``activity``: time, antagonist, activity (0..1 or a unit value).
    """
    trace = line_trace(victim.height * 2 + activity.height)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=[f"{victim_name}: windowed p99 inter-token latency",
                                        f"{victim_name}: output throughput", "antagonist activity"])
    if victim.height:
        fig.add_trace(trace(x=victim[TIME].to_list(), y=victim["itl_ms_p99"].to_list(), mode="lines+markers",
                                   name="p99 ITL", marker={"size": 4}), row=1, col=1)
        fig.add_trace(trace(x=victim[TIME].to_list(), y=victim["output_tok_s"].to_list(),
                                   mode="lines+markers", name="tokens/s", marker={"size": 4}), row=2, col=1)
    if activity.height:
        for (name,), part in activity.partition_by("antagonist", as_dict=True, maintain_order=True).items():
            fig.add_trace(trace(x=part[TIME].to_list(), y=part["activity"].to_list(), mode="lines",
                                       name=str(name)), row=3, col=1)
    fig.update_yaxes(title_text="ms", row=1, col=1)
    fig.update_yaxes(title_text="tokens/s", row=2, col=1)
    fig.update_yaxes(title_text=activity_title, row=3, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=3, col=1)
    add_bands(fig, spans, rows=3)
    fig.update_layout(height=760, margin={"l": 10, "r": 10, "t": 50, "b": 40}, hovermode="x unified")
    return fig


def index_scatter(frame: pl.DataFrame, x_title: str, y_title: str) -> go.Figure:
    """Interference index (y) against each antagonist's activity (x), one colour per antagonist."""
    fig = go.Figure()
    trace = line_trace(frame.height)
    if frame.height:
        for (name,), part in frame.partition_by("antagonist", as_dict=True, maintain_order=True).items():
            fig.add_trace(trace(x=part["activity"].to_list(), y=part["index"].to_list(), mode="markers",
                                name=str(name), marker={"size": 6, "opacity": 0.7}))
    fig.update_layout(title="Interference index vs antagonist activity", xaxis_title=x_title, yaxis_title=y_title,
                      height=420, margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig


def runs_side_by_side(frame: pl.DataFrame, metrics: Mapping[str, str], cols: int = 3) -> go.Figure:
    """One panel per metric (``metrics``: column -> title with unit), one bar per run (``label``), a colour per run
    shared by every panel and named in the legend."""
    names = [m for m in metrics if m in frame.columns]
    rows = max(1, -(-len(names) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[metrics[m] for m in names], vertical_spacing=0.16)
    palette = ("#3b82f6", "#f97316", "#10b981", "#e11d48", "#8b5cf6", "#eab308", "#06b6d4", "#64748b")
    labels = frame["label"].to_list()
    for j, m in enumerate(names):
        r, c = divmod(j, cols)
        values = frame[m].to_list()
        for i, (label, v) in enumerate(zip(labels, values, strict=True)):
            fig.add_trace(go.Bar(x=[label], y=[v], name=label, legendgroup=label, showlegend=j == 0,
                                 marker_color=palette[i % len(palette)],
                                 text=[f"{v:.4g}" if v is not None else ""], textposition="auto",
                                 hovertemplate=f"{label}<br>{metrics[m]}: %{{y:.4g}}<extra></extra>"),
                          row=r + 1, col=c + 1)
        fig.update_xaxes(showticklabels=False, row=r + 1, col=c + 1)
    fig.update_layout(height=300 * rows + 80, margin={"l": 10, "r": 10, "t": 60, "b": 20}, barmode="group",
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0})
    return fig


def history_figure(frame: pl.DataFrame, y: str, unit: str, by: str | None = None,
                   change_points: Sequence[datetime] = (), title: str = "") -> go.Figure:
    """A metric per run / night over time, with change points as dashed vertical lines."""
    fig = go.Figure()
    parts = frame.partition_by(by, as_dict=True, maintain_order=True) if by and frame.height else {(y,): frame}
    for (name,), part in parts.items():
        part = part.sort(TIME)
        fig.add_trace(go.Scatter(x=part[TIME].to_list(), y=part[y].to_list(), mode="lines+markers", name=str(name)))
    for cp in change_points:
        fig.add_vline(x=cp, line_dash="dash", line_color="#d62728")
    fig.update_layout(title=title, xaxis_title="time (UTC)", yaxis_title=unit, height=380,
                      margin={"l": 10, "r": 10, "t": 50, "b": 40})
    if frame.height:
        # a single night (or runs within one day): a day either side, not an axis a few nanoseconds wide
        first, last = frame[TIME].min(), frame[TIME].max()
        if last - first < timedelta(days=1):  # type: ignore[operator]
            fig.update_xaxes(range=[first - timedelta(days=1), last + timedelta(days=1)])  # type: ignore[operator]
        lo, hi = frame[y].min(), frame[y].max()
        if lo is not None and lo == hi:  # one value: ±10 % around it, not ticks in its sixth digit
            pad = abs(lo) * 0.1 or 1.0  # type: ignore[arg-type]
            fig.update_yaxes(range=[lo - pad, hi + pad])  # type: ignore[operator]
    return fig
