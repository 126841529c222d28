"""`neighborscope analyze`: a thin command over `analysis.analyze` (I/O and rendering only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from telemetry.console import output_console
from telemetry.errors import ConfigError, NeighborscopeError

if TYPE_CHECKING:
    from rich.console import Console

    from analysis.analyze import AnalysisResult


def _fmt(v: float | None, spec: str = "+.2f") -> str:
    return "-" if v is None else format(v, spec)


def _q(v: float | None) -> str:
    return "-" if v is None else ("<0.001" if v < 0.001 else f"{v:.3f}")


_METHOD = {"runs_welch": "welch", "window_bootstrap": "bootstrap", "summary_only": "summary", "none": "-"}


VERDICTS = (
    "verdicts: degraded / improved = the 95 % interval lies beyond the threshold on the worse / better side "
    "and q < FDR; equivalent = the interval lies within ±threshold; inconclusive = neither, or no interval "
    "(one printed summary per phase)"
)
"""The legend printed under the phase table: what each verdict word means."""


def console_for_output() -> Console:
    """A rich console on stdout: the terminal's width (at least 150 columns) on a terminal, wide when piped."""
    return output_console(150)


def render(result: AnalysisResult, console: Console | None = None) -> None:
    """Print the phase table (with the legend of its verdicts) and the ranked antagonists as rich tables."""
    from rich.table import Table

    con = console or console_for_output()
    ph = result.phases
    if ph.height:
        several = ph["group"].n_unique() > 1
        tab = Table(title=f"Phase degradation{f' of {result.victim}' if result.victim else ''} (vs baseline)")
        cols = (["group"] if several else []) + [
            "phase",
            "side",
            "metric",
            "baseline",
            "value",
            "change %",
            "95% CI %",
            "q",
            "method",
            "verdict",
        ]
        for col in cols:
            tab.add_column(
                col, justify="right" if col in ("baseline", "value", "change %", "q") else "left", no_wrap=True
            )
        for r in ph.iter_rows(named=True):
            ci = "-" if r["ci_low_pct"] is None else f"[{r['ci_low_pct']:+.2f}, {r['ci_high_pct']:+.2f}]"
            style = {"degraded": "red", "improved": "green", "equivalent": "cyan"}.get(r["verdict"], "")
            cells = ([r["group"]] if several else []) + [
                f"{r['phase']} vs {r['baseline_phase']}",
                r["side"],
                r["metric"],
                _fmt(r["baseline_value"], ".2f"),
                _fmt(r["value"], ".2f"),
                _fmt(r["change_pct"]),
                ci,
                _fmt(r["q_value"], ".3f"),
                _METHOD.get(r["method"], r["method"]),
                f"[{style}]{r['verdict']}[/]" if style else r["verdict"],
            ]
            tab.add_row(*cells)
        con.print(tab)
        con.print(f"[dim]{VERDICTS}[/]", soft_wrap=True)
    if result.source == "live":
        con.print(
            f"[bold]live analysis of {result.victim}[/] from its serving metrics, "
            f"{_when(result.start)} .. {_when(result.end)}"
        )
    for metric in ("itl", "ttft"):
        _antagonist_table(con, result, metric)
    if result.knee is not None:
        style = "bold" if result.knee.found else "dim"
        con.print(f"[{style}]{result.knee.summary()}[/]", soft_wrap=True)
    for n in result.notes:
        con.print(f"[dim]note: {n}[/]", soft_wrap=True)
    for path, reason in result.unreadable:
        con.print(f"[red]unreadable: {path}: {reason}[/]", soft_wrap=True)


def _when(t: Any) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")


_SIDE = {"itl": ("ITL", "decode", "p99 ITL %"), "ttft": ("TTFT", "prefill", "p99 TTFT %")}


def _antagonist_table(con: Console, result: AnalysisResult, metric: str) -> None:
    """The ranked antagonists on ``metric``'s windows: the metric's p99 effect with its interval, then output
    throughput's, q, design, confidence and the first evidence line."""
    from rich.table import Table

    ant = result.antagonists_of(metric)
    if ant.height == 0:
        return
    name, side, head = _SIDE[metric]
    tab = Table(
        title=f"Who slows {result.victim}: {name} windows ({side}; ranked; effect = sustained idle -> its busiest)"
    )
    for col in ("#", "antagonist", "resource", head, "95% CI %", "tok/s %", "q", "design", "confidence", "evidence"):
        tab.add_column(col, no_wrap=col != "evidence")
    for i, r in enumerate(ant.iter_rows(named=True), 1):
        lo, hi = r.get(f"{metric}_ci_low"), r.get(f"{metric}_ci_high")
        ci = "-" if lo is None or hi is None else f"[{lo:+.1f}, {hi:+.1f}]"
        label = f"[bold red]{r['antagonist']}[/]" if r["significant"] else r["antagonist"]
        tab.add_row(
            str(i),
            label,
            r["resource"],
            _fmt(r.get(f"{metric}_p99_effect_pct"), "+.1f"),
            ci,
            _fmt(r["effect_pct"], "+.1f"),
            _q(r["q_value"]),
            r["design"],
            r["confidence"],
            r["evidence"][0] if r["evidence"] else "",
        )
    con.print(tab)


def parse_when(text: str, option: str, now: datetime | None = None) -> datetime:
    """A point in time for ``--from`` / ``--until``: an ISO 8601 time (UTC when it has no offset), ``now``, or a
    duration before now (``2h``, ``-2h``, ``now-2h``, ``90m``)."""
    from telemetry.config import parse_duration

    now = now or datetime.now(UTC)
    t = text.strip()
    if t.lower() == "now":
        return now
    rel = t.lower().removeprefix("now").lstrip("-").strip()
    if rel and rel[0].isdigit() and not any(c in rel for c in ":T"):
        try:
            return now - timedelta(seconds=parse_duration(rel))
        except ValueError:
            pass
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected an ISO time (2026-03-02T09:00:00Z), 'now', or a duration ago (2h, now-90m)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def time_range(
    since: str | None, start: str | None, end: str | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """(start, end) from ``--since`` (a duration back from now) or ``--from`` / ``--until``; None where not given."""
    from telemetry.config import parse_duration

    now = now or datetime.now(UTC)
    if since:
        if start:
            raise ConfigError("--since and --from both give the start: pass one")
        try:
            secs = parse_duration(since)
        except ValueError:
            raise ConfigError(f"--since {since!r}: expected a duration such as 90m, 2h, 1d") from None
        return now - timedelta(seconds=secs), parse_when(end, "--until", now) if end else now
    return (
        parse_when(start, "--from", now) if start else None,
        parse_when(end, "--until", now) if end else None,
    )


def analyze(
    victim: str | None = typer.Option(None, "--victim", "-v", help="Group to analyse, e.g. hive0."),
    store: str = typer.Option(
        "neighborscope-data/store",
        "--store",
        envvar="NEIGHBORSCOPE_STORE",
        help="Store path or URL (file://, influx://).",
    ),
    run: list[str] = typer.Option([], "--run", help="Run id(s) to include (repeatable); default: all."),
    phase: list[str] = typer.Option([], "--phase", help="Phase(s) to include (repeatable); default: all."),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="Baseline phase (default: the phase named "
        "'baseline', else each group's first; an unknown phase is an error).",
    ),
    phase_order: str | None = typer.Option(None, "--phase-order", help="Phases in order, comma-separated."),
    node: str | None = typer.Option(None, "--node", help="Only runs / telemetry of this node."),
    start: str | None = typer.Option(
        None,
        "--from",
        "--start",
        help="Start of the range (ISO time, or a duration ago: 2h, now-90m): runs starting at or after it; live: "
        "serving data from it.",
    ),
    end: str | None = typer.Option(None, "--until", "--end", help="End of the range (ISO time, 'now', or 30m)."),
    since: str | None = typer.Option(None, "--since", help="The last DURATION up to now (e.g. 2h): --from now-2h."),
    source: str = typer.Option(
        "auto",
        "--source",
        help="auto | bench | live: the victim's benchmark runs, or its serving engine's metrics (live "
        "production traffic); auto: benchmark runs in the range if any, else serving data.",
    ),
    topology: Path | None = typer.Option(None, "--topology", help="Topology JSON (e.g. the simulator's)."),
    bench: list[Path] = typer.Option([], "--bench", help="Benchmark file(s) to analyse directly, without a store."),
    blocks: str | None = typer.Option(
        None,
        "--blocks",
        help="With --bench: PHASE/GROUP of each run in file order, e.g. "
        "baseline/hive0,dual/hive0,dual/hive1,stress/hive0,stress/hive1.",
    ),
    fmt: str | None = typer.Option(None, "--format", help="With --bench: force the benchmark format."),
    tput_pct: float = typer.Option(3.0, "--throughput-threshold", help="Practical threshold for throughput, %."),
    p99_pct: float = typer.Option(5.0, "--p99-threshold", help="Practical threshold for p99 latencies, %."),
    p50_pct: float = typer.Option(3.0, "--p50-threshold", help="Practical threshold for p50 latencies, %."),
    slo_ttft: float | None = typer.Option(None, "--slo-ttft-ms", help="Goodput SLO on TTFT (default: baseline p90)."),
    slo_tpot: float | None = typer.Option(None, "--slo-tpot-ms", help="Goodput SLO on TPOT (default: baseline p90)."),
    q: float = typer.Option(0.05, "--q", help="False discovery rate (Benjamini-Hochberg)."),
    window: float | None = typer.Option(None, "--window-s", help="Grid window in s (default: adaptive)."),
    shifts: int = typer.Option(
        999,
        "--shifts",
        help="Most circular shifts of the permutation test (every offset when there are fewer; 0 = every offset).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and permutations."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result as JSON to this file ('-': stdout)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on the terminal."),
) -> None:
    """Do co-tenants slow the victim down, by how much, and who is to blame?

    Prints the phase table (each metric of each phase vs the baseline, with an honest interval or none) and
    the ranked antagonists (effect, interval, q-value, resource, evidence) on ITL windows (decode) and on TTFT
    windows (prefill), and the TTFT knee. Without benchmark runs of the victim it analyses live traffic from the
    serving engine's metrics (docs/live.md). Schema of --json: docs/analysis.md.

    Examples:
      neighborscope analyze --store neighborscope-data/store --victim hive0 --json result.json
      neighborscope analyze --victim hive0 --since 2h
      neighborscope analyze --victim hive0 --from 2026-03-02T09:00Z --until 2026-03-02T11:00Z --source live
      neighborscope analyze --bench seed000.txt --blocks baseline/hive0,dual/hive0,dual/hive1,stress/hive0,stress/hive1
    """
    from polars.exceptions import PolarsError

    from analysis.analyze import analyze as run_analysis
    from analysis.analyze import analyze_bench_files, parse_blocks
    from analysis.degradation import Thresholds
    from telemetry import topology as topo_file

    th = Thresholds(
        throughput_pct=tput_pct,
        p99_pct=p99_pct,
        p50_pct=p50_pct,
        slo_ttft_ms=slo_ttft,
        slo_tpot_ms=slo_tpot,
        q=q,
        seed=seed,
    )
    order = [p.strip() for p in phase_order.split(",") if p.strip()] if phase_order else None
    try:
        if bench:
            result = analyze_bench_files(
                bench,
                parse_blocks(blocks) if blocks else None,
                victim=victim,
                baseline=baseline,
                phase_order=order,
                thresholds=th,
                fmt=fmt,
                seed=seed,
            )
        else:
            from telemetry.store.factory import open_store

            topo = topo_file.read_file(topology) if topology else None
            t_from, t_until = time_range(since, start, end)
            st = open_store(store, create=False)  # reading: a store that does not exist is an error
            try:
                result = run_analysis(
                    st,
                    victim,
                    run_ids=run or None,
                    phases=phase or None,
                    node=node,
                    start=t_from,
                    end=t_until,
                    topology=topo,
                    baseline=baseline,
                    phase_order=order,
                    thresholds=th,
                    window_s=window,
                    n_shifts=shifts,
                    seed=seed,
                    source=source,  # type: ignore[arg-type]
                )
            finally:
                st.close()
    except (NeighborscopeError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (OSError, PolarsError) as exc:  # a read the store could not turn into a skipped, listed file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: reading the store {store}: {first}", err=True)
        raise typer.Exit(2) from None
    if json_out is not None:
        text = result.to_json()
        if str(json_out) == "-":
            typer.echo(text)
        else:
            json_out.write_text(text + "\n")
    if not quiet and str(json_out) != "-":
        render(result)
    if result.unreadable:  # done, but the result may miss what those files hold: exit 1 (docs/architecture.md)
        files = "; ".join(f"{path} ({reason})" for path, reason in result.unreadable)
        typer.echo(
            f"error: incomplete result: {len(result.unreadable)} store file(s) could not be read and were "
            f"left out: {files}",
            err=True,
        )
        raise typer.Exit(1)
