"""The drain's line-protocol encoder (`telemetry.store.lp_encode`) gives the reference encoder's bytes
(`telemetry.line_protocol.encode`) on frames with every kind of value: absent, NaN and infinite fields, rows
with no field left, empty, null and escaped tags, string fields with quotes, integer and boolean fields, and
columns that are absent in every row; and on seeded random frames of every schema measurement."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from telemetry.errors import SchemaError
from telemetry.line_protocol import encode as reference
from telemetry.schema import MEASUREMENTS, conform
from telemetry.store.lp_encode import encode

T0 = 1_763_600_000_000_000_000


def accel(n: int = 40, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return conform(
        pl.DataFrame(
            {
                "time": T0 + np.arange(n, dtype=np.int64) * 10**9,
                "node": [f"n{i % 3}" for i in range(n)],
                "device": [f"gpu{i % 4}" for i in range(n)],
                "temp_c": rng.random(n) * 100,
                "pcie_link_gen": rng.integers(1, 6, n),
                "throttle_thermal": rng.random(n) < 0.5,
            }
        ),
        "accel",
    )


def test_every_field_in_every_row_gives_the_reference_bytes():
    frame = accel()
    assert encode(frame, "accel") == reference(frame, "accel")
    assert encode(frame, "accel").count(b"\n") == frame.height


def test_absent_nan_and_infinite_fields_give_the_reference_bytes():
    frame = accel().with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col("temp_c")).alias("temp_c"),
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("pcie_link_gen")).alias("pcie_link_gen"),
        pl.when(pl.int_range(pl.len()) % 7 == 0)
        .then(None)
        .otherwise(pl.col("throttle_thermal"))
        .alias("throttle_thermal"),
        power_w=pl.Series([math.nan, math.inf, -math.inf, 1.5] * 10),
    )
    assert encode(frame, "accel") == reference(frame, "accel")


def test_a_row_with_no_field_left_is_dropped_as_by_the_reference():
    frame = accel(6).with_columns(
        temp_c=pl.Series([None, 1.0, math.nan, None, 2.0, None]),
        pcie_link_gen=pl.lit(None, pl.Int64),
        throttle_thermal=pl.lit(None, pl.Boolean),
    )
    body = encode(frame, "accel")
    assert body == reference(frame, "accel")
    assert body.count(b"\n") == 2


def test_empty_null_and_escaped_tags_and_quoted_strings_give_the_reference_bytes():
    frame = pl.DataFrame(
        {
            "time": [T0, T0 + 1, T0 + 2, T0 + 3],
            "site": ["a b", "", None, "x,y=z\nw"],
            "rack": ["r1", "r1", "r2", "r2"],
            "note": ['say "hi"', "back\\slash", None, "two\nlines"],
            "weird key,=": [1.0, 2.0, 3.0, 4.0],
        }
    )
    for name in ("ext", "my measurement,x"):
        assert encode(frame, name) == reference(frame, name)
    assert encode(frame, "ext", tags=["site"]) == reference(frame, "ext", tags=["site"])


def test_frames_without_lines_give_nothing_like_the_reference():
    empty = accel(0)
    only_tags = accel(3).select("time", "node", "device")
    assert encode(empty, "accel") == reference(empty, "accel") == b""
    assert encode(only_tags, "accel") == reference(only_tags, "accel") == b""


def test_what_the_reference_refuses_is_refused_alike():
    frame = pl.DataFrame({"time": [T0], "v": [[1, 2]]})
    with pytest.raises(SchemaError):
        reference(frame, "ext")
    with pytest.raises(SchemaError):
        encode(frame, "ext")


_TEXT = ["a", "b c", "x,y", "k=v", "", 'q"uote', "back\\s", "nl\nx", "ünï"]


def _random_frame(measurement: str, rng: np.random.Generator) -> pl.DataFrame:
    """A frame of the measurement's schema, each column present in every row, some rows or none (seeded)."""
    n = int(rng.integers(1, 30))
    cols = {}
    for name, dtype in MEASUREMENTS[measurement].polars_schema().items():
        if name == "time":
            cols[name] = pl.Series(name, T0 + rng.integers(0, 10**12, n), dtype=pl.Int64).cast(dtype)
            continue
        absent = rng.random(n) < rng.choice([0.0, 0.0, 0.3, 1.0])
        if dtype == pl.String:
            values = [_TEXT[int(rng.integers(0, len(_TEXT)))] for _ in range(n)]
        elif dtype == pl.Boolean:
            values = list(rng.random(n) < 0.5)
        elif dtype.is_integer():
            values = [int(v) for v in rng.integers(0, 1000, n)]
        else:
            values = [float(rng.choice([rng.random() * 1e6, math.nan, math.inf, -0.0, 1e-300])) for _ in range(n)]
        cols[name] = pl.Series(name, [None if a else v for a, v in zip(absent, values, strict=True)], dtype=dtype)
    return pl.DataFrame(cols)


@pytest.mark.parametrize("measurement", sorted(MEASUREMENTS))
def test_random_frames_of_every_measurement_give_the_reference_bytes(measurement):
    rng = np.random.default_rng(sorted(MEASUREMENTS).index(measurement))
    for _ in range(5):
        frame = _random_frame(measurement, rng)
        assert encode(frame, measurement) == reference(frame, measurement)
