"""A compacted file is ordered by hour, node, device and time, so a one-node read skips the other nodes' row
groups; every reader returns exactly what it returned before compaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from telemetry.schema import conform
from telemetry.store import parquet
from telemetry.store.parquet import ParquetStore

T0 = datetime(2026, 11, 21, 11, 30, tzinfo=UTC)  # the data crosses two hour boundaries
NODES = [f"node-{i:02d}" for i in range(20)]
DEVICES = ["gpu0", "gpu1", "gpu2", "gpu3"]
TICKS = 720  # one every 10 s: two hours
CHUNKS = 12  # one file per 10 minutes


def fleet_frame(ticks: range) -> pl.DataFrame:
    """Every node and device each tick; gpu3 samples first in a tick (0.3 s before gpu0), so the earliest sample
    of a node is never its first device's."""
    rows: dict[str, list] = {"time": [], "node": [], "device": [], "temp_c": [], "power_w": []}
    for t in ticks:
        for n, node in enumerate(NODES):
            for d, dev in enumerate(DEVICES):
                rows["time"].append(T0 + timedelta(seconds=10 * t, milliseconds=100 * (len(DEVICES) - 1 - d)))
                rows["node"].append(node)
                rows["device"].append(dev)
                rows["temp_c"].append(float(t % 97 + n + d))
                rows["power_w"].append(float(t * 3 % 101 + 2 * n - d))
    return conform(pl.DataFrame(rows), "accel")


@pytest.fixture
def fleet_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ParquetStore:
    """Twelve plain files, newest first (file order is not time order before compaction either); row groups of
    500 rows, so the test data spans over a hundred of them as a fleet's day spans thousands."""
    monkeypatch.setattr(parquet, "COMPACT_ROW_GROUP_ROWS", 500)
    s = ParquetStore(tmp_path / "store", delete_grace_s=0)
    per = TICKS // CHUNKS
    for c in reversed(range(CHUNKS)):
        s.write("accel", fleet_frame(range(c * per, (c + 1) * per)))
    return s


def node_row_groups(path: Path, node: str) -> tuple[int, int]:
    """(row groups whose node statistics admit ``node``, all row groups) of one file, from its footer."""
    meta = pq.ParquetFile(path).metadata
    col = meta.schema.names.index("node")
    hits = 0
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(col).statistics
        assert stats is not None and stats.has_min_max, f"{path.name}: row group {i} has no node statistics"
        hits += stats.min <= node <= stats.max
    return hits, meta.num_row_groups


def test_a_compacted_one_node_read_returns_the_same_rows_sorted_by_time(fleet_store: ParquetStore):
    before = fleet_store.query("accel", tags={"node": "node-07"})
    one_device = fleet_store.query("accel", tags={"node": "node-07", "device": "gpu2"})
    assert fleet_store.compact(min_files=2) == CHUNKS
    (compacted,) = fleet_store.files("accel")
    assert compacted.name.startswith("c-")
    after = fleet_store.query("accel", tags={"node": "node-07"})
    assert after.height == len(DEVICES) * TICKS
    assert after["time"].is_sorted()
    assert after.equals(before.sort("time"))
    assert fleet_store.query("accel", tags={"node": "node-07", "device": "gpu2"}).equals(one_device.sort("time"))
    assert (
        fleet_store.query("accel")
        .sort("time", "node", "device")
        .equals(fleet_frame(range(TICKS)).sort("time", "node", "device"))
    )


def test_a_one_node_read_of_a_compacted_file_touches_a_few_row_groups(fleet_store: ParquetStore):
    fleet_store.compact(min_files=2)
    (compacted,) = fleet_store.files("accel")
    hits, total = node_row_groups(compacted, "node-07")
    assert total >= 100
    # node-07's rows: 4 devices x 360 ticks in each of 3 hours, 500-row groups: about 3 + 1 per hour
    assert hits <= 4 * 3, f"node-07 may be in {hits} of {total} row groups"


def test_compaction_order_is_hour_then_node_then_device_then_time(fleet_store: ParquetStore):
    fleet_store.compact(min_files=2)
    (compacted,) = fleet_store.files("accel")
    stored = pl.read_parquet(compacted)
    hour = pl.col("time").dt.truncate("1h")
    key = stored.select(hour.alias("h"), "node", "device", "time")
    assert key.equals(key.sort("h", "node", "device", "time"))
    assert stored.height == len(NODES) * len(DEVICES) * TICKS


@pytest.mark.parametrize("agg", ["first", "last", "mean", "max"])
def test_downsample_and_time_bounds_are_unchanged_by_compaction(fleet_store: ParquetStore, agg: str):
    def read() -> tuple[pl.DataFrame, pl.DataFrame, object]:
        per_node = fleet_store.downsample("accel", 600, fields=["temp_c", "power_w"], agg=agg, group_by=["node"])
        per_device = fleet_store.downsample("accel", 600, tags={"node": "node-03"}, fields=["temp_c"], agg=agg)
        return per_node, per_device, fleet_store.time_bounds("accel")

    before = read()
    fleet_store.compact(min_files=2)
    after = read()
    assert after[0].equals(before[0]) and after[1].equals(before[1]) and after[2] == before[2]
    if agg in ("first", "last"):  # the earliest / latest sample of each bin, whatever device gave it
        raw = fleet_frame(range(TICKS)).with_columns(pl.col("time").dt.truncate("10m").alias("bin"))
        pick = raw.sort("time").group_by("bin", "node", maintain_order=True).agg(getattr(pl.col("temp_c"), agg)())
        got = after[0].select(pl.col("time").alias("bin"), "node", "temp_c")
        assert got.sort("bin", "node").equals(pick.sort("bin", "node"))


def test_measurements_outside_the_schema_compact_by_their_string_columns_and_keep_every_row(tmp_path: Path):
    """A Telegraf-style ``cpu`` (tag ``host``, no ``node``; a later file adds a column) and a tagless ``load``."""
    s = ParquetStore(tmp_path, delete_grace_s=0)
    hosts = ["web2", "web1", None]
    for k in range(3):
        times = [T0 + timedelta(seconds=10 * k + i) for i in range(9)]
        frame = pl.DataFrame({"time": times, "host": hosts * 3, "usage_idle": [float(i + k) for i in range(9)]})
        if k == 2:
            frame = frame.with_columns(pl.lit("cpu0").alias("cpu"))
        s.write("cpu", frame)
        s.write("load", pl.DataFrame({"time": times, "load1": [float(k)] * 9}))
    before = {m: s.query(m) for m in ("cpu", "load")}
    assert s.compact(min_files=2) == 6
    for m, rows in before.items():
        after = s.query(m)
        assert after["time"].is_sorted()
        assert after.sort("time", "host" if m == "cpu" else "load1", nulls_last=True).equals(
            rows.sort("time", "host" if m == "cpu" else "load1", nulls_last=True)
        )
    (cpu_file,) = s.files("cpu")
    hosts_stored = pl.read_parquet(cpu_file)["host"].to_list()
    assert hosts_stored == sorted(hosts_stored, key=lambda h: (h is None, h or ""))  # by series, missing tag last
