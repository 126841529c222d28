"""One contract for every spool: FIFO, bounded (drops the oldest, counts them), removal by key."""

from __future__ import annotations

import pytest

from agents.spool import DiskSpool, MemorySpool


@pytest.fixture(params=["memory", "disk"])
def make_spool(request, tmp_path):
    def make(max_bytes: int = 10_000):
        if request.param == "memory":
            return MemorySpool(max_bytes)
        return DiskSpool(tmp_path / "spool", max_bytes)

    return make


def drain(spool) -> list[bytes]:
    out = []
    while (entry := spool.peek()) is not None:
        out.append(entry[1])
        spool.remove(entry[0])
    return out


def test_batches_come_back_oldest_first(make_spool):
    s = make_spool()
    for i in range(5):
        s.append(f"batch{i}".encode())
    assert len(s) == 5
    assert drain(s) == [f"batch{i}".encode() for i in range(5)]
    assert len(s) == 0 and s.bytes_used == 0


def test_peek_does_not_remove(make_spool):
    s = make_spool()
    s.append(b"a")
    assert s.peek()[1] == b"a" and s.peek()[1] == b"a"


def test_a_full_spool_drops_the_oldest_and_counts_it(make_spool):
    s = make_spool(max_bytes=250)
    for i in range(5):
        s.append(bytes([i]) * 100)
    assert s.dropped_total == 3
    assert s.bytes_used <= 250
    assert [b[0] for b in drain(s)] == [3, 4]


def test_a_batch_larger_than_the_spool_is_dropped(make_spool):
    s = make_spool(max_bytes=10)
    s.append(b"x" * 11)
    assert len(s) == 0 and s.dropped_total == 1


def test_removing_a_missing_key_is_not_an_error(make_spool):
    s = make_spool()
    s.append(b"a")
    s.append(b"bb")
    used, dropped = s.bytes_used, s.dropped_total
    s.remove("nope")
    assert len(s) == 2 and s.bytes_used == used and s.dropped_total == dropped
    assert drain(s) == [b"a", b"bb"]  # the other entries are intact, still in order


def test_disk_spool_survives_a_restart_in_order(tmp_path):
    a = DiskSpool(tmp_path / "spool")
    for i in range(3):
        a.append(f"b{i}".encode())
    (tmp_path / "spool" / "half-written.batch.gz.tmp").write_bytes(b"junk")
    b = DiskSpool(tmp_path / "spool")
    assert drain(b) == [b"b0", b"b1", b"b2"]
    assert not list((tmp_path / "spool").glob("*.tmp"))


def test_disk_spool_sees_batches_another_process_dropped_in(tmp_path):
    agent = DiskSpool(tmp_path / "spool")
    agent.append(b"from-agent")
    DiskSpool(tmp_path / "spool").append(b"from-run-wrapper")
    assert drain(agent) == [b"from-agent", b"from-run-wrapper"]
