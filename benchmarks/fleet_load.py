"""Fleet load test: how many nodes can one collector process take at 1 Hz?

Starts a real `neighborscope collector` (a subprocess on 127.0.0.1, embedded Parquet store in a temp dir,
one token per node in its config) and drives it with N simulated agents: every node sends one batch per
flush interval (the agent's default ``flush_s = 1.0``), each holding its 34 `accel` rows, one `host` row
and one `host_core` row per CPU core, built with `telemetry.batch.encode_batch`, the gzip-compressed JSON the agent
sends (``Content-Encoding: gzip``, ``Authorization: Bearer``).

One asyncio client (uvloop, one keep-alive HTTP/1.1 connection per node on raw streams: httpx would spend
more CPU per request than the collector, on the same cores) paces the sends: node i sends
batch k at ``t0 + phase_i + k * flush_s`` (phases spread evenly over the interval, as agents started at
random times would be; ``--aligned`` sends them all on the same tick instead). A node's next batch waits
for the previous answer, as the agent's sender does, so a slow collector shows up as send lag. Bodies are
built before each step (so the client spends its CPU on sending, not encoding), with the step's
scheduled times.

``--workers 1,2`` runs each step once per collector shape, in the same run: one process (1), or N worker
processes on the port with one store writer process (`telemetry.collector.workers`); the collector's CPU and
RSS are then those of all its processes (RSS summed: shared pages count once per process).

Fleet sizes are stepped up (``--steps``) until a step fails: p99 ingest latency (POST -> 200) over
``--target-s``, a non-200 answer, or sends falling behind (p99 lag > ``--max-lag-s`` or < 98 % of the
scheduled batches sent), or the store not holding exactly the rows of the acknowledged batches (read
back after the step with the default embedded store). Each step gets a fresh collector and store and runs for ``--step-s`` seconds;
the whole run stops after ``--max-total-s``. The 1-minute load average is printed per step: on a shared
machine other processes take CPU from the collector and the figures are a lower bound. The collector's RSS (psutil) is sampled every 0.5 s.
Per step it also prints the collector's CPU per stored batch (user + system, every thread) and the mean number of
batches per group commit (its /metrics counters); ``--commit-pace-s`` sets the collector's ``commit_pace_s``
(0: no pacing; see docs/collector-performance.md and benchmarks/collector_cpu.py, which compares them).
All traffic goes to 127.0.0.1.

    .venv/bin/python benchmarks/fleet_load.py                          # 50, 100, 200, 300, 400, 600, 800 nodes
    .venv/bin/python benchmarks/fleet_load.py --steps 100,200 --step-s 10 --json out.json
    .venv/bin/python benchmarks/fleet_load.py --steps 1000,2000,3000 --workers 1,2   # one process vs 2 workers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telemetry.batch import encode_batch
from telemetry.collector.process import CollectorProcess
from telemetry.schema import conform

HOST = "127.0.0.1"
MIB = 2**20
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------------
# Batches


def _token(i: int) -> str:
    return f"fleet-load-token-{i:05d}"


def _node(i: int) -> str:
    return f"node{i:05d}"


@dataclass
class NodeTemplate:
    """What one simulated node's agent reports, before time and jitter are applied."""

    node: str
    accel: pl.DataFrame
    host: pl.DataFrame
    host_core: pl.DataFrame


def node_template(i: int, accels: int, cores: int, seed: int) -> NodeTemplate:
    """A seeded node: `accels` accelerators of one model, `cores` host cores."""
    rng = np.random.default_rng([seed, i])
    node = _node(i)
    a = accels
    accel = pl.DataFrame({
        "time": [0] * a,
        "node": [node] * a,
        "device": [f"gpu{d}" for d in range(a)],
        "vendor": ["nvidia"] * a,
        "model": ["NVIDIA H100 80GB HBM3"] * a,
        "group": [f"hive{d // 8}" for d in range(a)],
        "pci_bus": [f"0000:{0x18 + d:02x}:00.0" for d in range(a)],
        "temp_c": rng.uniform(35, 75, a), "temp_hotspot_c": rng.uniform(40, 85, a),
        "temp_mem_c": rng.uniform(40, 80, a), "power_w": rng.uniform(90, 690, a),
        "power_avg_w": rng.uniform(90, 690, a), "power_limit_w": [700.0] * a, "energy_j": rng.uniform(1e6, 1e9, a),
        "pcie_tx_bytes_per_s": rng.uniform(0, 2e10, a), "pcie_rx_bytes_per_s": rng.uniform(0, 2e10, a),
        "pcie_link_gen": [5] * a, "pcie_link_width": [16] * a, "pcie_replay_count": [0] * a,
        "util_pct": rng.uniform(0, 100, a), "mem_util_pct": rng.uniform(0, 100, a),
        "mem_used_bytes": rng.uniform(1e9, 8e10, a), "mem_total_bytes": [85899345920.0] * a,
        "sm_clock_mhz": rng.uniform(1200, 1980, a), "mem_clock_mhz": [2619.0] * a,
        "throttle_thermal": [False] * a, "throttle_power": [False] * a, "throttle_other": [False] * a,
        "throttle_reasons": [0] * a, "ecc_corrected_count": [0] * a, "ecc_uncorrected_count": [0] * a,
    })  # fmt: skip
    host = pl.DataFrame({
        "time": [0], "node": [node], "cpu_util_pct": [rng.uniform(5, 60)], "cpu_user_pct": [rng.uniform(5, 50)],
        "cpu_system_pct": [rng.uniform(1, 10)], "cpu_iowait_pct": [0.1], "cpu_steal_pct": [0.0],
        "cpu_count": [cores], "load1": [rng.uniform(1, 30)], "load5": [10.0], "load15": [10.0],
        "mem_total_bytes": [2.0e12], "mem_used_bytes": [rng.uniform(1e11, 1e12)], "mem_available_bytes": [1.0e12],
        "swap_used_bytes": [0.0], "ctx_switches_per_s": [rng.uniform(1e4, 1e5)],
        "interrupts_per_s": [rng.uniform(1e4, 1e5)], "procs_running": [4],
    })  # fmt: skip
    host_core = pl.DataFrame({
        "time": [0] * cores, "node": [node] * cores, "core": [str(c) for c in range(cores)],
        "socket": [str(c * 2 // max(cores, 1)) for c in range(cores)], "util_pct": rng.uniform(0, 100, cores),
        "user_pct": rng.uniform(0, 90, cores), "system_pct": rng.uniform(0, 10, cores),
        "iowait_pct": [0.0] * cores, "freq_mhz": rng.uniform(2000, 3500, cores),
    })  # fmt: skip
    return NodeTemplate(node, conform(accel, "accel"), conform(host, "host"), conform(host_core, "host_core"))


_JITTER = {"accel": ("temp_c", "power_w", "util_pct", "sm_clock_mhz"), "host": ("cpu_util_pct",),
           "host_core": ("util_pct",)}  # fmt: skip


def batch_body(t: NodeTemplate, boot_id: str, seq: int, ts_ns: int, rng: np.random.Generator) -> bytes:
    """The gzip JSON body of batch `seq` of node `t`, sampled at `ts_ns` (the agent's encode_batch format)."""
    frames: dict[str, pl.DataFrame] = {}
    for name, frame in (("accel", t.accel), ("host", t.host), ("host_core", t.host_core)):
        cols = [pl.lit(ts_ns).cast(pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias("time")]
        cols += [(pl.col(c) * pl.Series(rng.normal(1.0, 0.01, frame.height))).alias(c) for c in _JITTER[name]]
        frames[name] = frame.with_columns(cols)
    return encode_batch(t.node, boot_id, seq, frames, sent_at_ns=ts_ns)


# ---------------------------------------------------------------------------------------------------------------
# The collector


def write_config(path: Path, nodes: int, commit_pace_s: float | None = None) -> None:
    lines = ["[collector]", "max_body_bytes = 16777216"]
    if commit_pace_s is not None:
        lines.append(f"commit_pace_s = {commit_pace_s!r}")
    lines.append("")
    for i in range(nodes):
        lines += [f"[nodes.{_node(i)}]", f'token_sha256 = "{hashlib.sha256(_token(i).encode()).hexdigest()}"']
    path.write_text("\n".join(lines) + "\n")


def start_collector(workdir: Path, config: Path, store: str | None = None, workers: int = 1) -> CollectorProcess:
    store = (store or "{dir}/store").replace("{dir}", str(workdir))
    args = ["--config", str(config), "--workers", str(workers)]
    return CollectorProcess(store, workdir, host=HOST, extra_args=args).start()


class RssSampler:
    """Samples the RSS of a process and its children (summed) every `every_s` on a thread, and their CPU time:
    `cpu_s` is what every process of the tree spent since `__enter__` (a child that ended counts up to its last
    sample)."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.proc = psutil.Process(pid)
        self.every_s = every_s
        self.samples: list[int] = []
        self._cpu0: dict[int, float] = {}
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return [self.proc]

    def _sample(self) -> int:
        rss = 0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                self._cpu[p.pid] = t.user + t.system
                self._cpu0.setdefault(p.pid, 0.0)  # started meanwhile: all its CPU is the step's
                rss += p.memory_info().rss
        return rss

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._sample()
        self._cpu0 = dict(self._cpu)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def rss(self) -> int:
        return self._sample()

    def cpu_s(self) -> float:
        self._sample()
        return sum(cpu - self._cpu0.get(pid, 0.0) for pid, cpu in self._cpu.items())


# ---------------------------------------------------------------------------------------------------------------
# One step


@dataclass
class StepResult:
    nodes: int
    workers: int
    accel_rows_per_s: float
    rows_per_s: float
    scheduled: int
    sent: int
    ok: int
    errors: dict[str, int]
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    latency_ms_max: float | None
    lag_ms_p99: float | None
    stored_batches_per_s: float
    body_bytes_mean: float
    collector_rss_mib_end: float | None
    collector_rss_mib_peak: float | None
    collector_cpu_pct: float
    collector_cpu_ms_per_batch: float | None
    commit_groups: int | None
    batches_per_group: float | None
    client_cpu_pct: float
    loadavg_1m: float
    build_s: float
    verdict: str
    reasons: list[str] = field(default_factory=list)


class _Conn:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: the load generator shares the box with
    the collector, and httpx spends several ms of CPU per request, so the client would otherwise take the
    CPU the collector is being measured on. It sends a complete request and reads the complete answer
    (status line, headers, Content-Length body), reconnecting when the server closed the connection."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await asyncio.wait_for(self._exchange(head, body), self.timeout_s)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.close()
                if attempt:
                    raise OSError(f"connection lost: {exc}") from exc
        raise AssertionError("unreachable")

    async def _exchange(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        answer = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _drive(
    url: str,
    bodies: list[list[bytes]],
    flush_s: float,
    t0: float,
    phases: list[float],
    timeout_s: float,
    deadline: float,
) -> tuple[list[float], list[float], dict[str, int], int]:
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    n = len(bodies)
    host, port = url.split("://", 1)[1].rsplit(":", 1)

    async def agent(i: int) -> None:
        nonlocal sent
        head = (f"POST /v1/batches HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Encoding: gzip\r\nAuthorization: Bearer {_token(i)}\r\n").encode()  # fmt: skip
        conn = _Conn(host, int(port), timeout_s)
        loop = asyncio.get_running_loop()
        try:
            for k, body in enumerate(bodies[i]):
                due = t0 + phases[i] + k * flush_s
                if loop.time() > deadline:  # fell too far behind: the rest counts as not sent
                    return
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                start = loop.time()
                lags.append(start - due)
                sent += 1
                try:
                    status, _ = await conn.post(head, body)
                except (OSError, TimeoutError, ValueError, IndexError) as exc:
                    key = type(exc).__name__
                    errors[key] = errors.get(key, 0) + 1
                    conn.close()
                    continue
                latencies.append(loop.time() - start)
                if status != 200:
                    key = f"HTTP {status}"
                    errors[key] = errors.get(key, 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(agent(i) for i in range(n)))
    return latencies, lags, errors, sent


def _run_loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def commit_counters(url: str) -> tuple[int | None, int]:
    """The collector's group commits so far and the batches in them (its /metrics); (None, 0) without them."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in (
            "neighborscope_collector_commit_groups_total",
            "neighborscope_collector_commit_group_batches_total",
        ):
            found[name] = float(value)
    groups = found.get("neighborscope_collector_commit_groups_total")
    return (None if groups is None else int(groups)), int(
        found.get("neighborscope_collector_commit_group_batches_total", 0)
    )


def _stored_rows(store_dir: Path) -> dict[str, int]:
    from telemetry.store.parquet import ParquetStore

    store = ParquetStore(store_dir)
    return {m: store.scan(m).select(pl.len()).collect().item() for m in ("accel", "host", "host_core")}


def run_step(
    nodes: int, args: argparse.Namespace, workdir: Path, config: Path, templates: list[NodeTemplate], workers: int = 1
) -> StepResult:
    per_node = max(1, int(args.step_s / args.flush_s))
    rng = np.random.default_rng([args.seed, nodes])
    build0 = time.perf_counter()
    lead_s = 2.0
    wall0 = time.time() + lead_s  # sample times of the schedule (the client builds before it sends)
    bodies = [[batch_body(templates[i], f"boot-{nodes}-{i}", k, int((wall0 + k * args.flush_s) * 1e9), rng)
               for k in range(per_node)] for i in range(nodes)]  # fmt: skip
    build_s = time.perf_counter() - build0
    body_bytes = float(np.mean([len(b) for bs in bodies for b in bs]))
    phases = [0.0] * nodes if args.aligned else [args.flush_s * i / nodes for i in range(nodes)]

    step_dir = workdir / f"step-{nodes}-w{workers}"
    step_dir.mkdir()
    collector = start_collector(step_dir, config, args.store, workers)
    proc, url = collector.proc, collector.url
    assert proc is not None
    me = psutil.Process()
    try:
        with RssSampler(proc.pid) as rss:
            me_cpu0 = sum(me.cpu_times()[:2])
            w0 = time.perf_counter()

            async def main() -> tuple[list[float], list[float], dict[str, int], int]:
                t0 = asyncio.get_running_loop().time() + 0.5
                return await _drive(
                    url, bodies, args.flush_s, t0, phases, args.timeout_s, deadline=t0 + args.step_s + args.drain_s
                )

            latencies, lags, errors, sent = _run_loop(main())
            wall = time.perf_counter() - w0
            collector_cpu = rss.cpu_s()
            client_cpu = sum(me.cpu_times()[:2]) - me_cpu0
            rss_end = rss.rss()
            groups, grouped = commit_counters(url)
        peak = max(rss.samples) if rss.samples else None
    finally:
        collector.stop(15)
    stored = _stored_rows(step_dir / "store") if args.store is None else None

    scheduled = nodes * per_node
    lat = np.array(latencies) * 1000 if latencies else None
    lag = np.array(lags) * 1000 if lags else None
    ok = len(latencies) - sum(v for k, v in errors.items() if k.startswith("HTTP"))
    accel_rows = len(templates[0].accel) * nodes / args.flush_s
    rows = (len(templates[0].accel) + len(templates[0].host) + len(templates[0].host_core)) * nodes / args.flush_s
    res = StepResult(
        nodes=nodes, workers=workers, accel_rows_per_s=accel_rows, rows_per_s=rows, scheduled=scheduled, sent=sent, ok=ok,
        errors=errors,
        latency_ms_p50=None if lat is None else float(np.percentile(lat, 50)),
        latency_ms_p99=None if lat is None else float(np.percentile(lat, 99)),
        latency_ms_max=None if lat is None else float(lat.max()),
        lag_ms_p99=None if lag is None else float(np.percentile(lag, 99)),
        stored_batches_per_s=ok / wall, body_bytes_mean=body_bytes,
        collector_rss_mib_end=rss_end / MIB,
        collector_rss_mib_peak=None if peak is None else peak / MIB,
        collector_cpu_pct=100 * collector_cpu / wall,
        collector_cpu_ms_per_batch=1e3 * collector_cpu / ok if ok else None,
        commit_groups=groups, batches_per_group=grouped / groups if groups else None,
        client_cpu_pct=100 * client_cpu / wall,
        loadavg_1m=os.getloadavg()[0], build_s=build_s, verdict="ok",
    )  # fmt: skip
    if res.latency_ms_p99 is None or res.latency_ms_p99 > args.target_s * 1000:
        res.reasons.append(f"p99 latency {res.latency_ms_p99 or float('nan'):.0f} ms > {args.target_s * 1000:.0f} ms")
    if errors:
        res.reasons.append(f"errors {errors}")
    if res.lag_ms_p99 is not None and res.lag_ms_p99 > args.max_lag_s * 1000:
        res.reasons.append(f"sends fell behind (p99 lag {res.lag_ms_p99:.0f} ms)")
    if ok < 0.98 * scheduled:
        res.reasons.append(f"only {ok}/{scheduled} batches stored")
    if stored is not None:  # every acknowledged row is in the store, once
        t = templates[0]
        want = {"accel": ok * t.accel.height, "host": ok * t.host.height, "host_core": ok * t.host_core.height}
        if stored != want:
            res.reasons.append(f"store holds {stored} rows, the acknowledged batches {want}")
    if res.reasons:
        res.verdict = "FAIL"
    return res


# ---------------------------------------------------------------------------------------------------------------


def print_table(results: list[StepResult], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=170)
    tab = Table(title=f"Collector fleet load ({args.accels} accel + 1 host + {args.cores} host_core rows per node "
                      f"per {args.flush_s:g} s; {args.step_s:g} s per step)")  # fmt: skip
    for col in (
        "nodes",
        "workers",
        "rows/s",
        "stored/sched",
        "stored/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lag p99 ms",
        "body KiB",
        "RSS MiB (peak)",
        "collector CPU %",
        "CPU ms/batch",
        "batches/group",
        "client CPU %",
        "load 1m",
        "verdict",
    ):
        tab.add_column(col, justify="left" if col == "verdict" else "right")

    def f(v: float | None, spec: str = ".0f") -> str:
        return "-" if v is None else format(v, spec)

    for r in results:
        verdict = "[green]ok[/]" if r.verdict == "ok" else "[red]FAIL[/]"
        tab.add_row(str(r.nodes), str(r.workers), f(r.rows_per_s), f"{r.ok}/{r.scheduled}", f(r.stored_batches_per_s, ".1f"),
                    f(r.latency_ms_p50, ".1f"),
                    f(r.latency_ms_p99, ".1f"), f(r.latency_ms_max, ".0f"), f(r.lag_ms_p99, ".1f"),
                    f(r.body_bytes_mean / 1024, ".1f"), f"{f(r.collector_rss_mib_end)} ({f(r.collector_rss_mib_peak)})",
                    f(r.collector_cpu_pct), f(r.collector_cpu_ms_per_batch, ".2f"),
                    f(r.batches_per_group, ".1f"), f(r.client_cpu_pct), f(r.loadavg_1m, ".1f"), verdict)  # fmt: skip
    con.print(tab)
    for r in results:
        if r.reasons:
            con.print(f"{r.nodes} nodes, {r.workers} worker(s): {'; '.join(r.reasons)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="50,100,200,300,400,600,800", help="fleet sizes to try, in order")
    ap.add_argument("--step-s", type=float, default=20.0, help="seconds of sending per step")
    ap.add_argument("--max-total-s", type=float, default=900.0, help="stop stepping up after this long")
    ap.add_argument("--flush-s", type=float, default=1.0, help="agent flush interval (batch every flush_s)")
    ap.add_argument("--accels", type=int, default=34, help="accelerators per node")
    ap.add_argument("--cores", type=int, default=32, help="host_core rows per node (CPU cores)")
    ap.add_argument("--target-s", type=float, default=1.0, help="p99 ingest latency target")
    ap.add_argument("--max-lag-s", type=float, default=1.0, help="p99 send lag above which sends fell behind")
    ap.add_argument(
        "--drain-s", type=float, default=10.0, help="after step-s, stop sending what is still due (counted as not sent)"
    )
    ap.add_argument("--timeout-s", type=float, default=10.0, help="HTTP timeout of one send")
    ap.add_argument("--aligned", action="store_true", help="all nodes send on the same tick (worst-case burst)")
    ap.add_argument("--keep-going", action="store_true", help="run every step even after one fails")
    ap.add_argument(
        "--store",
        default=None,
        help="collector store URL; {dir} = the step's temp dir "
        "(default: {dir}/store, the embedded Parquet store; e.g. 'influx://127.0.0.1:8086/db?queue={dir}/q')",
    )
    ap.add_argument(
        "--commit-pace-s",
        type=float,
        default=None,
        help="the collector's commit_pace_s (collector.toml; default: the collector's own default)",
    )
    ap.add_argument(
        "--workers",
        default="1",
        help="collector worker processes, a comma list run side by side per step (e.g. 1,2: one process, then "
        "2 workers + the store writer); a shape that fails a step is not tried at larger ones",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    shapes = [int(w) for w in args.workers.split(",") if w.strip()]

    t_begin = time.monotonic()
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory(prefix="ns-fleet-") as tmp:
        workdir = Path(tmp)
        config = workdir / "collector.toml"
        write_config(config, max(steps), args.commit_pace_s)
        templates = [node_template(i, args.accels, args.cores, args.seed) for i in range(max(steps))]
        alive = list(shapes)
        for n in steps:
            if not alive:
                break
            if time.monotonic() - t_begin > args.max_total_s:
                print(f"stopping: --max-total-s {args.max_total_s:g} s reached", file=sys.stderr)
                break
            for w in list(alive):
                print(f"step: {n} nodes, {w} worker(s), for {args.step_s:g} s ...", file=sys.stderr, flush=True)
                r = run_step(n, args, workdir, config, templates, w)
                results.append(r)
                print(
                    f"  {r.verdict}: p99 {r.latency_ms_p99 or float('nan'):.1f} ms, "
                    f"CPU {r.collector_cpu_ms_per_batch or float('nan'):.2f} ms/batch, "
                    f"RSS {r.collector_rss_mib_end:.0f} MiB" + (f" ({'; '.join(r.reasons)})" if r.reasons else ""),
                    file=sys.stderr,
                    flush=True,
                )
                if r.verdict != "ok" and not args.keep_going:
                    alive.remove(w)

    print_table(results, args)
    cpu = f"{psutil.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    sustained: dict[int, int] = {}
    for w in shapes:
        mine = [r for r in results if r.workers == w]
        passed = [r for r in mine if r.verdict == "ok"]
        best = max(passed, key=lambda r: r.nodes) if passed else None
        shape = "one collector process" if w == 1 else f"a collector of {w} workers + 1 store writer"
        sustained[w] = best.nodes if best else 0
        if best is None:
            print(f"VERDICT ({shape}): no fleet size passed (p99 <= {args.target_s * 1000:.0f} ms) on {cpu}")
            continue
        hit = "meets" if best.nodes >= 200 else "MISSES"
        failed = next((r for r in mine if r.verdict != "ok"), None)
        print(f"VERDICT: {shape} sustains {best.nodes} nodes x {args.accels} accelerators at "
              f"1 batch / {args.flush_s:g} s ({best.rows_per_s:,.0f} rows/s) with p99 ingest latency "
              f"{best.latency_ms_p99:.0f} ms, {best.collector_cpu_ms_per_batch or float('nan'):.2f} ms CPU per batch "
              f"and {best.collector_rss_mib_peak:.0f} MiB peak RSS on {cpu}; {hit} the 200-node target"
              + (f"; {failed.nodes} nodes failed ({'; '.join(failed.reasons)})" if failed else
                 "; the largest step tried passed (the limit is higher)"))  # fmt: skip
    print("README figures:")
    print("  | nodes x accelerators | workers | batches/s offered | stored/s | rows/s | p99 ingest latency | "
          "CPU ms/batch | collector RSS |")  # fmt: skip
    for r in results:
        print(
            f"  | {r.nodes} x {args.accels} | {r.workers} | {r.nodes / args.flush_s:.0f} | "
            f"{r.stored_batches_per_s:.0f} | {r.rows_per_s:,.0f} | {r.latency_ms_p99 or float('nan'):.0f} ms"
            f"{'' if r.verdict == 'ok' else ' (FAIL)'} | {r.collector_cpu_ms_per_batch or float('nan'):.2f} | "
            f"{r.collector_rss_mib_peak or float('nan'):.0f} MiB |"
        )
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "pid": os.getpid()},
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "steps": [asdict(r) for r in results],
            "sustained_nodes": max(sustained.values(), default=0),
            "sustained_nodes_by_workers": sustained,
        }, indent=2) + "\n")  # fmt: skip
    return 0 if max(sustained.values(), default=0) >= 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
