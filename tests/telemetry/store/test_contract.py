"""The store protocol, as a contract every store passes (parametrized over the stores; the InfluxDB store runs
the same tests in test_influx_contract.py)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from telemetry.schema import MEASUREMENTS, conform
from telemetry.store.base import BatchKey, TelemetryStore
from telemetry.store.factory import open_store

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
    store = open_store(str(tmp_path / "store"))
    yield store
    store.close()


def protocol_members() -> set[str]:
    return {n for n in vars(TelemetryStore) if not n.startswith("_")} | set(TelemetryStore.__annotations__)


def exercised_members() -> set[str]:
    """The names this module uses on ``store`` (called or read), in its tests and its fixture."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "store"
    }


def test_store_implements_the_protocol(store):
    """The store has every member of the protocol, and each member is exercised by a behaviour test below."""
    assert isinstance(store, TelemetryStore)
    assert protocol_members() - exercised_members() == set()
    assert isinstance(store.lazy_scan, bool)


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


def test_batches_of_other_keys_are_all_stored(store):
    later = frame(t0=T0 + timedelta(seconds=10))
    assert store.write_batch(BatchKey("node1", "boot", 1), {"accel": frame()}) is True
    assert store.write_batch(BatchKey("node1", "boot", 2), {"accel": later}) is True
    assert store.query("accel").height == 12


def test_scan_is_the_query_as_a_lazy_frame(store):
    store.write("accel", frame())
    filters = {"start": T0 + timedelta(seconds=1), "tags": {"device": "gpu1"}, "fields": ["temp_c"]}
    lazy = store.scan("accel", **filters)
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect().sort("time").equals(store.query("accel", **filters))
    assert store.scan("host").collect().height == 0


def test_time_bounds_are_the_first_and_last_sample(store):
    assert store.time_bounds("accel") is None
    store.write("accel", frame())
    assert store.time_bounds("accel") == (T0, T0 + timedelta(seconds=5))


AROUND = {"start": T0 - timedelta(hours=1), "end": T0 + timedelta(hours=1)}


def test_downsample_reduces_each_epoch_aligned_interval(store):
    store.write("accel", frame())  # 23:59:58 .. 00:00:03; power_w absent at 00:00:00
    mean = store.downsample("accel", "2s", fields=["temp_c", "power_w"], group_by=[], **AROUND)
    assert mean.columns == ["time", "temp_c", "power_w"]
    assert mean.schema["time"] == pl.Datetime("ns", "UTC") and mean.schema["temp_c"] == pl.Float64
    assert mean["time"].to_list() == [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)]
    assert mean["temp_c"].to_list() == [40.5, 42.5, 44.5]
    assert mean["power_w"].to_list() == [50.0, 300.0, 450.0]  # the absent value is left out, not taken as 0
    assert store.downsample("accel", 2, fields=["temp_c"], group_by=[], agg="max", **AROUND)["temp_c"].to_list() == [
        41.0,
        43.0,
        45.0,
    ]
    count = store.downsample("accel", "2s", fields=["power_w"], group_by=[], agg="count", **AROUND)
    assert count.schema["power_w"] == pl.Int64 and count["power_w"].to_list() == [2, 1, 2]
    p50 = store.downsample("accel", "1h", fields=["temp_c"], group_by=[], agg="p50", **AROUND)
    assert p50["temp_c"].to_list() == [40.0, 43.0]  # nearest rank of [40, 41] and [42, 43, 44, 45]


def test_downsample_filters_and_groups_by_tags(store):
    store.write("accel", frame())
    per_device = store.downsample("accel", "1h", fields=["temp_c"], group_by=["device"], **AROUND)
    assert per_device.columns == ["time", "device", "temp_c"]
    assert per_device.rows() == [
        (T0 - timedelta(minutes=59, seconds=58), "gpu0", 40.0),
        (T0 - timedelta(minutes=59, seconds=58), "gpu1", 41.0),
        (T0 + timedelta(seconds=2), "gpu0", 43.0),
        (T0 + timedelta(seconds=2), "gpu1", 44.0),
    ]
    one = store.downsample(
        "accel", "1h", T0 + timedelta(seconds=1), T0 + timedelta(seconds=4), {"device": "gpu1"}, ["temp_c"], "min", []
    )
    assert one["temp_c"].to_list() == [41.0, 43.0]
    every_tag = store.downsample("accel", "1d", fields=["temp_c"], **AROUND)
    assert every_tag.columns == ["time", *MEASUREMENTS["accel"].tags, "temp_c"]  # default: every tag
    assert every_tag.height == 4
    assert store.downsample("host", "1h", **AROUND).height == 0


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


def test_artifacts_under_a_prefix_are_pruned_oldest_first_to_a_byte_cap(store):
    import time

    frame = pl.DataFrame({"x": list(range(1000))})

    def write_three() -> None:
        for i in range(3):
            store.write_artifact(f"cache/k{i}", frame)
            time.sleep(0.02)  # distinct modification times, k0 the oldest

    write_three()
    store.write_artifact("tokens/run-9", frame)
    assert store.prune_artifacts("cache", 10**9) == 0  # under the cap: nothing goes
    size = store.prune_artifacts("cache", 0) // 3  # a cap of 0: all of them, three files of one size
    assert size > 0 and store.list_artifacts("cache/") == []
    write_three()
    assert store.prune_artifacts("cache", 2 * size) == size  # the oldest goes, the two newest fit
    assert store.list_artifacts("cache/") == ["cache/k1", "cache/k2"]
    assert store.list_artifacts("tokens/") == ["tokens/run-9"]  # outside the prefix: untouched


def test_an_artifact_can_be_scanned_lazily_a_few_columns_at_a_time(store):
    tokens = pl.DataFrame({"run_id": ["r"] * 3, "itl_ms": [1.0, 2.0, 3.0], "tokens": [1, 1, 2]})
    store.write_artifact("tokens/run-2", tokens)
    lf = store.scan_artifact("tokens/run-2")
    assert isinstance(lf, pl.LazyFrame)
    assert lf.select("itl_ms").collect()["itl_ms"].to_list() == [1.0, 2.0, 3.0]
    assert store.scan_artifact("tokens/none") is None


def test_a_store_that_read_every_file_reports_none_unreadable(store):
    store.write("accel", frame())
    assert store.query("accel").height == 6
    assert store.unreadable_files() == []
