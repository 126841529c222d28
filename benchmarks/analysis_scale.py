"""How long `neighborscope analyze` takes, and how much memory, on a day (or a week) of a 34-accelerator node.

Builds (not timed) an embedded Parquet store with, per node: 1 Hz telemetry of the seed-000 node for ``--days``
days (accel 34 devices, host, host_core 64 cores, tenant) and the victim's 640-request benchmark runs spread over
the span (phases baseline / dual_hive / full_stress repeated ``--cycles`` times per day, one run at the start of
each phase, so each phase has K >= 2 runs and the Welch path is used). Then, for each node, runs
`analysis.analyze.analyze` in a fresh subprocess and reports its wall time and peak RSS (``VmHWM``): the
analysis reads the victim's runs and scans the telemetry of the whole span (first run start to last run end)
lazily. Wall time includes imports; CPU time (user + sys, all threads) is reported beside it because a shared
machine's wall time says more about the neighbours than about us.

    .venv/bin/python benchmarks/analysis_scale.py                      # 1 node x 24 h (the target: < 10 s, << 4 GiB)
    .venv/bin/python benchmarks/analysis_scale.py --days 7 --nodes 10  # a week of 10 nodes (long to build)
    .venv/bin/python benchmarks/analysis_scale.py --store /tmp/s --keep   # keep / reuse the store
    .venv/bin/python benchmarks/analysis_scale.py --days 7 --store /tmp/w --keep --baseline-tree /tmp/base

Each node is analysed with this tree three times (`CASES`): **cold** (the store's derived artifacts removed:
`analysis.derived`), **tokens kept** (only the runs' token aggregates kept) and **warm** (everything kept: the same
analysis again), each reported apart. ``--baseline-tree DIR`` first analyses each node with the code of another
checkout (e.g. the previous commit's ``analysis/`` and ``telemetry/``) on the same store and prints the ratios.
Every result is compared with the first one (the whole `AnalysisResult` as JSON and the victim windows, floats to
1e-9). The figure lines: ``a week of one node (warm): ...`` (or ``a day``, and per case), against the target
(< 5 s wall, < 1 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# NS_CODE_TREE: the checkout whose analysis code the child runs (--baseline-tree), else this one
sys.path.insert(0, os.environ.get("NS_CODE_TREE") or str(ROOT))


def build(store_dir: Path, node: str, days: float, cycles_per_day: int, seed: int, num_prompts: int) -> dict:
    """Simulate one node and write it into the store at ``store_dir``; returns counts."""
    import polars as pl

    from analysis.ingest.model import Run, artifact_key, run_event_frame
    from telemetry.sim import simulate
    from telemetry.sim.scenario import Phase, preset, seed000_topology
    from telemetry.store.parquet import ParquetStore

    base = preset("seed000", num_prompts=num_prompts)
    span_s = int(days * 86400)
    n_phases = max(3, round(days * cycles_per_day) * 3)
    phase_s = span_s // n_phases
    kinds = base.phases
    phases = tuple(Phase(kinds[i % 3].name, phase_s, kinds[i % 3].active) for i in range(n_phases))
    sc = replace(base, phases=phases, topology=seed000_topology(node=node), start=base.start + timedelta(days=0))
    t = time.perf_counter()
    res = simulate(sc, seed)
    sim_s = time.perf_counter() - t
    st = ParquetStore(store_dir)
    rows = 0
    for _, frames in res.iter_telemetry(chunk_s=3 * 3600):
        for name, frame in frames.items():
            if name != "run_event" and frame.height:
                rows += st.write(name, frame)
    tokens = 0
    for br in res.runs:
        req = br.requests_frame()
        requests = req.select(
            "run_id",
            "request_index",
            "time",
            "ttft_ms",
            "e2e_ms",
            "tpot_ms",
            pl.lit(None, dtype=pl.List(pl.Float64)).alias("itl_ms"),
            "input_tokens",
            "output_tokens",
            "error",
            "timing",
        )
        s = br.summary()
        run = Run(
            run_id=br.run_id,
            tool=br.tool,
            source="simulator",
            start=br.start,
            end=br.end,
            timing="wall_clock",
            node=node,
            group=br.group,
            phase=br.phase,
            summary={
                "completed": s["completed"],
                "duration_s": s["duration_s"],
                "output_tok_s": s["output_throughput"],
            },
        )
        st.write("run_event", run_event_frame(run))
        st.write("bench_request", req)
        st.write_artifact(artifact_key(br.run_id, "requests"), requests)
        tok = br.tokens_frame()
        tokens += tok.height
        st.write_artifact(artifact_key(br.run_id, "tokens"), tok)
    st.close()
    return {"node": node, "telemetry_rows": rows, "runs": len(res.runs), "tokens": tokens, "sim_s": round(sim_s, 1)}


def analyse_child(store_dir: str, node: str, victim: str, out_dir: str | None = None) -> None:
    """Run in a subprocess: analyse one node and print time and peak RSS as JSON (and, with ``out_dir``, write the
    result there: ``result.json`` and the victim windows ``windows.parquet``, for the comparison)."""
    t = time.perf_counter()
    from analysis.analyze import analyze
    from telemetry.store.factory import open_store

    st = open_store(store_dir)
    res = analyze(st, victim, node=node)
    wall = time.perf_counter() - t
    st.close()
    use = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec (a child of the builder would report
    # the builder's peak)
    hwm = [ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmHWM:")]
    rss = int(hwm[0].split()[1]) * 1024 if hwm else use.ru_maxrss * 1024
    top = res.antagonists.row(0, named=True) if res.antagonists.height else None
    if out_dir:
        Path(out_dir, "result.json").write_text(res.to_json())
        if res.attribution is not None:
            res.attribution.grid.victim.write_parquet(Path(out_dir, "windows.parquet"))
    print(
        json.dumps(
            {
                "node": node,
                "wall_s": round(wall, 2),
                "cpu_s": round(use.ru_utime + use.ru_stime, 2),
                "peak_rss_bytes": rss,
                "window_s": res.window_s,
                "phase_rows": res.phases.height,
                "victim_windows": 0 if res.attribution is None else res.attribution.grid.victim.height,
                "top": None if top is None else [top["antagonist"], top["resource"], top["significant"]],
                "methods": sorted(set(res.phases["method"].to_list())),
            }
        )
    )


def _differences(a: object, b: object, path: str = "", rel: float = 1e-9) -> list[str]:
    """Where two results (JSON values) differ beyond float rounding (relative ``rel``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{path}.{k}", rel)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= rel * max(abs(a), abs(b), 1e-300) else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def _same_result(a: Path, b: Path) -> list[str]:
    """The differences between two children's results (`analyse_child` ``out_dir``): the whole `AnalysisResult` as
    JSON (phases, antagonists of ITL and TTFT with their statistics, knee, notes) and the victim windows."""
    import polars as pl
    from polars.testing import assert_frame_equal

    diffs = _differences(json.loads((a / "result.json").read_text()), json.loads((b / "result.json").read_text()))
    if (a / "windows.parquet").exists() != (b / "windows.parquet").exists():
        return [*diffs, "victim windows: one result has none"]
    if (a / "windows.parquet").exists():
        try:
            assert_frame_equal(
                pl.read_parquet(a / "windows.parquet"), pl.read_parquet(b / "windows.parquet"), rel_tol=1e-9
            )
        except AssertionError as exc:
            diffs.append(f"victim windows: {str(exc).splitlines()[0]}")
    return diffs


CASES = (
    ("cold", ("derived",)),
    ("tokens kept", (f"derived{os.sep}telemetry_windows",)),
    ("warm", ()),
)
"""This tree's analyses of each node, in order, and the derived artifacts (`analysis.derived`, under the store's
``artifacts/``) removed before each: ``cold`` nothing kept (the first analysis of these runs ever); ``tokens
kept`` the runs' token aggregates kept, the telemetry windows not (an analysis of runs analysed before, after a
late telemetry batch, or of a range analysed before in parts); ``warm`` everything kept (the same analysis again:
the page reloaded, the CLI rerun)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--cycles", type=int, default=5, help="baseline/dual/full cycles per day (runs per phase)")
    ap.add_argument("--num-prompts", type=int, default=640)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the store (and reuse it when it exists)")
    ap.add_argument("--baseline-tree", type=Path, default=None, help="also analyse with this checkout's code")
    ap.add_argument("--child", nargs="+", metavar="STORE NODE VICTIM [OUT]", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        analyse_child(*args.child)
        return
    store = args.store or Path(tempfile.mkdtemp(prefix="ns-analysis-scale-"))
    nodes = [f"node{i:02d}" for i in range(args.nodes)]
    if not (args.keep and (store / "accel").exists()):
        for i, node in enumerate(nodes):
            t = time.perf_counter()
            info = build(store, node, args.days, args.cycles, seed=i, num_prompts=args.num_prompts)
            print(f"built {node}: {info} in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    results: dict[str, list[dict]] = {}
    runs = ([("baseline", args.baseline_tree, ())] if args.baseline_tree else []) + [
        (label, ROOT, drop) for label, drop in CASES
    ]
    outs = Path(tempfile.mkdtemp(prefix="ns-analysis-scale-out-"))
    same = True
    for node in nodes:
        first = None
        for label, tree, drop in runs:
            for d in drop:
                shutil.rmtree(store / "artifacts" / d, ignore_errors=True)
            out_dir = outs / f"{node}-{label.replace(' ', '-')}"
            out_dir.mkdir()
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(store), node, "hive0", str(out_dir)],
                capture_output=True,
                text=True,
                check=True,
                cwd=tree,
                env={**os.environ, "NS_CODE_TREE": str(tree)},
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.setdefault(label, []).append(r)
            diffs = [] if first is None else _same_result(first, out_dir)
            same = same and not diffs
            first = first or out_dir
            print(
                f"{label} {node}: {r['wall_s']} s wall ({r['cpu_s']} s CPU, all threads), peak RSS "
                f"{r['peak_rss_bytes'] / 2**20:.0f} MiB, window {r['window_s']} s, {r['victim_windows']} victim "
                f"windows, methods {r['methods']}, top {r['top']}; load average {os.getloadavg()[0]:.1f}"
                + ("" if first == out_dir else (" (same result)" if not diffs else f" DIFFERENT: {diffs[:5]}")),
                flush=True,
            )
    shutil.rmtree(outs, ignore_errors=True)
    size = sum(p.stat().st_size for p in store.rglob("*.parquet"))
    span = "a week" if args.days == 7 else ("a day" if args.days == 1 else f"{args.days:g} days")
    summary: dict[str, object] = {"days": args.days, "nodes": args.nodes, "store_bytes": size, "same_result": same}
    for label, rs in results.items():
        w = sum(r["wall_s"] for r in rs) / len(rs)
        c = sum(r["cpu_s"] for r in rs) / len(rs)
        m = max(r["peak_rss_bytes"] for r in rs)
        summary[label] = {"wall_s": round(w, 2), "cpu_s": round(c, 2), "peak_rss_bytes": m}
        print(
            f"{span} of one node ({label}): {w:.1f} s wall, {c:.1f} s CPU, peak RSS {m / 2**30:.2f} GiB "
            f"(target < 5 s wall, < 1 GiB: {w / 5:.2f}x, {m / 2**30:.2f}x); load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
    if "baseline" in results:
        b = summary["baseline"]
        for label, _ in CASES:
            t = summary[label]
            print(
                f"{label} vs baseline: CPU {t['cpu_s'] / b['cpu_s']:.2f}x, wall {t['wall_s'] / b['wall_s']:.2f}x, "  # type: ignore[index]
                f"peak RSS {t['peak_rss_bytes'] / b['peak_rss_bytes']:.2f}x"  # type: ignore[index]
            )
    print(json.dumps(summary))
    print(
        "same result in every case" if same else "RESULTS DIFFER (see above)",
        "| the figure as used: 'warm' for an analysis seen before (page reload, rerun), 'cold' for the first one",
    )
    if not args.keep and args.store is None:
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
