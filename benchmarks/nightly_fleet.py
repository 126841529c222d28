"""The nightly analysis of a fleet: `analysis.analyze.analyze` of every node's victim over 24 h, on 2 cores.

Builds once (cached under ``--cache``, grown when a run asks for more nodes; not timed) an embedded Parquet store
of ``--nodes`` nodes x 24 h (about 110 MB and 20-30 s of writing a node on a busy 2-core box): one node
is simulated for 24 h exactly as `benchmarks/analysis_scale.py` does (1 Hz telemetry of the seed-000 node: 34
accelerators, host, 64 cores, tenants; the victim's 640-request runs, baseline / dual_hive / full_stress five
times a day), then replicated across the fleet with the node renamed and run ids made unique per node (telemetry
rows, run events, per-request rows and the requests / tokens artifacts). Every node holds the same data, so every
node's result must be the same: the benchmark checks that too.

Then the nightly analysis (what `neighborscope report --nightly` runs per victim, `analyze(store, victim, node=...,
start, end, source="bench")`, here once per node) runs over all nodes in ``--jobs`` worker processes (default: one
per core), and the benchmark prints wall time, CPU time (user + sys of the workers), the workers' peak RSS and the
ratio to the 2-minute target. ``--baseline-tree DIR`` also runs the same analysis with the code of another
checkout (e.g. the previous commit) on the same store in the same run, and prints the ratio.

    .venv/bin/python benchmarks/nightly_fleet.py                  # 100 nodes (first build: ~40 min, 11 GB)
    .venv/bin/python benchmarks/nightly_fleet.py --nodes 10       # a quick run
    .venv/bin/python benchmarks/nightly_fleet.py --nodes 10 --baseline-tree /tmp/base   # old code, same run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# NS_CODE_TREE: the checkout whose analysis code a worker runs (--baseline-tree), else this one
sys.path.insert(0, os.environ.get("NS_CODE_TREE") or str(ROOT))

TARGET_S = 120.0
VICTIM = "hive0"
TEMPLATE_NODE = "node00"


def node_name(i: int) -> str:
    return f"node-{i:03d}"


def build_template(cache: Path) -> Path:
    """24 h of one simulated node (benchmarks/analysis_scale.py's build), cached under ``cache/template``."""
    tpl = cache / "template"
    if (tpl / "run_event").is_dir() and (cache / "template.done").exists():
        return tpl
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from analysis_scale import build

    build(tpl, TEMPLATE_NODE, days=1.0, cycles_per_day=5, seed=0, num_prompts=640)
    (cache / "template.done").write_text("ok\n")
    return tpl


def replicate(tpl: Path, store_dir: Path, nodes: list[str], progress: object, count_file: Path, have: int) -> None:
    """Write the template's data into ``store_dir`` once per node (node renamed, run ids ``<node>.<run id>``),
    counting the nodes written in ``count_file`` as each one is complete. The slow, reference path (the store's
    own ``write``, 20-30 s a node): used for the fleet's first node; `copy_nodes` copies that one's files."""
    import polars as pl

    from analysis.ingest.model import Run, artifact_key, run_event_frame
    from telemetry.store.parquet import ParquetStore

    src = ParquetStore(tpl)
    measurements = [m for m in src.measurements() if m not in ("run_event", "bench_request")]
    frames = {m: src.scan(m).collect() for m in measurements}
    ev = src.query("run_event", tags={"event": "summary"})
    runs = [Run.from_json(t) for t in ev["metadata_json"].to_list() if t]
    bench = src.query("bench_request") if "bench_request" in src.measurements() else None
    arts = {
        (r.run_id, what): src.read_artifact(artifact_key(r.run_id, what))
        for r in runs
        for what in ("requests", "tokens")
    }
    src.close()
    st = ParquetStore(store_dir)
    task = progress.add_task("replicating the template node", total=len(nodes))  # type: ignore[attr-defined]
    for node in nodes:
        for m, frame in frames.items():
            st.write(m, frame.with_columns(pl.lit(node).alias("node")) if "node" in frame.columns else frame)
        for r in runs:
            rid = f"{node}.{r.run_id}"
            st.write("run_event", run_event_frame(replace(r, run_id=rid, node=node)))
            for what in ("requests", "tokens"):
                art = arts[(r.run_id, what)]
                if art is not None:
                    st.write_artifact(artifact_key(rid, what), art.with_columns(pl.lit(rid).alias("run_id")))
        if bench is not None and bench.height:
            st.write(
                "bench_request",
                bench.with_columns(pl.lit(node).alias("node"), (pl.lit(f"{node}.") + pl.col("run_id")).alias("run_id")),
            )
        progress.advance(task)  # type: ignore[attr-defined]
        have += 1
        count_file.write_text(f"{have}\n")
    st.close()


def files_by_node(store_dir: Path) -> dict[str, list[Path]]:
    """node -> its data files (every measurement/day file `replicate` and `copy_node` write holds one node, so its
    first row says whose it is)."""
    import polars as pl

    out: dict[str, list[Path]] = {}
    for mdir in sorted(p for p in store_dir.iterdir() if p.is_dir()):
        if mdir.name.startswith(("_", ".")) or mdir.name in ("artifacts", "quarantine"):
            continue
        for f in sorted(mdir.glob("*/*.parquet")):
            if f.name.startswith(".") or "node" not in pl.read_parquet_schema(f):
                continue
            node = pl.scan_parquet(f).select(pl.col("node").first()).collect().item()
            out.setdefault(node, []).append(f)
    return out


def copy_node(store_dir: str, files: list[str], runs_json: list[str], src_node: str, node: str) -> str:
    """Worker: ``src_node``'s files copied for ``node``, file by file, with the node column (and the run ids of
    per-request rows and artifacts, ``<node>.<run id>``) replaced; the same layout and encoding as `replicate`."""
    import uuid

    import polars as pl

    from analysis.ingest.model import Run, artifact_key, run_event_frame
    from telemetry.store.parquet import ParquetStore

    st = ParquetStore(store_dir)
    prefix = f"{src_node}."

    def renamed(col: str = "run_id") -> pl.Expr:
        return (pl.lit(f"{node}.") + pl.col(col).str.strip_prefix(prefix)).alias(col)

    for f in map(Path, files):
        frame = pl.read_parquet(f).with_columns(pl.lit(node).alias("node"))
        if "run_id" in frame.columns:
            frame = frame.with_columns(renamed())
        # atomic_write's encoding (zstd, statistics, polars' row groups), without its fsyncs: a benchmark's cache
        tmp = f.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex}.parquet"
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, f.parent / f"w-{uuid.uuid4().hex}.parquet")
    for text in runs_json:
        r = Run.from_json(text)
        rid = f"{node}.{r.run_id.removeprefix(prefix)}"
        st.write("run_event", run_event_frame(replace(r, run_id=rid, node=node)))
        for what in ("requests", "tokens"):
            art = st.read_artifact(artifact_key(r.run_id, what))
            if art is not None:
                st.write_artifact(artifact_key(rid, what), art.with_columns(pl.lit(rid).alias("run_id")))
    st.close()
    return node


def copy_nodes(store_dir: Path, nodes: list[str], progress: object, count_file: Path, have: int, jobs: int) -> None:
    """The fleet's first node copied to ``nodes`` (file by file, in ``jobs`` processes: 2-4 s of CPU a node instead
    of 20-30 s through the store's ``write``); ``count_file`` counts the nodes complete in order."""
    import multiprocessing
    import shutil
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from analysis.ingest.model import list_runs
    from telemetry.store.parquet import ParquetStore

    src_node = node_name(0)
    by_node = files_by_node(store_dir)
    for node in nodes:  # what an interrupted build left of a node it did not finish
        for f in by_node.get(node, []):
            f.unlink()
        for d in (store_dir / "artifacts" / "bench").glob(f"{node}.*"):
            shutil.rmtree(d)
    files = [str(f) for f in by_node[src_node] if f.parts[-3] != "run_event"]
    st = ParquetStore(store_dir, create=False)
    runs_json = [r.to_json() for r in list_runs(st, {"node": src_node})]
    st.close()
    task = progress.add_task(f"copying {src_node} to {len(nodes)} nodes ({jobs} processes)", total=len(nodes))  # type: ignore[attr-defined]
    done: set[str] = set()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futs = [pool.submit(copy_node, str(store_dir), files, runs_json, src_node, n) for n in nodes]
        for fut in as_completed(futs):
            done.add(fut.result())
            progress.advance(task)  # type: ignore[attr-defined]
            while node_name(have) in done:
                have += 1
                count_file.write_text(f"{have}\n")


def build_fleet(cache: Path, n_nodes: int, progress: object, jobs: int = 2) -> tuple[Path, datetime, datetime]:
    """The fleet store under ``cache/fleet``, grown to at least ``n_nodes`` nodes (built once, grown on demand:
    ``cache/fleet.nodes`` says how many it holds), and the nightly window [start, end) of its runs."""
    import polars as pl

    store = cache / "fleet"
    count_file = cache / "fleet.nodes"
    have = int(count_file.read_text()) if count_file.exists() and store.is_dir() else 0
    if have == 0 and store.exists():
        import shutil

        shutil.rmtree(store)  # a build that was interrupted before its first node was recorded
    if have < n_nodes:
        if have == 0:
            t = progress.add_task("simulating 24 h of the template node (once)", total=None)  # type: ignore[attr-defined]
            tpl = build_template(cache)
            progress.update(t, total=1, completed=1)  # type: ignore[attr-defined]
            replicate(tpl, store, [node_name(0)], progress, count_file, have)
            have = 1
        copy_nodes(store, [node_name(i) for i in range(have, n_nodes)], progress, count_file, have, jobs)
    ev = pl.scan_parquet(str(store / "run_event" / "*" / "*.parquet")).select(
        pl.col("time").min().alias("lo"), pl.col("time").max().alias("hi")
    )
    lo, hi = ev.collect().row(0)
    # the nightly window: the whole days the runs fall on
    start = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    end = hi.replace(hour=0, minute=0, second=0, microsecond=0)
    from datetime import timedelta

    if end <= hi:
        end += timedelta(days=1)
    return store, start, end


# ------------------------------------------------------------------------------------------------ workers


def peak_rss_bytes() -> int:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that across fork and exec, so a
    worker started by a parent that built the store would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def result_line(node: str, res: object, wall: float, cpu: float, rss: int) -> str:
    """One node's result as the JSON line the parent reads: cost, and what the nodes must agree on."""
    top = res.antagonists.row(0, named=True) if res.antagonists.height else None  # type: ignore[attr-defined]
    phases = res.phases  # type: ignore[attr-defined]
    return json.dumps(
        {
            "node": node,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "rss_bytes": rss,
            "window_s": res.window_s,  # type: ignore[attr-defined]
            "phases": phases.height,
            "top": None if top is None else [top["antagonist"], top["resource"], bool(top["significant"])],
            "verdicts": sorted(str(v) for v in phases["verdict"].to_list()) if "verdict" in phases.columns else [],
            "digest": digest(res),
        }
    )


def digest(res: object) -> str:
    """A hash of the whole result (phase table, every ranked antagonist with its figures, notes; numbers to 8
    significant digits), with the node's own name and run ids taken out: identical nodes must give identical
    digests, and old and new code too."""
    import hashlib

    def rounded(v: object) -> object:  # polars sums in parallel: the last bits of a mean vary from run to run
        if isinstance(v, float):
            return float(f"{v:.8g}")
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [rounded(x) for x in v]
        return v

    text = json.dumps(rounded(res.to_dict()), sort_keys=True, default=str)  # type: ignore[attr-defined]
    text = re.sub(r"node-\d{3}", "NODE", text)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def analyse_nodes(store: str, nodes: list[str], start: str, end: str) -> None:
    """Worker process (the old shape: `analyze` per node against the whole store, which lists every node's runs
    each time): one JSON line per node (wall, CPU delta, RSS so far)."""
    from analysis.analyze import analyze
    from telemetry.store.factory import open_store

    t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(end)
    for node in nodes:
        st = open_store(store, create=False)
        u0 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        res = analyze(st, VICTIM, node=node, start=t0, end=t1, source="bench")
        wall = time.perf_counter() - t
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        st.close()
        cpu = u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime
        print(result_line(node, res, wall, cpu, peak_rss_bytes()), flush=True)


def analyse_night(store: str, nodes: list[str], start: str, end: str, jobs: int) -> None:
    """The product's nightly job (`analysis.nightly`): the night's runs listed once, then every node's victim
    analysed in ``jobs`` worker processes; one JSON line per node, as `analyse_nodes` prints."""
    from analysis.nightly import NodeJob, plan_night, run_night
    from telemetry.store.factory import open_store

    t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(end)
    st = open_store(store, create=False)
    want = set(nodes)
    plan = [j for j in plan_night(st, t0, t1, victims=[VICTIM]) if j.node in want]
    st.close()
    plan = [NodeJob(j.node, j.victims, j.runs) for j in plan]
    for done in run_night(store, plan, start=t0, end=t1, workers=jobs):
        if done.error or isinstance(done.value.get(VICTIM), str):
            raise SystemExit(f"{done.node}: {done.error or done.value[VICTIM]}")
        print(result_line(done.node, done.value[VICTIM], done.wall_s, done.cpu_s, done.peak_rss_bytes), flush=True)


def run_fleet(
    tree: Path,
    store: Path,
    nodes: list[str],
    start: datetime,
    end: datetime,
    jobs: int,
    progress: object,
    label: str,
    nightly: bool = False,
    warm: bool = False,
) -> dict:
    """Analyse ``nodes`` with the code in ``tree``, in ``jobs`` worker processes; wall, CPU, peak RSS, results.
    ``nightly``: through `analysis.nightly` (one process that lists the runs once and starts the workers), else
    the old shape (``jobs`` processes, each running `analyze` per node against the whole store)."""
    shares = [nodes[i::jobs] for i in range(jobs) if nodes[i::jobs]]
    if nightly:
        shares = [nodes]
    if not warm:  # a night analyses new runs: no derived artifacts (analysis.derived) of an earlier run
        import shutil

        shutil.rmtree(store / "artifacts" / "derived", ignore_errors=True)
    task = progress.add_task(f"nightly analysis ({label}, {jobs} processes)", total=len(nodes))  # type: ignore[attr-defined]
    env = {**os.environ, "NS_CODE_TREE": str(tree)}
    t = time.perf_counter()
    procs = []
    for share in shares:
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "nightly_fleet.py"),
            "--child",
            str(store),
            start.isoformat(),
            end.isoformat(),
            ",".join(share),
        ]
        if nightly:
            cmd[2:3] = ["--nightly-child", str(jobs)]
        p = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
    results: list[dict] = []
    errors: list[str] = []
    usage: list[tuple[float, int]] = []
    import selectors

    sel = selectors.DefaultSelector()
    for p in procs:
        sel.register(p.stdout, selectors.EVENT_READ, p)  # type: ignore[arg-type]
    open_n = len(procs)
    while open_n:
        for key, _ in sel.select():
            line = key.fileobj.readline()  # type: ignore[union-attr]
            if not line:
                sel.unregister(key.fileobj)
                open_n -= 1
                continue
            if line.startswith("{"):
                results.append(json.loads(line))
                progress.advance(task)  # type: ignore[attr-defined]
    for p in procs:
        _, ru = _wait(p)
        usage.append(ru)
        if p.returncode:
            errors.append(p.stderr.read()[-2000:])  # type: ignore[union-attr]
    wall = time.perf_counter() - t
    if errors:
        raise SystemExit(f"{label}: a worker failed:\n{errors[0]}")
    return {
        "label": label,
        "nodes": len(results),
        "jobs": jobs if nightly else len(shares),
        "wall_s": round(wall, 2),
        "cpu_s": round(sum(u[0] for u in usage), 2),
        "peak_rss_bytes": max(r["rss_bytes"] for r in results),
        "rss_after_each_node_mib": [round(r["rss_bytes"] / 2**20) for r in results],
        "per_node_wall_s": round(sum(r["wall_s"] for r in results) / max(len(results), 1), 3),
        "per_node_cpu_s": round(sum(r["cpu_s"] for r in results) / max(len(results), 1), 3),
        "results": results,
    }


def _wait(p: subprocess.Popen) -> tuple[int, tuple[float, int]]:
    """Wait for ``p`` and return (status, (user + sys CPU s, ru_maxrss bytes)) of that child alone."""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return status, (ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024)


def _consistent(res: dict) -> str:
    """Every node holds the same data: they must agree on window, phases and the top antagonist."""
    keys = {r["digest"] for r in res["results"]}
    return "all nodes agree" if len(keys) == 1 else f"NODES DISAGREE ({len(keys)} distinct results)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: one per core)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ns-nightly-fleet"), help="where the store is built")
    ap.add_argument("--baseline-tree", type=Path, default=None, help="also run with this checkout's code")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--build-only", action="store_true", help="build (grow) the store, analyse nothing")
    ap.add_argument("--warm", action="store_true", help="keep the derived artifacts of an earlier run (default: cold)")
    ap.add_argument("--analyse", type=int, default=None, help="analyse only the first N nodes (default: all)")
    ap.add_argument("--child", nargs=4, metavar=("STORE", "START", "END", "NODES"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--nightly-child", nargs=5, metavar=("JOBS", "STORE", "START", "END", "NODES"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.nightly_child:
        jobs, store, start, end, nodes = args.nightly_child
        analyse_night(store, nodes.split(","), start, end, int(jobs))
        return
    if args.child:
        store, start, end, nodes = args.child
        analyse_nodes(store, nodes.split(","), start, end)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        store, start, end = build_fleet(args.cache, args.nodes, progress, args.jobs)
        if args.build_only:
            return
        nodes = [node_name(i) for i in range(min(args.analyse or args.nodes, args.nodes))]
        runs = []
        if args.baseline_tree is not None:
            runs.append(
                run_fleet(args.baseline_tree, store, nodes, start, end, args.jobs, progress, "baseline", warm=args.warm)
            )
        runs.append(
            run_fleet(ROOT, store, nodes, start, end, args.jobs, progress, "this tree", nightly=True, warm=args.warm)
        )
    load = os.getloadavg()
    out = Console()
    size = sum(p.stat().st_size for p in store.rglob("*.parquet"))
    held = int((args.cache / "fleet.nodes").read_text())
    out.print(f"store: {held} nodes x 24 h ({size / 2**30:.2f} GiB; {len(nodes)} analysed), window {start} .. {end}")
    for r in runs:
        out.print(
            f"{r['label']}: {r['nodes']} nodes in {r['wall_s']:.1f} s wall ({r['wall_s'] / TARGET_S:.2f} x the "
            f"{TARGET_S:.0f} s target), {r['cpu_s']:.1f} s CPU ({r['per_node_cpu_s']:.2f} s per node), peak RSS of "
            f"a worker {r['peak_rss_bytes'] / 2**20:.0f} MiB, {r['jobs']} processes; {_consistent(r)}"
        )
    if len(runs) == 2:
        b, n = runs
        out.print(
            f"this tree vs baseline: wall {n['wall_s'] / b['wall_s']:.2f}x, CPU {n['cpu_s'] / b['cpu_s']:.2f}x, "
            f"peak RSS {n['peak_rss_bytes'] / b['peak_rss_bytes']:.2f}x"
        )
        old_d = {r["node"]: r["digest"] for r in b["results"]}
        differ = sorted(r["node"] for r in n["results"] if old_d.get(r["node"]) != r["digest"])
        out.print(
            "old and new code give identical results on every node"
            if not differ and len(old_d) == len(n["results"])
            else f"OLD AND NEW DIFFER on {len(differ)} node(s): {differ[:5]}"
        )
    out.print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "nodes": args.nodes,
                    "store_bytes": size,
                    "load": load,
                    "target_s": TARGET_S,
                    "runs": [
                        {
                            **{k: v for k, v in r.items() if k != "results"},
                            "per_node": [
                                {k: x[k] for k in ("node", "wall_s", "cpu_s", "digest")} for x in r["results"]
                            ],
                        }
                        for r in runs
                    ],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
