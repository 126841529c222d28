"""Issue 17.8: what compaction replaced, and what a kill left half-written, is deleted after a restart.

The list of files a compacted file replaces lived only in the compacting process's memory, so after a kill the
replaced files stayed forever (78 of a store's 102 MB after 15 kills), and ``.tmp-*`` files from kills were
never cleaned. The compacted file's own metadata is that list on disk: the writer that opens the store next
deletes every file a compacted file covers (after the grace period readers get) and every temp file whose
writer is gone. The kills are real SIGKILLs, one sent at the rename boundary (fault injection) so a written,
fsynced temp file is left exactly as a kill leaves it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from telemetry.schema import conform
from telemetry.store.base import BatchKey
from telemetry.store.parquet import ParquetStore
from tests.conftest import ROOT

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)


def accel(seq: int, n: int = 5) -> pl.DataFrame:
    times = [T0 + timedelta(seconds=seq * n + i) for i in range(n)]
    return conform(pl.DataFrame({"time": times, "device": ["gpu0"] * n, "temp_c": [float(seq)] * n}), "accel")


def run_killed(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == -9, done.stderr


def on_disk(root: Path) -> list[str]:
    return sorted(p.name[:2] for p in (root / "accel").rglob("*") if p.is_file())


def test_files_a_killed_compactor_replaced_are_deleted_by_the_next_writer(tmp_path):
    root = tmp_path / "store"
    run_killed(f"""
        import os, signal
        from telemetry.store.base import BatchKey
        from telemetry.store.parquet import ParquetStore
        from tests.faults.test_store_garbage import accel
        store = ParquetStore({str(root)!r}, delete_grace_s=3600)  # readers may still read the old files
        for seq in range(10):
            store.write_batch(BatchKey("n1", "b", seq), {{"accel": accel(seq)}})
        store.compact(min_files=2)
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert on_disk(root) == ["c-"] + ["g-"] * 10  # the compacted file and the ten it covers

    store = ParquetStore(root, delete_grace_s=0)
    store.compact()  # the restarted collector's compactor (nothing new to merge)
    assert on_disk(root) == ["c-"]
    assert store.query("accel").height == 50
    assert store.write_batch(BatchKey("n1", "b", 3), {"accel": accel(3)}) is False
    store.close()


def test_temp_files_left_by_a_killed_writer_are_deleted_by_the_next_writer(tmp_path):
    root = tmp_path / "store"
    run_killed(f"""
        import os, signal
        from telemetry.store.base import BatchKey
        from telemetry.store.parquet import ParquetStore
        from tests.faults.test_store_garbage import accel
        store = ParquetStore({str(root)!r})
        store.write_batch(BatchKey("n1", "b", 0), {{"accel": accel(0)}})
        def killed(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace = killed  # written and fsynced, then killed before the rename
        store.write_batch(BatchKey("n1", "b", 1), {{"accel": accel(1)}})
        """)
    assert len(list(root.rglob(".tmp-*"))) == 1

    store = ParquetStore(root)
    assert store.query("accel").height == 5  # a reader never sees a temp file, and never deletes one
    assert len(list(root.rglob(".tmp-*"))) == 1
    store.compact()
    assert not list(root.rglob(".tmp-*"))
    assert store.write_batch(BatchKey("n1", "b", 1), {"accel": accel(1)}) is True  # never acknowledged: new
    assert store.query("accel").height == 10
    store.close()


def test_a_temp_file_of_a_live_writer_is_left_alone(tmp_path):
    root = tmp_path / "store"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        day = root / "accel" / "2026-11-21"
        day.mkdir(parents=True)
        in_flight = day / f".tmp-{live.pid}-0123456789abcdef.parquet"  # e.g. an import writing right now
        in_flight.write_bytes(b"PAR1 being written")
        store = ParquetStore(root)
        store.compact()
        assert in_flight.exists()
        store.close()
    finally:
        live.kill()
        live.wait()
