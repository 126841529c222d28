"""A collector with an InfluxDB store restarting while its queue disk is full starts, keeps what was queued, and
drains it later (it crashed with a traceback before: the lock file's PID and the sent-index compaction wrote to
the full disk, and under systemd that was a crash loop)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from telemetry.store.base import BatchKey
from telemetry.store.factory import open_store
from tests.faults.conftest import fill

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there, the InfluxDB is "down"
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _frames(seq: int) -> dict[str, pl.DataFrame]:
    return {
        "accel": pl.DataFrame(
            {
                "time": [T0 + timedelta(seconds=seq)],
                "node": ["n1"],
                "device": ["gpu0"],
                "temp_c": [40.0 + seq],
            }
        )
    }


def test_the_influx_queue_opens_on_a_full_disk_and_keeps_its_batches(small_disk):
    url = f"influx://127.0.0.1:{_closed_port()}/db?queue={small_disk / 'queue'}"
    store = open_store(url)
    for seq in range(3):
        assert store.write_batch(BatchKey("n1", "boot", seq), _frames(seq)) is True
    store.close(drain_timeout=0)  # InfluxDB is down: nothing to wait for
    fill(small_disk)  # the disk is full when the collector comes back

    again = open_store(url)
    try:
        again.open()  # the collector opens its queue at start: this raised OSError(ENOSPC) before
        assert again.write_batch(BatchKey("n1", "boot", 1), _frames(1)) is False  # still known: a duplicate
        assert sorted(p.name for p in (small_disk / "queue").glob("q-*")) != []  # the queued batches are kept
        assert not list((small_disk / "queue").glob(".tmp-*"))
    finally:
        again.close(drain_timeout=0)


def test_a_write_on_a_full_disk_is_refused_and_leaves_no_half_written_queue_file(small_disk):
    url = f"influx://127.0.0.1:{_closed_port()}/db?queue={small_disk / 'queue'}"
    store = open_store(url)
    queue = small_disk / "queue"
    try:
        assert store.write_batch(BatchKey("n1", "boot", 0), _frames(0)) is True
        for _ in range(500):  # spare queue files are made ahead, on a thread of their own
            if store._spares_upto:  # all made and their names synced
                break
            time.sleep(0.01)
        sizes = {p.name: p.stat().st_size for p in queue.glob("q-*")}
        assert sorted(sizes.values())[-2] == 0  # spares: empty files with durable names
        filler = fill(small_disk)
        with pytest.raises(OSError, match="No space left"):
            store.write_batch(BatchKey("n1", "boot", 1), _frames(1))
        assert {p.name: p.stat().st_size for p in queue.glob("q-*")} == sizes  # the spare it used is empty again
        filler.unlink()
        assert store.write_batch(BatchKey("n1", "boot", 1), _frames(1)) is True  # the retry is taken
    finally:
        store.close(drain_timeout=0)
    again = open_store(url)
    try:
        again.open()
        assert again.write_batch(BatchKey("n1", "boot", 1), _frames(1)) is False
        assert again.status()["queued_batches"] == 2
    finally:
        again.close(drain_timeout=0)
