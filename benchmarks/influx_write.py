"""InfluxDB write throughput, in one run against one real influxd (Debian's 1.x, started in a temp dir):

1. collector: agents' gzip JSON batches over HTTP into `neighborscope collector --store influx://...` (auth,
   validation, durable local queue with fsync, in-order drain), timed until InfluxDB has answered 204 to every
   queued batch (the collector's queue gauge is 0; the point count is checked after the clock stops); the
   ``--clients`` agents (default 10: one per node, each sending only its node's batches, in order, as a
   fleet's agents do) share one asyncio loop, each with its own keep-alive connection, and send their next
   batch once the last one is acknowledged (a cheap client: the CPU goes to the collector and InfluxDB);
2. direct: `influx -import`-style POSTs of the same data as pre-encoded line protocol, 5000 lines a request;
3. influxdb-client's DataFrame path: its pandas serializer (``DataframeSerializer``) on the same frames, then
   POSTs of the lines it produced to /write (its WriteApi speaks only /api/v2/write, which 1.x before 1.8
   does not serve: 404).

    python benchmarks/influx_write.py [--batches 300] [--ticks 10] [--clients 10] [--repeat 3]

Points = lines of line protocol (one per row per measurement). Target (issue 4): the collector within 20 %
of the direct rate; issue 21: within 5 %.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetry.batch import encode_batch
from telemetry.collector.process import running_collector
from telemetry.line_protocol import encode_lines
from telemetry.schema import MEASUREMENTS, conform
from tests.telemetry.store.conftest import InfluxServer, find_binary

ROOT = Path(__file__).resolve().parent.parent  # the tree benchmarked (its collector runs from it)
ACCEL_FIELDS = [
    "temp_c", "temp_mem_c", "power_w", "energy_j", "pcie_tx_bytes_per_s", "pcie_rx_bytes_per_s", "pcie_link_gen",
    "pcie_link_width", "util_pct", "mem_used_bytes", "mem_total_bytes", "sm_clock_mhz", "mem_clock_mhz",
    "throttle_thermal", "throttle_power", "throttle_other",
]  # fmt: skip
DEVICES = 34
LINES_PER_POST = 5000
STORE_GZIP_OFF = "store alone: queue + drain, no HTTP (gzip off)"
DIRECT = "direct line-protocol POSTs (influx -import style)"
COLLECTOR = "collector (HTTP, queue, drain)"
BASELINE = "collector, baseline tree"
MODES = ("direct", "collector", "store-gzip", "store", "client")  # in the order of the runs in main()


def node_frames(node: str, t0_ns: int, ticks: int, rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    n = ticks * DEVICES
    cols: dict[str, object] = {
        "time": np.repeat(t0_ns + np.arange(ticks, dtype=np.int64) * 10**9, DEVICES),
        "device": [f"gpu{i}" for i in range(DEVICES)] * ticks,
        "node": [node] * n,
        "vendor": ["amd"] * n,
    }
    for f in ACCEL_FIELDS:
        kind = MEASUREMENTS["accel"].field_index[f].kind
        cols[f] = (
            rng.random(n) < 0.05 if kind == "bool" else rng.integers(1, 16, n) if kind == "int" else rng.random(n) * 100
        )
    host = {
        "time": t0_ns + np.arange(ticks, dtype=np.int64) * 10**9,
        "node": [node] * ticks,
        "cpu_util_pct": rng.random(ticks) * 100,
        "load1": rng.random(ticks) * 8,
        "mem_used_bytes": rng.random(ticks) * 1e11,
    }
    return {"accel": conform(pl.DataFrame(cols), "accel"), "host": conform(pl.DataFrame(host), "host")}


def count_points(server: InfluxServer, db: str) -> int:
    total = 0
    for m, field in (("accel", "temp_c"), ("host", "load1")):
        rows = server.select(db, f'SELECT count("{field}") FROM "{m}"')
        total += rows[0]["count"] if rows else 0
    return total


def queue_depth(client: httpx.Client) -> float:
    """Batches the collector still holds in its local queue (its /metrics gauge): 0 once InfluxDB has taken
    every acknowledged batch. Read instead of counting points in InfluxDB while the clock runs, since every
    InfluxQL count over the run's points costs InfluxDB about 0.1 s of CPU, taken from the writes it times."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("neighborscope_store_queued_batches "):
            return float(line.split()[1])
    raise RuntimeError("the collector's /metrics has no neighborscope_store_queued_batches gauge")


def post_lines(base_url: str, db: str, bodies: list[bytes]) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for body in bodies:
            r = client.post("/write", params={"db": db, "precision": "ns"}, content=body)
            if r.status_code != 204:
                raise RuntimeError(f"/write answered {r.status_code}: {r.text}")


def chunks(lines: list[str], size: int) -> list[bytes]:
    return [("\n".join(lines[i : i + size]) + "\n").encode() for i in range(0, len(lines), size)]


def _run_agents(host: str, port: int, bodies: list[tuple[str, bytes]], clients: int) -> None:
    """``clients`` agents on one asyncio loop, each on its own keep-alive HTTP/1.1 connection (raw streams:
    a cheap client, so the CPU of this 2-core box goes to the collector and InfluxDB), each sending the
    next batch once the last one is acknowledged (HTTP 200, else the run fails)."""
    import asyncio

    async def agent(todo: list[int]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in todo:
                node, body = bodies[i]
                writer.write(
                    f"POST /v1/batches HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                    f"Content-Encoding: gzip\r\nAuthorization: Bearer token-{node}-xxxx\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                length = next((int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:")), 0)
                answer = await reader.readexactly(length)
                if head[0].split(" ")[1] != "200":
                    raise RuntimeError(f"collector answered {head[0]}: {answer!r}")
        finally:
            writer.close()

    async def main() -> None:
        await asyncio.gather(*(agent(list(range(c, len(bodies), clients))) for c in range(clients)))

    asyncio.run(main())


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (every thread)."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


@contextmanager
def code_tree(tree: Path | None) -> Iterator[None]:
    """Child processes started meanwhile (the collector) import neighborscope from ``tree`` (None: the tree this
    benchmark is in, whichever one the environment has installed)."""
    tree = tree or ROOT
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree) + (os.pathsep + old if old else "")
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def run_collector(
    server: InfluxServer,
    db: str,
    work: Path,
    batches,
    nodes,
    clients: int,
    points: int,
    tree: Path | None = None,
    py_spy: Path | None = None,
    commit_pace_s: float | None = None,
) -> float:
    bodies = [(node, encode_batch(node, "bench", b, frames, compresslevel=1)) for node, b, frames in batches]
    url = f"influx://127.0.0.1:{server.http_port}/{db}?queue={work / f'queue-{db}'}&retry_max_s=1"
    tokens = {n: f"token-{n}-xxxx" for n in nodes}
    log = work / f"collector-{db}.log"
    extra: list[str] = []
    if commit_pace_s is not None:
        conf = work / f"collector-{db}.toml"
        conf.write_text(f"[collector]\ncommit_pace_s = {commit_pace_s}\n")
        extra = ["--config", str(conf)]
    with (
        code_tree(tree),
        running_collector(url, work, tokens=tokens, extra_args=extra, timeout_s=120, log=log) as collector,
    ):
        base = collector.url
        proc = collector.proc
        assert proc is not None
        spy = None
        if py_spy is not None:  # sampled from the first batch on: --threads --idle, collapsed stacks
            spy = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(proc.pid), "--threads",
                 "--idle", "--nonblocking", "--rate", "250", "--format", "raw", "--output", str(py_spy)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)
        cpu0 = cpu_s(proc.pid)
        influx0 = cpu_s(server.proc.pid)
        host, port = base.split("://", 1)[1].rsplit(":", 1)
        start = time.perf_counter()
        _run_agents(host, int(port), bodies, clients)
        acked_s = time.perf_counter() - start
        with httpx.Client(base_url=base) as client:  # done when InfluxDB answered 204 to every queued batch
            while queue_depth(client) > 0:
                time.sleep(0.01)
        total_s = time.perf_counter() - start
        collector_cpu = cpu_s(proc.pid) - cpu0
        influx_cpu = cpu_s(server.proc.pid) - influx0
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        stored = count_points(server, db)  # checked after the clock stopped: a count costs InfluxDB ~0.1 s
        if stored != points:
            raise RuntimeError(f"collector: InfluxDB holds {stored:,} points, {points:,} were acknowledged")
        print(
            f"  collector{' (' + str(tree) + ')' if tree else ''}: all acknowledged after {acked_s:.2f} s, all in "
            f"InfluxDB after {total_s:.2f} s; CPU: collector {collector_cpu:.2f} s "
            f"({collector_cpu / len(bodies) * 1000:.1f} ms per batch of {points // len(bodies)} points, drain "
            f"included), influxd {influx_cpu:.2f} s"
        )
        return total_s


def run_store(server: InfluxServer, db: str, work: Path, batches, clients: int, points: int, gzip_on: bool) -> float:
    """The collector's store alone, in process: QueuedStore.write_batch from `clients` threads, drained."""
    from telemetry.store.base import BatchKey
    from telemetry.store.factory import open_store

    url = f"influx://127.0.0.1:{server.http_port}/{db}?queue={work / f'queue-{db}'}&gzip={int(gzip_on)}"
    store = open_store(url)
    cpu0, influx0 = time.process_time(), cpu_s(server.proc.pid)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda b: store.write_batch(BatchKey(b[0], "bench", b[1]), b[2]), batches))
    store.flush(None)
    secs = time.perf_counter() - start
    cpu, influx_cpu = time.process_time() - cpu0, cpu_s(server.proc.pid) - influx0
    store.close()
    assert count_points(server, db) == points
    print(
        f"  store alone (gzip {'on' if gzip_on else 'off'}): CPU: this process {cpu:.2f} s, influxd {influx_cpu:.2f} s"
    )
    return secs


def run_client_dataframe(server: InfluxServer, db: str, batches) -> float | None:
    try:
        from influxdb_client.client.write.dataframe_serializer import DataframeSerializer
        from influxdb_client.client.write_api import PointSettings
    except ImportError:
        return None
    try:
        import pandas  # noqa: F401
    except ImportError:
        return None
    start = time.perf_counter()
    bodies: list[bytes] = []
    for _node, _b, frames in batches:
        for m, frame in frames.items():
            tags = [t for t in MEASUREMENTS[m].tags if frame[t].null_count() < frame.height]
            keep = ["time", *tags, *[c for c in MEASUREMENTS[m].field_names if frame[c].null_count() < frame.height]]
            pdf = frame.select(keep).to_pandas().set_index("time")
            ser = DataframeSerializer(
                pdf, PointSettings(), precision="ns", data_frame_measurement_name=m, data_frame_tag_columns=tags
            )
            lines = ser.serialize()
            bodies += chunks(lines, LINES_PER_POST)
    post_lines(server.base_url, db, bodies)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--ticks", type=int, default=10, help="one-second ticks per batch (34 accelerators each)")
    ap.add_argument(
        "--clients",
        type=int,
        default=10,
        help="concurrent agents posting to the collector (default: one per node of the 10, as in a fleet)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of every mode (median reported, order rotated)")
    ap.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated modes to run, of {','.join(MODES)} (direct is always run: the ratios need it)",
    )
    ap.add_argument(
        "--baseline-tree",
        type=Path,
        default=None,
        help="also run the collector from this source tree (e.g. `git archive HEAD | tar -x -C DIR`), in the same "
        "run and rotation: old and new against the same influxd and load",
    )
    ap.add_argument(
        "--commit-pace-s",
        type=float,
        default=None,
        help="the collectors' commit_pace_s (collector.toml; default: the collector's own default)",
    )
    ap.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="record the collector (this tree's) with py-spy into DIR (collapsed stacks, --threads --idle)",
    )
    args = ap.parse_args()
    modes = {m.strip() for m in args.modes.split(",") if m.strip()} | {"direct"}
    if unknown := modes - set(MODES):
        ap.error(f"unknown mode(s) {sorted(unknown)}; known: {', '.join(MODES)}")
    binary = find_binary("influxd", "NEIGHBORSCOPE_INFLUXD")
    if binary is None:
        sys.exit("influxd not found: apt-get install influxdb (or set $NEIGHBORSCOPE_INFLUXD)")
    console = Console()
    rng = np.random.default_rng(0)
    t0 = 1_763_000_000 * 10**9
    nodes = [f"node{i}" for i in range(10)]
    batches = []
    for b in range(args.batches):
        node = nodes[b % len(nodes)]
        batches.append((node, b, node_frames(node, t0 + (b // len(nodes)) * args.ticks * 10**9, args.ticks, rng)))
    points = sum(f.height for _, _, fr in batches for f in fr.values())
    lines = [ln for _, _, fr in batches for m, f in fr.items() for ln in encode_lines(f, m).to_list()]
    direct_bodies = chunks(lines, LINES_PER_POST)

    work = Path(tempfile.mkdtemp(prefix="ns-influx-bench-"))
    server = InfluxServer(binary, work / "influxd").start()
    timings: dict[str, list[float]] = {}
    spied = 0

    def direct_run() -> float:
        db = server.create_database("direct")
        influx0 = cpu_s(server.proc.pid)
        start = time.perf_counter()
        post_lines(server.base_url, db, direct_bodies)
        secs = time.perf_counter() - start
        print(f"  direct: CPU: influxd {cpu_s(server.proc.pid) - influx0:.2f} s")
        assert count_points(server, db) == points
        return secs

    def client_run() -> float | None:
        db = server.create_database("client")
        secs = run_client_dataframe(server, db, batches)
        if secs is not None:
            assert count_points(server, db) == points
        return secs

    def collector_run(tree: Path | None = None) -> float:
        nonlocal spied
        spy = None
        if args.py_spy is not None and tree is None:
            args.py_spy.mkdir(parents=True, exist_ok=True)
            spied += 1
            spy = args.py_spy / f"collector-{spied}.txt"
        db = server.create_database("collector")
        return run_collector(server, db, work, batches, nodes, args.clients, points, tree, spy, args.commit_pace_s)

    runs = {
        DIRECT: direct_run,
        COLLECTOR: collector_run,
        "store alone: queue + drain, no HTTP (gzip on)": lambda: run_store(
            server, server.create_database("store"), work, batches, args.clients, points, True
        ),
        STORE_GZIP_OFF: lambda: run_store(
            server, server.create_database("store"), work, batches, args.clients, points, False
        ),
        "influxdb-client DataFrame serializer + POST": client_run,
    }
    runs = {name: fn for (name, fn), mode in zip(runs.items(), MODES, strict=True) if mode in modes}
    if args.baseline_tree is not None:
        runs[BASELINE] = lambda: collector_run(args.baseline_tree.resolve())
    try:
        for rep in range(args.repeat):
            order = list(runs)
            order = order[rep % len(order) :] + order[: rep % len(order)]  # rotate: no mode always runs first
            for name in order:
                secs = runs[name]()
                if secs is not None:
                    timings.setdefault(name, []).append(secs)
                    print(f"  run {rep + 1}: {name}: {secs:.2f} s ({points / secs:,.0f} points/s)", flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    results = [(name, statistics.median(timings[name])) for name in runs if name in timings]

    direct_s = dict(results)[DIRECT]
    table = Table(
        title=f"InfluxDB {subprocess.run([binary, 'version'], capture_output=True, text=True).stdout.strip()}: "
        f"{points:,} points ({args.batches} batches x {args.ticks} ticks x {DEVICES} accelerators + host), "
        f"median of {args.repeat}; 1-min load average at the end: {os.getloadavg()[0]:.1f}"
    )
    for col in ("path", "seconds", "points/s", "vs direct"):
        table.add_column(col, justify="right")
    for name, secs in results:
        table.add_row(name, f"{secs:.2f}", f"{points / secs:,.0f}", f"{direct_s / secs:.0%}")
    console.print(table)
    results_d = dict(results)
    summary = []
    for name, label in ((COLLECTOR, "collector"), (BASELINE, "baseline collector"), (STORE_GZIP_OFF, "store alone")):
        if name in results_d:
            summary.append(f"{label} at {direct_s / results_d[name]:.0%}")
    if COLLECTOR in results_d:
        ok = direct_s / results_d[COLLECTOR] >= 0.95
        summary.append(f"target >= 95 % (issue 21): {'OK' if ok else 'BELOW TARGET'}")
    if COLLECTOR in results_d and BASELINE in results_d:
        summary.append(f"baseline / this collector time: {results_d[BASELINE] / results_d[COLLECTOR]:.2f}x")
    console.print(
        "; ".join(summary) + f"; 1-min load average {os.getloadavg()[0]:.1f} (on a busy machine the direct run's "
        "time swings by 2x between runs: compare medians of --repeat 3 or more)"
    )


if __name__ == "__main__":
    main()
