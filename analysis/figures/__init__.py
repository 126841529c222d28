"""The figure builders of the nightly report and the dashboard: pure ``frame -> plotly Figure`` functions, one
look (`style`), one series reducer (`reduce`: MinMaxLTTB per trace, fixed time bins for heatmaps).

- `analysis.figures.style`: colours (one per antagonist: `antagonist_colors`), units, labels, plain-number
  labels, the transparent grey style, placeholders, trace type;
- `analysis.figures.reduce`: `reduce_series`, `interleave_min_max`, `time_buckets`, `bucket_seconds`;
- `analysis.figures.nodes`: node telemetry (heatmaps, group series, stacked panels with run bands, thermal bars);
- `analysis.figures.runs`: runs, phases, attribution and history.

They sit in ``analysis/`` so that the report (``analysis/report``) and the dashboard (which may import analysis,
never the reverse) draw with the same functions. Import the builders from here::

    from analysis import figures as fg
    fg.phase_change_bars(result.phases, "itl_ms_p99")
"""

from analysis.figures.nodes import (
    add_bands,
    bands,
    device_heatmap,
    device_order,
    group_timeseries,
    heatmap_figure,
    thermal_profile_bars,
    timeseries_panels,
)
from analysis.figures.runs import (
    evidence_timeline,
    history_figure,
    history_lines,
    index_scatter,
    phase_change_bars,
    phase_metric_bars,
    runs_side_by_side,
    victim_vs_antagonists,
    with_gaps,
)
from analysis.figures.style import (
    MAX_POINTS,
    WEBGL_MIN_POINTS,
    antagonist_colors,
    empty_figure,
    line_trace,
    loading_figure,
    plain_number,
    style,
)

__all__ = [
    "MAX_POINTS",
    "WEBGL_MIN_POINTS",
    "add_bands",
    "antagonist_colors",
    "bands",
    "device_heatmap",
    "device_order",
    "empty_figure",
    "evidence_timeline",
    "group_timeseries",
    "heatmap_figure",
    "history_figure",
    "history_lines",
    "index_scatter",
    "line_trace",
    "loading_figure",
    "phase_change_bars",
    "phase_metric_bars",
    "plain_number",
    "runs_side_by_side",
    "style",
    "thermal_profile_bars",
    "timeseries_panels",
    "victim_vs_antagonists",
    "with_gaps",
]
