"""Figure builders: WebGL only where it pays off."""

from __future__ import annotations

import plotly.graph_objects as go

from dashboard.charts import WEBGL_MIN_POINTS, line_trace


def test_dense_figures_use_webgl_and_light_ones_svg():
    assert line_trace(WEBGL_MIN_POINTS) is go.Scattergl
    assert line_trace(34 * 2000) is go.Scattergl
    assert line_trace(WEBGL_MIN_POINTS - 1) is go.Scatter
