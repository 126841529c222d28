"""Figures of node telemetry (frames in, plotly figures out; no Streamlit, no store).

- `heatmap_figure(frame, field, ...)`: devices (rows, grouped and flagged) × time bins, the dashboard's overview;
- `device_heatmap(accel, field)`: one row per accelerator in natural order, the report's;
- `group_timeseries(accel, field)`: mean ``field`` per co-tenant group over time;
- `timeseries_panels(panels, spans)`: stacked panels on one time axis (empty ones left out), benchmark runs as
  `bands` labelled above the plot area;
- `thermal_profile_bars(profile, limits)`: temperature range and average per node or device.

Series go through the one reducer (`analysis.figures.reduce`): MinMaxLTTB per trace, fixed time bins for heatmaps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from analysis.figures.reduce import bucket_seconds, reduce_series, time_buckets
from analysis.figures.style import (
    BAND_COLOURS,
    BAND_LABEL_SHIFT_PX,
    GREY,
    LABELS,
    MAX_POINTS,
    SCALES,
    UNITS,
    color,
    empty_figure,
    epoch_ms,
    line_trace,
    style,
)
from telemetry.schema import TIME


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
        frame.select(TIME, "device", pl.col(field) / scale).pivot(
            on=TIME, index="device", values=field, aggregate_function="mean"
        )
        if frame.height
        else pl.DataFrame({"device": []}, schema={"device": pl.String})
    )
    lookup = {row[0]: row[1:] for row in wide.iter_rows()}
    # rows as one float array (NaN = no sample: a gap, never 0): plotly sends it as a compact binary array
    z = np.array(
        [[np.nan if v is None else v for v in lookup.get(d, [None] * len(times))] for d in devices], dtype=np.float64
    ).reshape(len(devices), len(times))
    labels = [f"{d} · {flags[d]}" if d in flags else d for d in devices]
    fig = go.Figure(
        go.Heatmap(
            # rows are categories named by their labels, so the hover names the device without a per-cell
            # customdata array (which doubled the browser's drawing time)
            z=z,
            x=times.to_list(),
            y=labels,
            colorscale=SCALES.get(field, "Viridis"),
            colorbar={"title": {"text": unit}, "x": 1.07, "xanchor": "left"},
            hoverongaps=False,
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
        fig.add_shape(
            type="rect",
            xref="paper",
            x0=0,
            x1=1,
            y0=lo - 0.5,
            y1=hi + 0.5,
            line={"width": 2, "color": "#888"},
            fillcolor="rgba(0,0,0,0)",
        )
        fig.add_annotation(
            xref="paper", x=1.0, xanchor="left", y=(lo + hi) / 2, text=f" {g}", showarrow=False, font={"size": 11}
        )
    fig.update_layout(
        title=title,
        height=max(320, 16 * len(devices) + 120),
        margin={"l": 10, "r": 20, "t": 40, "b": 40},
        xaxis_title="time (UTC)",
        yaxis={
            "title": "device",
            "type": "category",
            "categoryorder": "array",
            "categoryarray": labels,
            "autorange": "reversed",
        },
    )
    return fig


def device_heatmap(accel: pl.DataFrame, field: str = "temp_c", max_columns: int = 720) -> go.Figure:
    """One row per accelerator, one column per time bin (mean, about ``max_columns`` bins): ``field`` (unit from
    its name) as colour."""
    unit = UNITS.get(field, "")
    title = f"{LABELS.get(field, field)} per accelerator"
    if accel.is_empty() or field not in accel.columns or accel[field].drop_nulls().is_empty():
        return empty_figure("no accelerator telemetry in this window", title)
    every_s = bucket_seconds(accel[TIME].min(), accel[TIME].max(), max_columns)  # type: ignore[arg-type]
    f = time_buckets(accel.select(TIME, "device", field).drop_nulls(field), [field], every_s, ["device"])
    devices = device_order(f["device"].unique().to_list())
    wide = f.pivot(on="device", index=TIME, values=field).sort(TIME)
    z = [wide[d].to_list() if d in wide.columns else [None] * wide.height for d in devices]
    fig = go.Figure(
        go.Heatmap(
            x=wide[TIME].to_list(),
            y=devices,
            z=z,
            colorscale="Turbo" if field == "temp_c" else "Viridis",
            colorbar={"title": {"text": unit}, "ticksuffix": f" {unit}", "outlinewidth": 0},
            hovertemplate="%{y} %{x}: %{z:.1f} " + unit + "<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text="accelerator", type="category", autorange="reversed", tickfont={"size": 9})
    return style(fig, f"{title} ({unit})", height=max(260, 90 + 13 * len(devices)))


def device_order(devices: list[str]) -> list[str]:
    """Device names in natural order (``gpu2`` before ``gpu10``)."""
    return sorted(devices, key=lambda name: re.sub(r"\d+", lambda m: m.group(0).zfill(6), name))


def group_timeseries(accel: pl.DataFrame, field: str = "temp_c") -> go.Figure:
    """Mean ``field`` per co-tenant group over time (one line per group, unit on the axis)."""
    unit = UNITS.get(field, "")
    title = f"{LABELS.get(field, field)} per group"
    if accel.is_empty() or field not in accel.columns or "group" not in accel.columns:
        return empty_figure("no accelerator telemetry in this window", title)
    means = (
        accel.select(TIME, pl.col("group").fill_null("(none)"), pl.col(field).cast(pl.Float64))
        .group_by(TIME, "group")
        .agg(pl.col(field).mean())
    )
    f = reduce_series(means, field, ["group"], MAX_POINTS)
    if f.is_empty():
        return empty_figure("no accelerator telemetry in this window", title)
    fig = go.Figure()
    for i, g in enumerate(sorted(f["group"].unique().to_list())):
        part = f.filter(pl.col("group") == g)
        fig.add_trace(
            go.Scatter(
                x=part[TIME].to_list(),
                y=part[field].to_list(),
                name=g,
                mode="lines",
                line={"color": color(i), "width": 1.6},
            )
        )
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text=f"{LABELS.get(field, field)} ({unit})")
    return style(fig, f"{title} (mean of its accelerators)")


def thermal_profile_bars(
    profile: pl.DataFrame, limits: Mapping[str, float] | None = None, label: str = "node"
) -> go.Figure:
    """Temperature range (1-minute means, min to max) and average per node or device, with the limits."""
    title = f"temperature range per {label}"
    if profile.is_empty():
        return empty_figure("no accelerator telemetry in this window", title)
    order = {name: i for i, name in enumerate(device_order(profile[label].to_list()))}
    profile = profile.sort(pl.col(label).replace_strict(order, return_dtype=pl.Int64))
    names = profile[label].to_list()
    lo, hi, avg = profile["gpu_min_c"].to_list(), profile["gpu_max_c"].to_list(), profile["gpu_avg_c"].to_list()
    colors = {"COOL": "#06b6d4", "OK": "#10b981", "WARM": "#f59e0b", "HOT": "#e11d48"}
    fig = go.Figure()
    fig.add_bar(
        x=names,
        y=[(h - low) if h is not None and low is not None else None for h, low in zip(hi, lo, strict=True)],
        base=lo,
        name="range (°C)",
        marker_color=[colors.get(s, GREY) for s in profile["status"].to_list()],
        opacity=0.55,
        hovertemplate="%{x}: %{base:.1f} to %{y:.1f} °C above base<extra></extra>",
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=avg,
            mode="markers",
            name="average (°C)",
            marker={"symbol": "line-ew-open", "size": 18, "line": {"width": 3, "color": GREY}},
        )
    )
    for key, dash in (("gpu_warm_c", "dot"), ("gpu_hot_c", "dash")):
        if limits and limits.get(key) is not None:
            fig.add_hline(
                y=limits[key],
                line_dash=dash,
                line_color=colors["WARM" if "warm" in key else "HOT"],
                annotation_text=f"{'warm' if 'warm' in key else 'hot'} {limits[key]:.0f} °C",
                annotation_font_color=GREY,
            )
    fig.update_xaxes(title_text=label, type="category", tickfont={"size": 9 if len(names) > 12 else 12})
    fig.update_yaxes(title_text="accelerator temperature (°C)")
    return style(fig, title)


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


def add_bands(fig: go.Figure, spans: Sequence[dict], rows: int = 1) -> None:
    """Shade each span (`bands`) over every one of ``rows`` stacked panels, a colour per phase, and label it
    (phase · run) above the top panel's plot area, above its subplot title: never on top of a trace at 100 %.
    The top margin grows by `BAND_LABEL_SHIFT_PX` to make room (set the figure's margin before calling)."""
    colours: dict[str, str] = {}
    for b in spans:
        colour = colours.setdefault(b["phase"], BAND_COLOURS[len(colours) % len(BAND_COLOURS)])
        for r in range(1, rows + 1):
            kw = {"row": r, "col": 1} if rows > 1 else {}
            fig.add_vrect(x0=b["x0"], x1=b["x1"], fillcolor=colour, line_width=0, layer="below", **kw)
        fig.add_annotation(
            x=b["x0"],
            y=1,
            yref="y domain",
            xanchor="left",
            yanchor="bottom",
            yshift=BAND_LABEL_SHIFT_PX,
            text=b["label"],
            showarrow=False,
            font={"size": 10},
            bgcolor="rgba(128,128,128,0.12)",
        )
    if spans:
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 50
        fig.update_layout(margin={"t": top + BAND_LABEL_SHIFT_PX})


def timeseries_panels(panels: Sequence[dict], spans: Sequence[dict] = (), height_per_panel: int = 260) -> go.Figure:
    """Stacked panels on one shared time axis; a panel with no samples is left out (an empty subplot draws NaN
    axis paths), and with none left the figure says so in words.

    Each panel: ``{"frame", "y", "by" (trace column or None), "title", "unit"}``; frames are already reduced.
    """
    panels = [p for p in panels if p["frame"].height]
    if not panels:
        return empty_figure("no samples in this range")
    trace = line_trace(sum(p["frame"].height for p in panels))
    n = len(panels)
    fig = make_subplots(
        rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.06, subplot_titles=[p["title"] for p in panels]
    )
    for i, p in enumerate(panels, start=1):
        frame: pl.DataFrame = p["frame"]
        by = p.get("by")
        parts = frame.partition_by(by, as_dict=True, maintain_order=True) if by else {(None,): frame}
        for key, part in parts.items():
            name = str(key[0]) if key[0] is not None else p["y"]
            fig.add_trace(
                trace(
                    x=epoch_ms(part[TIME]),
                    y=part[p["y"]].cast(pl.Float64).to_numpy(),
                    mode="lines",
                    name=name,
                    legendgroup=f"p{i}",
                    legendgrouptitle_text=p["title"] if by else None,
                    hovertemplate=f"{name}<br>%{{x}}<br>%{{y:.4g}} {p['unit']}<extra></extra>",
                ),
                row=i,
                col=1,
            )
        fig.update_yaxes(title_text=p["unit"], row=i, col=1)
    fig.update_xaxes(type="date")
    fig.update_xaxes(title_text="time (UTC)", row=n, col=1)
    fig.update_layout(
        height=height_per_panel * n + 80,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"groupclick": "toggleitem"},
        hovermode="x unified",
    )
    add_bands(fig, spans, rows=n)
    return fig
