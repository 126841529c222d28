"""Figure builders: WebGL only where it pays off."""

from __future__ import annotations

import plotly.graph_objects as go

from analysis.figures import WEBGL_MIN_POINTS, line_trace


def test_dense_figures_use_webgl_and_light_ones_svg():
    assert line_trace(WEBGL_MIN_POINTS) is go.Scattergl
    assert line_trace(34 * 2000) is go.Scattergl
    assert line_trace(WEBGL_MIN_POINTS - 1) is go.Scatter


def test_a_single_night_of_history_gets_a_readable_time_and_value_axis():
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from analysis.figures import history_figure

    night = datetime(2026, 3, 1, tzinfo=UTC)
    fig = history_figure(pl.DataFrame({"time": [night], "value": [98153.5]}), "value", "ms")
    lo, hi = fig.layout.xaxis.range
    assert (lo, hi) == (night - timedelta(days=1), night + timedelta(days=1))
    assert fig.layout.yaxis.range == (98153.5 - 9815.35, 98153.5 + 9815.35)


def test_history_over_many_nights_keeps_plotlys_own_axes():
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from analysis.figures import history_figure

    nights = [datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=i) for i in range(5)]
    fig = history_figure(pl.DataFrame({"time": nights, "value": [1.0, 2.0, 3.0, 2.0, 1.0]}), "value", "ms")
    assert fig.layout.xaxis.range is None and fig.layout.yaxis.range is None
