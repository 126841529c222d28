"""Ingest throughput: field values/s through the collector (real HTTP, JSON, auth, validation, fsync'd
Parquet) vs writing the same frames straight into the embedded store, in the same run.

    python benchmarks/ingest.py [--batches 300] [--ticks 10] [--clients 4]

A batch is what an agent sends: `--ticks` one-second ticks of a 34-accelerator node (accel + host rows).
Target (issue 2): >= 300k field values/s end to end on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import psutil
from rich.console import Console
from rich.table import Table

from telemetry.batch import encode_batch
from telemetry.collector.process import CollectorProcess
from telemetry.schema import MEASUREMENTS, conform
from telemetry.store.base import BatchKey
from telemetry.store.parquet import ParquetStore

ACCEL_FIELDS = [
    "temp_c", "temp_mem_c", "power_w", "energy_j", "pcie_tx_bytes_per_s", "pcie_rx_bytes_per_s", "pcie_link_gen",
    "pcie_link_width", "util_pct", "mem_used_bytes", "mem_total_bytes", "sm_clock_mhz", "mem_clock_mhz",
    "throttle_thermal", "throttle_power", "throttle_other",
]  # fmt: skip


def node_frames(
    node: str, t0_ns: int, ticks: int, rng: np.random.Generator, devices: int = 34
) -> dict[str, pl.DataFrame]:
    n = ticks * devices
    times = np.repeat(t0_ns + np.arange(ticks, dtype=np.int64) * 10**9, devices)
    cols: dict[str, object] = {"time": times, "device": [f"gpu{i}" for i in range(devices)] * ticks}
    cols["node"] = [node] * n
    cols["vendor"] = ["amd"] * n
    for f in ACCEL_FIELDS:
        kind = MEASUREMENTS["accel"].field_index[f].kind
        if kind == "bool":
            cols[f] = rng.random(n) < 0.05
        elif kind == "int":
            cols[f] = rng.integers(1, 16, n)
        else:
            cols[f] = rng.random(n) * 100
    accel = conform(pl.DataFrame(cols), "accel")
    host = conform(
        pl.DataFrame(
            {
                "time": t0_ns + np.arange(ticks, dtype=np.int64) * 10**9,
                "node": [node] * ticks,
                "cpu_util_pct": rng.random(ticks) * 100,
                "load1": rng.random(ticks) * 8,
                "mem_used_bytes": rng.random(ticks) * 1e11,
            }
        ),
        "host",
    )
    return {"accel": accel, "host": host}


def field_values(frames: dict[str, pl.DataFrame]) -> int:
    return sum(int(sum(f.height - f[c].null_count() for c in MEASUREMENTS[m].field_names)) for m, f in frames.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--ticks", type=int, default=10, help="one-second ticks per batch")
    ap.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    args = ap.parse_args()
    console = Console()
    rng = np.random.default_rng(0)
    t0 = 1_700_000_000 * 10**9
    nodes = [f"node{i}" for i in range(10)]
    batches = []
    for b in range(args.batches):
        node = nodes[b % len(nodes)]
        frames = node_frames(node, t0 + (b // len(nodes)) * args.ticks * 10**9, args.ticks, rng)
        batches.append((node, b, frames))
    values = sum(field_values(f) for _, _, f in batches)
    work = Path(tempfile.mkdtemp(prefix="ns-bench-"))
    collector: CollectorProcess | None = None
    try:
        # 1. raw: the same frames straight into the store (the baseline)
        raw = ParquetStore(work / "raw")
        start = time.perf_counter()
        for node, b, frames in batches:
            raw.write_batch(BatchKey(node, "bench", b), frames)
        raw_s = time.perf_counter() - start

        # 2. end to end: agents' JSON (gzip) over HTTP into a collector process
        bodies = [(node, encode_batch(node, "bench", b, frames, compresslevel=1)) for node, b, frames in batches]
        collector = CollectorProcess(str(work / "e2e"), work, tokens={n: f"token-{n}" for n in nodes}).start()
        url = f"{collector.url}/v1/batches"

        clients = [httpx.Client(timeout=60) for _ in range(args.clients)]

        def send(i: int) -> int:
            node, body = bodies[i]
            r = clients[i % args.clients].post(
                url,
                content=body,
                headers={
                    "Authorization": f"Bearer token-{node}",
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/json",
                },
            )
            r.raise_for_status()
            return r.json()["rows"]

        collector_proc = psutil.Process(collector.proc.pid)  # type: ignore[union-attr]
        cpu0 = collector_proc.cpu_times()
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            rows = sum(pool.map(send, range(len(bodies))))
        e2e_s = time.perf_counter() - start
        cpu1 = collector_proc.cpu_times()
        collector_cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        collector.stop(30)
        stored = ParquetStore(work / "e2e").query("accel").height
        assert stored == sum(f["accel"].height for _, _, f in batches), "collector lost rows"
    finally:
        if collector is not None:
            collector.stop(30)
        shutil.rmtree(work, ignore_errors=True)

    table = Table(
        title=f"ingest: {args.batches} batches x {args.ticks} ticks x 34 accelerators ({values:,} field values)"
    )
    for col in ("path", "seconds", "batches/s", "rows/s", "field values/s", "vs raw"):
        table.add_column(col, justify="right")
    for name, secs in (("raw store write (baseline)", raw_s), ("collector end to end (HTTP)", e2e_s)):
        table.add_row(
            name, f"{secs:.2f}", f"{args.batches / secs:,.0f}", f"{rows / secs:,.0f}", f"{values / secs:,.0f}",
            f"{secs / raw_s:.2f}x time",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"collector CPU: {collector_cpu_s:.2f} s for {values:,} field values = "
        f"{values / collector_cpu_s:,.0f} field values per CPU-second "
        f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    target = 300_000
    ok = values / e2e_s >= target
    console.print(
        f"end to end: {values / e2e_s:,.0f} field values/s (target >= {target:,}): {'OK' if ok else 'BELOW TARGET'}"
    )


if __name__ == "__main__":
    main()
