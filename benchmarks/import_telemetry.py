"""Import a large line-protocol file: throughput (MB/s) and peak RSS of `neighborscope import telemetry`.

Generates a line-protocol file of ``--size-mb`` (seed 000's simulated ``accel`` and ``host`` rows, repeated with
shifted times until the size is reached; under ``--dir``, deleted afterwards unless ``--keep``), then runs, each in
its own process so its peak RSS is its own (``--repeat N``: both N times, alternating; the fastest time and the
highest peak of each are reported):

1. the baseline: the raw line-protocol parser (`telemetry.line_protocol.decode`) over the same file in the same
   chunks, storing nothing;
2. the import: ``neighborscope import telemetry FILE --store DIR`` (a fresh embedded store), as a user runs it.

Prints MB/s, CPU seconds and peak RSS of each, the import's throughput as a share of the baseline's, and checks that
the store holds exactly the generated rows. The import must stay under 1 GiB peak RSS whatever the file's size
(issue 17.10: it took 7.6 GB for 500 MB when it read files whole) and reach 50 MB/s (issue 21).

``--old-tree DIR`` (a copy of the code before a change: ``git archive HEAD | tar -x -C DIR``) also runs the import
with that code, alternating with the new one on the same file, and prints the ratio: the figure to quote on a shared
machine, where bare times move with the load.

    .venv/bin/python benchmarks/import_telemetry.py                 # 500 MB
    .venv/bin/python benchmarks/import_telemetry.py --repeat 2      # less noise on a shared machine
    .venv/bin/python benchmarks/import_telemetry.py --size-mb 50 --json out.json
    .venv/bin/python benchmarks/import_telemetry.py --size-mb 200 --repeat 2 --old-tree /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEIGHBORSCOPE = [sys.executable, "-m", "telemetry.cli"]
GIB = 2**30


def generate(path: Path, size_bytes: int) -> dict[str, int]:
    """Write seed 000's accel + host rows as line protocol, repeated with shifted times, until ``size_bytes``;
    returns the rows written per measurement."""
    import polars as pl

    from telemetry.line_protocol import encode
    from telemetry.sim import preset, simulate

    tel = simulate(preset("seed000", phase_s=60), seed=0, bench=False).telemetry()
    frames = {m: tel[m] for m in ("accel", "host")}
    t0 = min(f["time"].min() for f in frames.values())
    t1 = max(f["time"].max() for f in frames.values())
    span = (t1 - t0) + (t1 - t0) / max(1, frames["host"].height - 1)  # one more tick: no overlap between copies
    rows = dict.fromkeys(frames, 0)
    written = 0
    with open(path, "wb") as fh:
        k = 0
        while written < size_bytes:
            for m, f in frames.items():
                body = encode(f.with_columns(pl.col("time") + span * k), m)
                fh.write(body)
                written += len(body)
                rows[m] += f.height
            k += 1
    return rows


def run_measured(cmd: list[str], tree: Path = ROOT) -> tuple[float, float, int, str]:
    """Run ``cmd`` with the code of ``tree``; (wall seconds, CPU seconds, peak RSS in bytes of that process, its
    stderr)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tree, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, err


def baseline(path: str) -> None:
    """The raw parser over the file's chunks (what an import cannot beat)."""
    from analysis.ingest.telemetry_import.base import line_chunks
    from telemetry.line_protocol import decode

    for _, data in line_chunks(Path(path)):
        decode(data)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=500.0, help="size of the generated file (MB, 10^6 bytes)")
    ap.add_argument("--dir", default="/tmp", help="where the file and the store are made")
    ap.add_argument("--keep", action="store_true", help="keep the file and the store")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run baseline and import this many times, alternating; the fastest of each counts "
        "(a shared machine is noisy)",
    )
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument(
        "--old-tree",
        type=Path,
        help="a copy of the code before a change (git archive HEAD | tar -x -C DIR): its import runs too, "
        "alternating with this tree's, and the ratio is printed",
    )
    ap.add_argument("--baseline-only", help=argparse.SUPPRESS)  # the child of step 1
    args = ap.parse_args(argv)
    if args.baseline_only:
        baseline(args.baseline_only)
        return {}
    work = Path(tempfile.mkdtemp(prefix="ns-import-bench-", dir=args.dir))
    try:
        lp = work / "telemetry.lp"
        t = time.perf_counter()
        rows = generate(lp, int(args.size_mb * 1e6))
        size = lp.stat().st_size
        print(f"generated {size / 1e6:.0f} MB ({sum(rows.values()):,} lines) in {time.perf_counter() - t:.0f} s: {lp}")
        base_s = imp_s = old_s = float("inf")
        base_cpu = imp_cpu = old_cpu = float("inf")
        base_rss = imp_rss = old_rss = 0
        err = ""
        for k in range(max(1, args.repeat)):
            s, cpu, rss, _ = run_measured([sys.executable, __file__, "--baseline-only", str(lp)])
            base_s, base_cpu, base_rss = min(base_s, s), min(base_cpu, cpu), max(base_rss, rss)
            if args.old_tree is not None:
                cmd = [*NEIGHBORSCOPE, "import", "telemetry", str(lp), "--store", str(work / f"old{k}")]
                s, cpu, rss, _ = run_measured(cmd, args.old_tree.resolve())
                old_s, old_cpu, old_rss = min(old_s, s), min(old_cpu, cpu), max(old_rss, rss)
                shutil.rmtree(work / f"old{k}", ignore_errors=True)
            store = work / f"store{k}"
            s, cpu, rss, err = run_measured([*NEIGHBORSCOPE, "import", "telemetry", str(lp), "--store", str(store)])
            imp_s, imp_cpu, imp_rss = min(imp_s, s), min(imp_cpu, cpu), max(imp_rss, rss)
            if k < max(1, args.repeat) - 1:
                shutil.rmtree(store, ignore_errors=True)
        from telemetry.store.factory import open_store

        st = open_store(store)
        try:
            stored = {m: st.scan(m).select("time").collect().height for m in rows}
        finally:
            st.close()
        mb = size / 1e6
        result = {
            "machine": f"{platform.node()} ({os.cpu_count()} CPUs)",
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "file_mb": round(mb, 1),
            "lines": sum(rows.values()),
            "baseline_parse_mb_s": round(mb / base_s, 2),
            "baseline_cpu_s": round(base_cpu, 2),
            "baseline_peak_rss_mib": round(base_rss / 2**20),
            "import_mb_s": round(mb / imp_s, 2),
            "import_s": round(imp_s, 1),
            "import_cpu_s": round(imp_cpu, 2),
            "import_peak_rss_mib": round(imp_rss / 2**20),
            "import_vs_baseline": round(base_s / imp_s, 3),
            "rows_exact": stored == rows,
        }
        if args.old_tree is not None:
            result |= {
                "old_import_mb_s": round(mb / old_s, 2),
                "old_import_cpu_s": round(old_cpu, 2),
                "old_import_peak_rss_mib": round(old_rss / 2**20),
                "new_vs_old_wall": round(old_s / imp_s, 3),
                "new_vs_old_cpu": round(old_cpu / imp_cpu, 3),
            }
        print(
            f"baseline (parse only):  {result['baseline_parse_mb_s']:7.2f} MB/s  CPU {base_cpu:6.2f} s  peak RSS "
            f"{result['baseline_peak_rss_mib']:6d} MiB"
        )
        if args.old_tree is not None:
            print(
                f"import, old tree:       {result['old_import_mb_s']:7.2f} MB/s  CPU {old_cpu:6.2f} s  peak RSS "
                f"{result['old_import_peak_rss_mib']:6d} MiB  ({old_s:.1f} s)"
            )
        print(
            f"import telemetry:       {result['import_mb_s']:7.2f} MB/s  CPU {imp_cpu:6.2f} s  peak RSS "
            f"{result['import_peak_rss_mib']:6d} MiB  ({result['import_s']} s)"
        )
        print(f"import / baseline throughput: {result['import_vs_baseline']:.2f}")
        if args.old_tree is not None:
            print(
                f"new / old: {result['new_vs_old_wall']:.2f}x wall, {result['new_vs_old_cpu']:.2f}x CPU "
                f"(load average {result['load_avg_1m']})"
            )
        print(f"store holds exactly the generated rows: {stored == rows} ({stored})")
        verdict = imp_rss < GIB and stored == rows
        print(
            "OK: under 1 GiB peak RSS"
            if verdict
            else "FAIL: " + ("over 1 GiB" if imp_rss >= GIB else "rows differ") + f"\n{err[-1000:]}"
        )
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        if not verdict:
            raise SystemExit(1)
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
