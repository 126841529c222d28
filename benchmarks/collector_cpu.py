"""The collector's CPU per agent batch, side by side with baselines measured in the same run.

A real collector (`benchmarks/fleet_load.py`'s step: a subprocess on 127.0.0.1, embedded Parquet store, N nodes
sending one 34-accelerator batch per second each, phases spread over the second, the load generator on the
same box) is run once per ``--pace`` value (the collector's ``commit_pace_s``; 0 is the collector before
pacing: a group is committed as soon as the previous one is done). Its CPU time (user + system, all threads,
psutil) over the batches it stored is the figure; on a shared machine the wall clock says little, CPU time
much more (it still grows somewhat with the load: caches and hyper-threads are shared).

The baselines run in this process on the same batches, after the collectors, CPU time, best of 3 rounds taken
in turn, with the collector process's garbage-collector settings:

- ``decode``: gzip inflation and ``orjson.loads`` alone;
- ``decode+validate typed``: inflation, `telemetry.batch.decode_batch` (JSON straight into typed columns) and
  `validate_typed`: the request path of a plainly valid batch (issue 21);
- ``decode+validate generic``: inflation, ``orjson.loads``, `plain_batch` and `validate_columns` (every rule,
  naming the sample): what a batch the typed decoder leaves to it costs;
- ``decode+validate before`` (with ``--baseline-tree`` / ``--baseline-rev``): the same with the
  ``telemetry/batch.py`` of the code before, imported beside ours;
- ``store``: the validated batches written by ``ParquetStore.write_batches`` in groups of the size the
  collector formed (the raw store write of the same frames, durable: files and fsyncs).

With ``--baseline-tree DIR`` (``git archive HEAD | tar -x -C DIR`` before the change) or ``--baseline-rev REV``
the collector of before runs too, same nodes and paces, right after ours: this tree with the files the change
touched (`CHANGED`) taken from DIR, so the two differ by the change only. Each collector row prints its CPU per
batch and its ratio to ``decode+validate typed + store``: what HTTP, the event loop and the group committer add.

    .venv/bin/python benchmarks/collector_cpu.py                           # 300 nodes, 10 s, pace 0.05
    .venv/bin/python benchmarks/collector_cpu.py --nodes 1000 --baseline-rev HEAD~1 --json out.json
    .venv/bin/python benchmarks/collector_cpu.py --baselines-only --baseline-rev HEAD~1   # in-process only
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

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


def old_batch_module(tree: Path | None) -> ModuleType | None:
    """``telemetry/batch.py`` of another tree (an export of the code before) imported beside ours as
    ``baseline_batch`` (it imports the rest of ``telemetry`` from this tree): the decode + validate of before,
    measured in this process on the same batches."""
    if tree is None:
        return None
    spec = importlib.util.spec_from_file_location("baseline_batch", tree / "telemetry" / "batch.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["baseline_batch"] = mod
    spec.loader.exec_module(mod)
    return mod


def decode_validate(bodies: list[bytes], old: ModuleType | None, repeat: int = 3) -> dict[str, float]:
    """CPU ms per batch, best of ``repeat`` rounds taken in turn (so a burst of load hits every variant alike),
    with the collector process's garbage-collector settings: ``inflate`` (gzip, the same for every path),
    then on the inflated bodies ``decode`` (orjson), ``decode+validate generic`` (orjson + `plain_batch` +
    `validate_columns`: the path a batch takes when the typed decoder leaves it to it), ``decode+validate
    typed`` (`decode_batch` + `validate_typed`: the request path of a plainly valid batch), and with ``old`` (a
    `baseline_batch`) ``decode+validate before``, the generic path of before."""
    import gc

    import orjson

    from telemetry.batch import decode_batch, validate_columns, validate_typed
    from telemetry.collector.body import _inflate
    from telemetry.collector.ingest import plain_batch
    from telemetry.collector.server import tune_gc
    from telemetry.schema import time_window_ns

    window = time_window_ns(time.time_ns(), 86_400)
    inflated = [_inflate(b, "gzip", 2**26) for b in bodies]

    def generic_with(validate: Any) -> Any:
        def run(data: bytes) -> object:
            node, _boot, _seq, frames = plain_batch(orjson.loads(data))  # type: ignore[misc]
            return validate(node, frames, window)

        return run

    def typed(data: bytes) -> object:
        tb = decode_batch(data)
        assert tb is not None, "the typed decoder left an agent batch to the generic path"
        cols = validate_typed(tb.node, tb.frames, window)
        assert cols is not None, "typed validation left an agent batch to the generic path"
        return cols

    variants: dict[str, tuple[Any, list[bytes]]] = {
        "inflate": (lambda b: _inflate(b, "gzip", 2**26), bodies),
        "decode": (orjson.loads, inflated),
        "decode+validate generic": (generic_with(validate_columns), inflated),
        "decode+validate typed": (typed, inflated),
    }
    if old is not None:
        variants["decode+validate before"] = (generic_with(old.validate_columns), inflated)
    for fn, items in variants.values():  # warm up: the typed decoder's build, known tag values
        fn(items[0])
    thresholds = gc.get_threshold()
    tune_gc()
    best = dict.fromkeys(variants, float("inf"))
    try:
        for _ in range(repeat):
            for name, (fn, items) in variants.items():
                c0 = time.process_time()
                for item in items:
                    fn(item)
                best[name] = min(best[name], 1e3 * (time.process_time() - c0) / len(items))
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    return best


def baselines(bodies: list[bytes], group: int, old: ModuleType | None = None) -> dict[str, float]:
    """`decode_validate`, and the store write of the validated batches in groups of ``group`` (CPU ms per batch,
    this process, all threads)."""
    from telemetry.batch import decode_batch, validate_typed
    from telemetry.collector.body import _inflate
    from telemetry.schema import time_window_ns
    from telemetry.store.base import BatchKey
    from telemetry.store.parquet import ParquetStore

    out = decode_validate(bodies, old)
    n = len(bodies)
    window = time_window_ns(time.time_ns(), 86_400)
    checked = []
    for b in bodies:
        tb = decode_batch(_inflate(b, "gzip", 2**26))
        assert tb is not None
        checked.append((BatchKey(tb.node, tb.boot_id, tb.seq), validate_typed(tb.node, tb.frames, window)))
    with tempfile.TemporaryDirectory(prefix="ns-cpu-store-") as tmp:
        store = ParquetStore(Path(tmp) / "store")
        c3 = time.process_time()
        for i in range(0, n, max(1, group)):
            store.write_batches(checked[i : i + max(1, group)], conformed=True)
        c4 = time.process_time()
        store.close()
    out["store"] = 1e3 * (c4 - c3) / n
    return out


def export_tree(rev: str) -> Path:
    """The repository at ``rev`` (``git archive``) in a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="ns-cpu-base-"))
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", rev], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    return tmp


#: the files issue 21 changed: the "before" collector is this tree with these taken from the baseline tree
CHANGED = (
    "telemetry/batch.py",
    "telemetry/collector/ingest.py",
    "telemetry/collector/protocol.py",
    "telemetry/collector/routes.py",
)


def overlay(tree: Path) -> Path:
    """This tree's ``telemetry`` package with the `CHANGED` files of ``tree``: the collector before, with
    everything else (the command line, the committer, ...) as it is now, so the two differ by this change only."""
    out = Path(tempfile.mkdtemp(prefix="ns-cpu-before-"))
    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "telemetry", out / "telemetry", ignore=shutil.ignore_patterns("__pycache__"))
    for rel in CHANGED:
        shutil.copy2(tree / rel, out / rel)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=300, help="nodes sending one batch per second each")
    ap.add_argument("--step-s", type=float, default=10.0, help="seconds of sending per collector")
    ap.add_argument("--pace", default="0.05", help="commit_pace_s values to run, one collector each")
    ap.add_argument("--accels", type=int, default=34)
    ap.add_argument("--cores", type=int, default=32)
    ap.add_argument(
        "--baseline-tree",
        type=Path,
        default=None,
        help="an export of the code before (git archive HEAD | tar -x -C DIR): its collector runs too, "
        "same nodes and paces, and its decode + validate is measured beside ours",
    )
    ap.add_argument("--baseline-rev", default=None, help="as --baseline-tree, exported from this git revision")
    ap.add_argument("--baselines-only", action="store_true", help="no collector: the in-process figures only")
    ap.add_argument("--group", type=int, default=50, help="store group size with --baselines-only")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)  # fmt: skip
    tree = args.baseline_tree or (export_tree(args.baseline_rev) if args.baseline_rev else None)
    old = old_batch_module(tree)
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
    runs = []  # (label, pace, result)
    codes = [("after", None)] + ([("before", overlay(tree))] if tree is not None else [])
    with tempfile.TemporaryDirectory(prefix="ns-cpu-") as tmp:
        for pace in [] if args.baselines_only else paces:
            for label, code in codes:
                workdir = Path(tmp) / f"{label}-pace-{pace:g}"
                workdir.mkdir()
                config = workdir / "collector.toml"
                fl.write_config(config, args.nodes, pace)
                print(f"collector ({label}), commit_pace_s = {pace:g}: {args.nodes} nodes for {args.step_s:g} s ...",
                      file=sys.stderr)  # fmt: skip
                saved = os.environ.get("PYTHONPATH")
                if code is not None:  # the collector subprocess imports `telemetry` from the overlay
                    os.environ["PYTHONPATH"] = str(code)
                try:
                    runs.append((label, pace, fl.run_step(args.nodes, step, workdir, config, templates)))
                finally:
                    if saved is None:
                        os.environ.pop("PYTHONPATH", None)
                    else:
                        os.environ["PYTHONPATH"] = saved
    group = max([r.batches_per_group or 1.0 for _, _, r in runs] or [args.group])
    base = baselines(sample, round(group), old)
    work = base["inflate"] + base["decode+validate typed"] + base["store"]
    load = os.getloadavg()[0]
    print(f"\nCollector CPU per agent batch ({args.accels} accel + 1 host + {args.cores} host_core rows), "
          f"{args.nodes} nodes at 1 Hz, load average {load:.1f} on {os.cpu_count()} CPUs (CPU time, best of 3)")  # fmt: skip
    ref_name = "decode+validate before" if "decode+validate before" in base else "decode+validate generic"
    ref, typ = base[ref_name], base["decode+validate typed"]
    print(f"  inflate (gzip, every path)                          {base['inflate']:.3f} ms")
    print(f"  decode (orjson)                                     {base['decode']:.3f} ms")
    if "decode+validate before" in base:
        print(f"  decode + validate before (orjson + validate_columns) {base['decode+validate before']:.3f} ms")
    print(f"  decode + validate generic, now                      {base['decode+validate generic']:.3f} ms")
    print(f"  decode + validate typed (decode_batch + validate_typed) {typ:.3f} ms")
    print(f"    typed: {ref / typ:.2f}x less CPU than {ref_name.split()[-1]}; "
          f"with inflating: {(ref + base['inflate']) / (typ + base['inflate']):.2f}x")  # fmt: skip
    print(f"  store write, groups of {round(group):>4}                      {base['store']:.3f} ms")
    print(f"  work = inflate + decode + validate typed + store    {work:.3f} ms")
    for label, pace, r in runs:
        ms = r.collector_cpu_ms_per_batch
        ratio = f"{ms / work:.2f}x the work" if ms else "-"
        print(f"  collector {label:<6} commit_pace_s={pace:<5g} {ms or float('nan'):.3f} ms per batch ({ratio}), "
              f"{r.batches_per_group or float('nan'):.1f} batches/group, p99 {r.latency_ms_p99 or float('nan'):.0f} ms, "
              f"{r.ok}/{r.scheduled} stored, {r.verdict}{' (' + '; '.join(r.reasons) + ')' if r.reasons else ''}")  # fmt: skip
    for pace in paces:
        got = {label: r.collector_cpu_ms_per_batch for label, p, r in runs if p == pace}
        if got.get("before") and got.get("after"):
            print(
                f"  commit_pace_s {pace:g}: after uses {got['before'] / got['after']:.2f}x less CPU per batch than before"
            )
    if args.json:
        args.json.write_text(json.dumps({
            "nodes": args.nodes, "step_s": args.step_s, "loadavg_1m": load, "baselines_ms": base,
            "runs": [{"code": label, "commit_pace_s": p, "cpu_ms_per_batch": r.collector_cpu_ms_per_batch,
                      "batches_per_group": r.batches_per_group, "latency_ms_p99": r.latency_ms_p99,
                      "ok": r.ok, "scheduled": r.scheduled, "verdict": r.verdict, "reasons": r.reasons}
                     for label, p, r in runs],
        }, indent=2) + "\n")  # fmt: skip
    return 0 if all(r.ok for _, _, r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
