"""`neighborscope import bench|telemetry`: thin commands over `analysis.ingest`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from telemetry.errors import NeighborscopeError

app = typer.Typer(
    name="import",
    help="Import benchmark results (SGLang, vLLM, llama-benchy, AIPerf, genai-perf, InferenceX) and telemetry "
    "recorded without the agent (line protocol, long CSV / Parquet, nvidia-smi / amd-smi CSV) into the store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

STORE_OPTION = typer.Option(
    "neighborscope-data/store", "--store", envvar="NEIGHBORSCOPE_STORE", help="Store path or URL (file://, influx://)."
)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command("bench")
def bench(
    files: list[Path] = typer.Argument(..., help="Result files; the format is detected from their content."),
    run: str | None = typer.Option(None, "--run", help="Run id (several runs in the files: ID.1, ID.2, ...)."),
    phase: str = typer.Option("", "--phase", help="Phase label, e.g. baseline / stress."),
    group: str = typer.Option("", "--group", help="Co-tenant group the benchmark ran in, e.g. hive0."),
    node: str = typer.Option("", "--node", help="Node the benchmark measured."),
    store: str = STORE_OPTION,
    wall_start: float | None = typer.Option(
        None, "--wall-start", help="time.time() on the benchmark host at the wrapper's start (Unix s)."
    ),
    monotonic_start: float | None = typer.Option(
        None,
        "--monotonic-start",
        help="time.monotonic() read together with --wall-start: maps vLLM start_times to the wall clock exactly.",
    ),
    tz: str | None = typer.Option(None, "--tz", help="Zone of naive local times in the files (default: local)."),
    fmt: str | None = typer.Option(
        None, "--format", help="Force a format: sglang, vllm, llama_benchy, aiperf, inferencex."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Parse and print, store nothing."),
    tokens: bool = typer.Option(
        False, "--tokens", help="Also store the per-token frame (else derived from the requests artifact on load)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per run."),
) -> None:
    """Import benchmark result files, per request, on the telemetry clock.

    Example: neighborscope import bench result.json --run r1 --phase baseline --group hive0 --node n1
    """
    from analysis.ingest.importer import import_bench_files, parse_bench_files

    pair = (wall_start, monotonic_start) if wall_start is not None and monotonic_start is not None else None
    kwargs = dict(
        run_id=run, phase=phase, group=group, node=node, wall_monotonic_pair=pair, wall_start_s=wall_start, tz=tz,
        fmt=fmt,
    )  # fmt: skip
    try:
        if dry_run:
            runs = parse_bench_files(files, **kwargs)
        else:
            from telemetry.store.factory import open_store

            st = open_store(store)
            try:
                runs = import_bench_files(st, files, tokens=tokens, **kwargs)
            finally:
                st.close()
    except NeighborscopeError as exc:
        _fail(exc)
        return
    for r in runs:
        n = 0 if r.requests is None else r.requests.height
        if as_json:
            typer.echo(json.dumps({**json.loads(r.to_json()), "requests": n}))
            continue
        out = r.summary.get("output_tok_s")
        tpot = r.summary.get("tpot_ms_p50")
        typer.echo(
            f"{r.run_id}\t{r.tool}\t{r.timing}\trequests={n}\tstart={r.start.isoformat() if r.start else '?'}"
            f"\toutput_tok_s={out if out is None else round(out, 2)}"
            f"\ttpot_ms_p50={tpot if tpot is None else round(tpot, 2)}\t{r.source}"
        )
    if not dry_run:
        typer.echo(f"stored {len(runs)} run(s) in {store}", err=True)


@app.command("telemetry")
def telemetry(
    files: list[Path] = typer.Argument(..., help="Telemetry files; the format is detected from their content."),
    node: str | None = typer.Option(None, "--node", help="Node tag for rows that carry none."),
    store: str = STORE_OPTION,
    tz: str | None = typer.Option(None, "--tz", help="Zone of naive local times (nvidia-smi); default: local."),
    fmt: str | None = typer.Option(
        None, "--format", help="Force a format: line_protocol, long_format, nvidia_smi, amd_smi."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Parse and print row counts, store nothing."),
) -> None:
    """Import telemetry recorded without the agent (Telegraf / influx line protocol, long CSV or Parquet with
    columns time,node,device,metric,value[,unit][,tags], nvidia-smi --query-gpu CSV, amd-smi metric --csv).

    Example: neighborscope import telemetry gpu_metrics.csv --node n1 --tz Europe/Berlin
    """
    from analysis.ingest.telemetry_import import import_telemetry_files, parse_telemetry_files

    try:
        if dry_run:
            frames = parse_telemetry_files(files, node=node, tz=tz, fmt=fmt)
        else:
            from telemetry.store.factory import open_store

            st = open_store(store)
            try:
                frames = import_telemetry_files(st, files, node=node, tz=tz, fmt=fmt)
            finally:
                st.close()
    except NeighborscopeError as exc:
        _fail(exc)
        return
    for measurement, frame in frames.items():
        typer.echo(f"{measurement}\trows={frame.height}\tcolumns={','.join(frame.columns)}")
    if not dry_run:
        typer.echo(f"stored in {store}", err=True)
