"""Figure builders: WebGL only where it pays off."""

from __future__ import annotations

import plotly.graph_objects as go

from analysis.figures import WEBGL_MIN_POINTS, line_trace


def test_dense_figures_use_webgl_and_light_ones_svg():
    assert line_trace(WEBGL_MIN_POINTS) is go.Scattergl
    assert line_trace(34 * 2000) is go.Scattergl
    assert line_trace(WEBGL_MIN_POINTS - 1) is go.Scatter


def test_a_single_night_of_history_sits_on_its_own_date_with_a_readable_value_axis():
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from analysis.figures import history_figure

    night = datetime(2026, 3, 1, tzinfo=UTC)
    fig = history_figure(pl.DataFrame({"time": [night], "value": [98153.5]}), "value", "ms")
    lo, hi = fig.layout.xaxis.range
    middle = night + timedelta(days=1)  # the night of 03-01 runs from 03-01 12:00 to 03-02 12:00 (UTC)
    assert list(fig.data[0].x) == [middle], "at the middle of the night, where its runs ran, not the day before"
    assert (lo, hi) == (middle - timedelta(days=1), middle + timedelta(days=1))
    assert fig.layout.xaxis.tickformat == "%Y-%m-%d" and fig.layout.xaxis.title.text.startswith("night (UTC")
    assert fig.data[0].customdata == ("night of 2026-03-01",)
    assert fig.layout.yaxis.range == (98153.5 - 9815.35, 98153.5 + 9815.35)


def test_history_over_many_nights_keeps_plotlys_own_range_with_day_ticks():
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from analysis.figures import history_figure

    nights = [datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=i) for i in range(5)]
    fig = history_figure(pl.DataFrame({"time": nights, "value": [1.0, 2.0, 3.0, 2.0, 1.0]}), "value", "ms")
    assert fig.layout.xaxis.range is None and fig.layout.yaxis.range is None
    assert fig.layout.xaxis.dtick == 86_400_000 and fig.layout.xaxis.title.text.startswith("night (UTC")


def test_runs_at_their_start_times_keep_a_time_axis_a_day_wide_at_least():
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from analysis.figures import history_figure, history_lines

    t0 = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
    runs = pl.DataFrame({"time": [t0, t0 + timedelta(minutes=20)], "value": [770.4, 760.1]})
    fig = history_figure(runs, "value", "tok/s")
    assert fig.layout.xaxis.title.text == "time (UTC)"
    assert list(fig.data[0].x) == [t0, t0 + timedelta(minutes=20)]
    assert fig.layout.xaxis.range == (t0 - timedelta(days=1), t0 + timedelta(minutes=20) + timedelta(days=1))
    hist = pl.DataFrame(
        {
            "time": [datetime(2026, 3, 2, tzinfo=UTC)],
            "group": ["hive0"],
            "phase": ["baseline"],
            "metric": ["output_tok_s"],
            "unit": ["tok/s"],
            "value": [770.4],
            "run_id": ["x"],
        }
    )
    cps = pl.DataFrame({"group": ["hive0"], "phase": ["baseline"], "metric": ["output_tok_s"], "time": ["2026-03-02"]})
    lines = history_lines(hist, cps, "output_tok_s")
    assert lines.layout.xaxis.title.text.startswith("night (UTC")
    assert list(lines.data[0].x) == [datetime(2026, 3, 3, tzinfo=UTC)]
    assert lines.layout.shapes[0].x0 == datetime(2026, 3, 3, tzinfo=UTC), "the change point at its night's point"
