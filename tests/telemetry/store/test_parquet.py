"""The embedded Parquet store: atomic files, compaction, readers in other processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from telemetry.errors import StoreError
from telemetry.schema import conform
from telemetry.store.base import BatchKey
from telemetry.store.parquet import BATCHES_KEY, ParquetStore

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)
ROWS_PER_BATCH = 50


def batch_frame(seq: int) -> pl.DataFrame:
    n = ROWS_PER_BATCH
    return conform(
        pl.DataFrame(
            {
                "time": [T0 + timedelta(seconds=seq * n + i) for i in range(n)],
                "node": ["node1"] * n,
                "device": ["gpu0"] * n,
                "temp_c": [float(seq)] * n,
            }
        ),
        "accel",
    )


def test_files_land_in_measurement_and_day_partitions_and_name_their_batches(tmp_path):
    s = ParquetStore(tmp_path)
    s.write_batch(BatchKey("node1", "b", 3), {"accel": batch_frame(0)})
    (path,) = s.files("accel")
    assert path.relative_to(tmp_path).parts[:2] == ("accel", "2026-11-21")
    meta = pl.read_parquet_metadata(path)
    assert json.loads(meta[BATCHES_KEY]) == ["node1.b.000000000003"]


def test_concurrent_batches_are_committed_together_and_each_stored_once(tmp_path):
    s = ParquetStore(tmp_path)
    keys = [BatchKey("node1", "b", i % 40) for i in range(120)]  # every batch sent three times
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda k: s.write_batch(k, {"accel": batch_frame(k.seq)}), keys))
    assert sum(results) == 40  # new exactly once per key
    got = s.query("accel")
    assert got.height == 40 * ROWS_PER_BATCH
    assert got["time"].n_unique() == got.height
    assert len(s.files("accel")) < 40  # group commit: fewer files than batches


def test_a_reopened_store_still_recognises_replays_even_after_compaction(tmp_path):
    s = ParquetStore(tmp_path, delete_grace_s=0)
    for seq in range(10):
        s.write_batch(BatchKey("node1", "b", seq), {"accel": batch_frame(seq)})
    s.compact(min_files=2)
    s.close()
    again = ParquetStore(tmp_path)
    assert again.write_batch(BatchKey("node1", "b", 4), {"accel": batch_frame(4)}) is False
    assert again.write_batch(BatchKey("node1", "b", 10), {"accel": batch_frame(10)}) is True
    assert again.query("accel").height == 11 * ROWS_PER_BATCH


def test_compaction_merges_files_and_keeps_every_row_once(tmp_path):
    s = ParquetStore(tmp_path, delete_grace_s=0)
    for seq in range(40):
        s.write_batch(BatchKey("node1", "b", seq), {"accel": batch_frame(seq)})
    before = s.query("accel")
    assert s.compact(min_files=8) == 40
    assert len(s.files("accel")) == 1
    assert s.query("accel").equals(before)
    # a replay of a compacted batch is still recognised
    assert s.write_batch(BatchKey("node1", "b", 7), {"accel": batch_frame(7)}) is False
    assert s.query("accel").height == 40 * ROWS_PER_BATCH


def test_a_compacted_file_hides_covered_files_before_they_are_deleted(tmp_path):
    s = ParquetStore(tmp_path, delete_grace_s=3600)
    for seq in range(10):
        s.write_batch(BatchKey("node1", "b", seq), {"accel": batch_frame(seq)})
    s.compact(min_files=2)
    # covered files still on disk, but read once
    assert len(list((tmp_path / "accel").rglob("g-*.parquet"))) == 10
    assert s.query("accel").height == 10 * ROWS_PER_BATCH


def test_half_written_temp_files_are_never_read(tmp_path):
    s = ParquetStore(tmp_path)
    s.write("accel", batch_frame(0))
    day = next((tmp_path / "accel").iterdir())
    (day / ".tmp-deadbeef.parquet").write_bytes(b"PAR1 torn")
    assert s.query("accel").height == ROWS_PER_BATCH


def test_invalid_artifact_key_is_refused(tmp_path):
    with pytest.raises(StoreError, match="invalid artifact key"):
        ParquetStore(tmp_path).write_artifact("../escape", pl.DataFrame({"a": [1]}))


def _writer(root: str, batches: int) -> None:
    s = ParquetStore(root, compact_min_files=5, compact_interval_s=0.05, delete_grace_s=0.2)
    s.start_compactor()
    for seq in range(batches):
        s.write_batch(BatchKey("node1", "b", seq), {"accel": batch_frame(seq)})
        time.sleep(0.005)
    s.close()


def test_concurrent_writer_and_reader_processes_see_no_torn_reads(tmp_path):
    """A writer process (with its compactor) and a reader process: each read is a whole number of
    batches, every row at most once, and counts never go backwards."""
    root = str(tmp_path / "store")
    Path(root).mkdir()
    batches = 120
    # a plain subprocess, not multiprocessing: spawn re-runs the parent's __main__, which another test
    # (Streamlit's AppTest) may have left pointing at a script
    code = f"from tests.telemetry.store.test_parquet import _writer; _writer({root!r}, {batches})"
    w = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[3])
    reader = ParquetStore(root)
    seen = []
    while w.poll() is None or not seen or seen[-1] < batches * ROWS_PER_BATCH:
        got = reader.query("accel")
        n = got.height
        assert n % ROWS_PER_BATCH == 0, "a torn read: part of a batch"
        assert got["time"].n_unique() == n, "a row read twice"
        if n:
            per_batch = got.group_by("temp_c").len()["len"]
            assert (per_batch == ROWS_PER_BATCH).all()
        assert not seen or n >= seen[-1], "rows disappeared"
        seen.append(n)
        if w.poll() is not None and n < batches * ROWS_PER_BATCH and len(seen) > 10_000:
            break
    assert w.wait(60) == 0
    assert seen[-1] == batches * ROWS_PER_BATCH
    assert len(seen) > 5


def test_write_batches_commits_a_group_once_per_key(tmp_path):
    from telemetry.batch import make_batch, validate_columns
    from telemetry.schema import conform
    from telemetry.store.base import BatchKey
    from telemetry.store.parquet import ParquetStore

    t0 = 1_700_000_000_000_000_000

    def cols(i: int) -> dict:
        f = conform(pl.DataFrame({"time": [t0 + i], "device": ["gpu0"], "temp_c": [float(i)]}), "accel")
        doc = make_batch("n1", "b", i, {"accel": f})
        return validate_columns("n1", [(x["measurement"], x["columns"]) for x in doc["frames"]])

    store = ParquetStore(tmp_path / "s")
    items = [(BatchKey("n1", "b", i), cols(i)) for i in (0, 1, 1, 2)]
    assert store.write_batches(items, conformed=True) == [True, True, False, True]
    assert store.write_batches([(BatchKey("n1", "b", 2), cols(2))], conformed=True) == [False]
    assert store.query("accel")["temp_c"].to_list() == [0.0, 1.0, 2.0]
    assert len(store.files("accel")) == 1  # one group file for the three batches
    assert (
        ParquetStore(tmp_path / "s").write_batch(BatchKey("n1", "b", 1), {"accel": cols(1)["accel"].frame()}) is False
    )
