"""Pure ``frame -> plotly Figure`` functions shared by the nightly report and the dashboard.

Every axis names its unit; backgrounds are transparent and text / grid colours are a mid grey, so a figure reads
on a light or a dark page (the report's page switches the font colour with ``prefers-color-scheme``; Streamlit
applies its own theme). Time series are reduced to at most ``MAX_POINTS`` points per trace (window means).

Frames (layouts from `analysis.report.summary`):

- `phase_metric_bars(phases, metric)`: phases long frame (group, phase, metric, unit, value, change_pct, ...).
- `phase_change_bars(phases, metric)`: the same frame; change vs baseline with its interval.
- `evidence_timeline(victim_p99, activity, victim, antagonist)`: time, group, itl_ms_p99 / time, group, value, unit.
- `device_heatmap(accel, field)`: an ``accel`` frame (time, device, field).
- `group_timeseries(accel, field)`: an ``accel`` frame (time, group, field); mean per group.
- `thermal_profile_bars(profile, limits)`: node or device thermal profile (gpu_min_c, gpu_avg_c, gpu_max_c).
- `history_lines(history, change_points, metric)`: time, group, phase, metric, unit, value / change points.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

MAX_POINTS = 1500
GREY = "#8a8f98"
GRID = "rgba(138,143,152,0.25)"
PALETTE = ("#3b82f6", "#f97316", "#10b981", "#e11d48", "#8b5cf6", "#eab308", "#06b6d4", "#64748b")
UNITS = {"temp_c": "°C", "power_w": "W", "util_pct": "%", "sm_clock_mhz": "MHz", "itl_ms_p99": "ms",
         "output_tok_s": "tok/s"}
LABELS = {"temp_c": "temperature", "power_w": "board power", "util_pct": "utilisation", "sm_clock_mhz": "core clock",
          "output_tok_s": "output throughput", "itl_ms_p99": "p99 ITL", "itl_ms_p50": "median ITL",
          "tpot_ms_p50": "median TPOT", "tpot_ms_p99": "p99 TPOT", "ttft_ms_p50": "median TTFT",
          "ttft_ms_p99": "p99 TTFT"}


def style(fig: go.Figure, title: str | None = None, height: int = 360) -> go.Figure:
    """Transparent, grey-on-anything look with a title and a legend above the plot."""
    fig.update_layout(
        title={"text": title or "", "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", font={"color": GREY, "size": 12},
        height=height, margin={"l": 60, "r": 60, "t": 56, "b": 48},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0,
                "bgcolor": "rgba(0,0,0,0)"},
        hovermode="x unified",
    )
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
    return fig


def empty_figure(message: str, title: str | None = None) -> go.Figure:
    """A figure that says, in words, that there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": GREY})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, title, height=200)


def _every(frame: pl.DataFrame, max_points: int = MAX_POINTS) -> str:
    if frame.is_empty():
        return "1s"
    t0, t1 = frame["time"].min(), frame["time"].max()
    span = (t1 - t0).total_seconds() if isinstance(t0, datetime) and isinstance(t1, datetime) else 0
    return f"{max(1, int(span // max_points) + 1)}s"


def reduce_series(frame: pl.DataFrame, by: str, value: str, max_points: int = MAX_POINTS) -> pl.DataFrame:
    """Window means of ``value`` per ``by`` so each series has at most about ``max_points`` points."""
    f = frame.filter(pl.col(value).is_not_null()).sort("time")
    if f.is_empty():
        return f.select("time", by, value)
    return (f.group_by_dynamic("time", every=_every(f, max_points), group_by=by)
            .agg(pl.col(value).cast(pl.Float64).mean()).sort(by, "time"))


def with_gaps(frame: pl.DataFrame, by: str, value: str, gap_s: float) -> pl.DataFrame:
    """Insert a null after every jump longer than ``gap_s`` so lines break across gaps (between runs)."""
    if frame.height < 2:
        return frame
    f = frame.sort(by, "time")
    jump = (pl.col("time").diff().over(by).dt.total_milliseconds() > gap_s * 1000).shift(-1).over(by).fill_null(False)
    holes = f.filter(jump).with_columns((pl.col("time") + pl.duration(milliseconds=1)), pl.lit(None, pl.Float64).alias(value))
    return pl.concat([f, holes.select(f.columns)], how="vertical_relaxed").sort(by, "time")


def _step_s(frame: pl.DataFrame) -> float:
    if frame.height < 2:
        return 0.0
    d = frame.sort("time")["time"].diff().drop_nulls().dt.total_milliseconds()
    return float(d.filter(d > 0).min() or 0) / 1000.0


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def phase_metric_bars(phases: pl.DataFrame, metric: str = "itl_ms_p99") -> go.Figure:
    """One bar per (phase, group) of ``metric``'s value, in phase order."""
    title = f"{LABELS.get(metric, metric)} per phase"
    f = phases.filter((pl.col("metric") == metric) & pl.col("value").is_not_null()) if phases.height else phases
    if f.is_empty():
        return empty_figure("no benchmark runs in this window", title)
    unit = f["unit"][0]
    order = f["phase"].unique(maintain_order=True).to_list()
    fig = go.Figure()
    for i, g in enumerate(f["group"].unique(maintain_order=True).to_list()):
        part = f.filter(pl.col("group") == g)
        text = [("" if c is None else f"{c:+.1f} %") for c in part["change_pct"].to_list()]
        fig.add_bar(x=part["phase"].to_list(), y=part["value"].to_list(), name=g, marker_color=_color(i),
                    text=text, textposition="outside",
                    hovertemplate="%{x}: %{y:.2f} " + unit + "<extra>" + g + "</extra>")
    fig.update_xaxes(title_text="phase", type="category", categoryorder="array", categoryarray=order)
    fig.update_yaxes(title_text=f"{LABELS.get(metric, metric)} ({unit})", rangemode="tozero")
    return style(fig, title)


def phase_change_bars(phases: pl.DataFrame, metric: str = "itl_ms_p99") -> go.Figure:
    """Change of ``metric`` vs the baseline phase (%) per (phase, group), with its 95 % interval when known."""
    title = f"{LABELS.get(metric, metric)}: change vs baseline"
    f = (phases.filter((pl.col("metric") == metric) & pl.col("change_pct").is_not_null())
         if phases.height else phases)
    if f.is_empty():
        return empty_figure("no phase to compare with a baseline", title)
    fig = go.Figure()
    for i, g in enumerate(f["group"].unique(maintain_order=True).to_list()):
        part = f.filter(pl.col("group") == g)
        lo = [(c - lo_) if lo_ is not None else 0 for c, lo_ in zip(part["change_pct"], part["ci_low_pct"], strict=True)]
        hi = [(hi_ - c) if hi_ is not None else 0 for c, hi_ in zip(part["change_pct"], part["ci_high_pct"], strict=True)]
        fig.add_bar(x=part["phase"].to_list(), y=part["change_pct"].to_list(), name=g, marker_color=_color(i),
                    error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "color": GREY},
                    hovertemplate="%{x}: %{y:+.2f} %<extra>" + g + "</extra>")
    fig.add_hline(y=0, line_color=GREY, line_width=1)
    fig.update_xaxes(title_text="phase", type="category")
    fig.update_yaxes(title_text="change vs baseline (%)", ticksuffix=" %")
    return style(fig, title)


def evidence_timeline(victim_p99: pl.DataFrame, activity: pl.DataFrame, victim: str, antagonist: str) -> go.Figure:
    """The victim's windowed p99 ITL (ms, left axis) against the antagonist's activity (right axis) over time."""
    title = f"{victim} p99 ITL vs {antagonist} activity"
    members = antagonist.split("+")  # merged co-tenants (always active together) are drawn one area each
    v = victim_p99.filter(pl.col("group") == victim) if victim_p99.height else victim_p99
    a = activity.filter(pl.col("group").is_in(members)) if activity.height else activity
    if v.is_empty():
        return empty_figure(f"no latency windows for {victim}", title)
    units = a["unit"].unique().to_list() if a.height else ["%"]
    unit = units[0] if len(units) == 1 else "%"
    a = a.filter(pl.col("unit") == unit) if a.height else a
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    shades = ("249,115,22", "139,92,246", "16,185,129", "234,179,8")
    for i, m in enumerate(sorted(a["group"].unique().to_list()) if a.height else []):
        part = reduce_series(a.filter(pl.col("group") == m), "group", "value")
        rgb = shades[i % len(shades)]
        fig.add_trace(go.Scatter(x=part["time"].to_list(), y=part["value"].to_list(), name=f"{m} activity ({unit})",
                                 fill="tozeroy", mode="lines", line={"color": f"rgba({rgb},0.9)", "width": 1},
                                 fillcolor=f"rgba({rgb},0.15)"), secondary_y=True)
    v = reduce_series(v, "group", "itl_ms_p99")
    v = with_gaps(v, "group", "itl_ms_p99", 2.5 * max(_step_s(v), 1.0))
    fig.add_trace(go.Scatter(x=v["time"].to_list(), y=v["itl_ms_p99"].to_list(), name=f"{victim} p99 ITL (ms)",
                             mode="lines+markers", marker={"size": 4}, line={"color": PALETTE[0], "width": 2},
                             connectgaps=False), secondary_y=False)
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text=f"{victim} p99 ITL (ms)", secondary_y=False, rangemode="tozero")
    label = {"%": "utilisation (%)", "W": "board power (W)"}.get(unit, "CPU (% of one core)")
    fig.update_yaxes(title_text=f"{antagonist} {label}", secondary_y=True, rangemode="tozero", showgrid=False,
                     ticksuffix=" W" if unit == "W" else " %")
    return style(fig, title)


def device_heatmap(accel: pl.DataFrame, field: str = "temp_c", max_columns: int = 720) -> go.Figure:
    """One row per accelerator, one column per time window: ``field`` (unit from its name) as colour."""
    unit = UNITS.get(field, "")
    title = f"{LABELS.get(field, field)} per accelerator"
    if accel.is_empty() or field not in accel.columns or accel[field].drop_nulls().is_empty():
        return empty_figure("no accelerator telemetry in this window", title)
    f = reduce_series(accel.select("time", "device", field), "device", field, max_columns)
    devices = _device_order(f["device"].unique().to_list())
    wide = f.pivot(on="device", index="time", values=field).sort("time")
    z = [wide[d].to_list() if d in wide.columns else [None] * wide.height for d in devices]
    fig = go.Figure(go.Heatmap(
        x=wide["time"].to_list(), y=devices, z=z, colorscale="Turbo" if field == "temp_c" else "Viridis",
        colorbar={"title": {"text": unit}, "ticksuffix": f" {unit}", "outlinewidth": 0},
        hovertemplate="%{y} %{x}: %{z:.1f} " + unit + "<extra></extra>"))
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text="accelerator", type="category", autorange="reversed", tickfont={"size": 9})
    return style(fig, f"{title} ({unit})", height=max(260, 90 + 13 * len(devices)))


def _natural(name: str) -> str:
    """A sort key string that orders ``gpu2`` before ``gpu10``."""
    import re

    return re.sub(r"\d+", lambda m: m.group(0).zfill(6), name)


def _device_order(devices: list[str]) -> list[str]:
    return sorted(devices, key=_natural)


def group_timeseries(accel: pl.DataFrame, field: str = "temp_c") -> go.Figure:
    """Mean ``field`` per co-tenant group over time (one line per group, unit on the axis)."""
    unit = UNITS.get(field, "")
    title = f"{LABELS.get(field, field)} per group"
    if accel.is_empty() or field not in accel.columns or "group" not in accel.columns:
        return empty_figure("no accelerator telemetry in this window", title)
    f = reduce_series(accel.select("time", pl.col("group").fill_null("(none)"), field), "group", field)
    if f.is_empty():
        return empty_figure("no accelerator telemetry in this window", title)
    fig = go.Figure()
    for i, g in enumerate(sorted(f["group"].unique().to_list())):
        part = f.filter(pl.col("group") == g)
        fig.add_trace(go.Scatter(x=part["time"].to_list(), y=part[field].to_list(), name=g, mode="lines",
                                 line={"color": _color(i), "width": 1.6}))
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text=f"{LABELS.get(field, field)} ({unit})")
    return style(fig, f"{title} (mean of its accelerators)")


def thermal_profile_bars(profile: pl.DataFrame, limits: Mapping[str, float] | None = None,
                         label: str = "node") -> go.Figure:
    """Temperature range (1-minute means, min to max) and average per node or device, with the limits."""
    title = f"temperature range per {label}"
    if profile.is_empty():
        return empty_figure("no accelerator telemetry in this window", title)
    order = {name: i for i, name in enumerate(_device_order(profile[label].to_list()))}
    profile = profile.sort(pl.col(label).replace_strict(order, return_dtype=pl.Int64))
    names = profile[label].to_list()
    lo, hi, avg = profile["gpu_min_c"].to_list(), profile["gpu_max_c"].to_list(), profile["gpu_avg_c"].to_list()
    colors = {"COOL": "#06b6d4", "OK": "#10b981", "WARM": "#f59e0b", "HOT": "#e11d48"}
    fig = go.Figure()
    fig.add_bar(x=names, y=[(h - low) if h is not None and low is not None else None for h, low in zip(hi, lo, strict=True)],
                base=lo, name="range (°C)", marker_color=[colors.get(s, GREY) for s in profile["status"].to_list()],
                opacity=0.55, hovertemplate="%{x}: %{base:.1f} to %{y:.1f} °C above base<extra></extra>")
    fig.add_trace(go.Scatter(x=names, y=avg, mode="markers", name="average (°C)",
                             marker={"symbol": "line-ew-open", "size": 18, "line": {"width": 3, "color": GREY}}))
    for key, dash in (("gpu_warm_c", "dot"), ("gpu_hot_c", "dash")):
        if limits and limits.get(key) is not None:
            fig.add_hline(y=limits[key], line_dash=dash, line_color=colors["WARM" if "warm" in key else "HOT"],
                          annotation_text=f"{'warm' if 'warm' in key else 'hot'} {limits[key]:.0f} °C",
                          annotation_font_color=GREY)
    fig.update_xaxes(title_text=label, type="category", tickfont={"size": 9 if len(names) > 12 else 12})
    fig.update_yaxes(title_text="accelerator temperature (°C)")
    return style(fig, title)


def history_lines(history: pl.DataFrame, change_points: pl.DataFrame | None = None,
                  metric: str = "output_tok_s") -> go.Figure:
    """One line per (group, phase) of a run metric over the history window; change points as vertical markers."""
    title = f"history: {LABELS.get(metric, metric)}"
    f = history.filter(pl.col("metric") == metric) if history.height else history
    if f.is_empty():
        return empty_figure("no benchmark runs in the history window", title)
    unit = f["unit"][0]
    fig = go.Figure()
    keys = f.select("group", "phase").unique(maintain_order=True).rows()
    for i, (g, p) in enumerate(keys):
        part = f.filter((pl.col("group") == g) & (pl.col("phase") == p)).sort("time")
        fig.add_trace(go.Scatter(x=part["time"].to_list(), y=part["value"].to_list(), name=f"{g} {p}".strip(),
                                 mode="lines+markers", marker={"size": 6}, line={"color": _color(i)},
                                 hovertemplate="%{x}: %{y:.2f} " + unit + "<extra>%{fullData.name}</extra>"))
    cps = change_points.filter(pl.col("metric") == metric) if change_points is not None and change_points.height else None
    if cps is not None:
        for r in cps.iter_rows(named=True):
            fig.add_vline(x=r["time"], line_dash="dash", line_color="#e11d48")
            fig.add_annotation(x=r["time"], y=1, yref="paper", text=f"change point {r['group']} {r['phase']}",
                               showarrow=False, font={"color": "#e11d48", "size": 10}, yanchor="bottom")
    fig.update_xaxes(title_text="run start (UTC)")
    fig.update_yaxes(title_text=f"{LABELS.get(metric, metric)} ({unit})")
    return style(fig, title)
