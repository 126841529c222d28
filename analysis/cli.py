"""`neighborscope analyze`: a thin command over `analysis.analyze` (I/O and rendering only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from telemetry.console import output_console
from telemetry.errors import NeighborscopeError

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
    ant = result.antagonists
    if ant.height:
        tab = Table(title=f"Who slows {result.victim} (ranked; effect = sustained idle -> its busiest)")
        for col in (
            "#",
            "antagonist",
            "resource",
            "tok/s %",
            "95% CI %",
            "p99 ITL %",
            "q",
            "design",
            "confidence",
            "evidence",
        ):
            tab.add_column(col, no_wrap=col != "evidence")
        for i, r in enumerate(ant.iter_rows(named=True), 1):
            ci = "-" if r["ci_low"] is None else f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"
            name = f"[bold red]{r['antagonist']}[/]" if r["significant"] else r["antagonist"]
            ev = r["evidence"][0] if r["evidence"] else ""
            tab.add_row(
                str(i),
                name,
                r["resource"],
                _fmt(r["effect_pct"], "+.1f"),
                ci,
                _fmt(r["itl_p99_effect_pct"], "+.1f"),
                _q(r["q_value"]),
                r["design"],
                r["confidence"],
                ev,
            )
        con.print(tab)
    for n in result.notes:
        con.print(f"[dim]note: {n}[/]", soft_wrap=True)
    for path, reason in result.unreadable:
        con.print(f"[red]unreadable: {path}: {reason}[/]", soft_wrap=True)


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
    start: str | None = typer.Option(None, "--start", help="Runs starting at or after (ISO time)."),
    end: str | None = typer.Option(None, "--end", help="Runs starting before (ISO time)."),
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
    the ranked antagonists (effect, interval, q-value, resource, evidence). Schema of --json: docs/analysis.md.

    Examples:
      neighborscope analyze --store neighborscope-data/store --victim hive0 --json result.json
      neighborscope analyze --bench seed000.txt --blocks baseline/hive0,dual/hive0,dual/hive1,stress/hive0,stress/hive1
    """
    from datetime import datetime

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
            st = open_store(store, create=False)  # reading: a store that does not exist is an error
            try:
                result = run_analysis(
                    st,
                    victim,
                    run_ids=run or None,
                    phases=phase or None,
                    node=node,
                    start=datetime.fromisoformat(start) if start else None,
                    end=datetime.fromisoformat(end) if end else None,
                    topology=topo,
                    baseline=baseline,
                    phase_order=order,
                    thresholds=th,
                    window_s=window,
                    n_shifts=shifts,
                    seed=seed,
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
