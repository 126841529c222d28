"""The collector's hot path made leaner (docs/collector-performance.md): commit pacing, the kind-at-a-time
validation of plainly valid frames, and the garbage-collector settings of a collector process. Each against
the real components: a real `ParquetStore` on disk, the real validator on agents' batches."""

from __future__ import annotations

import asyncio
import gc
import math
import time
import weakref

import httpx
import pytest

from telemetry import batch as batch_mod
from telemetry.batch import make_batch, validate_columns
from telemetry.collector.commit import GroupCommitter
from telemetry.collector.server import GC_GEN0_THRESHOLD, tune_gc
from telemetry.errors import SchemaError
from telemetry.schema import measurement
from telemetry.store.base import BatchKey
from telemetry.store.parquet import ParquetStore

T0 = 1_700_000_000_000_000_000


def accel_columns(n: int = 4, t0: int = T0, **extra) -> dict:
    cols = {
        "time": [t0] * n,
        "device": [f"gpu{d}" for d in range(n)],
        "vendor": ["nvidia"] * n,
        "model": ["H100"] * n,
        "temp_c": [40.0 + d for d in range(n)],
        "power_w": [300.0] * n,
        "pcie_link_gen": [5] * n,
        "throttle_thermal": [False] * n,
    }
    cols.update(extra)
    return cols


def slow_path(node: str, frames: list[tuple[str, dict]]) -> list[tuple[dict, int]]:
    """What the column-by-column validator makes of each frame (the reference for the fast path)."""
    out = []
    for i, (name, cols) in enumerate(frames):
        m = measurement(name)
        out.append(
            batch_mod._checked_columns(m, batch_mod._kinds(m), m.polars_schema(), cols, len(cols["time"]), f"f{i}")
        )
    return out


# ---- validation: the fast path gives what the column-by-column path gives --------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"temp_c": [40.0, None, 41.0, None]},  # nulls in a float column
        {"power_w": [math.nan, 1.0, math.inf, 2.0]},  # NaN / infinities: stored as null, not counted
        {"pcie_link_gen": [None, None, None, None]},  # an all-null int column
        {"model": [None, "H100", "", "H100"]},  # null and empty tag values
    ],
)
def test_plain_frames_validate_as_column_by_column(extra):
    cols = accel_columns(**extra)
    got = validate_columns("node1", [("accel", cols)])["accel"]
    ((checked, values),) = slow_path("node1", [("accel", cols)])
    assert got.field_values == values
    (n, got_cols), *_ = got.parts
    assert n == 4
    assert {k: v for k, v in got_cols.items() if k != "node"} == checked


def test_frame_needing_a_conversion_takes_the_column_path():
    cols = accel_columns(temp_c=[40, 41, 42, 43])  # integers in a float column: converted, a Series
    got = validate_columns("node1", [("accel", cols)])["accel"]
    assert got.frame()["temp_c"].to_list() == [40.0, 41.0, 42.0, 43.0]
    assert batch_mod._plain_frame(measurement("accel"), batch_mod._kinds(measurement("accel")), cols, 4) is None


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"temp_c": [1.0, "hot", 2.0, 3.0]}, "frames[0].columns.temp_c[1]"),
        ({"pcie_link_gen": [5, 5, 2.5, 5]}, "frames[0].columns.pcie_link_gen[2]"),
        ({"throttle_thermal": [False, 1, False, False]}, "frames[0].columns.throttle_thermal[1]"),
        ({"power_w": [1.0, 2.0]}, "frames[0].columns.power_w"),
        ({"bogus_field": [1.0] * 4}, "frames[0].columns.bogus_field"),
        ({"device": ["gpu0", "gpu1\n", "gpu2", "gpu3"]}, "frames[0].columns.device[1]"),
    ],
)
def test_bad_values_are_still_named_by_sample(extra, where):
    validate_columns("node1", [("accel", accel_columns())])  # the good values are known (cached) first
    with pytest.raises(SchemaError) as err:
        validate_columns("node1", [("accel", accel_columns(**extra))])
    assert err.value.where == where


def test_a_bad_tag_value_is_refused_even_beside_known_good_ones(monkeypatch):
    monkeypatch.setattr(batch_mod, "_GOOD_TAGS_MAX", 8)  # the cache of good tag values starts over when full
    for i in range(20):
        validate_columns("node1", [("accel", accel_columns(model=[f"m{i}"] * 4))])
    assert len(batch_mod._GOOD_TAGS) <= 8 + 4
    with pytest.raises(SchemaError) as err:
        validate_columns("node1", [("accel", accel_columns(model=["m19", "m19\\", "m19", "m19"]))])
    assert err.value.where == "frames[0].columns.model[1]"
    assert "backslash" in str(err.value)


# ---- commit pacing ------------------------------------------------------------------------------------


def _batch(seq: int) -> tuple[BatchKey, dict]:
    return BatchKey("node1", "boot", seq), validate_columns("node1", [("accel", accel_columns(t0=T0 + seq * 10**9))])


def test_busy_committer_paces_groups_and_a_lone_sender_is_not_paced(tmp_path):
    store = ParquetStore(tmp_path / "store")
    pace = 5.0  # busy: the next group starts 1 to 5 s after the previous one's start

    async def scenario() -> dict:
        c = GroupCommitter(store, min_interval_s=0.0, pace_s=pace)
        t = time.monotonic()
        for seq in range(3):  # one sender, back to back: groups of one, never paced
            await c.write(*_batch(seq))
        lone = time.monotonic() - t
        t = time.monotonic()
        await asyncio.gather(*(c.write(*_batch(seq)) for seq in range(3, 13)))  # ten at once: one group
        after_busy = time.monotonic()
        await c.write(*_batch(13))  # right after a group of ten: waits for its pace
        paced = time.monotonic() - after_busy
        return {"lone": lone, "paced": paced, "commits": c.commits, "committed": c.committed}

    got = asyncio.run(scenario())
    store.close()
    assert got["committed"] == 14
    assert got["commits"] == 5  # three alone, the ten together, the last one
    assert got["lone"] < 2.0  # three commits, none held back (paced, the second and third would wait >= 1 s each)
    assert got["paced"] >= 0.7  # held until >= pace / 5 (1 s) after the busy group's start
    assert ParquetStore(tmp_path / "store").query("accel").height == 14 * 4


def test_collector_reports_its_commit_groups(collector):
    for seq in range(3):
        body = make_batch("node1", "boot-g", seq, {"accel": [{"time": T0 + seq, "device": "gpu0", "temp_c": 40.0}]})
        r = httpx.post(f"{collector.url}/v1/batches", json=body, headers=collector.headers("node1"), timeout=10)
        assert r.status_code == 200, r.text
    text = httpx.get(f"{collector.url}/metrics", timeout=10).text
    values = {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in text.splitlines() if ln and not ln.startswith("#")}
    assert values["neighborscope_collector_commit_group_batches_total"] == 3
    assert 1 <= values["neighborscope_collector_commit_groups_total"] <= 3


# ---- garbage collector --------------------------------------------------------------------------------


class _Node:
    me: object = None


def test_tune_gc_freezes_the_start_heap_and_raises_the_threshold():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 1000  # the imports' objects: out of every collection's walk
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
        cycle = _Node()
        cycle.me = cycle
        alive = weakref.ref(cycle)
        del cycle
        gc.collect()  # cycles made after the freeze are still collected
        assert alive() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


# ---- one write per response ---------------------------------------------------------------------------------


def test_a_responses_head_waits_for_its_body_and_goes_out_in_one_write():
    """`_OneWriteResponses` over a real socket pair: the head is held until the body (one send), an answer
    without a body is still sent on the loop's next turn, and order is kept with any other write and a close."""
    import socket

    from telemetry.collector.protocol import _OneWriteResponses

    async def scenario() -> list[bytes]:
        loop = asyncio.get_running_loop()
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        t = _OneWriteResponses(transport, loop)
        seen = []

        def readable() -> bytes:
            try:
                return peer.recv(65536)
            except BlockingIOError:
                return b""

        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        seen.append(readable())  # held: nothing on the wire yet
        t.write(b"{}")
        await asyncio.sleep(0.01)
        seen.append(readable())  # head and body together
        t.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # no body follows
        await asyncio.sleep(0.01)
        seen.append(readable())
        t.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        t.write(b"raw")  # another write: after the held head
        t.close()
        await asyncio.sleep(0.01)
        seen.append(readable())
        peer.close()
        return seen

    assert asyncio.run(scenario()) == [
        b"",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 408 Request Timeout\r\n\r\nraw",
    ]


def test_a_store_whose_commit_is_cheap_caps_the_pace_and_the_queue_is_such_a_store(tmp_path):
    from telemetry.collector.commit import GroupCommitter
    from telemetry.store.influx import InfluxConfig, InfluxStore
    from telemetry.store.queued import QueuedStore

    queue = QueuedStore(InfluxStore(InfluxConfig(url="http://127.0.0.1:9")), tmp_path / "queue")
    assert GroupCommitter(queue, pace_s=0.05).pace_s == queue.commit_pace_s < 0.05
    assert GroupCommitter(queue, pace_s=0.001).pace_s == 0.001  # a smaller configured pace stays
    assert GroupCommitter(object(), pace_s=0.05).pace_s == 0.05  # a store without one: the configured pace
