"""Scale-out: two collectors (each with its own durable queue) behind one InfluxDB. Twenty agents send
interleaved batches, alternating between the collectors, and replay some batches at BOTH; InfluxDB ends
with every sample exactly once (a replay that reaches the other collector is the same point - same
series, same timestamp - so InfluxDB's overwrite keeps one copy)."""

from __future__ import annotations

import random
import threading

import httpx
import numpy as np
import polars as pl
import pytest

from telemetry.batch import make_batch
from telemetry.schema import conform
from telemetry.store.influx import InfluxConfig, InfluxStore

pytestmark = pytest.mark.influx

AGENTS = 20
BATCHES_PER_AGENT = 6
DEVICES = 4
TICKS = 5
T0 = 1_763_600_000_000_000_000


def frames(agent: int, seq: int) -> dict[str, pl.DataFrame]:
    times = np.repeat(T0 + (seq * TICKS + np.arange(TICKS, dtype=np.int64)) * 10**9, DEVICES)
    n = len(times)
    accel = conform(
        pl.DataFrame(
            {
                "time": times,
                "node": [f"node{agent:02d}"] * n,
                "device": [f"gpu{d}" for d in range(DEVICES)] * TICKS,
                "temp_c": np.round(40 + np.random.default_rng(agent * 1000 + seq).random(n) * 40, 3),
                "power_w": np.full(n, 300.0 + agent),
            }
        ),
        "accel",
    )
    return {"accel": accel}


def test_two_collectors_twenty_agents_replays_at_both_every_sample_exactly_once(
    collector_factory, influxd, influx_db, tmp_path
):
    tokens = {f"node{a:02d}": f"token-node{a:02d}-xxxxxxxx" for a in range(AGENTS)}
    url = f"influx://127.0.0.1:{influxd.http_port}/{influx_db}"
    collectors = [
        collector_factory(store=f"{url}?queue={tmp_path / f'queue{i}'}&artifacts={tmp_path / f'art{i}'}", tokens=tokens)
        for i in range(2)
    ]
    rng = random.Random(7)
    replayed: list[tuple[int, int]] = []
    errors: list[str] = []

    def agent(a: int) -> None:
        node = f"node{a:02d}"
        with httpx.Client(timeout=30) as client:
            for seq in range(BATCHES_PER_AGENT):
                body = make_batch(node, f"boot-{a}", seq, frames(a, seq))
                targets = [collectors[(a + seq) % 2]]
                if rng.random() < 0.4:  # a replay, as after a lost acknowledgement: to both collectors
                    targets = collectors[:]
                    replayed.append((a, seq))
                for c in targets:
                    r = client.post(
                        f"{c.url}/v1/batches", json=body, headers={"Authorization": f"Bearer {tokens[node]}"}
                    )
                    if r.status_code != 200:
                        errors.append(f"{node} seq {seq}: {r.status_code} {r.text}")

    threads = [threading.Thread(target=agent, args=(a,)) for a in range(AGENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert replayed, "the test must replay some batches at both collectors"
    for c in collectors:
        c.stop()  # SIGTERM: each drains its queue into InfluxDB before it exits

    expected = AGENTS * BATCHES_PER_AGENT * TICKS * DEVICES
    rows = influxd.select(influx_db, 'SELECT count("temp_c") FROM "accel" GROUP BY "node"')
    counts = {r["node"]: r["count"] for r in rows}
    assert counts == {f"node{a:02d}": BATCHES_PER_AGENT * TICKS * DEVICES for a in range(AGENTS)}
    got = InfluxStore(InfluxConfig.from_url(url)).query("accel")
    assert got.height == expected
    assert got.select("node", "device", "time").n_unique() == expected  # no sample twice
    want = pl.concat([frames(a, s)["accel"] for a in range(AGENTS) for s in range(BATCHES_PER_AGENT)])
    joined = want.join(got, on=["node", "device", "time"], how="left", suffix="_db")
    assert joined["temp_c"].equals(joined["temp_c_db"].alias("temp_c"))  # the values arrived as sent
