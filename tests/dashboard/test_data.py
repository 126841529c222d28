"""Reads through `dashboard.data.Reader`: lazy scans on Parquet, server-side GROUP BY on a downsampling store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from dashboard.data import Reader, Settings, find_topology, window_end
from telemetry.store.parquet import ParquetStore

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> ParquetStore:
    s = ParquetStore(tmp_path / "store")
    rows = [
        {
            "time": T0 + timedelta(seconds=i),
            "node": "n1",
            "device": d,
            "group": "g",
            "temp_c": float(i % 100),
            "pcie_rx_bytes_per_s": 1e9,
        }
        for i in range(7200)
        for d in ("d0", "d1")
    ]
    s.write("accel", pl.DataFrame(rows))
    return s


class FakeDownsamplingStore:
    """A fake InfluxDB-like store: scan() is not lazy; downsample() records its calls and aggregates itself."""

    lazy_scan = False

    def __init__(self, inner: ParquetStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str | float, str]] = []

    def measurements(self) -> list[str]:
        return self.inner.measurements()

    def query(self, *args, **kwargs) -> pl.DataFrame:
        raise AssertionError("a reduced read must not fetch raw rows")

    def downsample(
        self, measurement, every, start=None, end=None, tags=None, fields=None, agg="mean", group_by=None
    ) -> pl.DataFrame:
        self.calls.append((measurement, every, agg))
        lf = self.inner.scan(measurement, start, end, tags, fields)
        exprs = [getattr(pl.col(f), agg)().alias(f) for f in fields]
        return lf.sort("time").group_by_dynamic("time", every=f"{int(every)}s", group_by=group_by).agg(exprs).collect()


def test_extent_reads_first_and_last_sample(store: ParquetStore):
    assert Reader(store).extent("accel") == (T0, T0 + timedelta(seconds=7199))
    assert Reader(store).extent("host") is None


def test_series_from_parquet_is_min_max_reduced_per_device(store: ParquetStore):
    out = Reader(store).series("accel", "temp_c", T0, T0 + timedelta(hours=2), {"node": "n1"}, ["device"], n_out=500)
    assert out.group_by("device").len()["len"].to_list() == [500, 500]
    assert out["temp_c"].max() == 99.0 and out["temp_c"].min() == 0.0


def test_series_on_a_downsampling_store_asks_the_server_for_min_and_max(store: ParquetStore):
    fake = FakeDownsamplingStore(store)
    out = Reader(fake).series("accel", "temp_c", T0, T0 + timedelta(hours=2), {"node": "n1"}, ["device"], n_out=500)
    assert {c[2] for c in fake.calls} == {"min", "max"}
    assert out.filter(pl.col("device") == "d0").height <= 500
    assert out["temp_c"].max() == 99.0 and out["temp_c"].min() == 0.0


def test_buckets_on_a_downsampling_store_use_group_by_time(store: ParquetStore):
    fake = FakeDownsamplingStore(store)
    out = Reader(fake).buckets("accel", ["temp_c"], 600, T0, T0 + timedelta(hours=2), by=["device"])
    assert fake.calls == [("accel", 600, "mean")]
    assert out.height == 24


def test_window_end_follows_now_while_data_is_fresh_else_the_newest_sample():
    now = datetime(2026, 3, 2, 12, 0, 3, tzinfo=UTC)
    assert window_end(now - timedelta(seconds=5), now) == datetime(2026, 3, 2, 12, 0, 10, tzinfo=UTC)
    assert window_end(T0, now) == datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)


def test_topology_is_read_from_beside_the_store(tmp_path: Path):
    settings = Settings(str(tmp_path / "store"), None, None, None, 30)
    assert settings.beside_store("topology.json") == [tmp_path / "store" / "topology.json", tmp_path / "topology.json"]
    assert Settings("influx://h:8086/db", None, None, None, 30).beside_store("topology.json") == []


def test_an_explicit_topology_file_wins_over_the_one_beside_the_store(tmp_path: Path):
    (tmp_path / "store").mkdir()
    (tmp_path / "topology.json").write_text("{}")
    assert find_topology(Settings(str(tmp_path / "store"), None, None, None, 30)) == tmp_path / "topology.json"
    mine = tmp_path / "mine.json"
    assert find_topology(Settings(str(tmp_path / "store"), str(mine), None, None, 30)) == mine
