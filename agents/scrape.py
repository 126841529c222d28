"""`neighborscope scrape URL`: what the `serving` sampler reads from one engine endpoint, before deploying it.

Scrapes the endpoint twice, ``--interval-s`` apart, exactly as the sampler does (same parser, same metric tables,
same quantile arithmetic), and prints: the engine (given or detected) and what the metric names say about its
version, the model labels, which metric each quantity is read from and which are missing, then the row of each
model for the interval (rates, gauges, TTFT / ITL / TPOT / e2e / queue quantiles with their request counts and the
bucket bounds that limit the p99's resolution). Exit code 2, with one line on stderr, when the URL cannot be read or
is not a serving engine's Prometheus exposition.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from agents.samplers.serving import (
    ENGINE_NAMES,
    ENGINES,
    LATENCIES,
    QUANTILES,
    Reading,
    ServingEndpoint,
    ServingSampler,
    version_hints,
)
from telemetry.config import describe_validation_error

QUANTITIES = {
    "requests": "requests finished (rate)",
    "prompt_tokens": "prompt tokens (rate)",
    "generation_tokens": "generated tokens (rate)",
    "running": "requests running",
    "waiting": "requests waiting",
    "kv_usage": "KV-cache use",
    "ttft": "time to first token",
    "itl": "inter-token latency",
    "tpot": "time per output token",
    "e2e": "end-to-end latency",
    "queue": "queue time",
    "prompt_len": "prompt length per request",
}


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _fmt(v: float | int | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v}{unit}"
    return f"{v:.0f}{unit}" if abs(v) >= 1000 else f"{v:.4g}{unit}"


def _candidates(engine: str, role: str) -> tuple[str, ...]:
    m = ENGINES[engine]
    if role in LATENCIES:
        return tuple(m.latency.get(role, ()))
    return tuple(getattr(m, role))


def report_metrics(console: Console, url: str, engine_given: str, reading: Reading) -> None:
    """The engine, its version hints, model labels, and per quantity the metric found or the names looked for."""
    engine = reading.engine
    how = "given with --engine" if engine_given != "auto" else "detected from the metric names"
    console.print(f"[bold]{url}[/bold]: engine [bold]{engine}[/bold] ({how})")
    expo = reading.exposition
    if expo is not None:
        for hint in version_hints(expo, engine):
            console.print(f"  version hint: {hint}")
        others = [e for e in ENGINE_NAMES if e != engine and reading.engines_seen.get(e)]
        if others:
            console.print(f"  also exposes {', '.join(others)} metrics (read as {engine}; set --engine to choose)")
    label = ENGINES[engine].model_label
    models = [m for m in reading.models if m is not None]
    if label:
        console.print(f"  models ({label} label): {', '.join(models) if models else 'none (no series has the label)'}")
    else:
        console.print(f"  models: {engine} metrics carry no model label (name it with model = ... in [[serving]])")
    table = Table(title="what each quantity is read from", title_justify="left", box=None)
    table.add_column("quantity")
    table.add_column("metric")
    for role, text in QUANTITIES.items():
        name = reading.found.get(role)
        cands = _candidates(engine, role)
        if name is not None:
            shown = expo.samples[name][0].name if expo is not None and expo.samples.get(name) else name
            table.add_row(text, shown)
        elif cands:
            table.add_row(text, f"[yellow]missing[/yellow] (looked for {', '.join(cands)})")
        else:
            table.add_row(text, f"[dim]{engine} does not expose it[/dim]")
    console.print(table)


def report_rows(console: Console, rows: list[dict]) -> None:
    for row in rows:
        title = f"model {row.get('model') or '(no model label)'}"
        if row.get("interval_s") is not None:
            title += f", interval {row['interval_s']:.3g} s"
        table = Table(title=title, title_justify="left", box=None)
        table.add_column("field")
        table.add_column("value", justify="right")
        table.add_column("", style="dim")
        for name, unit in (
            ("requests_per_s", " /s"),
            ("prompt_tokens_per_s", " /s"),
            ("generation_tokens_per_s", " /s"),
            ("requests_running", ""),
            ("requests_waiting", ""),
            ("kv_cache_usage_pct", " %"),
            ("prompt_tokens_mean", ""),
        ):
            table.add_row(name, _fmt(row.get(name), unit), "")
        for role in LATENCIES:
            qs = " / ".join(_fmt(row.get(f"{role}_ms_{q}")) for _, q in QUANTILES)
            count = row.get(f"{role}_count")
            lo, hi = row.get(f"{role}_ms_p99_bucket_lo"), row.get(f"{role}_ms_p99_bucket_hi")
            note = "" if count is None else f"{count} observations"
            if lo is not None:
                note += f"; p99 in bucket {_fmt(lo)}..{_fmt(hi) if hi is not None else '+Inf'} ms"
            table.add_row(f"{role}_ms p50 / p90 / p99", qs, note)
        table.add_row("counter_reset", _fmt(row.get("counter_reset")), "")
        console.print(table)
        if row.get("counter_reset"):
            console.print("  a counter went down between the scrapes (engine restart): this interval has no rates")
        elif all(row.get(f"{r}_count") in (0, None) for r in LATENCIES):
            console.print("  no request finished in the interval: quantiles need traffic (or a longer --interval-s)")


def scrape(
    url: str = typer.Argument(..., help="The engine's metrics URL, e.g. http://127.0.0.1:8000/metrics."),
    engine: str = typer.Option("auto", "--engine", "-e", help="vllm | sglang | tgi | llamacpp | auto."),
    bearer_token_file: Path | None = typer.Option(None, "--bearer-token-file", help="Send this file's token."),
    ca_file: Path | None = typer.Option(None, "--ca-file", help="https: trust this CA."),
    insecure_skip_verify: bool = typer.Option(False, "--insecure-skip-verify", help="https: do not verify."),
    model: str | None = typer.Option(None, "--model", help="Only this model_name (as [[serving]] model)."),
    interval_s: float = typer.Option(5.0, "--interval-s", min=0.0, max=3600.0, help="Seconds between the scrapes."),
    timeout_s: float = typer.Option(5.0, "--timeout-s", min=0.1, max=60.0, help="Per scrape."),
) -> None:
    """Scrape a serving engine's /metrics twice and print what the serving sampler reads from it.

    Example: neighborscope scrape http://127.0.0.1:30000/metrics --engine sglang --interval-s 10
    """
    raw = {
        "group": "scrape",
        "url": url,
        "engine": engine,
        "model": model,
        "bearer_token_file": str(bearer_token_file) if bearer_token_file else None,
        "ca_file": str(ca_file) if ca_file else None,
        "insecure_skip_verify": insecure_skip_verify,
        "timeout_s": float(timeout_s),
    }
    try:
        ep = ServingEndpoint.model_validate(raw)
    except ValidationError as exc:
        raise _fail(describe_validation_error(exc, "scrape").replace("\n", "; ")) from None
    if ep.ca_file and not Path(ep.ca_file).is_file():
        raise _fail(f"--ca-file: no CA file at {ep.ca_file}")
    console = Console(width=None if sys.stdout.isatty() else 160)  # piped: no wrapping inside metric names
    sampler = ServingSampler([ep], quiet=True)
    try:
        first = sampler.read(time.time())["serving"]
        reading = sampler.last_reading[url]
        if reading is None:
            raise _fail(f"{url}: {sampler.last_error[url]}")
        report_metrics(console, url, engine, reading)
        if not first:
            raise _fail(
                f"{url}: no series of model {model!r} (models: {', '.join(map(str, reading.models)) or 'none'})"
            )
        with console.status(f"waiting {interval_s:g} s for the second scrape"):
            time.sleep(interval_s)
        rows = sampler.read(time.time())["serving"]
        if sampler.last_error[url] is not None:
            raise _fail(f"{url}: the second scrape failed: {sampler.last_error[url]}")
        report_rows(console, rows)
    finally:
        sampler.close()


if __name__ == "__main__":  # python -m agents.scrape URL
    typer.run(scrape)
