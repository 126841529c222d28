"""The TTFT knee (`analysis.knee`) and its figure (`analysis.figures.knee`), on seeded literal series."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from analysis.figures.knee import knee_figure
from analysis.knee import ttft_knee, with_load


def _hockey(n: int, knee: float, seed: int, noise_ms: float = 20.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 40_000, n)
    y = 100 + 0.002 * x + np.where(x > knee, 0.05 * (x - knee), 0.0) + rng.normal(0, noise_ms, n)
    return pl.DataFrame({"load": x, "ttft_ms_p99": y})


def test_a_hockey_stick_has_a_knee_whose_interval_covers_the_true_bend():
    k = ttft_knee(_hockey(200, 25_000, seed=1))
    assert k.found, k.reason
    assert k.load_ci_low <= 25_000 <= k.load_ci_high
    assert abs(k.load - 25_000) < 1_000
    assert k.slope_above_ms_per_load > 10 * k.slope_below_ms_per_load
    assert k.p_value < 0.01
    assert k.slope_above_ci_low <= 0.052 <= k.slope_above_ci_high
    assert "knee at load" in k.summary()


def test_a_straight_line_has_no_knee():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 40_000, 150)
    k = ttft_knee(pl.DataFrame({"load": x, "ttft_ms_p99": 100 + 0.01 * x + rng.normal(0, 20, 150)}))
    assert not k.found
    assert "straight line" in k.reason
    assert k.line_slope_ms_per_load == pytest.approx(0.01, rel=0.1)


def test_the_sup_f_test_is_calibrated_under_a_straight_line():
    hits = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        x = rng.uniform(0, 1, 60)
        f = pl.DataFrame({"load": x, "ttft_ms_p99": 50 + 30 * x + rng.normal(0, 5, 60)})
        hits += ttft_knee(f, n_boot=199, seed=seed).p_value < 0.05
    assert hits <= 6  # 5 % of 40 = 2 expected; a naive F-test at the best bend rejects far more often


def test_a_gentle_bend_is_not_a_sharp_rise():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 40_000, 300)
    y = 100 + 0.010 * x + np.where(x > 20_000, 0.004 * (x - 20_000), 0.0) + rng.normal(0, 2, 300)
    k = ttft_knee(pl.DataFrame({"load": x, "ttft_ms_p99": y}))
    assert not k.found
    assert "does not rise sharply" in k.reason
    assert k.load is not None  # the best bend is still reported (the figure draws it dotted)


def test_too_few_windows_or_a_constant_load_say_so():
    small = _hockey(8, 25_000, seed=4)
    assert "too few windows" in ttft_knee(small).reason
    const = pl.DataFrame({"load": [1000.0] * 30, "ttft_ms_p99": np.linspace(50, 60, 30)})
    assert "never changed" in ttft_knee(const).reason
    assert "no load column" in ttft_knee(pl.DataFrame({"ttft_ms_p99": [1.0]})).reason


def test_null_and_non_finite_windows_are_left_out_not_read_as_zero():
    f = _hockey(120, 25_000, seed=5)
    nulls = pl.DataFrame({"load": [None, 30_000.0, float("nan")], "ttft_ms_p99": [5.0, None, 7.0]})
    k = ttft_knee(pl.concat([f, nulls]))
    assert k.n_points == 120
    assert k.found


def test_load_is_concurrency_times_input_length_for_live_benchmark_and_run_frames():
    live = with_load(pl.DataFrame({"requests_running": [4.0, None], "prompt_tokens_mean": [1000.0, 500.0]}))
    assert live["load"].to_list() == [4000.0, None]
    bench = with_load(
        pl.DataFrame({"running_requests": [8.0, 8.0], "prefill_tokens": [4096.0, 0.0], "requests_started": [4, 0]})
    )
    assert bench["load"].to_list() == [8192.0, None]
    runs = with_load(pl.DataFrame({"concurrency": [16, 32], "input_tokens_mean": [1024.0, 1024.0]}))
    assert runs["load"].to_list() == [16384.0, 32768.0]
    assert with_load(pl.DataFrame({"x": [1]}))["load"].null_count() == 1


def test_knee_figure_draws_the_points_fit_and_the_knee_interval():
    f = _hockey(200, 25_000, seed=1)
    k = ttft_knee(f)
    fig = knee_figure(f, k)
    names = [t.name for t in fig.data]
    assert names == ["windows", "two-segment fit"]
    assert len(fig.data[0].x) == 200
    shapes = fig.layout.shapes
    assert any(s.type == "rect" and s.x0 == k.load_ci_low and s.x1 == k.load_ci_high for s in shapes)
    assert any(s.type == "line" and s.x0 == k.load for s in shapes)
    assert "knee at load" in fig.layout.annotations[0].text
    assert "concurrency" in fig.layout.xaxis.title.text


def test_knee_figure_says_no_knee_in_words():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 40_000, 150)
    f = pl.DataFrame({"load": x, "ttft_ms_p99": 100 + 0.01 * x + rng.normal(0, 20, 150)})
    k = ttft_knee(f)
    fig = knee_figure(f, k)
    assert fig.layout.annotations[0].text.startswith("no knee:")
    assert not fig.layout.shapes
    empty = knee_figure(pl.DataFrame({"other": [1]}), ttft_knee(pl.DataFrame({"other": [1]})))
    assert "no knee" in empty.layout.annotations[0].text
