"""The collector's CPU per agent batch, side by side with baselines measured in the same run.

A real collector (`benchmarks/fleet_load.py`'s step: a subprocess on 127.0.0.1, embedded Parquet store, N nodes
sending one 34-accelerator batch per second each, phases spread over the second, the load generator on the
same box) is run once per ``--pace`` value (the collector's ``commit_pace_s``; 0 is the collector before
pacing: a group is committed as soon as the previous one is done). Its CPU time (user + system, all threads,
psutil) over the batches it stored is the figure; on a shared machine the wall clock says little, CPU time
much more (it still grows somewhat with the load: caches and hyper-threads are shared).

The baselines run in this process on the same batches, before the collectors:

- ``decode``: gzip inflation and ``orjson.loads`` alone (what any collector must do with the body);
- ``decode+validate``: the same plus `telemetry.batch.validate_columns` (every rule, no store);
- ``store``: the validated batches written by ``ParquetStore.write_batches`` in groups of the size the
  collector formed (the raw store write of the same frames, durable: files and fsyncs).

Each collector row prints its CPU per batch and its ratio to ``decode+validate + store``: what HTTP, the event
loop and the group committer add on top of the work itself.

    .venv/bin/python benchmarks/collector_cpu.py                           # 300 nodes, 10 s, pace 0 and 0.05
    .venv/bin/python benchmarks/collector_cpu.py --nodes 600 --pace 0,0.05,0.1 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).resolve().parent


def _fleet_load() -> ModuleType:
    if "fleet_load" in sys.modules:
        return sys.modules["fleet_load"]
    spec = importlib.util.spec_from_file_location("fleet_load", HERE / "fleet_load.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fleet_load"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def baselines(bodies: list[bytes], group: int) -> dict[str, float]:
    """CPU ms per batch of decoding, of decoding and validating, and of the store write of the validated
    batches in groups of ``group`` (this process, all threads)."""
    import orjson

    from telemetry.batch import validate_columns
    from telemetry.collector.body import _inflate
    from telemetry.collector.ingest import plain_batch
    from telemetry.schema import time_window_ns
    from telemetry.store.base import BatchKey
    from telemetry.store.parquet import ParquetStore

    n = len(bodies)
    window = time_window_ns(time.time_ns(), 86_400)
    c0 = time.process_time()
    docs = [orjson.loads(_inflate(b, "gzip", 2**26)) for b in bodies]
    c1 = time.process_time()
    checked = []
    for d in docs:
        node, boot, seq, frames = plain_batch(d)  # type: ignore[misc]
        checked.append((BatchKey(node, boot, seq), validate_columns(node, frames, window)))
    c2 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="ns-cpu-store-") as tmp:
        store = ParquetStore(Path(tmp) / "store")
        c3 = time.process_time()
        for i in range(0, n, max(1, group)):
            store.write_batches(checked[i : i + max(1, group)], conformed=True)
        c4 = time.process_time()
        store.close()
    return {
        "decode": 1e3 * (c1 - c0) / n,
        "decode+validate": 1e3 * (c2 - c0) / n,
        "store": 1e3 * (c4 - c3) / n,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=300, help="nodes sending one batch per second each")
    ap.add_argument("--step-s", type=float, default=10.0, help="seconds of sending per collector")
    ap.add_argument("--pace", default="0,0.05", help="commit_pace_s values to run, one collector each")
    ap.add_argument("--accels", type=int, default=34)
    ap.add_argument("--cores", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    fl = _fleet_load()
    paces = [float(p) for p in args.pace.split(",") if p.strip()]
    step = argparse.Namespace(
        step_s=args.step_s, flush_s=1.0, accels=args.accels, cores=args.cores, target_s=1.0, max_lag_s=1.0,
        drain_s=10.0, timeout_s=10.0, aligned=False, store=None, seed=0,
    )  # fmt: skip
    templates = [fl.node_template(i, args.accels, args.cores, 0) for i in range(args.nodes)]
    rng = np.random.default_rng(1)
    t_ns = time.time_ns()
    sample = [fl.batch_body(templates[i % args.nodes], "boot", k, t_ns + k * 10**9, rng)
              for k in range(3) for i in range(args.nodes)]  # fmt: skip
    runs = []
    with tempfile.TemporaryDirectory(prefix="ns-cpu-") as tmp:
        for pace in paces:
            workdir = Path(tmp) / f"pace-{pace:g}"
            workdir.mkdir()
            config = workdir / "collector.toml"
            fl.write_config(config, args.nodes, pace)
            print(f"collector, commit_pace_s = {pace:g}: {args.nodes} nodes for {args.step_s:g} s ...", file=sys.stderr)
            runs.append((pace, fl.run_step(args.nodes, step, workdir, config, templates)))
    group = max((r.batches_per_group or 1.0) for _, r in runs)
    base = baselines(sample, round(group))
    work = base["decode+validate"] + base["store"]
    load = os.getloadavg()[0]
    print(f"\nCollector CPU per agent batch ({args.accels} accel + 1 host + {args.cores} host_core rows), "
          f"{args.nodes} nodes at 1 Hz, load average {load:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"  baseline decode (inflate + orjson)          {base['decode']:.3f} ms")
    print(f"  baseline decode + validate                  {base['decode+validate']:.3f} ms")
    print(f"  baseline store write, groups of {round(group):>4}        {base['store']:.3f} ms")
    print(f"  work = decode + validate + store            {work:.3f} ms")
    for pace, r in runs:
        ms = r.collector_cpu_ms_per_batch
        ratio = f"{ms / work:.2f}x the work" if ms else "-"
        print(f"  collector commit_pace_s={pace:<5g} {ms or float('nan'):.3f} ms per batch ({ratio}), "
              f"{r.batches_per_group or float('nan'):.1f} batches/group, p99 {r.latency_ms_p99 or float('nan'):.0f} ms, "
              f"{r.ok}/{r.scheduled} stored, {r.verdict}{' (' + '; '.join(r.reasons) + ')' if r.reasons else ''}")  # fmt: skip
    unpaced = next((r.collector_cpu_ms_per_batch for p, r in runs if p == 0), None)
    for pace, r in runs:
        if pace and unpaced and r.collector_cpu_ms_per_batch:
            print(f"  commit_pace_s {pace:g}: {unpaced / r.collector_cpu_ms_per_batch:.2f}x less CPU per batch than 0")
    if args.json:
        args.json.write_text(json.dumps({
            "nodes": args.nodes, "step_s": args.step_s, "loadavg_1m": load, "baselines_ms": base,
            "runs": [{"commit_pace_s": p, "cpu_ms_per_batch": r.collector_cpu_ms_per_batch,
                      "batches_per_group": r.batches_per_group, "latency_ms_p99": r.latency_ms_p99,
                      "ok": r.ok, "scheduled": r.scheduled, "verdict": r.verdict, "reasons": r.reasons}
                     for p, r in runs],
        }, indent=2) + "\n")  # fmt: skip
    return 0 if all(r.ok for _, r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
