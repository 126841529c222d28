"""Issue 17.5 (store side): a corrupt or empty Parquet file is skipped, named, and quarantined; never silent.

A corrupt file made every read of its measurement fail with a polars traceback naming no file (or, for a
0-byte file, look empty), and one in today's directory made the collector answer 503 for that measurement
and day forever. Now readers skip a file they cannot read and list it (path, reason) in
``unreadable_files()``, so a report can say its inputs were incomplete; the writer moves the file to
``<store>/quarantine/`` with its reason (kept, never deleted), says so loudly, and keeps accepting writes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from telemetry.batch import make_batch
from telemetry.schema import conform
from telemetry.store.base import BatchKey
from telemetry.store.parquet import ParquetStore

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)


def accel(t0: datetime, temp_c: float, n: int = 3) -> pl.DataFrame:
    times = [t0 + timedelta(seconds=i) for i in range(n)]
    return conform(pl.DataFrame({"time": times, "device": ["gpu0"] * n, "temp_c": [temp_c] * n}), "accel")


def day_dir(root: Path, t: datetime = T0) -> Path:
    return root / "accel" / t.strftime("%Y-%m-%d")


def test_readers_skip_a_corrupt_and_an_empty_file_and_name_both(tmp_path):
    root = tmp_path / "store"
    writer = ParquetStore(root)
    for i in range(3):
        writer.write("accel", accel(T0 + timedelta(minutes=i), 40.0 + i))
    by_temp = {pl.read_parquet(p)["temp_c"][0]: p for p in day_dir(root).iterdir()}
    first, second = by_temp[40.0], by_temp[41.0]
    second.write_bytes(b"PAR1" + b"\x13" * 500)  # a torn or overwritten file
    empty = day_dir(root) / "w-empty.parquet"
    empty.touch()  # a 0-byte file (a disk that filled up under a copy)

    reader = ParquetStore(root)
    assert sorted(reader.query("accel")["temp_c"].unique().to_list()) == [40.0, 42.0]
    assert reader.scan("accel").collect().height == 6
    assert reader.time_bounds("accel") == (T0, T0 + timedelta(minutes=2, seconds=2))
    assert reader.downsample("accel", "1h", fields=["temp_c"], group_by=[]).height == 1
    assert reader.series("accel").height == 1
    found = dict(reader.unreadable_files())
    assert set(found) == {str(second), str(empty)}
    assert found[str(empty)] == "empty file (0 bytes)"
    assert found[str(second)].startswith("not a readable Parquet file")
    assert second.exists() and empty.exists()  # a reader moves nothing
    assert first.exists()


def test_a_file_damaged_past_its_footer_is_found_when_read(tmp_path):
    root = tmp_path / "store"
    writer = ParquetStore(root)
    rng = np.random.default_rng(0)
    n = 20_000
    big = conform(
        pl.DataFrame({"time": [T0 + timedelta(milliseconds=i) for i in range(n)], "device": ["gpu0"] * n,
                      "temp_c": rng.random(n) * 100, "power_w": rng.random(n) * 500}),
        "accel",
    )  # fmt: skip
    writer.write("accel", big)
    writer.write("accel", accel(T0 + timedelta(hours=1), 50.0))
    damaged = min(day_dir(root).iterdir(), key=lambda p: -p.stat().st_size)
    data = bytearray(damaged.read_bytes())
    data[200:20_000] = bytes(19_800)  # the column chunks, not the footer
    damaged.write_bytes(bytes(data))

    reader = ParquetStore(root)
    assert reader.query("accel")["temp_c"].to_list() == [50.0] * 3
    assert [path for path, _ in reader.unreadable_files()] == [str(damaged)]


def test_the_collector_quarantines_a_corrupt_file_of_today_and_keeps_accepting(collector_factory, tmp_path):
    root = tmp_path / "store"
    now = datetime.now(UTC).replace(microsecond=0)
    today = day_dir(root, now)
    today.mkdir(parents=True)
    corrupt = today / "g-0123456789abcdef0123456789abcdef.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet PAR1")

    c = collector_factory(store=str(root))
    for seq in range(2):
        frame = accel(now + timedelta(seconds=10 * seq), 40.0 + seq)
        r = httpx.post(f"{c.url}/v1/batches", json=make_batch("node1", "boot-a", seq, {"accel": frame}),
                       headers=c.headers("node1"), timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stored"

    kept = root / "quarantine" / "accel" / now.strftime("%Y-%m-%d") / corrupt.name
    assert kept.read_bytes() == b"PAR1 not really parquet PAR1"  # moved aside, never deleted
    reason = kept.with_name(kept.name + ".reason").read_text()
    assert "not a readable Parquet file" in reason
    assert not corrupt.exists()
    deadline = time.monotonic() + 10
    while "quarantined unreadable file" not in c.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"quarantined unreadable file accel/{now:%Y-%m-%d}/{corrupt.name}" in c.log_path.read_text()

    reader = ParquetStore(root)
    assert reader.query("accel")["temp_c"].to_list() == [40.0] * 3 + [41.0] * 3
    ((path, why),) = reader.unreadable_files()  # a report over today still learns its input was incomplete
    assert path == str(kept) and why.startswith("quarantined:")


def test_the_writer_keeps_writing_batches_for_a_day_whose_file_went_bad(tmp_path):
    root = tmp_path / "store"
    store = ParquetStore(root)
    assert store.write_batch(BatchKey("n1", "b", 0), {"accel": accel(T0, 40.0)}) is True
    (bad,) = day_dir(root).iterdir()
    bad.write_bytes(b"garbage")  # the disk corrupts a file while the collector runs
    assert store.write_batch(BatchKey("n1", "b", 1), {"accel": accel(T0 + timedelta(minutes=1), 41.0)}) is True
    assert store.query("accel")["temp_c"].to_list() == [41.0] * 3
    assert (root / "quarantine" / bad.relative_to(root)).read_bytes() == b"garbage"
    store.close()
