"""Fault test over real HTTP: the agent streams to a collector that is killed (-9) for 20 s and restarted
on the same port and store; afterwards the store holds every sample exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from telemetry.store.factory import open_store
from tests.conftest import NEIGHBORSCOPE

PERIOD_NS = 200_000_000


def agent_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f"""
node = "node1"
[collector]
url = "{url}"
token = "token-node1"
[agent]
cadence_s = 0.2
flush_s = 0.5
spool_dir = "{tmp_path / "spool"}"
shutdown_timeout_s = 20
""")
    return path


def summary(stderr: str) -> dict:
    lines = [line for line in stderr.splitlines() if line.startswith("agent summary: ")]
    assert lines, stderr[-3000:]
    return json.loads(lines[-1].removeprefix("agent summary: "))


@pytest.mark.slow
def test_collector_killed_for_20_s_loses_and_duplicates_nothing(collector_factory, tmp_path):
    c = collector_factory()
    log = open(tmp_path / "agent.log", "w")  # noqa: SIM115 - closed below
    agent = subprocess.Popen(
        [*NEIGHBORSCOPE, "agent", "--config", str(agent_config(tmp_path, c.url))], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while "sampler(s) [" not in (tmp_path / "agent.log").read_text():  # started and ticking
            assert agent.poll() is None and time.monotonic() < deadline, (tmp_path / "agent.log").read_text()
            time.sleep(0.1)
        time.sleep(3)
        c.kill()
        time.sleep(20)
        assert any((tmp_path / "spool").iterdir()), "batches should wait in the spool during the outage"
        c.start()
        time.sleep(4)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
        log.close()
    stderr = (tmp_path / "agent.log").read_text()
    s = summary(stderr)
    assert s["delivered_all"] and s["spooled"] == 0 and s["dropped"] == 0 and s["rejected"] == 0
    assert "collector unavailable" in stderr and "collector reachable again" in stderr
    c.stop()
    store = open_store(c.store)
    try:
        for name, count in s["rows"].items():
            assert store.query(name, tags={"node": "node1"}).height == count, name
        host_times = store.query("host", tags={"node": "node1"})["time"].dt.epoch("ns").to_list()
        assert len(host_times) == len(set(host_times))  # nothing stored twice
        assert all(t % PERIOD_NS == 0 for t in host_times)  # one clock: tick times, aligned
        span = (host_times[-1] - host_times[0]) // PERIOD_NS + 1
        assert len(host_times) == span - s["missed_ticks"]  # no gap across the outage
        assert len(host_times) >= 25 * 5  # at least the 27 s after the agent started ticking, at 5 ticks/s
    finally:
        store.close()
