"""Issue 17.1: one writer per embedded store.

Two collectors on one store directory both started, and stored most batches twice (each kept its own duplicate
index) while both compactors merged the same files. The store now takes an exclusive lock (``flock`` on
``<store>/LOCK``) in the process that writes batches and compacts; a second one is refused with one clear line
naming the holder's PID and what it is. Readers need no lock, and a killed holder's lock goes with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from telemetry.schema import conform
from telemetry.store.base import BatchKey
from telemetry.store.parquet import ParquetStore
from tests.conftest import NEIGHBORSCOPE, ROOT

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)


def accel(seq: int, n: int = 5) -> pl.DataFrame:
    times = [T0 + timedelta(seconds=seq * n + i) for i in range(n)]
    return conform(pl.DataFrame({"time": times, "device": ["gpu0"] * n, "temp_c": [float(seq)] * n}), "accel")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_a_second_collector_on_one_store_is_refused_naming_the_first(collector_factory, tmp_path):
    first = collector_factory()
    port_file = tmp_path / "second.port"
    second = subprocess.Popen(
        [*NEIGHBORSCOPE, "collector", "--store", first.store, "--port", "0", "--port-file", str(port_file),
         "--node-token", "node1=token-node1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while second.poll() is None and not port_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    serving = second.poll() is None
    if serving:
        second.kill()
    _, stderr = second.communicate(timeout=30)
    assert not serving, "a second collector started on the same store"
    assert second.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert f"PID {first.proc.pid}" in lines[0]
    assert "collector" in lines[0]  # what the holder is (its command line, or the address it gave)
    lock_text = (Path(first.store) / "LOCK").read_text()
    for secret in first.tokens.values():  # the lock file is world-readable: no token from the command line
        assert secret not in lines[0] and secret not in lock_text


def test_a_second_writer_process_is_refused_while_readers_read(tmp_path):
    store = ParquetStore(tmp_path / "store")
    assert store.write_batch(BatchKey("n1", "b", 0), {"accel": accel(0)}) is True  # this process is the writer
    other = run_python(f"""
        from telemetry.errors import StoreError
        from telemetry.store.base import BatchKey
        from telemetry.store.parquet import ParquetStore
        s = ParquetStore({str(tmp_path / "store")!r})
        print(s.query("accel").height)  # reading needs no lock
        attempts = (
            lambda: s.write_batch(BatchKey("n1", "b", 0), {{"accel": s.query("accel")}}),
            lambda: s.compact(min_files=1),
        )
        for attempt in attempts:
            try:
                attempt()
                print("written")
            except StoreError as exc:
                print("refused", getattr(exc, "pid", None), getattr(exc, "owner", None))
        """)
    assert other.returncode == 0, other.stderr
    height, batch, compact = other.stdout.strip().splitlines()
    assert height == "5"
    assert batch == compact
    assert batch.startswith(f"refused {os.getpid()} ")  # then the holder's command line
    assert store.query("accel").height == 5
    store.close()


def test_the_refusal_names_the_holders_pid_and_address(tmp_path):
    holder = ParquetStore(tmp_path / "store")
    holder.acquire_writer(owner="collector on http://10.0.0.5:8428")
    refused = run_python(f"""
        from telemetry.store.parquet import ParquetStore
        ParquetStore({str(tmp_path / "store")!r}).acquire_writer()
        """)
    assert refused.returncode == 1
    assert "StoreLockedError" in refused.stderr
    assert f"already being written by PID {os.getpid()}" in refused.stderr
    assert "(collector on http://10.0.0.5:8428)" in refused.stderr
    holder.close()


def test_handles_in_one_process_share_one_writer_and_one_duplicate_index(tmp_path):
    a = ParquetStore(tmp_path / "store")
    b = ParquetStore(tmp_path / "store")
    assert a.write_batch(BatchKey("n1", "b", 0), {"accel": accel(0)}) is True
    assert b.write_batch(BatchKey("n1", "b", 0), {"accel": accel(0)}) is False
    assert a.query("accel").height == 5
    a.close()
    b.close()


def test_a_killed_writer_leaves_no_lock_behind(tmp_path):
    root = tmp_path / "store"
    killed = run_python(f"""
        import os, signal
        from telemetry.store.parquet import ParquetStore
        ParquetStore({str(root)!r}).compact()
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert killed.returncode == -9
    store = ParquetStore(root)
    assert store.write_batch(BatchKey("n1", "b", 0), {"accel": accel(0)}) is True
    store.close()
    again = ParquetStore(root)  # closed: free again
    assert again.write_batch(BatchKey("n1", "b", 0), {"accel": accel(0)}) is False
    again.close()
