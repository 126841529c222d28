"""Issue 17.4: a full spool disk never stops the agent.

On ENOSPC the spool drops its oldest batches (counted in ``dropped_total`` and the ``agent`` health row, logged
once per episode), leaves no ``.tmp`` file, keeps sampling, recovers when space returns, and shutdown never
raises. The disk is a real tmpfs mounted by the test (root); one test injects ENOSPC at the write boundary
instead, so the behaviour is also checked where mounting is not allowed.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agents import spool as spool_module
from agents.agent import Agent, Built
from agents.config import parse_config
from agents.samplers.host import HostSampler
from agents.spool import DiskSpool
from tests.conftest import NEIGHBORSCOPE
from tests.faults.conftest import PAGE, fill

T_NS = 1_772_841_600_000_000_000


def batch(i: int) -> bytes:
    return f"{i:06d}".encode() + os.urandom(3000)  # one page on disk each, incompressible


def test_a_full_spool_disk_drops_the_oldest_batches_and_recovers_when_space_returns(small_disk):
    spool = DiskSpool(small_disk / "spool", max_bytes=2**30)  # the disk is the limit, not max_bytes
    filler = fill(small_disk, leave_bytes=6 * PAGE)
    for i in range(30):
        spool.append(batch(i))  # never raises
    assert spool.dropped_total > 0 and spool.write_failing is True
    assert not list((small_disk / "spool").glob("*.tmp"))
    kept = []
    while (entry := spool.peek()) is not None:
        kept.append(int(entry[1][:6]))
        spool.remove(entry[0])
    assert kept == sorted(kept) and kept[-1] == 29  # the newest survive, in order: the oldest were dropped
    assert len(kept) + spool.dropped_total == 30
    for i in range(30, 36):  # the disk is full again (the spool is empty): the new batch itself is dropped
        spool.append(batch(i))
    filler.unlink()  # space returns
    dropped = spool.dropped_total
    for i in range(36, 56):
        spool.append(batch(i))
    assert spool.dropped_total == dropped and spool.write_failing is False
    assert len(spool) >= 20


def test_a_full_disk_with_nothing_left_to_drop_drops_the_new_batch_and_says_so_once(small_disk, caplog):
    spool = DiskSpool(small_disk / "spool", max_bytes=2**30)
    fill(small_disk)
    for i in range(10):
        spool.append(batch(i))
    assert spool.dropped_total == 10 and spool.write_failing is True and len(spool) == 0
    assert not list((small_disk / "spool").glob("*.tmp"))
    full = [r for r in caplog.records if "no space left for the spool" in r.getMessage()]
    assert len(full) == 1  # logged once per episode, not once per batch


def test_disk_full_injected_enospc_at_the_write_boundary_leaves_no_tmp_file(tmp_path, monkeypatch):
    """The same contract where no tmpfs can be mounted: the batch file's write fails half-way with ENOSPC."""
    spool = DiskSpool(tmp_path / "spool", max_bytes=2**30)
    for i in range(5):
        spool.append(batch(i))
    real_open = open
    room = {"writes": 2}  # two more batch files fit, then the disk is full

    class HalfWritten:
        def __init__(self, path, mode):
            self.fh = real_open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data: bytes) -> int:
            if room["writes"] <= 0:
                self.fh.write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            room["writes"] -= 1
            return self.fh.write(data)

    monkeypatch.setattr(spool_module, "open", HalfWritten, raising=False)
    for i in range(5, 12):
        spool.append(batch(i))
    assert not list((tmp_path / "spool").glob("*.tmp"))
    # deleting files frees nothing on this fake disk: every old batch went, then each new one
    assert spool.dropped_total == 12 and len(spool) == 0 and spool.write_failing
    monkeypatch.undo()  # space returns
    spool.append(batch(12))
    assert spool.write_failing is False and len(spool) == 1 and spool.dropped_total == 12


def test_shutdown_never_raises_and_reports_the_drops_when_the_disk_is_full(small_disk):
    cfg = parse_config(
        {"node": "n1", "agent": {"cadence_s": 0.1, "flush_s": 0.1, "spool_dir": str(small_disk / "spool")}}
    )
    agent = Agent(cfg, [Built(HostSampler(per_core=False), 0.1)])
    fill(small_disk)
    summary = agent.run(threading.Event(), max_ticks=10)  # flush + shutdown on a full disk
    assert summary["dropped"] >= 10 and summary["spooled"] == 0
    assert not list((small_disk / "spool").glob("*.tmp"))


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in (log := path.read_text()):
        assert proc.poll() is None, f"the agent exited ({proc.returncode}):\n{log[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log[-3000:]}"
        time.sleep(0.1)
    return log


@pytest.mark.slow
def test_the_agent_process_keeps_sampling_through_a_full_spool_disk_and_exits_cleanly(small_disk, tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(f"""
node = "node1"
[collector]
url = "http://127.0.0.1:9"   # nothing listens: every batch stays in the spool
[agent]
cadence_s = 0.1
flush_s = 0.1
spool_dir = "{small_disk / "spool"}"
shutdown_timeout_s = 1
[samplers.host]
per_core = false
""")
    log_path = tmp_path / "agent.log"
    with open(log_path, "w") as log:
        agent = subprocess.Popen(
            [*NEIGHBORSCOPE, "agent", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for(log_path, "sampler(s) [", agent)
        filler = fill(small_disk)
        _wait_for(log_path, "no space left for the spool", agent)
        time.sleep(2)  # still running, still sampling, dropping the oldest
        assert agent.poll() is None
        filler.unlink()
        _wait_for(log_path, "writable again", agent)
        fill(small_disk)  # full again at shutdown: flush and drain must not raise
        time.sleep(1)
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(60)
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert text.count("no space left for the spool") == 2  # once per episode
    summary = json.loads([ln for ln in text.splitlines() if ln.startswith("agent summary: ")][-1].split(": ", 1)[1])
    assert summary["dropped"] > 0
    assert not list((small_disk / "spool").glob("*.tmp"))
    health = []  # the agent's health rows carry the drop count (what the collector will see)
    for p in sorted((small_disk / "spool").glob("*.batch.gz")):
        doc = json.loads(gzip.decompress(p.read_bytes()))
        for f in doc["frames"]:
            if f["measurement"] == "agent" and "spool_dropped_total" in f["columns"]:
                health += [v for v in f["columns"]["spool_dropped_total"] if v is not None]
    assert health and max(health) > 0


def test_the_drops_show_in_the_agents_prometheus_metrics(small_disk):
    from agents.metrics import prometheus_text

    cfg = parse_config(
        {
            "node": "n1",
            "agent": {"cadence_s": 0.1, "flush_s": 0.1, "metrics_port": 1, "spool_dir": str(small_disk / "spool")},
        }
    )
    agent = Agent(cfg, [Built(HostSampler(per_core=False), 0.1)])  # metrics are served only by run()
    fill(small_disk)
    for i in range(3):
        agent.flush(T_NS + i * 10**8)
    text = prometheus_text(agent.latest).decode()
    assert 'neighborscope_agent_spool_dropped_total{node="n1",sampler="spool"} 2.0' in text  # the 3rd is counted next
    assert 'neighborscope_agent_ok{node="n1",sampler="spool"} 0.0' in text
    agent.sender.stop()
    for r in agent.runners:
        r.stop()
