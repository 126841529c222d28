"""Stacked node panels: empty panels left out, run bands labelled above the plot area."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl

from analysis import figures as fg

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _panel(title: str, values: list[float]) -> dict:
    frame = pl.DataFrame(
        {"time": [T0 + timedelta(seconds=i) for i in range(len(values))], "v": values},
        schema={"time": pl.Datetime("us", "UTC"), "v": pl.Float64},
    )
    return {"frame": frame, "y": "v", "by": None, "title": title, "unit": "%"}


def test_a_panel_with_no_samples_is_left_out() -> None:
    fig = fg.timeseries_panels([_panel("accel", [1.0, 2.0]), _panel("host", []), _panel("tenant", [3.0])])
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["accel", "tenant"]
    assert len(fig.data) == 2 and fig.layout.height == 2 * 260 + 80
    assert "yaxis3" not in fig.to_dict()["layout"], "no third (empty) subplot"
    assert all(not math.isnan(x) for tr in fig.data for x in tr.x)


def test_no_panel_with_samples_says_so_in_words() -> None:
    fig = fg.timeseries_panels([_panel("accel", []), _panel("host", [])])
    assert not fig.data and fig.layout.annotations[0].text == "no samples in this range"


def test_run_band_labels_sit_above_the_top_panel_clear_of_its_title() -> None:
    spans = [
        {"x0": T0, "x1": T0 + timedelta(seconds=1), "label": "baseline · r1", "phase": "baseline"},
        {"x0": T0 + timedelta(seconds=1), "x1": T0 + timedelta(seconds=2), "label": "full · r2", "phase": "full"},
    ]
    fig = fg.timeseries_panels([_panel("accel", [1.0, 2.0, 3.0]), _panel("host", [1.0, 1.0, 1.0])], spans)
    bands = [a for a in fig.layout.annotations if " · " in a.text]
    assert [a.text for a in bands] == ["baseline · r1", "full · r2"]
    assert all(a.y == 1 and a.yanchor == "bottom" and a.yref == "y domain" and a.yshift > 0 for a in bands)
    assert fig.layout.margin.t == 50 + bands[0].yshift
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == 2 * 2, "each band shades both panels"
    assert fg.timeseries_panels([_panel("accel", [1.0])]).layout.margin.t == 50, "no band: no extra room"
