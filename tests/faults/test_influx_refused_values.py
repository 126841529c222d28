"""Issue 17 item 6: what InfluxDB would refuse is refused at ingest, before it is acknowledged.

A tag value ending in a backslash (line protocol cannot carry it), a 70,000-character tag (InfluxDB keeps
series keys under 64 KiB) and a time outside InfluxDB's range used to be answered 200 ``stored`` and then
ended up only in the queue's ``rejected.lp``. Now they are 422 naming the column and sample, for every
store (the rule does not depend on the backend), and nothing reaches ``rejected.lp``. A backslash anywhere
else is escaped correctly and round-trips through a real influxd.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from telemetry.batch import make_batch
from telemetry.errors import SchemaError
from telemetry.schema import conform
from telemetry.store.influx import InfluxConfig, InfluxStore
from telemetry.store.queued import QueuedStore
from tests.telemetry.store import conftest as influx_servers

pytestmark = pytest.mark.influx

# the real influxd fixtures of the store tests
influxd, influx_db, influx_url = influx_servers.influxd, influx_servers.influx_db, influx_servers.influx_url

TOKENS = {"node1": "token-node1-xxxxxxxx"}
NOW_NS = time.time_ns() // 10**9 * 10**9


def accel(device: str, t: int = NOW_NS) -> pl.DataFrame:
    return conform(pl.DataFrame({"time": [t], "device": [device], "temp_c": [41.5]}), "accel")


def post(collector, frame: pl.DataFrame, seq: int) -> httpx.Response:
    doc = make_batch("node1", "boot-1", seq, {"accel": frame})
    return httpx.post(f"{collector.url}/v1/batches", json=doc, headers=collector.headers("node1"), timeout=10)


def queue_dir(url: str) -> Path:
    return Path(url.split("queue=", 1)[1].split("&", 1)[0])


def wait_for_devices(url: str, n: int, timeout_s: float = 30.0) -> list[str]:
    reader = InfluxStore(InfluxConfig.from_url(url))
    deadline = time.monotonic() + timeout_s
    while True:
        got = reader.query("accel")
        if got.height >= n or time.monotonic() > deadline:
            return sorted(got["device"].to_list())
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (accel("gpu0\\"), "backslash"),
        (accel("g" * 70_000), "bytes"),
        (accel("gpu0", t=2**63 - 1), "time"),
    ],
    ids=["tag-ending-in-backslash", "70000-char-tag", "time-past-2262"],
)
def test_values_influxdb_refuses_are_422_at_ingest_and_never_acknowledged(collector_factory, influx_url, frame, says):
    collector = collector_factory(store=influx_url, tokens=TOKENS)
    r = post(collector, frame, 0)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["where"].startswith("frames[0].columns."), error
    assert error["where"].endswith("[0]"), error
    assert says in error["message"], error
    assert post(collector, accel("gpu\\1 ok"), 1).status_code == 200  # a backslash inside is fine
    assert wait_for_devices(influx_url, 1) == ["gpu\\1 ok"]
    assert not (queue_dir(influx_url) / "rejected.lp").exists()


def test_the_same_values_are_refused_on_the_embedded_store(collector_factory, tmp_path):
    collector = collector_factory(store=str(tmp_path / "embedded"), tokens=TOKENS)
    for seq, frame in enumerate([accel("gpu0\\"), accel("g" * 70_000), accel("gpu0", t=2**63 - 1)]):
        assert post(collector, frame, seq).status_code == 422


def test_a_direct_write_to_influxdb_refuses_them_before_queueing(influx_url):
    store = QueuedStore(InfluxStore(InfluxConfig.from_url(influx_url)), queue_dir(influx_url))
    try:
        for frame in (accel("gpu0\\"), accel("g" * 70_000)):
            with pytest.raises(SchemaError, match="device"):
                store.write("accel", frame)
        store.write("accel", accel("a\\b,c=d e"))
        assert store.flush(30)
        assert wait_for_devices(influx_url, 1) == ["a\\b,c=d e"]
        assert not (queue_dir(influx_url) / "rejected.lp").exists()
    finally:
        store.close()
