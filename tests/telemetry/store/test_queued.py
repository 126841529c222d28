"""The durable queue in front of a remote store, against a FakeRemote (no server: fast)."""

from __future__ import annotations

import gzip
import os
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from telemetry.errors import (
    InfluxUnavailableError,
    InfluxWriteRejectedError,
    SchemaError,
    StoreError,
    StoreUnavailableError,
)
from telemetry.errors import RejectedLine as Rejected
from telemetry.schema import conform
from telemetry.store.base import BatchKey
from telemetry.store.influx import InfluxConfig, InfluxStore
from telemetry.store.queued import SPARES, QueuedStore, SeqSet

T0 = 1_763_600_000_000_000_000


class FakeRemote:
    """FakeRemote: records the line protocol it is sent; `fail` makes the next sends raise."""

    def __init__(self, batch_bytes: int = 4 * 2**20) -> None:
        self.config = InfluxConfig(url="http://fake:1", batch_bytes=batch_bytes)
        self._encoder = InfluxStore(self.config)
        self.received: list[bytes] = []
        self.requests = 0
        self.fail: list[Exception] = []
        self.down = threading.Event()
        self.closed = False
        self.in_flight = 0
        self.most_in_flight = 0
        self.hold_s = 0.0  # how long each request takes (lets two requests overlap)
        self._lock = threading.Lock()

    def prepare(self, measurement: str, frame: pl.DataFrame) -> pl.DataFrame:
        return self._encoder.prepare(measurement, frame)

    def encode(self, measurement: str, frame: pl.DataFrame) -> bytes:
        return self._encoder.encode(measurement, frame)

    def write_lines(self, body: bytes, *, gzipped: bool = False) -> int:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.hold_s)
            if self.down.is_set():
                raise InfluxUnavailableError("FakeRemote is down", retry_after_s=0.01)
            with self._lock:
                if self.fail:
                    raise self.fail.pop(0)
                raw = gzip.decompress(body) if gzipped else body
                self.received += [ln for ln in raw.split(b"\n") if ln]
            return raw.count(b"\n")
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.closed = True


class RecordingQueue(QueuedStore):
    """A QueuedStore whose waits are recorded instead of slept (the clock is a parameter of the test)."""

    waits: list[float]

    def _idle(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._stop.wait(0.001)


def frame(i: int, n: int = 3) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "time": [T0 + i * 10**9 + j for j in range(n)],
                "node": ["n1"] * n,
                "device": [f"gpu{j}" for j in range(n)],
                "temp_c": [float(i)] * n,
            }
        ),
        "accel",
    )


def make(tmp_path: Path, remote: FakeRemote | None = None, cls=QueuedStore, **kw) -> QueuedStore:
    q = cls(remote or FakeRemote(), tmp_path / "queue", **kw)
    if cls is RecordingQueue:
        q.waits = []
    return q


def temps(remote: FakeRemote) -> list[float]:
    return [float(ln.split(b"temp_c=")[1].split(b" ")[0]) for ln in remote.received]


def test_batches_reach_the_remote_in_order(tmp_path):
    remote = FakeRemote(batch_bytes=1024)  # several requests per run
    # several runs, each encoded while the one before is sent; one request at a time
    q = make(tmp_path, remote, drain_rows=9, post_parallel=1)
    for i in range(40):
        assert q.write_batch(BatchKey("n1", "b", i), {"accel": frame(i)}) is True
    assert q.flush(10)
    assert temps(remote) == [float(i) for i in range(40) for _ in range(3)]
    assert remote.requests > 1
    q.close()
    assert not list((tmp_path / "queue").glob("q-*"))


def test_replayed_batch_is_not_queued_twice(tmp_path):
    remote = FakeRemote()
    q = make(tmp_path, remote)
    key = BatchKey("n1", "b", 7)
    assert q.write_batch(key, {"accel": frame(7)}) is True
    assert q.write_batch(key, {"accel": frame(7)}) is False
    assert q.flush(10)
    assert q.write_batch(key, {"accel": frame(7)}) is False  # already sent
    q.close()
    assert len(remote.received) == 3


def test_sent_and_queued_keys_survive_a_restart(tmp_path):
    remote = FakeRemote()
    q = make(tmp_path, remote)
    q.write_batch(BatchKey("n1", "b", 1), {"accel": frame(1)})
    assert q.flush(10)
    remote.down.set()
    q.write_batch(BatchKey("n1", "b", 2), {"accel": frame(2)})
    q.close(drain_timeout=0.1)

    remote2 = FakeRemote()
    q2 = make(tmp_path, remote2)
    assert q2.write_batch(BatchKey("n1", "b", 1), {"accel": frame(1)}) is False  # sent before
    assert q2.write_batch(BatchKey("n1", "b", 2), {"accel": frame(2)}) is False  # still queued
    assert q2.write_batch(BatchKey("n1", "b", 3), {"accel": frame(3)}) is True
    assert q2.flush(10)
    assert temps(remote2) == [2.0] * 3 + [3.0] * 3  # the leftover first, then the new one
    q2.close()


def test_nothing_is_lost_while_the_remote_is_down(tmp_path):
    remote = FakeRemote()
    remote.down.set()
    q = make(tmp_path, remote, cls=RecordingQueue)
    for i in range(10):
        q.write_batch(BatchKey("n1", "b", i), {"accel": frame(i)})
    assert not q.flush(0.3)
    assert q.status()["queued_batches"] == 10 and "down" in q.status()["last_error"]
    remote.down.clear()
    assert q.flush(10)
    assert temps(remote) == [float(i) for i in range(10) for _ in range(3)]
    q.close()


def test_retry_after_from_the_server_sets_the_wait(tmp_path):
    remote = FakeRemote()
    remote.fail = [InfluxUnavailableError("429 busy", retry_after_s=7.0)]
    q = make(tmp_path, remote, cls=RecordingQueue)
    q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)})
    assert q.flush(10)
    assert q.waits == [7.0]
    assert len(remote.received) == 3


def test_without_retry_after_the_backoff_grows(tmp_path):
    remote = FakeRemote()
    remote.fail = [InfluxUnavailableError("503") for _ in range(4)]
    q = make(tmp_path, remote, cls=RecordingQueue)
    q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)})
    assert q.flush(10)
    assert len(q.waits) == 4 and q.waits[0] < q.waits[-1]
    q.close()


def test_backoff_stops_at_retry_max_s_and_starts_over_after_a_send(tmp_path):
    remote = FakeRemote()
    remote.fail = [InfluxUnavailableError("503") for _ in range(8)]
    q = make(tmp_path, remote, cls=RecordingQueue)
    q.retry_max_s = 2.0
    q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)})
    assert q.flush(10)
    assert len(q.waits) == 8 and max(q.waits) <= 2.0 * 1.25 and q.waits[-1] >= 2.0 * 0.75
    remote.fail = [InfluxUnavailableError("503")]
    q.write_batch(BatchKey("n1", "b", 1), {"accel": frame(1)})
    assert q.flush(10)
    assert len(q.waits) == 9 and q.waits[-1] <= 0.5 * 1.25  # the send in between reset the backoff
    q.close()


def test_config_error_keeps_the_data_and_retries(tmp_path):
    remote = FakeRemote()
    remote.fail = [StoreError("database not found"), StoreError("database not found")]
    q = make(tmp_path, remote, cls=RecordingQueue)
    q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)})
    assert q.flush(10)
    assert len(remote.received) == 3
    q.close()


def test_rejected_lines_are_kept_aside_and_the_queue_moves_on(tmp_path):
    remote = FakeRemote()
    remote.fail = [InfluxWriteRejectedError([Rejected("accel,node=n1 temp_c=1i 5", "field type conflict")], 2)]
    q = make(tmp_path, remote)
    q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)})
    q.write_batch(BatchKey("n1", "b", 1), {"accel": frame(1)})
    assert q.flush(10)
    assert q.status()["rejected_lines"] == 1
    kept = (tmp_path / "queue" / "rejected.lp").read_text()
    assert "field type conflict" in kept and "accel,node=n1 temp_c=1i 5" in kept
    q.close()


def test_a_full_queue_refuses_the_write_and_forgets_the_key(tmp_path):
    remote = FakeRemote()
    remote.down.set()
    q = make(tmp_path, remote, cls=RecordingQueue)
    q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)})
    q.max_queue_bytes = q.status()["queued_bytes"] * 3 + 10
    with pytest.raises(StoreUnavailableError, match="full"):
        for i in range(1, 20):
            q.write_batch(BatchKey("n1", "b", i), {"accel": frame(i)})
    refused = i
    remote.down.clear()
    assert q.flush(10)
    assert q.write_batch(BatchKey("n1", "b", refused), {"accel": frame(refused)}) is True  # not remembered
    q.close()


def test_one_process_drains_a_queue(tmp_path):
    a, b = make(tmp_path), make(tmp_path)
    a.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)})
    with pytest.raises(StoreError, match="in use"):
        b.write_batch(BatchKey("n1", "b", 1), {"accel": frame(1)})
    a.close()


def test_reader_never_touches_the_queue(tmp_path):
    q = make(tmp_path)
    q.close()
    assert not (tmp_path / "queue").exists()


def test_concurrent_writers_lose_nothing(tmp_path):
    remote = FakeRemote(batch_bytes=2048)
    q = make(tmp_path, remote)

    def writer(node: str) -> None:
        for i in range(25):
            q.write_batch(BatchKey(node, "b", i), {"accel": frame(i)})

    threads = [threading.Thread(target=writer, args=(f"n{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert q.flush(10)
    assert len(remote.received) == 4 * 25 * 3
    q.close()


def test_a_bad_frame_is_refused_at_the_door_not_in_the_drainer(tmp_path):
    q = make(tmp_path)
    with pytest.raises(SchemaError, match="temp_c"):
        q.write_batch(BatchKey("n1", "b", 0), {"accel": pl.DataFrame({"time": [1], "temp_c": ["hot"]})})
    assert q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)}) is True  # the key was not taken
    q.close()


def test_a_failed_send_resumes_after_the_bodies_already_stored(tmp_path):
    remote = FakeRemote(batch_bytes=1024)
    q = make(tmp_path, remote, cls=RecordingQueue)
    q.drain_rows = 10**6
    remote.down.set()
    for i in range(20):
        q.write_batch(BatchKey("n1", "b", i), {"accel": frame(i)})
    real = remote.write_lines
    calls = {"n": 0}

    def flaky(body: bytes, *, gzipped: bool = False) -> int:  # FakeRemote that fails once, mid-run
        calls["n"] += 1
        if calls["n"] == 3:
            raise InfluxUnavailableError("blip", retry_after_s=0)
        return real(body, gzipped=gzipped)

    remote.write_lines = flaky
    remote.down.clear()
    assert q.flush(10)
    assert sorted(temps(remote)) == [float(i) for i in range(20) for _ in range(3)]  # no body sent twice
    q.close()


def test_the_bodies_of_a_run_go_two_at_a_time(tmp_path):
    remote = FakeRemote(batch_bytes=1024)
    remote.hold_s = 0.02
    q = make(tmp_path, remote, drain_rows=10**6)
    q.write_batches([(BatchKey("n1", "b", i), {"accel": frame(i)}) for i in range(20)])  # one entry, one run
    assert q.flush(10)
    assert remote.requests > 2 and remote.most_in_flight == 2
    assert sorted(temps(remote)) == [float(i) for i in range(20) for _ in range(3)]
    q.close()


def test_a_run_that_writes_a_point_twice_goes_one_body_at_a_time(tmp_path):
    remote = FakeRemote(batch_bytes=1024)
    remote.hold_s = 0.02
    q = make(tmp_path, remote, drain_rows=10**6)
    again = frame(0).with_columns(pl.lit(99.0).alias("temp_c"))  # batch 0's points with a new value
    items = [(BatchKey("n1", "b", i), {"accel": frame(i)}) for i in range(20)] + [
        (BatchKey("n1", "b", 20), {"accel": again})
    ]
    q.write_batches(items)
    assert q.flush(10)
    assert remote.requests > 2 and remote.most_in_flight == 1
    assert temps(remote) == [float(i) for i in range(20) for _ in range(3)] + [99.0] * 3  # in order: 99 wins
    q.close()


def test_plain_writes_are_queued_too(tmp_path):
    remote = FakeRemote()
    q = make(tmp_path, remote)
    assert q.write("accel", frame(1)) == 3
    assert q.flush(10)
    assert temps(remote) == [1.0] * 3
    q.close()


def test_sent_log_is_compacted_into_ranges_and_still_dedups(tmp_path):
    remote = FakeRemote()
    q = make(tmp_path, remote, drain_rows=3)
    q.compact_sent_after = 5
    for i in range(12):
        q.write_batch(BatchKey("n1", "b", i), {"accel": frame(i)})
    assert q.flush(10)
    q.close()
    state = (tmp_path / "queue" / "sent.json").read_text()
    assert '"n1\\tb": [[0, ' in state
    assert len((tmp_path / "queue" / "sent.log").read_text().splitlines()) < 5
    q2 = make(tmp_path, FakeRemote())
    assert not any(q2.write_batch(BatchKey("n1", "b", i), {"accel": frame(i)}) for i in range(12))
    q2.close()


def test_same_batch_twice_at_once_is_stored_once(tmp_path):
    remote = FakeRemote()
    q = make(tmp_path, remote)
    key = BatchKey("n1", "b", 0)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(q.write_batch(key, {"accel": frame(0)}))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert q.flush(10)
    assert len(remote.received) == 3
    q.close()


def test_seq_set_merges_ranges():
    s = SeqSet()
    for seq in [1, 2, 3, 7, 5, 6, 10]:
        s.add(seq)
    assert s.ranges() == [[1, 3], [5, 7], [10, 10]]
    s.add(4)
    assert s.ranges() == [[1, 7], [10, 10]]
    assert 4 in s and 8 not in s and 0 not in s
    assert SeqSet([[1, 7], [10, 10]]).ranges() == [[1, 7], [10, 10]]
    assert SeqSet([[1, 7]]).without(4).ranges() == [[1, 3], [5, 7]]
    assert SeqSet([[1, 7]]).without(1).ranges() == [[2, 7]]


def test_a_group_of_batches_is_queued_once_per_key(tmp_path):
    from telemetry.batch import make_batch, validate_columns

    remote = FakeRemote()
    q = make(tmp_path, remote)
    assert q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)}) is True

    def cols(i: int) -> dict:
        doc = make_batch("n1", "b", i, {"accel": frame(i)})
        return validate_columns("n1", [(f["measurement"], f["columns"]) for f in doc["frames"]])

    items = [(BatchKey("n1", "b", i), cols(i)) for i in (0, 1, 2, 1)]  # 0: already queued; 1 twice
    assert q.write_batches(items, conformed=True) == [False, True, True, False]
    assert q.flush(10)
    assert temps(remote) == [float(i) for i in range(3) for _ in range(3)]
    q.close()
    again = make(tmp_path, remote)  # the group's keys are known after a restart
    assert again.write_batch(BatchKey("n1", "b", 2), {"accel": frame(2)}) is False
    again.close()


class PickyRemote(FakeRemote):
    """FakeRemote whose server refuses a temperature over 1000 C: a rule the collector's schema check does not know."""

    def prepare(self, measurement: str, frame: pl.DataFrame) -> pl.DataFrame:
        frame = super().prepare(measurement, frame)
        if "temp_c" in frame.columns and (frame["temp_c"].max() or 0) > 1000:
            raise SchemaError("the server refuses a temperature over 1000 C", f"{measurement}.temp_c")
        return frame


def test_validated_batches_meet_the_servers_own_rules_before_the_ack_and_a_bad_one_fails_alone(tmp_path):
    from telemetry.batch import make_batch, validate_columns

    remote = PickyRemote()
    q = make(tmp_path, remote)

    def cols(i: int, temp: float) -> dict:
        doc = make_batch("n1", "b", i, {"accel": frame(i).with_columns(pl.lit(temp).alias("temp_c"))})
        return validate_columns("n1", [(f["measurement"], f["columns"]) for f in doc["frames"]])

    items = [(BatchKey("n1", "b", i), cols(i, t)) for i, t in ((0, 40.0), (1, 5000.0), (2, 41.0))]
    results = q.write_batches(items, conformed=True)
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], SchemaError) and "accel.temp_c" in str(results[1])
    assert q.flush(10)
    assert temps(remote) == [40.0] * 3 + [41.0] * 3
    # the refused batch was not recorded: it can be sent again once fixed
    assert q.write_batches([(BatchKey("n1", "b", 1), cols(1, 42.0))], conformed=True) == [True]
    q.close()


def test_a_bad_batch_in_a_group_fails_alone(tmp_path):
    remote = FakeRemote()
    q = make(tmp_path, remote)
    bad = pl.DataFrame({"time": [T0], "temp_c": ["hot"]})
    results = q.write_batches([(BatchKey("n1", "b", 0), {"accel": bad}), (BatchKey("n1", "b", 1), {"accel": frame(1)})])
    assert isinstance(results[0], SchemaError) and results[1] is True
    assert q.flush(10)
    assert temps(remote) == [1.0] * 3
    # the refused batch was not recorded: it can be sent again once fixed
    assert q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)}) is True
    q.close()


def _queue_files(q: QueuedStore) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in q.queue_dir.glob("q-*.arrow")}


def test_a_write_fills_a_spare_file_made_ahead_and_close_removes_the_unused_ones(tmp_path):
    remote = FakeRemote()
    remote.down.set()  # keep what is queued in place
    q = make(tmp_path, remote)
    q.open()
    for _ in range(200):  # made on a thread of their own
        if q._spares_upto:
            break
        time.sleep(0.01)
    spares = _queue_files(q)
    assert len(spares) == SPARES and set(spares.values()) == {0}
    first = min(spares)
    inode = (q.queue_dir / first).stat().st_ino
    assert q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)}) is True
    assert (q.queue_dir / first).stat().st_ino == inode  # written in place: no temp file, no rename
    assert (q.queue_dir / first).stat().st_size > 0
    q.close(drain_timeout=0)
    assert _queue_files(q) == {first: (q.queue_dir / first).stat().st_size}  # the queued batch stays


def test_a_queue_file_cut_short_by_a_crash_is_dropped_and_its_batch_taken_again(tmp_path):
    remote = FakeRemote()
    remote.down.set()
    q = make(tmp_path, remote)
    for i in range(3):
        assert q.write_batch(BatchKey("n1", "b", i), {"accel": frame(i)}) is True
    q.close(drain_timeout=0)
    files = sorted(p for p in (tmp_path / "queue").glob("q-*.arrow"))
    assert len(files) == 3
    os.truncate(files[1], files[1].stat().st_size - 10)  # a write interrupted by a crash: never acknowledged
    (tmp_path / "queue" / "q-00000000000000000099.arrow").touch()  # a spare left by a crash
    remote.down.clear()
    again = make(tmp_path, remote)
    again.open()
    assert not files[1].exists() and not (tmp_path / "queue" / "q-00000000000000000099.arrow").exists()
    assert again.write_batch(BatchKey("n1", "b", 1), {"accel": frame(1)}) is True  # the agent's retry is taken
    assert again.write_batch(BatchKey("n1", "b", 2), {"accel": frame(2)}) is False  # this one was kept
    assert again.flush(10)
    assert sorted(temps(remote)) == [float(i) for i in range(3) for _ in range(3)]
    again.close()


def test_a_damaged_queue_file_is_moved_aside_not_dropped(tmp_path):
    remote = FakeRemote()
    remote.down.set()
    q = make(tmp_path, remote)
    assert q.write_batch(BatchKey("n1", "b", 0), {"accel": frame(0)}) is True
    q.close(drain_timeout=0)
    (path,) = (tmp_path / "queue").glob("q-*.arrow")
    path.write_bytes(b"{not json\n" + path.read_bytes())
    again = make(tmp_path, remote)
    again.open()
    assert path.with_suffix(".bad").exists()
    again.close(drain_timeout=0)
