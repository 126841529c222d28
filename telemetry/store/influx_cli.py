"""`neighborscope influx`: set up InfluxDB for neighborscope (explicitly, never silently) and check on it."""

from __future__ import annotations

import typer

from telemetry.store.influx import InfluxConfig, InfluxStore, default_state_dir

app = typer.Typer(
    name="influx",
    help="Set up and check the InfluxDB store (influx://, influx2:// URLs).",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def init(
    url: str = typer.Argument(..., help="Store URL, e.g. influx://user:pass@127.0.0.1:8086/neighborscope?rp=autogen"),
    retention: str | None = typer.Option(
        None, "--retention", help="Keep data this long (InfluxQL duration: 30d, 12w, INF). Default: forever."
    ),
    default: bool = typer.Option(True, "--default/--no-default", help="Make the retention policy the default."),
) -> None:
    """Create the database (and retention policy) on InfluxDB 1.x, or the bucket on 2.x. Idempotent.

    Example: neighborscope influx init 'influx://127.0.0.1:8086/neighborscope?rp=month' --retention 30d
    """
    store = InfluxStore(InfluxConfig.from_url(url))
    try:
        version = store.ping()
        done = store.init(retention=retention, default=default)
    finally:
        store.close()
    typer.echo(f"InfluxDB {version} at {store.config.url}")
    for stmt in done:
        typer.echo(f"  {stmt}")
    if not done:
        typer.echo("  nothing to do")


@app.command()
def status(
    url: str = typer.Argument(..., help="Store URL (the same as the collector's --store)."),
) -> None:
    """Ping InfluxDB and show the collector's local queue (batches waiting, rejected lines).

    Example: neighborscope influx status 'influx://127.0.0.1:8086/neighborscope'
    """
    config = InfluxConfig.from_url(url)
    store = InfluxStore(config)
    try:
        try:
            typer.echo(f"InfluxDB {store.ping()} at {config.url}: up")
        except Exception as exc:
            typer.echo(f"InfluxDB at {config.url}: DOWN ({exc})")
    finally:
        store.close()
    queue = config.queue_dir or default_state_dir(config) / "queue"
    files = sorted(queue.glob("q-*.arrow")) if queue.is_dir() else []
    size = sum(f.stat().st_size for f in files)
    typer.echo(f"queue {queue}: {len(files)} batch(es) waiting, {size} bytes")
    rejected = queue / "rejected.lp"
    if rejected.exists():
        n = sum(1 for line in rejected.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#"))
        typer.echo(f"rejected lines kept in {rejected}: {n}")
