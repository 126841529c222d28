"""`neighborscope import bench|telemetry`: thin commands over `analysis.ingest`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


BENCH_COLUMNS = ("output_tok_s", "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "itl_ms_p99")
"""The summary numbers `import bench` prints per run (tab-separated, ``name=value``; ``None`` when absent)."""


def _num(value: float | None) -> str:
    return "None" if value is None else f"{value:.2f}"


def _notes(run: Any) -> list[str]:
    """What a reader of the printed row should know: a throughput the tool computes over another window, a run
    without a known start."""
    out = []
    s = run.summary
    tput, span = s.get("output_tok_s"), s.get("output_tok_s_request_span")
    if tput and span and abs(span / tput - 1) > 0.001:
        out.append(
            f"output_tok_s {tput:.2f} is {run.tool}'s own (over its profiling phase, {s.get('duration_s', 0):.3f} s); over first "
            f"request start -> last response ({s.get('benchmark_duration_s', 0):.3f} s) it is {span:.2f} "
            f"({(span / tput - 1) * 100:+.1f} %)"
        )
    if run.start is None:
        out.append("no start time in the file (a summary only): it is ordered by import order and phase name")
    return out


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
        None, "--format", help="Force a format by its parser name (aiperf, vllm, sglang, ...; docs/benchmarks.md)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Parse and print, store nothing."),
    tokens: bool = typer.Option(
        False, "--tokens", help="Also store the per-token frame (else derived from the requests artifact on load)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per run."),
) -> None:
    """Import benchmark result files, per request, on the telemetry clock (tools and files: docs/benchmarks.md).

    Prints one row per run: output_tok_s, TTFT p50 / p99, TPOT p50 and ITL p99 as the tool defines them; a note
    on stderr where the tool's throughput window differs from the request span, or a run has no start time.

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
        shown = "\t".join(f"{k}={_num(r.summary.get(k))}" for k in BENCH_COLUMNS)
        start = r.start.isoformat() if r.start else "unknown"
        typer.echo(f"{r.run_id}\t{r.tool}\t{r.timing}\trequests={n}\tstart={start}\t{shown}\t{r.source}")
        for note in _notes(r):
            typer.echo(f"note: {r.run_id}: {note}", err=True)
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

    Files of any size are read in chunks (bounded memory). Importing a file again stores nothing (it is
    recognised by its content and the options) and says when it was imported.

    Example: neighborscope import telemetry gpu_metrics.csv --node n1 --tz Europe/Berlin
    """
    from analysis.ingest.telemetry_import import import_telemetry_files

    try:
        if dry_run:
            results = import_telemetry_files(None, files, node=node, tz=tz, fmt=fmt)
        else:
            from telemetry.store.factory import open_store

            st = open_store(store)
            try:
                results = import_telemetry_files(st, files, node=node, tz=tz, fmt=fmt)
            finally:
                st.close()
    except NeighborscopeError as exc:
        _fail(exc)
        return
    rows: dict[str, int] = {}
    columns: dict[str, list[str]] = {}
    for r in results:
        if r.imported_before is not None:
            typer.echo(
                f"{r.path}: already imported into {store} at {r.imported_before} (same content and options, "
                f"sha256 {r.sha256[:12]}): nothing stored",
                err=True,
            )
            continue
        for m, n in r.rows.items():
            rows[m] = rows.get(m, 0) + n
            cols = columns.setdefault(m, [])
            cols += [c for c in r.columns.get(m, []) if c not in cols]
        if r.chunks_replayed and not r.chunks_stored:
            typer.echo(
                f"{r.path}: its rows are already in the store (imported before, under other options): nothing stored",
                err=True,
            )
        elif r.chunks_replayed:
            typer.echo(
                f"{r.path}: {r.chunks_replayed} of {r.chunks_replayed + r.chunks_stored} chunk(s) were "
                "already in the store (an earlier import cut short): stored the rest",
                err=True,
            )
        if r.writer_busy:
            typer.echo(
                f"{r.path}: the store is being written by {r.writer_busy}: stored beside it with plain writes "
                "(importing this file again is still refused; an import cut short and run again may store "
                "its first chunks twice)",
                err=True,
            )
    for measurement, n in rows.items():
        typer.echo(f"{measurement}\trows={n}\tcolumns={','.join(columns[measurement])}")
    if not dry_run:
        new = sum(1 for r in results if r.chunks_stored)
        typer.echo(
            f"stored {new} file(s) in {store}"
            + (f"; {len(results) - new} already there" if new < len(results) else ""),
            err=True,
        )
