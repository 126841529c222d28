"""Reductions keep what an SRE must see (spikes, dips, gaps) while capping points per trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from analysis.figures.reduce import bucket_seconds, interleave_min_max, reduce_series, time_buckets

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def series_frame(n: int, devices: tuple[str, ...] = ("d0",), seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    times = pl.datetime_range(T0, T0 + timedelta(seconds=n - 1), "1s", eager=True, time_zone="UTC")
    return pl.concat(
        [pl.DataFrame({"time": times, "device": [d] * n, "temp_c": 50 + rng.normal(0, 1, n)}) for d in devices]
    ).with_columns(pl.col("time").dt.cast_time_unit("ns"))


def test_reduce_series_caps_points_per_trace():
    out = reduce_series(series_frame(86_400, ("d0", "d1")), "temp_c", ["device"], n_out=2000)
    assert out.group_by("device").len()["len"].to_list() == [2000, 2000]


def test_reduce_series_keeps_a_one_sample_spike_and_dip():
    frame = series_frame(86_400)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 40_000)
        .then(99.0)
        .when(pl.int_range(pl.len()) == 70_000)
        .then(1.0)
        .otherwise(pl.col("temp_c"))
        .alias("temp_c")
    )
    out = reduce_series(frame, "temp_c", ["device"], n_out=1000)
    assert out["temp_c"].max() == 99.0
    assert out["temp_c"].min() == 1.0


def test_reduce_series_drops_absent_values_instead_of_inventing_zeros():
    frame = series_frame(10).with_columns(
        pl.when(pl.int_range(pl.len()) < 5).then(None).otherwise(pl.col("temp_c")).alias("temp_c")
    )
    out = reduce_series(frame, "temp_c", ["device"], n_out=2000)
    assert out.height == 5
    assert out["temp_c"].min() > 40


def test_short_series_pass_through_sorted():
    frame = series_frame(50).reverse()
    out = reduce_series(frame, "temp_c", ["device"], n_out=2000)
    assert out["time"].is_sorted()
    assert out.height == 50


def test_interleave_min_max_draws_the_envelope():
    times = [T0, T0 + timedelta(minutes=1)]
    low = pl.DataFrame({"time": times, "device": ["d0", "d0"], "temp_c": [40.0, 41.0]})
    high = pl.DataFrame({"time": times, "device": ["d0", "d0"], "temp_c": [60.0, 61.0]})
    out = interleave_min_max(low, high, "temp_c", ["device"])
    assert out["temp_c"].to_list() == [40.0, 60.0, 41.0, 61.0]


def test_time_buckets_mean_per_bin_and_device():
    out = time_buckets(
        series_frame(120, ("d0", "d1")).with_columns(pl.lit(2.0).alias("temp_c")), ["temp_c"], 60, ["device"]
    )
    assert out.height == 4
    assert out["temp_c"].to_list() == [2.0] * 4


def test_bucket_seconds_gives_readable_bins():
    assert bucket_seconds(T0, T0 + timedelta(hours=24), 240) == 600
    assert bucket_seconds(T0, T0 + timedelta(minutes=15), 240) == 5
    assert bucket_seconds(T0, T0 + timedelta(days=30), 240) == 10800
