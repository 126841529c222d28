"""Agent batches through a real `neighborscope collector --store influx://...` into a real influxd, read back
with InfluxQL; and the fault test: InfluxDB down for 30 s during the stream loses nothing, stores nothing twice."""

from __future__ import annotations

import threading
import time

import httpx
import polars as pl
import pytest

from telemetry.batch import make_batch
from telemetry.schema import conform
from telemetry.store.influx import InfluxConfig, InfluxStore
from tests.telemetry.store.test_influx import HOSTILE, accel_frame

pytestmark = pytest.mark.influx

TOKENS = {"node1": "token-node1-xxxxxxxx"}


def reader(url: str) -> InfluxStore:
    return InfluxStore(InfluxConfig.from_url(url))


def wait_for_rows(store: InfluxStore, measurement: str, rows: int, timeout_s: float = 60.0) -> pl.DataFrame:
    deadline = time.monotonic() + timeout_s
    got = store.query(measurement)
    while got.height < rows and time.monotonic() < deadline:
        time.sleep(0.2)
        got = store.query(measurement)
    return got


def post(collector, payload: dict) -> httpx.Response:
    return httpx.post(f"{collector.url}/v1/batches", json=payload, headers=collector.headers("node1"), timeout=10)


def test_agent_batches_round_trip_through_the_collector(collector_factory, influx_url):
    collector = collector_factory(store=influx_url, tokens=TOKENS)
    sent = [accel_frame(seed=s, n=20, node="node1", t0=1_763_600_000_123_456_789 + s * 10**11) for s in range(3)]
    for seq, frame in enumerate(sent):
        r = post(collector, make_batch("node1", "boot-1", seq, {"accel": frame}))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stored"
    r = post(collector, make_batch("node1", "boot-1", 1, {"accel": sent[1]}))
    assert r.json()["status"] == "duplicate"
    want = pl.concat(sent).sort("time")
    got = wait_for_rows(reader(influx_url), "accel", want.height)
    assert got.equals(want)
    assert set(got["device"]) == set(HOSTILE)


def test_line_protocol_written_to_the_collector_lands_in_influxdb(collector_factory, influx_url):
    collector = collector_factory(store=influx_url, tokens=TOKENS)
    body = "host,node=node1 load1=0.5,cpu_util_pct=12.25,procs_running=3i 1763600000000000001\n"
    r = httpx.post(
        f"{collector.url}/api/v2/write",
        params={"bucket": "x", "precision": "ns"},
        content=body,
        headers=collector.headers("node1"),
        timeout=10,
    )
    assert r.status_code == 204, r.text
    got = wait_for_rows(reader(influx_url), "host", 1)
    assert got.select("load1", "cpu_util_pct", "procs_running").row(0) == (0.5, 12.25, 3)
    assert got["time"].dt.epoch("ns")[0] == 1763600000000000001


@pytest.mark.slow
def test_influxdb_down_for_30s_loses_nothing_and_stores_nothing_twice(collector_factory, own_influxd, tmp_path):
    db = own_influxd.create_database()
    url = f"influx://127.0.0.1:{own_influxd.http_port}/{db}?queue={tmp_path / 'queue'}&retry_max_s=1&timeout=2"
    collector = collector_factory(store=url, tokens=TOKENS)
    acked: dict[int, pl.DataFrame] = {}
    stop = threading.Event()
    errors: list[str] = []
    t0 = 1_763_600_000_000_000_000

    def agent() -> None:  # posts one batch per 50 ms, retries a batch until it is acknowledged
        seq = 0
        while not stop.is_set():
            frame = conform(
                pl.DataFrame(
                    {
                        "time": [t0 + seq * 50_000_000] * 4,
                        "node": ["node1"] * 4,
                        "device": [f"gpu{d}" for d in range(4)],
                        "temp_c": [float(seq)] * 4,
                        "power_w": [float(seq * 10 + d) for d in range(4)],
                    }
                ),
                "accel",
            )
            try:
                r = post(collector, make_batch("node1", "boot-f", seq, {"accel": frame}))
            except httpx.HTTPError as exc:
                errors.append(str(exc))
                continue
            if r.status_code == 200:
                acked[seq] = frame
                seq += 1
            else:
                errors.append(r.text)
            time.sleep(0.05)

    thread = threading.Thread(target=agent)
    thread.start()
    try:
        time.sleep(2)
        own_influxd.stop()
        before_outage = len(acked)
        time.sleep(30)
        during_outage = len(acked) - before_outage
        own_influxd.restart_same_port()
        time.sleep(2)
    finally:
        stop.set()
        thread.join(30)
    # an agent replaying batches it already got acknowledged (lost acks): answered duplicate, stored once
    for seq in (0, len(acked) // 2, len(acked) - 1):
        r = post(collector, make_batch("node1", "boot-f", seq, {"accel": acked[seq]}))
        assert r.json()["status"] == "duplicate"

    want = pl.concat(acked.values()).sort("time", "device")
    got = wait_for_rows(reader(url), "accel", want.height, timeout_s=90).sort("time", "device")
    assert not errors, errors[:3]  # the collector kept acknowledging while InfluxDB was down
    assert during_outage > 50  # batches were acknowledged during the outage too
    counts = own_influxd.select(db, 'SELECT count("temp_c") FROM "accel"')
    assert counts[0]["count"] == want.height
    assert got.select(want.columns).equals(want)


def test_batches_acknowledged_before_a_kill_9_reach_influxdb_after_restart(collector_factory, own_influxd, tmp_path):
    db = own_influxd.create_database()
    url = f"influx://127.0.0.1:{own_influxd.http_port}/{db}?queue={tmp_path / 'queue'}&retry_max_s=0.5&timeout=2"
    own_influxd.stop()  # nothing can be sent: every acknowledged batch is only in the local queue
    first = collector_factory(store=url, tokens=TOKENS)
    sent = [accel_frame(seed=s, n=10, node="node1", t0=1_763_600_000_000_000_000 + s * 10**11) for s in range(5)]
    for seq, frame in enumerate(sent):
        assert post(first, make_batch("node1", "boot-k", seq, {"accel": frame})).json()["status"] == "stored"
    first.kill()
    own_influxd.restart_same_port()
    second = collector_factory(store=url, tokens=TOKENS)
    # the agent never got the last ack (say): its replay is recognised from the queue on disk
    assert post(second, make_batch("node1", "boot-k", 4, {"accel": sent[4]})).json()["status"] == "duplicate"
    want = pl.concat(sent).sort("time")
    assert wait_for_rows(reader(url), "accel", want.height).equals(want)
