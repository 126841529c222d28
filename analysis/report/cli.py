"""`neighborscope report`: the nightly report (one self-contained HTML page plus summary.json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from telemetry import config
from telemetry.console import output_console
from telemetry.errors import ConfigError, NeighborscopeError


def parse_duration(text: str) -> timedelta:
    """``--since``: ``90s``, ``15m``, ``24h``, ``7d``, ``1w`` (or a sum such as ``1d12h``) as a timedelta."""
    try:
        return timedelta(seconds=config.parse_duration(text))
    except ValueError:
        raise ConfigError(f"--since {text!r}: expected a duration such as 90s, 15m, 24h, 7d") from None


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time (UTC when it has no offset) or ``now``."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected an ISO time such as 2026-03-02T09:00:00Z") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def latest_data_time(store: Any) -> datetime | None:
    """The newest timestamp of ``run_event`` or ``host`` rows in the store (None when it holds neither)."""
    newest: datetime | None = None
    for name, fields in (("run_event", ["event"]), ("host", ["cpu_util_pct"])):
        try:
            frame = store.query(name, fields=fields)
        except Exception:  # noqa: S112 - a store without the measurement
            continue
        if frame.height:
            t = frame["time"].max()
            if isinstance(t, datetime) and (newest is None or t > newest):
                newest = t
    return newest


def resolve_window(
    store: Any, since: str, start: str | None, end: str | None, now: datetime | None = None
) -> tuple[datetime, datetime, list[str]]:
    """(start, end, notes). Without ``--end``: the last ``since`` before now, or, when the store holds nothing
    then, before its newest data (said in a note)."""
    span = parse_duration(since)
    notes: list[str] = []
    if end is not None:
        t1 = parse_time(end, "--end")
        t0 = parse_time(start, "--start") if start else t1 - span
    elif start is not None:
        t0 = parse_time(start, "--start")
        t1 = now or datetime.now(UTC)
    else:
        t1 = now or datetime.now(UTC)
        t0 = t1 - span
        newest = latest_data_time(store)
        if newest is not None and newest < t0:
            t1 = newest + timedelta(seconds=1)
            t0 = t1 - span
            notes.append(
                f"The store holds no data in the {since} before now; the window ends at its newest data "
                f"({newest.isoformat()})."
            )
    if t0 >= t1:
        raise ConfigError(f"empty window: start {t0.isoformat()} is not before end {t1.isoformat()}")
    return t0, t1, notes


def report(
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Directory for index.html and summary.json."),
    store: str = typer.Option(
        "neighborscope-data/store",
        "--store",
        envvar="NEIGHBORSCOPE_STORE",
        help="Store: a directory or influx://... URL.",
    ),
    since: str = typer.Option("24h", "--since", help="Window length before --end (90s, 15m, 24h, 7d)."),
    start: str | None = typer.Option(None, "--start", help="Window start (ISO time, UTC); overrides --since."),
    end: str | None = typer.Option(
        None,
        "--end",
        help="Window end (ISO time or 'now'). Default: now, or the "
        "store's newest data when nothing is newer than --since.",
    ),
    nightly: bool = typer.Option(
        False,
        "--nightly",
        help="Write under OUT/<end date>/ so nightly reports pile up. When the window's runs are on several nodes: "
        "one report per node (OUT/<end date>/<node>/) in --jobs processes, and an index page over them.",
    ),
    jobs: int = typer.Option(
        0, "--jobs", "-j", min=0, help="Worker processes of a fleet's nightly report (0: one per core)."
    ),
    victim: list[str] = typer.Option(
        [],
        "--victim",
        "-v",
        help="Group(s) to attribute (repeatable); default: every group with a benchmark run in the window.",
    ),
    history_days: float = typer.Option(30.0, "--history-days", help="Days of run history for the history charts."),
    window_s: int = typer.Option(60, "--window-s", help="Seconds per window of the evidence plots (victim p99 ITL)."),
    gpu_cool_c: float = typer.Option(
        70.0, "--gpu-cool-below-c", help="Accelerator average (°C) below which a node is COOL."
    ),
    gpu_warm_c: float = typer.Option(80.0, "--gpu-warm-c", help="Accelerator peak (°C) at which a node is WARM."),
    gpu_hot_c: float = typer.Option(88.0, "--gpu-hot-c", help="Accelerator peak (°C) at which a node is HOT."),
    cpu_warm_c: float = typer.Option(95.0, "--cpu-warm-c", help="CPU peak (°C) at which a node is WARM."),
    cpu_hot_c: float = typer.Option(100.0, "--cpu-hot-c", help="CPU peak (°C) at which a node is HOT."),
    delta_tput: float = typer.Option(
        3.0, "--delta-throughput-pct", help="Smallest throughput change that matters (%)."
    ),
    delta_lat: float = typer.Option(5.0, "--delta-latency-pct", help="Smallest latency change that matters (%)."),
) -> None:
    """Write the nightly report: a verdict in plain words, the phase table with changes and intervals, ranked
    antagonists with evidence plots, thermal / power panels and a per-node thermal profile (COOL / OK / WARM / HOT), run
    history with change points, and the run metadata. OUT/index.html is self-contained (plotly inline, works
    offline); OUT/summary.json holds everything the page says. Bad input (window, a store that does not exist,
    topology.json) is one "error: ..." line and exit code 2; store files that cannot be read are listed in the
    report, which says it is incomplete, and the exit code is 1; an error inside the analysis fails the report
    with its traceback.

    Example: neighborscope report --store neighborscope-data/store --since 24h --out reports/
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from analysis.history.thermal import ThermalLimits
    from analysis.nightly import plan_night
    from analysis.report import write_report
    from analysis.report.fleet import several_nodes, write_fleet_report
    from analysis.report.summary import ReportOptions
    from telemetry.store.factory import open_store

    err = output_console(stderr=True)
    try:
        parse_duration(since)  # options first: a bad --since is named even when the store is wrong too
        st = open_store(store, create=False)  # reading: a mistyped store is an error, not a "NO DATA" report
        try:
            t0, t1, notes = resolve_window(st, since, start, end)
            options = ReportOptions(
                limits=ThermalLimits(
                    gpu_cool_below_c=gpu_cool_c,
                    gpu_warm_c=gpu_warm_c,
                    gpu_hot_c=gpu_hot_c,
                    cpu_warm_c=cpu_warm_c,
                    cpu_hot_c=cpu_hot_c,
                ),
                delta_throughput_pct=delta_tput,
                delta_latency_pct=delta_lat,
                window_s=window_s,
                history_days=history_days,
                victims=tuple(victim) if victim else None,
            )
            target = out / t1.strftime("%Y-%m-%d") if nightly else out
            with Progress(
                SpinnerColumn(),
                TextColumn("[progress.description]{task.description}"),
                TimeElapsedColumn(),
                console=err,
                transient=False,
            ) as progress:
                task = progress.add_task("report", total=None)

                def step(what: str) -> None:
                    progress.update(task, description=f"report: {what}")

                fleet = plan_night(st, t0, t1, options.victims) if nightly else []
                if several_nodes(fleet):
                    progress.update(task, description=f"report: {len(fleet)} nodes", total=len(fleet))

                    finished = [0]

                    def node_done(done: Any, total: int) -> None:
                        finished[0] += 1
                        progress.update(task, advance=1, description=f"report: {finished[0]}/{total} nodes")

                    paths = write_fleet_report(store, st, t0, t1, target, options=options, workers=jobs or None,
                                               jobs=fleet, on_node=node_done, store_name=store, notes=notes)  # fmt: skip
                else:
                    paths = write_report(st, t0, t1, target, options=options, step=step, store_name=store, notes=notes)
                progress.update(task, description="report: done")
        finally:
            st.close()
    except NeighborscopeError as exc:  # bad input (window, store, topology): one line, no traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for n in notes:
        err.print(f"[yellow]note:[/] {n}", soft_wrap=True)
    typer.echo(str(paths["html"]))
    if "nodes" in paths:  # a fleet: exit 1 when a node's report failed or is incomplete
        failed = [r["node"] for r in paths["nodes"] if r["status"] == "FAILED"]
        partial = [r["node"] for r in paths["nodes"] if r.get("unreadable_inputs")]
        for what, nodes in (("failed", failed), ("is incomplete (inputs could not be read)", partial)):
            if nodes:
                typer.echo(f"error: the report of {len(nodes)} node(s) {what}: {', '.join(nodes[:10])}", err=True)
        if failed or partial:
            raise typer.Exit(1)
        return
    summary = json.loads(paths["summary"].read_text())
    bad = summary.get("unreadable_inputs") or []
    if bad:  # written, but incomplete: exit 1 so that cron and CI notice (docs/architecture.md "Exit codes")
        files = "; ".join(f"{b['path']} ({b['reason']})" for b in bad)
        typer.echo(
            f"error: incomplete report: {len(bad)} input(s) could not be read and were left out: {files}", err=True
        )
        raise typer.Exit(1)
