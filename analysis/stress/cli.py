"""`neighborscope stress run PLAN.toml`: a thin shell over `analysis.stress`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    name="stress",
    help="Stress tests: run a plan's victim benchmark against co-tenant loads switched on and off on schedule.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("run")
def run(
    plan: Path = typer.Argument(..., help="The plan (TOML): victim, co-tenants, phases, repetitions, design."),
    store: str = typer.Option(
        "neighborscope-data/store",
        "--store",
        envvar="NEIGHBORSCOPE_STORE",
        help="Store the switch events and the victim's results go into.",
    ),
    workdir: Path | None = typer.Option(None, "--workdir", help="Scratch directory (default: stress-<plan name>/)."),
    collector: str | None = typer.Option(None, "--collector", help="Collector URL for the wrapper's run events."),
    alert_state: Path | None = typer.Option(
        None,
        "--alert-state",
        help="Alert state directory: with [plan] silence_alerts, alerts for the node are silenced meanwhile.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the schedule and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Run a stress plan: start / stop the co-tenant loads on schedule (each switch a run_event), run the victim
    through the benchmark wrapper and import its results. A failing command is recorded, not fatal; the exit
    code is 1 when any command failed, 2 for a plan it cannot use (missing, invalid TOML, a bad key).

    Example: neighborscope stress run examples/plans/simulated.toml --store /tmp/ns/store
    """
    from analysis.stress import load_plan, run_plan, schedule

    p = load_plan(plan)
    if dry_run:
        for s in schedule(p, p.plan.name):
            blocks = " | ".join(",".join(sorted(b)) or "-" for b in s.blocks)
            typer.echo(f"{s.run_id}\trep={s.rep}\tphase={s.phase}\tco-tenants on: {blocks}")
        return
    report = run_plan(
        p,
        store=store,
        workdir=workdir or Path(f"stress-{p.plan.name}"),
        collector=collector,
        alert_state_dir=alert_state,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for s in report.steps:
            state = "ok" if s.exit_code == 0 else f"exit {s.exit_code}"
            typer.echo(
                f"{s.run_id}\t{s.phase}\trep={s.rep}\t{state}\t{s.duration_s:.1f} s"
                + (f"\t{'; '.join(s.notes)}" if s.notes else "")
            )
        typer.echo(
            f"{len(report.steps)} victim run(s), {report.failures} failure(s); manifest {report.manifest}", err=True
        )
    if report.failures:
        raise typer.Exit(1)
