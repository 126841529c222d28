"""`neighborscope demo`: the whole path on a simulated seed-000 node, with no hardware and no server.

1. simulate the node of seed 000 (16 MI300X in two hives, 16 Tenstorrent, 2 Furiosa, host CPUs) through
   its three phases, writing the benchmark results in a real tool format (AIPerf ``profile_export.jsonl``);
2. start a real collector on loopback with the embedded store in ``DIR/store`` (or ``--store URL``: InfluxDB,
   VictoriaMetrics, with the local queue and artifacts in ``DIR``);
3. push the telemetry through the real HTTP ingest path, batch by batch, as an agent does (gzip JSON,
   bearer token, sequence numbers, retries);
4. import the benchmark files with ``neighborscope import bench`` (the path a user's files take);
5. run ``neighborscope analyze`` (phase table, ranked antagonists) and ``neighborscope report``;
6. print what was stored: series, points, time range, phases.

Stages talk over HTTP and the command line, never by import (STYLE.md): each is a subprocess.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from telemetry.collector.process import NEIGHBORSCOPE, CollectorStartError, running_collector
from telemetry.console import output_console
from telemetry.errors import NeighborscopeError

CLI = NEIGHBORSCOPE


class DemoError(NeighborscopeError):
    """A demo step failed."""


def _remote_url(url: str, workdir: Path) -> str:
    """A server store's URL (``influx://``, ``vm://``, ...) with its local queue and artifacts in the demo's
    directory unless the URL names them: the demo keeps its files together, and each step (collector, importers,
    analysis, report) opens the same queue and finds the same token artifacts."""
    if "://" not in url or url.startswith("file://"):
        return url
    parts = urlsplit(url)
    params = parse_qs(parts.query, keep_blank_values=True)
    extra = {k: str(workdir / k) for k in ("queue", "artifacts") if k not in params}
    if not extra:
        return url
    return url + ("&" if parts.query else "?" if "?" not in url else "") + urlencode(extra, safe="/")


def _run(console: Console, title: str, args: list[str], cwd: Path, show: bool = True) -> str:
    console.print(f"[bold cyan]$ neighborscope {' '.join(args)}[/]")
    started = time.perf_counter()
    proc = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DemoError(f"{title} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    if show and proc.stdout.strip():
        console.print(proc.stdout.rstrip(), markup=False, highlight=False)
    console.print(f"[dim]{title}: {time.perf_counter() - started:.1f} s[/]")
    return proc.stdout


def _push_telemetry(console: Console, result, node: str, url: str, token: str, chunk_s: int) -> tuple[int, int]:
    """Stream the simulated node's telemetry to the collector as an agent would: the agent's encoder and
    transport, and its retry policy (backoff, the collector's Retry-After)."""
    from agents.transport import Transport
    from telemetry.batch import encode_batch
    from telemetry.retry import Backoff

    transport = Transport(url, token)
    boot_id = uuid.uuid4().hex
    batches = rows = 0
    total = -(-result.duration_s // chunk_s)
    with Progress(
        TextColumn("pushing telemetry"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("push", total=total)
        for seq, (_t0, frames) in enumerate(result.iter_telemetry(chunk_s)):
            frames = {m: f for m, f in frames.items() if m != "run_event" and f.height}
            body = encode_batch(node, boot_id, seq, frames)
            backoff = Backoff(min_s=0.1, max_s=2.0)
            for _attempt in range(20):
                res = transport.post(body)
                if res.outcome == "ok":
                    break
                if res.outcome == "rejected" or res.status in (401, 403):
                    raise DemoError(f"the collector rejected batch {seq}: {res.status} {res.message}")
                time.sleep(backoff.next_wait(res.retry_after_s))
            else:
                raise DemoError(f"batch {seq} was not acknowledged: {res.status} {res.message}")
            batches += 1
            rows += sum(f.height for f in frames.values())
            progress.advance(task)
    transport.close()
    return batches, rows


def _import_runs(console: Console, result, sim_dir: Path, node: str, store: list[str], cwd: Path) -> None:
    """`neighborscope import bench` once per run (each has its own phase and group): two at a time into the
    embedded store; one at a time into a remote store (each importer owns the local queue while it runs)."""
    parallel = 2 if "://" not in store[1] or store[1].startswith("file://") else 1
    from telemetry.sim import BENCH_FORMATS

    started = time.perf_counter()
    pending = []
    for run in result.runs:
        path = sim_dir / "bench" / run.run_id / BENCH_FORMATS["aiperf"]
        args = ["import", "bench", str(path), "--run", run.run_id, "--phase", run.phase, "--group", run.group]
        console.print(f"[bold cyan]$ neighborscope {' '.join([*args, '--node', node, *store])}[/]")
        pending.append((run.run_id, [*CLI, *args, "--node", node, *store]))
    running: list[tuple[str, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < parallel:
            run_id, argv = pending.pop(0)
            running.append((run_id, subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        run_id, proc = running.pop(0)
        out = proc.communicate()[0].decode(errors="replace")
        if proc.returncode != 0:
            raise DemoError(f"import of {run_id} failed (exit {proc.returncode}):\n{out[-3000:]}")
    console.print(f"[dim]imported {len(result.runs)} runs: {time.perf_counter() - started:.1f} s[/]")


def _summary_table(store_url: str) -> Table:
    from telemetry.store.factory import open_store

    store = open_store(store_url)
    table = Table(title=f"stored in {store_url}")
    for col in ("measurement", "series", "points", "from", "to"):
        table.add_column(col, justify="right" if col in ("series", "points") else "left")
    try:
        for m in store.measurements():
            frame = store.scan(m).select("time").collect()  # every store scans (lazily or not)
            lo, hi = (frame["time"].min(), frame["time"].max()) if frame.height else (None, None)
            table.add_row(
                m, f"{store.series(m).height:,}", f"{frame.height:,}",
                f"{lo:%Y-%m-%d %H:%M:%S}" if lo else "", f"{hi:%H:%M:%S}" if hi else "",
            )  # fmt: skip
    finally:
        store.close()
    return table


def _phase_table(store_url: str) -> Table:
    from telemetry.store.factory import open_store

    store = open_store(store_url)
    try:
        events = store.query("run_event")
        reqs = store.query("bench_request", fields=["request_index"])  # tags come along
    finally:
        store.close()
    table = Table(title="benchmark runs (phases)")
    for col in ("run", "group", "phase", "start (UTC)", "end (UTC)", "requests"):
        table.add_column(col)
    if events.height == 0:
        return table
    counts = dict(reqs.group_by("run_id").len().iter_rows())
    starts = events.filter(pl.col("event") == "start")
    ends = {r["run_id"]: r["time"] for r in events.filter(pl.col("event") == "end").iter_rows(named=True)}
    for r in starts.sort("time").iter_rows(named=True):
        end = ends.get(r["run_id"])
        table.add_row(
            r["run_id"], r["group"] or "", r["phase"] or "", f"{r['time']:%H:%M:%S}",
            f"{end:%H:%M:%S}" if end else "", f"{counts.get(r['run_id'], 0):,}",
        )  # fmt: skip
    return table


def demo(
    directory: Path = typer.Option(
        Path("neighborscope-demo"), "--dir", help="Where the demo keeps its store and files."
    ),
    seed: int = typer.Option(0, "--seed", help="Simulator seed (same seed, same data)."),
    scenario: str = typer.Option(
        "seed000", "--scenario", help="Simulator preset (see `neighborscope simulate --help`)."
    ),
    phase_s: int | None = typer.Option(None, "--phase-s", help="Seconds per phase (default: the preset's, ~13 min)."),
    keep: bool = typer.Option(False, "--keep", help="Keep an existing store instead of starting afresh."),
    chunk_s: int = typer.Option(10, "--chunk-s", help="Seconds of telemetry per batch (an agent's flush interval)."),
    store: str | None = typer.Option(
        None,
        "--store",
        help=(
            "Store URL (e.g. influx://127.0.0.1:8086/neighborscope or vm://127.0.0.1:8428/demo); default: the "
            "embedded store in --dir. A server store keeps its queue and artifacts in --dir."
        ),
    ),
) -> None:
    """Run the whole pipeline on a simulated seed-000 node: collector, telemetry over HTTP, benchmark
    import, analysis, report. Needs no hardware and no server; takes about a minute on 2 cores.

    Example: neighborscope demo --dir ./neighborscope-demo --seed 0
    """
    console = output_console()
    started = time.perf_counter()
    workdir = directory.resolve()
    store_dir = workdir / "store"
    store_url = _remote_url(store, workdir) if store else str(store_dir)
    sim_dir = workdir / "sim"
    if not keep:
        for p in (store_dir, sim_dir, workdir / "report", workdir / "artifacts"):
            shutil.rmtree(p, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)

    from telemetry.sim import preset, simulate, write_output

    console.rule("[bold]1. simulate the seed-000 node")
    t = time.perf_counter()
    result = simulate(preset(scenario, phase_s=phase_s), seed=seed)
    write_output(result, sim_dir, formats=("aiperf",))
    shutil.copy(sim_dir / "topology.json", workdir / "topology.json")
    node = result.scenario.topology.node
    console.print(
        f"{len(result.scenario.topology.devices)} accelerators, {result.duration_s:,} s of 1 Hz telemetry, "
        f"{len(result.runs)} benchmark runs ({time.perf_counter() - t:.1f} s); ground truth in {sim_dir / 'ground_truth.json'}"
    )

    console.rule("[bold]2. start a collector on loopback")
    token = secrets.token_urlsafe(24)
    (workdir / "collector.log").unlink(missing_ok=True)
    try:
        with running_collector(store_url, workdir, tokens={node: token}) as collector:
            console.print(f"collector at {collector.url}, store {store_url}")
            console.rule("[bold]3. push telemetry through the HTTP ingest path")
            t = time.perf_counter()
            batches, rows = _push_telemetry(console, result, node, collector.url, token, chunk_s)
            console.print(f"{batches} batches, {rows:,} rows acknowledged ({time.perf_counter() - t:.1f} s)")
    except CollectorStartError as exc:
        raise DemoError(str(exc)) from None

    console.rule("[bold]4. import the benchmark results (AIPerf profile_export.jsonl)")
    env_store = ["--store", store_url]
    _import_runs(console, result, sim_dir, node, env_store, workdir)
    console.print(_phase_table(store_url))
    console.print(_summary_table(store_url))

    console.rule("[bold]5. noisy-neighbour analysis (victim hive0)")
    _run(
        console,
        "analyze",
        ["analyze", *env_store, "--victim", "hive0", "--json", str(workdir / "analysis.json")],
        workdir,
    )

    console.rule("[bold]6. nightly report")
    _run(console, "report", ["report", *env_store, "--victim", "hive0", "--out", str(workdir / "report")], workdir)
    console.print(f"report: {workdir / 'report' / 'index.html'}")
    topology = "" if store_url == str(store_dir) else f" --topology {workdir / 'topology.json'}"
    console.print(f"dashboard: neighborscope dashboard --store '{store_url}'{topology}")
    console.rule(f"[bold green]demo done in {time.perf_counter() - started:.0f} s")
