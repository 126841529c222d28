"""Figures of benchmark runs, phases and attribution (frames in, plotly figures out; no Streamlit, no store).

- `phase_metric_bars(phases, metric)` / `phase_change_bars(phases, metric)`: the phase table
  (`analysis.degradation.PHASE_COLUMNS`): values per phase, change vs baseline with its interval;
- `evidence_timeline(victim_p99, activity, victim, antagonist)`: the victim's p99 ITL against an antagonist;
- `victim_vs_antagonists(victim, activity, ...)` / `index_scatter(points, ...)`: an `Attribution`'s windows and
  index against its suspects' activity (`dashboard.interference.linked`), one colour per antagonist in both
  (`analysis.figures.style.antagonist_colors`);
- `runs_side_by_side(runs, metrics)`: one bar per run and metric, labelled with plain numbers;
- `history_lines(history, change_points, metric)` / `history_figure(frame, y, unit)`: metrics over nights / runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from analysis.figures.nodes import add_bands
from analysis.figures.reduce import reduce_series
from analysis.figures.style import (
    GREY,
    LABELS,
    MAX_POINTS,
    PALETTE,
    antagonist_colors,
    color,
    empty_figure,
    line_trace,
    plain_number,
    style,
)
from telemetry.schema import TIME


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
        fig.add_bar(
            x=part["phase"].to_list(),
            y=part["value"].to_list(),
            name=g,
            marker_color=color(i),
            text=text,
            textposition="outside",
            hovertemplate="%{x}: %{y:.2f} " + unit + "<extra>" + g + "</extra>",
        )
    fig.update_xaxes(title_text="phase", type="category", categoryorder="array", categoryarray=order)
    fig.update_yaxes(title_text=f"{LABELS.get(metric, metric)} ({unit})", rangemode="tozero")
    return style(fig, title)


def phase_change_bars(phases: pl.DataFrame, metric: str = "itl_ms_p99") -> go.Figure:
    """Change of ``metric`` vs the baseline phase (%) per (phase, group), with its 95 % interval when known."""
    title = f"{LABELS.get(metric, metric)}: change vs baseline"
    f = phases.filter((pl.col("metric") == metric) & pl.col("change_pct").is_not_null()) if phases.height else phases
    if f.is_empty():
        return empty_figure("no phase to compare with a baseline", title)
    fig = go.Figure()
    for i, g in enumerate(f["group"].unique(maintain_order=True).to_list()):
        part = f.filter(pl.col("group") == g)
        lo = [
            (c - lo_) if lo_ is not None else 0 for c, lo_ in zip(part["change_pct"], part["ci_low_pct"], strict=True)
        ]
        hi = [
            (hi_ - c) if hi_ is not None else 0 for c, hi_ in zip(part["change_pct"], part["ci_high_pct"], strict=True)
        ]
        fig.add_bar(
            x=part["phase"].to_list(),
            y=part["change_pct"].to_list(),
            name=g,
            marker_color=color(i),
            error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "color": GREY},
            hovertemplate="%{x}: %{y:+.2f} %<extra>" + g + "</extra>",
        )
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
        part = reduce_series(a.filter(pl.col("group") == m), "value", ["group"], MAX_POINTS)
        rgb = shades[i % len(shades)]
        fig.add_trace(
            go.Scatter(
                x=part["time"].to_list(),
                y=part["value"].to_list(),
                name=f"{m} activity ({unit})",
                fill="tozeroy",
                mode="lines",
                line={"color": f"rgba({rgb},0.9)", "width": 1},
                fillcolor=f"rgba({rgb},0.15)",
            ),
            secondary_y=True,
        )
    v = reduce_series(v, "itl_ms_p99", ["group"], MAX_POINTS)
    v = with_gaps(v, "group", "itl_ms_p99", 2.5 * max(_step_s(v), 1.0))
    fig.add_trace(
        go.Scatter(
            x=v["time"].to_list(),
            y=v["itl_ms_p99"].to_list(),
            name=f"{victim} p99 ITL (ms)",
            mode="lines+markers",
            marker={"size": 4},
            line={"color": PALETTE[0], "width": 2},
            connectgaps=False,
        ),
        secondary_y=False,
    )
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text=f"{victim} p99 ITL (ms)", secondary_y=False, rangemode="tozero")
    label = {"%": "utilisation (%)", "W": "board power (W)"}.get(unit, "CPU (% of one core)")
    fig.update_yaxes(
        title_text=f"{antagonist} {label}",
        secondary_y=True,
        rangemode="tozero",
        showgrid=False,
        ticksuffix=" W" if unit == "W" else " %",
    )
    return style(fig, title)


def with_gaps(frame: pl.DataFrame, by: str, value: str, gap_s: float) -> pl.DataFrame:
    """Insert a null after every jump longer than ``gap_s`` so lines break across gaps (between runs)."""
    if frame.height < 2:
        return frame
    f = frame.sort(by, "time")
    jump = (pl.col("time").diff().over(by).dt.total_milliseconds() > gap_s * 1000).shift(-1).over(by).fill_null(False)
    holes = f.filter(jump).with_columns(
        (pl.col("time") + pl.duration(milliseconds=1)), pl.lit(None, pl.Float64).alias(value)
    )
    return pl.concat([f, holes.select(f.columns)], how="vertical_relaxed").sort(by, "time")


def _step_s(frame: pl.DataFrame) -> float:
    if frame.height < 2:
        return 0.0
    d = frame.sort("time")["time"].diff().drop_nulls().dt.total_milliseconds()
    return float(d.filter(d > 0).min() or 0) / 1000.0


def victim_vs_antagonists(
    victim: pl.DataFrame,
    activity: pl.DataFrame,
    victim_name: str,
    spans: Sequence[dict] = (),
    activity_title: str = "CPU % (100 = 1 core)",
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Victim windowed p99 ITL and throughput over time, above the antagonists' activity, on one time axis; run
    bands labelled above the plot area.

    ``victim``: time, itl_ms_p99, output_tok_s; ``activity``: time, antagonist, activity (0..1 or a unit value).
    ``colors``: antagonist name -> colour (`antagonist_colors`); pass the map `index_scatter` gets so both charts
    give an antagonist one colour. Default: one from the antagonists drawn here.
    """
    names = activity["antagonist"].unique(maintain_order=True).to_list() if activity.height else []
    colors = colors if colors is not None else antagonist_colors(names)
    trace = line_trace(victim.height * 2 + activity.height)
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=[
            f"{victim_name}: windowed p99 inter-token latency",
            f"{victim_name}: output throughput",
            "antagonist activity",
        ],
    )
    if victim.height:
        fig.add_trace(
            trace(
                x=victim[TIME].to_list(),
                y=victim["itl_ms_p99"].to_list(),
                mode="lines+markers",
                name="p99 ITL",
                marker={"size": 4, "color": PALETTE[0]},
                line={"color": PALETTE[0]},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            trace(
                x=victim[TIME].to_list(),
                y=victim["output_tok_s"].to_list(),
                mode="lines+markers",
                name="tokens/s",
                marker={"size": 4, "color": PALETTE[1]},
                line={"color": PALETTE[1]},
            ),
            row=2,
            col=1,
        )
    if activity.height:
        for (name,), part in activity.partition_by("antagonist", as_dict=True, maintain_order=True).items():
            c = colors.get(str(name))
            fig.add_trace(
                trace(
                    x=part[TIME].to_list(),
                    y=part["activity"].to_list(),
                    mode="lines",
                    name=str(name),
                    line={"color": c},
                    marker={"color": c},
                ),
                row=3,
                col=1,
            )
    fig.update_yaxes(title_text="ms", row=1, col=1)
    fig.update_yaxes(title_text="tokens/s", row=2, col=1)
    fig.update_yaxes(title_text=activity_title, row=3, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=3, col=1)
    fig.update_layout(height=760, margin={"l": 10, "r": 10, "t": 50, "b": 40}, hovermode="x unified")
    add_bands(fig, spans, rows=3)
    return fig


def index_scatter(
    frame: pl.DataFrame, x_title: str, y_title: str, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """Interference index (y) against each antagonist's activity (x), one colour per antagonist (``colors``:
    name -> colour, the map `victim_vs_antagonists` gets; default: one from the antagonists drawn here)."""
    names = frame["antagonist"].unique(maintain_order=True).to_list() if frame.height else []
    colors = colors if colors is not None else antagonist_colors(names)
    fig = go.Figure()
    trace = line_trace(frame.height)
    if frame.height:
        for (name,), part in frame.partition_by("antagonist", as_dict=True, maintain_order=True).items():
            fig.add_trace(
                trace(
                    x=part["activity"].to_list(),
                    y=part["index"].to_list(),
                    mode="markers",
                    name=str(name),
                    marker={"size": 6, "opacity": 0.7, "color": colors.get(str(name))},
                )
            )
    fig.update_layout(
        title="Interference index vs antagonist activity",
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig


def runs_side_by_side(frame: pl.DataFrame, metrics: Mapping[str, str], cols: int = 3) -> go.Figure:
    """One panel per metric (``metrics``: column -> title with unit), one bar per run (``label``), a colour per run
    shared by every panel and named in the legend. Bar labels and hover values are plain numbers with thousands
    separators (``71,520``, never ``7.152e+04``)."""
    names = [m for m in metrics if m in frame.columns]
    rows = max(1, -(-len(names) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[metrics[m] for m in names], vertical_spacing=0.16)
    labels = frame["label"].to_list()
    for j, m in enumerate(names):
        r, c = divmod(j, cols)
        values = frame[m].to_list()
        for i, (label, v) in enumerate(zip(labels, values, strict=True)):
            fig.add_trace(
                go.Bar(
                    x=[label],
                    y=[v],
                    name=label,
                    legendgroup=label,
                    showlegend=j == 0,
                    marker_color=color(i),
                    text=[plain_number(v)],
                    textposition="auto",
                    hovertemplate=f"{label}<br>{metrics[m]}: %{{y:,.2f}}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
        fig.update_xaxes(showticklabels=False, row=r + 1, col=c + 1)
    fig.update_layout(
        height=300 * rows + 80,
        margin={"l": 10, "r": 10, "t": 60, "b": 20},
        barmode="group",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0},
    )
    return fig


def nights_only(times: pl.Series) -> bool:
    """Whether every time is a UTC midnight: the points are nights (dates), not moments."""
    t = times.drop_nulls()
    return t.len() > 0 and bool((t.dt.truncate("1d") == t).all())


def date_axis(fig: go.Figure, times: pl.Series, title: str = "time (UTC)") -> pl.Series:
    """Set up ``fig``'s x axis for ``times`` and return the x values to draw.

    Nights (every time a UTC midnight: `analysis.history.regression` dates, a night being the 24 h from
    ``night_offset_h`` after that date's midnight) are drawn at the middle of the night they name, under day ticks
    labelled with the date: the night of 03-01 (noon to noon) sits at 03-02 00:00, where its runs ran, not on the
    previous day. Moments keep their times, with a day either side when they span less than a day (never an axis a
    few milliseconds wide, ticked "23:59:59.999 ... 00:00:00.001")."""
    t = times.drop_nulls()
    if t.len() == 0:
        return times
    first, last = t.min(), t.max()
    if nights_only(times):
        from analysis.history.regression import RegressionConfig

        middle = timedelta(hours=RegressionConfig().night_offset_h + 12.0)
        days = (last - first).days  # type: ignore[operator, union-attr]
        fig.update_xaxes(
            title_text=f"night (UTC; each from {RegressionConfig().night_offset_h:02.0f}:00, shown at its middle)",
            tickformat="%Y-%m-%d",
            dtick=86_400_000 * max(1, -(-days // 10)),
        )
        if days < 1:  # one night: a day either side of it
            fig.update_xaxes(range=[first + middle - timedelta(days=1), last + middle + timedelta(days=1)])  # type: ignore[operator]
        return times + middle
    fig.update_xaxes(title_text=title)
    if last - first < timedelta(days=1):  # type: ignore[operator]
        fig.update_xaxes(range=[first - timedelta(days=1), last + timedelta(days=1)])  # type: ignore[operator]
    return times


def night_labels(times: pl.Series) -> list[str]:
    """``night of YYYY-MM-DD`` per time (the hover text of a night's point)."""
    return [f"night of {t:%Y-%m-%d}" if t is not None else "" for t in times.to_list()]


def history_lines(
    history: pl.DataFrame, change_points: pl.DataFrame | None = None, metric: str = "output_tok_s"
) -> go.Figure:
    """One line per (group, phase) of a run metric over the history window; change points as vertical markers.
    Nights (midnight times) sit in the middle of their date under day ticks (`date_axis`)."""
    title = f"history: {LABELS.get(metric, metric)}"
    f = history.filter(pl.col("metric") == metric) if history.height else history
    if f.is_empty():
        return empty_figure("no benchmark runs in the history window", title)
    unit = f["unit"][0]
    fig = go.Figure()
    nights = nights_only(f["time"])
    f = f.with_columns(
        pl.Series("_label", night_labels(f["time"]) if nights else [""] * f.height),
        pl.Series("time", date_axis(fig, f["time"], "run start (UTC)")),
    )
    when = "%{customdata}" if nights else "%{x}"
    keys = f.select("group", "phase").unique(maintain_order=True).rows()
    for i, (g, p) in enumerate(keys):
        part = f.filter((pl.col("group") == g) & (pl.col("phase") == p)).sort("time")
        fig.add_trace(
            go.Scatter(
                x=part["time"].to_list(),
                y=part["value"].to_list(),
                name=f"{g} {p}".strip(),
                mode="lines+markers",
                marker={"size": 6},
                line={"color": color(i)},
                customdata=part["_label"].to_list(),
                hovertemplate=when + ": %{y:.2f} " + unit + "<extra>%{fullData.name}</extra>",
            )
        )

    cps = (
        change_points.filter(pl.col("metric") == metric) if change_points is not None and change_points.height else None
    )
    if cps is not None:
        for r in cps.iter_rows(named=True):
            at = pl.Series([datetime.fromisoformat(str(r["time"]))], dtype=pl.Datetime("us", "UTC"))
            x = date_axis(go.Figure(), at)[0] if nights else at[0]
            fig.add_vline(x=x, line_dash="dash", line_color="#e11d48")
            fig.add_annotation(
                x=x,
                y=1,
                yref="paper",
                text=f"change point {r['group']} {r['phase']}",
                showarrow=False,
                font={"color": "#e11d48", "size": 10},
                yanchor="bottom",
            )
    fig.update_yaxes(title_text=f"{LABELS.get(metric, metric)} ({unit})")
    style(fig, title)
    if len(keys) > 3:
        fig.update_layout(
            legend={"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left", "x": 0},
            height=440,
            margin={"b": 120},
        )
    return fig


def history_figure(
    frame: pl.DataFrame,
    y: str,
    unit: str,
    by: str | None = None,
    change_points: Sequence[datetime] = (),
    title: str = "",
) -> go.Figure:
    """A metric per run / night over time, with change points as dashed vertical lines. Nights (midnight times)
    sit in the middle of their date under day ticks; runs keep their start times (`date_axis`)."""
    fig = go.Figure()
    nights = frame.height > 0 and nights_only(frame[TIME])
    if frame.height:
        frame = frame.with_columns(pl.Series("_x", date_axis(fig, frame[TIME])))
    else:
        fig.update_xaxes(title_text="time (UTC)")
    parts = frame.partition_by(by, as_dict=True, maintain_order=True) if by and frame.height else {(y,): frame}
    for (name,), part in parts.items():
        part = part.sort(TIME) if part.height else part
        fig.add_trace(
            go.Scatter(
                x=part["_x"].to_list() if part.height else [],
                y=part[y].to_list() if part.height else [],
                mode="lines+markers",
                name=str(name),
                customdata=night_labels(part[TIME]) if nights else None,
                hovertemplate="%{customdata}: %{y}<extra>%{fullData.name}</extra>" if nights else None,
            )
        )
    for cp in change_points:
        at = date_axis(go.Figure(), pl.Series([cp], dtype=pl.Datetime("us", "UTC")))[0] if nights else cp
        fig.add_vline(x=at, line_dash="dash", line_color="#d62728")
    fig.update_layout(title=title, yaxis_title=unit, height=380, margin={"l": 10, "r": 10, "t": 50, "b": 40})
    if frame.height:
        lo, hi = frame[y].min(), frame[y].max()
        if lo is not None and lo == hi:  # one value: ±10 % around it, not ticks in its sixth digit
            pad = abs(lo) * 0.1 or 1.0  # type: ignore[arg-type]
            fig.update_yaxes(range=[lo - pad, hi + pad])  # type: ignore[operator]
    return fig
