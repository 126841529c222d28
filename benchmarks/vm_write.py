"""VictoriaMetrics write throughput, in one run against one real single-node VictoriaMetrics (Debian's binary,
started in a temp dir with ``-dedup.minScrapeInterval=1ms`` as docs/victoriametrics.md asks):

1. collector: agents' gzip JSON batches over HTTP into `neighborscope collector --store vm://...` (auth,
   validation, durable local queue with fsync, in-order drain), timed until VictoriaMetrics has answered 204 to
   every queued batch (the collector's queue gauge is 0; the sample count is checked after the clock stops); the
   ``--clients`` agents (one per node) share one asyncio loop, each on its own keep-alive connection, and send
   their next batch once the last one is acknowledged;
2. direct: POSTs of the same data as the line protocol the store sends (``VictoriaStore.encode``, with its
   ``measurement`` tag), 5000 lines a request, to ``/write?db=...``;
3. the store alone (in process, no HTTP): ``QueuedStore.write_batch`` from ``--clients`` threads, drained.

    python benchmarks/vm_write.py [--batches 300] [--ticks 10] [--clients 10] [--repeat 3]
    python benchmarks/vm_write.py --disk-nodes 8 --disk-hours 1     # bytes on disk per sample (docs/fleet.md)

``--disk-nodes N --disk-hours H``: instead, N simulated seed-000 nodes (34 accelerators, host, 64 cores, tenants,
disks, NICs, RDMA; distinct seeds) of H hours at 1 Hz written through the store into a fresh VictoriaMetrics, then
``force_flush`` and ``force_merge``; prints rows, samples, series and line-protocol bytes per node per second and
the data directory's size per sample (``du``, data and index apart).

Points = lines of line protocol (one per row per measurement). Each run writes to its own ``db`` label. Prints
the collector's rate as a fraction of the direct rate, measured in the same run (issue 21's target: >= 95 %).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from influx_write import DEVICES, LINES_PER_POST, _run_agents, node_frames, queue_depth

from telemetry.batch import encode_batch
from telemetry.collector.process import running_collector
from telemetry.store.victoria import VictoriaConfig, VictoriaStore
from tests.telemetry.store.conftest import VICTORIA_PATHS, VictoriaServer, find_binary


def count_points(server: VictoriaServer, db: str, expected: int) -> int:
    """Samples of ``accel_temp_c`` plus ``host_load1`` (one per line: every generated row has both), asked again
    for up to 10 s until it is ``expected`` (new series become searchable a moment after ``force_flush``)."""
    q = f'sum(count_over_time({{__name__=~"accel_temp_c|host_load1", db="{db}"}}[20000d]))'
    deadline = time.monotonic() + 10
    while True:
        httpx.get(f"{server.base_url}/internal/force_flush", timeout=30)
        data = {"query": q, "time": f"{time.time() + 86_400:.3f}", "nocache": "1"}
        r = httpx.post(f"{server.base_url}/api/v1/query", data=data, timeout=60)
        r.raise_for_status()
        result = r.json()["data"]["result"]
        count = int(float(result[0]["value"][1])) if result else 0
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def post_lines(base_url: str, db: str, bodies: list[bytes]) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for body in bodies:
            r = client.post("/write", params={"db": db}, content=body)
            if r.status_code != 204:
                raise RuntimeError(f"/write answered {r.status_code}: {r.text}")


def split_bodies(body: bytes, size: int) -> list[bytes]:
    lines = body.splitlines(keepends=True)
    return [b"".join(lines[i : i + size]) for i in range(0, len(lines), size)]


def run_collector(server: VictoriaServer, db: str, work: Path, batches, nodes, clients: int, points: int) -> float:
    bodies = [(node, encode_batch(node, "bench", b, frames, compresslevel=1)) for node, b, frames in batches]
    url = f"vm://127.0.0.1:{server.port}/{db}?queue={work / f'queue-{db}'}&retry_max_s=1"
    tokens = {n: f"token-{n}-xxxx" for n in nodes}
    with running_collector(url, work, tokens=tokens, timeout_s=120, log=work / f"collector-{db}.log") as collector:
        proc = collector.proc
        assert proc is not None
        cpu0 = psutil.Process(proc.pid).cpu_times()
        host, port = collector.url.split("://", 1)[1].rsplit(":", 1)
        start = time.perf_counter()
        _run_agents(host, int(port), bodies, clients)
        acked_s = time.perf_counter() - start
        with httpx.Client(base_url=collector.url) as client:
            while queue_depth(client) > 0:
                time.sleep(0.01)
        total_s = time.perf_counter() - start
        cpu1 = psutil.Process(proc.pid).cpu_times()
    stored = count_points(server, db, points)
    if stored != points:
        raise RuntimeError(f"collector: VictoriaMetrics holds {stored:,} points, {points:,} were acknowledged")
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    print(
        f"  collector: all acknowledged after {acked_s:.2f} s, all in VictoriaMetrics after {total_s:.2f} s; "
        f"collector CPU {cpu_s:.2f} s ({cpu_s / len(bodies) * 1000:.1f} ms per batch of "
        f"{points // len(bodies)} points, drain included)"
    )
    return total_s


def run_store(server: VictoriaServer, db: str, work: Path, batches, clients: int, points: int) -> float:
    from telemetry.store.base import BatchKey
    from telemetry.store.factory import open_store

    store = open_store(f"vm://127.0.0.1:{server.port}/{db}?queue={work / f'queue-{db}'}")
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda b: store.write_batch(BatchKey(b[0], "bench", b[1]), b[2]), batches))
    store.flush(None)
    secs = time.perf_counter() - start
    store.close()
    assert count_points(server, db, points) == points
    return secs


def du(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def disk_run(binary: str, nodes: int, hours: float) -> None:
    """Simulated nodes into a real VictoriaMetrics; bytes per sample on disk after the final merge."""
    import polars as pl

    from telemetry.schema import MEASUREMENTS
    from telemetry.sim import preset, simulate
    from telemetry.store.victoria import VictoriaStore

    work = Path(tempfile.mkdtemp(prefix="ns-vm-disk-"))
    server = VictoriaServer(binary, work / "vm").start()
    store = VictoriaStore(VictoriaConfig.from_url(f"vm://127.0.0.1:{server.port}/disk"))
    seconds = int(hours * 3600)
    rows = samples = lp_bytes = 0
    vm = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
    vm_cpu0 = sum(vm.cpu_times()[:2])
    peak_rss = 0
    start = time.perf_counter()
    try:
        for k in range(nodes):
            res = simulate(preset("seed000", phase_s=max(60, seconds // 3)), seed=100 + k, bench=False)
            for chunk_start in range(0, res.duration_s, 600):
                for m, frame in res.telemetry(chunk_start, chunk_start + 600).items():
                    if frame.height == 0 or m not in MEASUREMENTS:
                        continue
                    frame = frame.with_columns(pl.lit(f"node{k:03d}").alias("node"))
                    fields = [f.name for f in MEASUREMENTS[m].fields if f.name in frame.columns]
                    rows += frame.height
                    samples += int(sum(frame.height - frame[f].null_count() for f in fields))
                    body = store.encode(m, frame)
                    lp_bytes += len(body)
                    for part in split_bodies(body, LINES_PER_POST):
                        store.write_lines(part)
                peak_rss = max(peak_rss, vm.memory_info().rss)
            print(
                f"  node {k + 1}/{nodes}: {res.duration_s} s written ({time.perf_counter() - start:.0f} s)", flush=True
            )
        node_s = nodes * res.duration_s
        ingest_s = time.perf_counter() - start
        httpx.get(f"{server.base_url}/internal/force_flush", timeout=120)
        vm_cpu = sum(vm.cpu_times()[:2]) - vm_cpu0
        httpx.get(f"{server.base_url}/internal/force_merge", timeout=600)
        time.sleep(5)
        series = len(store._get_json("/api/v1/series", [("match[]", '{db="disk"}'), ("start", "1")]))
        data, index = du(server.root / "data" / "data"), du(server.root / "data" / "indexdb")
        total = du(server.root / "data")
    finally:
        store.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{nodes} nodes x {node_s // nodes:,} s at 1 Hz: {rows:,} rows, {samples:,} samples, {series:,} series "
        f"({series // nodes:,} per node); ingest {ingest_s:.0f} s ({samples / ingest_s:,.0f} samples/s, one client)"
    )
    print(
        f"per node per second: {rows / node_s:,.1f} rows, {samples / node_s:,.0f} samples, "
        f"{lp_bytes / node_s:,.0f} bytes of line protocol"
    )
    print(
        f"VictoriaMetrics CPU while ingesting: {vm_cpu:.1f} s = {vm_cpu / samples * 1e6:.2f} CPU-s per million "
        f"samples; peak RSS {peak_rss / 2**20:,.0f} MiB"
    )
    print(
        f"on disk after force_merge: {total / 2**20:,.1f} MiB = {total / samples:.2f} bytes/sample "
        f"(data {data / samples:.2f}, index {index / 2**20:,.1f} MiB); 1-min load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--ticks", type=int, default=10, help="one-second ticks per batch (34 accelerators each)")
    ap.add_argument("--clients", type=int, default=10, help="concurrent agents (default: one per node of the 10)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of every mode (median reported, order rotated)")
    ap.add_argument("--disk-nodes", type=int, default=0, help="measure bytes on disk per sample with N nodes")
    ap.add_argument("--disk-hours", type=float, default=1.0, help="hours of each simulated node (--disk-nodes)")
    args = ap.parse_args()
    binary = find_binary("victoria-metrics", "NEIGHBORSCOPE_VICTORIA_METRICS", VICTORIA_PATHS)
    if binary is None:
        sys.exit(
            "victoria-metrics not found: apt-get install victoria-metrics (or set $NEIGHBORSCOPE_VICTORIA_METRICS)"
        )
    if args.disk_nodes:
        disk_run(binary, args.disk_nodes, args.disk_hours)
        return
    console = Console()
    rng = np.random.default_rng(0)
    t0 = (int(time.time()) - 7 * 86_400) * 10**9  # a week ago: inside any retention
    nodes = [f"node{i}" for i in range(10)]
    batches = []
    for b in range(args.batches):
        node = nodes[b % len(nodes)]
        batches.append((node, b, node_frames(node, t0 + (b // len(nodes)) * args.ticks * 10**9, args.ticks, rng)))
    points = sum(f.height for _, _, fr in batches for f in fr.values())
    encoder = VictoriaStore(VictoriaConfig.from_url("vm://127.0.0.1:1/x"))
    direct_bodies = split_bodies(
        b"".join(encoder.encode(m, f) for _, _, fr in batches for m, f in fr.items()), LINES_PER_POST
    )
    encoder.close()

    work = Path(tempfile.mkdtemp(prefix="ns-vm-bench-"))
    server = VictoriaServer(binary, work / "vm").start()
    direct = "direct line-protocol POSTs to /write"
    collector = "collector (HTTP, queue, drain)"
    timings: dict[str, list[float]] = {}
    counter = iter(range(10**6))

    def direct_run() -> float:
        db = f"direct{next(counter)}"
        start = time.perf_counter()
        post_lines(server.base_url, db, direct_bodies)
        secs = time.perf_counter() - start
        assert count_points(server, db, points) == points
        return secs

    runs = {
        direct: direct_run,
        collector: lambda: run_collector(
            server, f"collector{next(counter)}", work, batches, nodes, args.clients, points
        ),
        "store alone: queue + drain, no HTTP": lambda: run_store(
            server, f"store{next(counter)}", work, batches, args.clients, points
        ),
    }
    try:
        for rep in range(args.repeat):
            order = list(runs)
            order = order[rep % len(order) :] + order[: rep % len(order)]  # rotate: no mode always runs first
            for name in order:
                secs = runs[name]()
                timings.setdefault(name, []).append(secs)
                print(f"  run {rep + 1}: {name}: {secs:.2f} s ({points / secs:,.0f} points/s)", flush=True)
        data_bytes = sum(p.stat().st_size for p in (work / "vm" / "data").rglob("*") if p.is_file())
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    results = [(name, statistics.median(timings[name])) for name in runs]
    direct_s = dict(results)[direct]
    table = Table(
        title=f"VictoriaMetrics: {points:,} points ({args.batches} batches x {args.ticks} ticks x {DEVICES} "
        f"accelerators + host), median of {args.repeat}; 1-min load average at the end: {os.getloadavg()[0]:.1f}"
    )
    best_direct = min(timings[direct])
    for col in ("path", "seconds", "points/s", "vs direct", "best run", "best vs best direct"):
        table.add_column(col, justify="right")
    for name, secs in results:
        best = min(timings[name])
        table.add_row(
            name, f"{secs:.2f}", f"{points / secs:,.0f}", f"{direct_s / secs:.0%}", f"{best:.2f}",
            f"{best_direct / best:.0%}",
        )  # fmt: skip
    console.print(table)
    print(f"data directory after every run: {data_bytes / 2**20:.1f} MiB (not merged yet: see docs/fleet.md)")
    ratio = direct_s / dict(results)[collector]
    console.print(
        f"collector at {ratio:.0%} of the direct rate (issue 21 target >= 95 %): "
        f"{'OK' if ratio >= 0.95 else 'BELOW TARGET'}"
    )


if __name__ == "__main__":
    main()
