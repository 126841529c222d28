"""The store protocol, as a contract every store passes (parametrized over the stores)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from telemetry.schema import conform
from telemetry.store.base import BatchKey, TelemetryStore, open_store

T0 = datetime(2026, 11, 20, 23, 59, 58, tzinfo=UTC)  # crosses midnight: two day partitions


def frame(n: int = 6, t0: datetime = T0) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "time": [t0 + timedelta(seconds=i) for i in range(n)],
                "node": ["node1"] * n,
                "device": [f"gpu{i % 2}" for i in range(n)],
                "group": ["hive0"] * n,
                "temp_c": [40.0 + i for i in range(n)],
                "power_w": [None if i == 2 else 100.0 * i for i in range(n)],
                "throttle_thermal": [i == 3 for i in range(n)],
                "pcie_link_gen": [5] * n,
            }
        ),
        "accel",
    )


@pytest.fixture(params=["parquet"])
def store(request, tmp_path) -> TelemetryStore:
    s = open_store(str(tmp_path / "store"))
    yield s
    s.close()


def test_store_implements_the_protocol(store):
    assert isinstance(store, TelemetryStore)


def test_written_rows_read_back_identically(store):
    f = frame()
    assert store.write("accel", f) == 6
    got = store.query("accel")
    assert got.equals(f.sort("time"))
    assert got.schema["time"] == pl.Datetime("ns", "UTC")


def test_absent_values_stay_absent_not_zero(store):
    store.write("accel", frame())
    got = store.query("accel")
    assert got["power_w"][2] is None
    assert got["temp_mem_c"].null_count() == got.height


def test_query_filters_by_time_range_and_tags(store):
    store.write("accel", frame())
    got = store.query("accel", start=T0 + timedelta(seconds=1), end=T0 + timedelta(seconds=4), tags={"device": "gpu1"})
    assert got["temp_c"].to_list() == [41.0, 43.0]
    got = store.query("accel", tags={"device": ["gpu0", "gpu1"]}, fields=["temp_c"])
    assert got.height == 6
    assert "power_w" not in got.columns and "device" in got.columns


def test_batch_replay_is_stored_once(store):
    key = BatchKey("node1", "boot", 1)
    assert store.write_batch(key, {"accel": frame()}) is True
    assert store.write_batch(key, {"accel": frame()}) is False
    assert store.query("accel").height == 6


def test_series_lists_distinct_tag_sets(store):
    store.write("accel", frame())
    series = store.series("accel")
    assert sorted(series["device"].to_list()) == ["gpu0", "gpu1"]
    assert set(series["measurement"]) == {"accel"}


def test_unknown_measurement_and_empty_query(store):
    assert store.query("host").height == 0
    assert "accel" not in store.measurements()
    store.write("accel", frame())
    assert "accel" in store.measurements()


def test_artifacts_round_trip(store):
    tokens = pl.DataFrame({"request_index": [0, 0, 1], "itl_ms": [44.0, 45.5, 400.0]})
    store.write_artifact("tokens/run-1", tokens)
    assert store.read_artifact("tokens/run-1").equals(tokens)
    assert store.read_artifact("tokens/none") is None
    assert store.list_artifacts("tokens/") == ["tokens/run-1"]
