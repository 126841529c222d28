"""A collector of several processes (``--workers 2``) over real HTTP on loopback: two workers on one port, one
store writer. Batches from several clients are stored exactly once and counted once in /metrics (summed over the
processes, dead ones included), a killed worker is replaced, a store error is answered as one process answers it,
and SIGHUP reaches every worker."""

from __future__ import annotations

import errno
import os
import pickle
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from telemetry.batch import make_batch
from telemetry.collector.writer import loads, portable_error
from telemetry.errors import (
    InfluxWriteRejectedError,
    RejectedLine,
    SchemaError,
    StoreLockedError,
    StoreUnavailableError,
)
from telemetry.store.parquet import ParquetStore
from tests.conftest import NEIGHBORSCOPE
from tests.faults.conftest import fill, small_disk  # noqa: F401 - the real tmpfs fixture
from tests.telemetry.collector.test_http_ingest import accel_frame, post
from tests.telemetry.collector.test_metrics_promtool import promtool_problems

NODES = {f"node{i}": f"token-node{i}" for i in range(1, 5)}


def counters(collector) -> dict[str, float]:
    """``{sample with labels: value}`` of the collector's /metrics."""
    text = httpx.get(f"{collector.url}/metrics", timeout=10).text
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln and ln[0] != "#"}


def worker_pids(collector) -> dict[int, int]:
    """``{slot: pid}`` of the live workers, from the collector's log."""
    found: dict[int, int] = {}
    for slot, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", collector.log_path.read_text()):
        found[int(slot)] = int(pid)
    return {s: p for s, p in found.items() if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"}


def wait_for(cond, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def workers2(collector_factory):
    return collector_factory(tokens=NODES, extra_args=["--workers", "2"])


def send_from_clients(collector, boot: str, per_node: int) -> list[dict]:
    """Every node sends ``per_node`` batches from its own thread, each one twice (the agent's retry after a lost
    answer); the acknowledgements."""
    acks: list[dict] = []

    def node_sends(node: str) -> None:
        with httpx.Client(headers=collector.headers(node), timeout=10) as client:
            for seq in range(per_node):
                body = make_batch(node, boot, seq, {"accel": accel_frame(t0=1_700_000_000_000_000_000 + seq)})
                for _ in range(2):
                    r = client.post(f"{collector.url}/v1/batches", json=body)
                    assert r.status_code == 200, r.text
                    acks.append(r.json())

    threads = [threading.Thread(target=node_sends, args=(n,)) for n in NODES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acks


def test_batches_from_several_clients_are_stored_once_and_counted_once_over_the_workers(workers2):
    acks = send_from_clients(workers2, "boot-a", per_node=5)
    assert sorted(a["status"] for a in acks) == ["duplicate"] * 20 + ["stored"] * 20
    stored = ParquetStore(workers2.store).query("accel")
    assert stored.height == 20 * 6
    assert stored.group_by("node").len().sort("node")["len"].to_list() == [30] * 4
    got = counters(workers2)
    assert got['neighborscope_collector_batches_total{status="stored"}'] == 20
    assert got['neighborscope_collector_batches_total{status="duplicate"}'] == 20
    assert got['neighborscope_collector_rows_total{measurement="accel"}'] == 120
    assert got["neighborscope_collector_commit_group_batches_total"] == 40  # the writer's groups
    assert promtool_problems(httpx.get(f"{workers2.url}/metrics", timeout=10).text) == []


def test_a_killed_worker_is_replaced_and_the_counts_of_dead_workers_stay_in_the_sums(workers2):
    wait_for(lambda: len(worker_pids(workers2)) == 2)
    sent = 0
    for slot in (1, 2):  # kill each worker in turn: every batch before was counted by a process now dead
        assert post(workers2, make_batch("node1", "boot-k", sent, {"accel": accel_frame()})).status_code == 200
        sent += 1
        old = worker_pids(workers2)[slot]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda s=slot, o=old: worker_pids(workers2).get(s, o) != o)
    assert f"worker 2 (pid {old}) was killed by SIGKILL; restarting it" in workers2.log_path.read_text()
    assert post(workers2, make_batch("node1", "boot-k", sent, {"accel": accel_frame()})).status_code == 200
    assert counters(workers2)['neighborscope_collector_batches_total{status="stored"}'] == sent + 1
    assert ParquetStore(workers2.store).query("accel").height == (sent + 1) * 6
    assert workers2.stop() == 0  # the workers, then the writer, stopped cleanly
    assert not psutil.pid_exists(worker_pids(workers2).get(1, -1))


def test_a_full_disk_is_answered_by_a_worker_as_by_one_process_and_the_retry_is_stored_once(
    collector_factory,
    small_disk,  # noqa: F811 - the fixture
):
    store = str(small_disk / "store")
    batch = make_batch("node1", "boot-d", 0, {"accel": accel_frame(n=200)})
    answers = []
    for workers in ("1", "2"):  # the same store, one collector after the other, the same batch on a full disk
        collector = collector_factory(store=store, extra_args=["--workers", workers])
        filler = fill(small_disk)
        r = post(collector, batch)
        answers.append((r.status_code, r.headers.get("Retry-After"), r.json()))
        filler.unlink()
        if workers == "1":
            collector.stop()
    assert answers[0] == answers[1]
    assert answers[1][:2] == (503, "5") and answers[1][2]["error"]["code"] == "store_error", answers
    assert answers[1][2]["error"]["message"].startswith("writing batch node1.boot-d.000000000000 failed: ")
    assert post(collector, batch).json()["status"] == "stored"
    assert post(collector, batch).json()["status"] == "duplicate"
    assert ParquetStore(store).query("accel").height == 400
    assert counters(collector)['neighborscope_collector_rejects_total{reason="store_error"}'] == 1


def test_sighup_reloads_the_tokens_in_every_worker(collector_factory, tmp_path: Path):
    config = tmp_path / "collector.toml"
    config.write_text('[collector]\nworkers = 2\n\n[nodes.node1]\ntoken = "token-node1"\n')
    collector = collector_factory(tokens={}, extra_args=["--config", str(config)])
    wait_for(lambda: len(worker_pids(collector)) == 2)
    config.write_text(config.read_text() + '\n[nodes.node2]\ntoken = "token-node2"\n')
    os.kill(collector.proc.pid, signal.SIGHUP)
    wait_for(lambda: "reloaded" in collector.log_path.read_text())
    collector.tokens["node2"] = "token-node2"
    first = make_batch("node2", "boot-h", 99, {"accel": accel_frame()})
    wait_for(lambda: post(collector, first, node="node2").status_code == 200)  # the signal is on its way
    for seq in range(12):  # a new connection each: both workers take some
        body = make_batch("node2", "boot-h", seq, {"accel": accel_frame()})
        assert post(collector, body, node="node2").status_code == 200


@pytest.mark.parametrize(
    "exc",
    [
        SchemaError("not a number", "frames[0].columns.temp_c[4]"),
        StoreUnavailableError("InfluxDB is down", retry_after_s=3.0),
        InfluxWriteRejectedError([RejectedLine("accel temp_c=1", "field type conflict")], 2),  # its own __init__
        OSError(errno.EMFILE, "Too many open files"),
        StoreLockedError("store is locked", pid=7, owner="collector"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_store_error_reaches_the_worker_with_its_type_message_and_details(exc):
    back = loads(pickle.dumps(portable_error(exc)))
    assert type(back) is type(exc)
    assert (str(back), vars(back), back.args) == (str(exc), vars(exc), exc.args)
    assert getattr(back, "errno", None) == getattr(exc, "errno", None)


def test_a_second_collector_with_workers_on_a_held_store_is_refused_in_one_line(workers2, tmp_path: Path):
    done = subprocess.run(
        [*NEIGHBORSCOPE, "collector", "--store", workers2.store, "--port", "0", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: store {workers2.store} is already being written")
    assert "Traceback" not in done.stderr


def test_sigterm_drains_the_requests_in_flight_every_acknowledged_batch_is_stored(workers2):
    acked: list[tuple[str, int]] = []
    answers: list[int] = []
    stop = threading.Event()

    def node_sends(node: str) -> None:
        seq = 0
        while not stop.is_set():
            body = make_batch(node, "boot-t", seq, {"accel": accel_frame(n=50)})
            try:
                r = httpx.post(f"{workers2.url}/v1/batches", json=body, headers=workers2.headers(node), timeout=30)
            except httpx.TransportError:  # the listener is closed: not sent, not acknowledged
                return
            answers.append(r.status_code)
            if r.status_code == 200:
                acked.append((node, seq))
            seq += 1

    threads = [threading.Thread(target=node_sends, args=(n,)) for n in NODES]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 8)
    assert workers2.stop() == 0  # SIGTERM: the workers finish what they hold, then the writer stops
    stop.set()
    for t in threads:
        t.join()
    assert set(answers) == {200}, answers  # no request in flight was cut off or answered 503
    stored = ParquetStore(workers2.store).query("accel")
    assert stored.height == len(acked) * 100
    assert "collector: SIGTERM: stopping the workers, then the store writer" in workers2.log_path.read_text()
