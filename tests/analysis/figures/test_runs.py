"""Run and attribution figures: plain bar labels, one colour per antagonist across charts, bands above the plot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from analysis import figures as fg

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _runs() -> pl.DataFrame:
    return pl.DataFrame(
        {"label": ["baseline · r1", "full · r2"], "e2e_ms_p99": [71520.4, 98153.5], "output_tok_s": [812.34, 41.27]}
    )


def test_run_bars_are_labelled_with_plain_numbers_never_scientific_notation() -> None:
    fig = fg.runs_side_by_side(_runs(), {"e2e_ms_p99": "p99 end-to-end (ms)", "output_tok_s": "throughput (tok/s)"})
    labels = {tr.name + " " + tr.xaxis: list(tr.text) for tr in fig.data}
    assert labels == {
        "baseline · r1 x": ["71,520"],
        "full · r2 x": ["98,154"],
        "baseline · r1 x2": ["812"],
        "full · r2 x2": ["41.3"],
    }
    assert all("%{y:,.2f}" in tr.hovertemplate and ".4g" not in tr.hovertemplate for tr in fig.data)


def _linked() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    times = [T0 + timedelta(seconds=10 * i) for i in range(4)]
    victim = pl.DataFrame({"time": times, "itl_ms_p99": [40.0, 42.0, 80.0, 41.0], "output_tok_s": [800.0] * 4})
    activity = pl.DataFrame(
        {
            "time": times * 2,
            "antagonist": ["hive1"] * 4 + ["tt"] * 4,
            "activity": [0.0, 10.0, 90.0, 5.0, 0.0, 0.0, 50.0, 0.0],
        }
    )
    scatter = pl.DataFrame(
        {"antagonist": ["tt", "tt", "hive1"], "activity": [0.0, 50.0, 90.0], "index": [0.0, 0.3, 0.9]}
    )  # tt first here, hive1 first above
    return victim, activity, scatter


def _antagonist_colours(fig) -> dict[str, str]:
    return {tr.name: tr.marker.color for tr in fig.data if tr.name not in ("p99 ITL", "tokens/s")}


def test_an_antagonist_has_one_colour_in_both_charts_given_one_map() -> None:
    victim, activity, scatter = _linked()
    colors = fg.antagonist_colors(["tt", "hive1"])  # the ranked antagonists
    over_time = fg.victim_vs_antagonists(victim, activity, "hive0", colors=colors)
    points = fg.index_scatter(scatter, "activity (%)", "index", colors=colors)
    assert _antagonist_colours(over_time) == _antagonist_colours(points) == colors
    assert {tr.line.color for tr in over_time.data if tr.name in ("tt", "hive1")} == set(colors.values())
    victims = {tr.marker.color for tr in over_time.data if tr.name in ("p99 ITL", "tokens/s")}
    assert len(victims) == 2 and not victims & set(colors.values())


def test_without_a_map_each_antagonist_still_gets_its_own_colour() -> None:
    victim, activity, scatter = _linked()
    over_time = _antagonist_colours(fg.victim_vs_antagonists(victim, activity, "hive0"))
    points = _antagonist_colours(fg.index_scatter(scatter, "activity (%)", "index"))
    assert len(set(over_time.values())) == 2 and len(set(points.values())) == 2


def test_run_bands_are_labelled_above_the_plot_area_of_the_attribution_chart() -> None:
    victim, activity, _ = _linked()
    spans = [{"x0": T0, "x1": T0 + timedelta(seconds=20), "label": "full · r2", "phase": "full"}]
    fig = fg.victim_vs_antagonists(victim, activity, "hive0", spans)
    (band,) = [a for a in fig.layout.annotations if a.text == "full · r2"]
    assert (band.y, band.yanchor, band.yref) == (1, "bottom", "y domain") and band.yshift > 0
    assert fig.layout.margin.t == 50 + band.yshift, "room above the top panel's subplot title"
