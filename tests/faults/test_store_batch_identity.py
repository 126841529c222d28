"""Issue 17.9 (store side): a batch is identified by its key, the whole key and nothing but the key.

Duplicate detection was per (measurement, day): a replayed key whose rows fell on another day was stored
again. And the key escaping collided: ``"\\x1f600"`` and ``"😀"`` both became ``%1f600``, so a batch of one
node was taken for a replay of the other's. The index is now per batch key (rebuilt from disk the same way),
and the escaping is injective.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from telemetry.schema import conform
from telemetry.store.base import BatchKey
from telemetry.store.parquet import ParquetStore

DAY1 = datetime(2026, 11, 21, 12, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def accel(t0: datetime, temp_c: float, measurement: str = "accel") -> pl.DataFrame:
    times = [t0 + timedelta(seconds=i) for i in range(3)]
    return conform(pl.DataFrame({"time": times, "device": ["gpu0"] * 3, "temp_c": [temp_c] * 3}), measurement)


def test_a_replayed_key_with_another_days_rows_is_a_duplicate(tmp_path):
    store = ParquetStore(tmp_path / "store")
    key = BatchKey("node1", "boot-a", 7)
    assert store.write_batch(key, {"accel": accel(DAY1, 40.0)}) is True
    assert store.write_batch(key, {"accel": accel(DAY2, 41.0)}) is False
    store.close()
    reopened = ParquetStore(tmp_path / "store")  # the index rebuilt from disk knows the key too
    assert reopened.write_batch(key, {"accel": accel(DAY2 + timedelta(days=1), 42.0)}) is False
    assert reopened.query("accel")["temp_c"].to_list() == [40.0] * 3
    reopened.close()


def test_a_replayed_key_with_rows_of_another_measurement_is_a_duplicate(tmp_path):
    store = ParquetStore(tmp_path / "store")
    key = BatchKey("node1", "boot-a", 8)
    assert store.write_batch(key, {"accel": accel(DAY1, 40.0)}) is True
    host = conform(pl.DataFrame({"time": [DAY1], "cpu_util_pct": [5.0]}), "host")
    assert store.write_batch(key, {"host": host}) is False
    assert store.query("host").height == 0
    store.close()


def test_keys_that_differ_only_in_escaped_characters_are_different_batches(tmp_path):
    pairs = [("\x1f600", "😀"), ("a.b", "a%2eb"), ("\u0100", "%u000100"), ("x", "x ")]
    for a, b in pairs:
        assert BatchKey(a, "boot", 1).slug() != BatchKey(b, "boot", 1).slug(), (a, b)
        assert BatchKey("n", a, 1).slug() != BatchKey("n", b, 1).slug(), (a, b)
    store = ParquetStore(tmp_path / "store")
    assert store.write_batch(BatchKey("\x1f600", "boot", 1), {"accel": accel(DAY1, 40.0)}) is True
    assert store.write_batch(BatchKey("😀", "boot", 1), {"accel": accel(DAY1 + timedelta(minutes=1), 41.0)}) is True
    assert store.query("accel")["temp_c"].to_list() == [40.0] * 3 + [41.0] * 3
    store.close()


def test_slugs_of_plain_keys_are_unchanged(tmp_path):
    """Stores written before keep recognising their replays: a key of letters, digits, ``-``, ``_`` and ASCII
    punctuation has the slug it always had."""
    assert BatchKey("gpu-node.example.com", "3f2a_b", 42).slug() == "gpu-node%2eexample%2ecom.3f2a_b.000000000042"
