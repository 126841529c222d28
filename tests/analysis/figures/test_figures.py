"""Figure functions: units on every axis, words instead of an empty plot, bounded points per trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import polars as pl
import pytest

from analysis import figures as fg

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _accel(seconds: int = 7200, devices: int = 3) -> pl.DataFrame:
    n = seconds * devices
    return pl.DataFrame(
        {
            "time": [T0 + timedelta(seconds=i // devices) for i in range(n)],
            "device": [f"gpu{i % devices}" for i in range(n)],
            "group": [f"g{i % 2}" for i in range(n)],
            "temp_c": [50.0 + (i % 17) for i in range(n)],
            "power_w": [300.0 + (i % 13) for i in range(n)],
        },
        schema_overrides={"time": pl.Datetime("us", "UTC"), "temp_c": pl.Float64, "power_w": pl.Float64},
    ).with_columns(pl.col("time").dt.cast_time_unit("ns"))


def _axis_titles(fig: go.Figure) -> list[str]:
    layout = fig.to_dict()["layout"]
    return [
        v["title"]["text"]
        for k, v in layout.items()
        if k.startswith(("xaxis", "yaxis")) and v.get("visible", True) and "title" in v and v.get("type") != "category"
    ]  # categories (phase, accelerator) have no unit


def _phases() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "group": ["hive0"] * 3,
            "phase": ["baseline", "dual", "full"],
            "metric": "itl_ms_p99",
            "unit": "ms",
            "value": [400.0, 410.0, 440.0],
            "change_pct": [None, 2.5, 10.0],
            "ci_low_pct": [None, 1.0, 6.0],
            "ci_high_pct": [None, 4.0, 14.0],
            "verdict": ["baseline", "equivalent", "degraded"],
        }
    )


FIGURES = {
    "phase_metric_bars": lambda: fg.phase_metric_bars(_phases(), "itl_ms_p99"),
    "phase_change_bars": lambda: fg.phase_change_bars(_phases(), "itl_ms_p99"),
    "device_heatmap": lambda: fg.device_heatmap(_accel(), "temp_c"),
    "group_timeseries": lambda: fg.group_timeseries(_accel(), "power_w"),
    "evidence_timeline": lambda: fg.evidence_timeline(
        pl.DataFrame({"time": [T0, T0 + timedelta(seconds=10)], "group": "hive0", "itl_ms_p99": [40.0, 60.0]}),
        pl.DataFrame({"group": "tt", "time": [T0, T0 + timedelta(seconds=10)], "value": [0.0, 90.0], "unit": "%"}),
        "hive0",
        "tt",
    ),
    "history_lines": lambda: fg.history_lines(
        pl.DataFrame(
            {
                "time": [T0 + timedelta(days=i) for i in range(5)],
                "group": "hive0",
                "phase": "baseline",
                "metric": "output_tok_s",
                "unit": "tok/s",
                "value": [820.0, 818.0, 821.0, 760.0, 758.0],
            }
        ),
        pl.DataFrame(
            {
                "group": ["hive0"],
                "phase": ["baseline"],
                "metric": ["output_tok_s"],
                "time": [(T0 + timedelta(days=3)).isoformat()],
            }
        ),
        "output_tok_s",
    ),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_axis_names_its_unit(name: str) -> None:
    titles = _axis_titles(FIGURES[name]())
    assert titles
    for t in titles:
        assert "(" in t and t.endswith(")"), f"{name}: axis title {t!r} has no unit"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_background_is_transparent_for_light_and_dark_pages(name: str) -> None:
    layout = FIGURES[name]().to_dict()["layout"]
    assert layout["paper_bgcolor"] == "rgba(0,0,0,0)" and layout["plot_bgcolor"] == "rgba(0,0,0,0)"


def test_two_hours_at_one_hertz_are_reduced() -> None:
    fig = fg.group_timeseries(_accel(seconds=7200), "temp_c")
    assert all(len(tr.x) <= fg.MAX_POINTS + 1 for tr in fig.data)
    heat = fg.device_heatmap(_accel(seconds=7200), "temp_c")
    assert len(heat.data[0].x) <= 721


def test_no_data_draws_words_not_an_empty_plot() -> None:
    fig = fg.device_heatmap(_accel(seconds=0), "temp_c")
    assert fig.layout.annotations[0].text == "no accelerator telemetry in this window"
    fig = fg.phase_change_bars(_phases().clear(), "itl_ms_p99")
    assert "no phase" in fig.layout.annotations[0].text


def test_change_bars_carry_the_interval() -> None:
    bar = fg.phase_change_bars(_phases(), "itl_ms_p99").data[0]
    assert list(bar.y) == [2.5, 10.0]
    assert list(bar.error_y.array) == [1.5, 4.0] and list(bar.error_y.arrayminus) == [1.5, 4.0]


def test_devices_are_in_natural_order() -> None:
    accel = _accel(seconds=5, devices=12)
    assert list(fg.device_heatmap(accel, "temp_c").data[0].y)[:3] == ["gpu0", "gpu1", "gpu2"]
