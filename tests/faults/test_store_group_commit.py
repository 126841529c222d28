"""Issue 17.2: a group commit is all or nothing across measurements, so a 503 never becomes a duplicate.

A group commit writes one Parquet file per measurement/day. When a later file failed (disk full), the files
already renamed in stayed, outside the duplicate index, and the agent's retry stored them again. Now every
file is written and fsynced under a temp name first, a commit record lists the renames, and the batch keys
enter the index only once the whole group is in place; a group whose renames a kill interrupted is rolled
forward when the store is opened. The disk is a real tmpfs mounted by the test (root); the kill between two
renames is a real SIGKILL, sent by the writer to itself at the rename boundary (fault injection). The tmpfs
fixture is `tests/faults/conftest.small_disk` (a real 256 KiB tmpfs).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from telemetry.errors import StoreError
from telemetry.schema import conform
from telemetry.store.base import BatchKey
from telemetry.store.parquet import ParquetStore
from tests.conftest import ROOT
from tests.faults.conftest import PAGE, fill

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)


def frames(seq: int, host_rows: int = 5) -> dict[str, pl.DataFrame]:
    """A batch of 5 accel rows (a small file) and ``host_rows`` host rows of random values (a large one)."""
    rng = np.random.default_rng(seq)
    t = T0 + timedelta(minutes=seq)
    accel = pl.DataFrame({"time": [t + timedelta(seconds=i) for i in range(5)], "device": ["gpu0"] * 5,
                          "temp_c": [float(seq)] * 5})  # fmt: skip
    host = pl.DataFrame({"time": [t + timedelta(microseconds=i) for i in range(host_rows)],
                         "cpu_util_pct": rng.random(host_rows) * 100, "load1": rng.random(host_rows) * 8})  # fmt: skip
    return {"accel": conform(accel, "accel"), "host": conform(host, "host")}


def test_a_group_that_fails_on_a_full_disk_leaves_nothing_and_its_retry_is_stored_once(small_disk, tmp_path):
    # how large each file of batch 1 is (accel small, host large), measured on an ordinary disk
    probe = ParquetStore(tmp_path / "probe")
    probe.write_batch(BatchKey("n1", "b", 1), frames(1, host_rows=3_000))
    sizes = {p.parent.parent.name: p.stat().st_size for p in (tmp_path / "probe").rglob("g-*.parquet")}
    probe.close()
    room = (sizes["accel"] // PAGE + 2) * PAGE
    assert sizes["host"] > room + 4 * PAGE

    store = ParquetStore(small_disk / "store")
    assert store.write_batch(BatchKey("n1", "b", 0), frames(0)) is True  # the day directories exist
    filler = fill(small_disk, leave_bytes=room)  # room for the accel file, not for the host file
    with pytest.raises(StoreError, match="No space left"):
        store.write_batch(BatchKey("n1", "b", 1), frames(1, host_rows=3_000))  # the collector's 503
    assert store.query("accel").height == 5  # nothing of batch 1, in any measurement
    assert not list(small_disk.rglob(".tmp-*"))

    filler.unlink()  # space returns; the agent sends batch 1 again
    assert store.write_batch(BatchKey("n1", "b", 1), frames(1, host_rows=3_000)) is True
    assert store.write_batch(BatchKey("n1", "b", 1), frames(1, host_rows=3_000)) is False
    assert store.query("accel")["temp_c"].to_list() == [0.0] * 5 + [1.0] * 5
    assert store.query("host").height == 5 + 3_000
    store.close()


def writer_killed_between_renames(root: Path) -> subprocess.CompletedProcess:
    """A writer process that stores batch 0 (accel + host), then is killed -9 right after the first rename of
    batch 1's group: the fault injected at the rename boundary."""
    code = f"""
        import os, signal
        from telemetry.store.base import BatchKey
        from telemetry.store.parquet import ParquetStore
        from tests.faults.test_store_group_commit import frames
        store = ParquetStore({str(root)!r})
        store.write_batch(BatchKey("n1", "b", 0), frames(0))
        real_replace, renames = os.replace, []
        def replace(src, dst):
            real_replace(src, dst)
            if str(dst).endswith(".parquet") and "/g-" in str(dst):
                renames.append(dst)
                if len(renames) == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
        os.replace = replace
        store.write_batch(BatchKey("n1", "b", 1), frames(1))
        """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_a_group_whose_renames_a_kill_interrupted_is_whole_when_the_store_is_opened(tmp_path):
    root = tmp_path / "store"
    killed = writer_killed_between_renames(root)
    assert killed.returncode == -9, killed.stderr
    store = ParquetStore(root)
    store.start_compactor()  # what the restarted collector does first
    # batch 1 is either wholly there or wholly absent, in every measurement
    accel = store.query("accel")["temp_c"].to_list()
    host_rows = store.query("host").height
    assert accel == [0.0] * 5 + [1.0] * 5 and host_rows == 10  # its record says: rolled forward
    assert not list(root.rglob(".tmp-*"))
    assert store.write_batch(BatchKey("n1", "b", 1), frames(1)) is False  # the agent's retry: a duplicate
    assert store.query("host").height == 10
    store.close()


def test_recovery_deletes_nothing_when_retention_removed_a_day_of_one_measurement(tmp_path):
    """Each group file lists its whole group, but a missing member is never a reason to delete the others:
    retention may delete one measurement's day, and the other measurements keep every row."""
    root = tmp_path / "store"
    store = ParquetStore(root)
    for seq in range(3):
        assert store.write_batch(BatchKey("n1", "b", seq), frames(seq)) is True
    store.close()
    for accel_day in (root / "accel").iterdir():
        shutil.rmtree(accel_day)
    reopened = ParquetStore(root)
    reopened.start_compactor()
    assert reopened.query("accel").height == 0
    assert reopened.query("host").height == 15
    assert reopened.write_batch(BatchKey("n1", "b", 2), frames(2)) is False  # still a replay
    reopened.close()
