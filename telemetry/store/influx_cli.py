"""`neighborscope influx`: set up InfluxDB for neighborscope (explicitly, never silently) and check on it."""

from __future__ import annotations

import typer

from telemetry.errors import ConfigError
from telemetry.store.influx import InfluxConfig, InfluxStore, default_state_dir

app = typer.Typer(
    name="influx",
    help="Set up and check the InfluxDB store (influx://, influx2:// URLs).",
    no_args_is_help=True,
    add_completion=False,
)


STORE_OPTION = typer.Option(
    None,
    "--store",
    envvar="NEIGHBORSCOPE_STORE",
    help="Store URL (influx:// or influx2://), as every command takes it.",
)


def store_url(url: str | None, store: str | None) -> str:
    """The store URL given as the argument or as ``--store`` (the same if both)."""
    if url and store and url != store:
        raise ConfigError(f"two store URLs: {url!r} and --store {store!r}; give one")
    chosen = url or store
    if not chosen:
        raise ConfigError(
            "no store URL: give it with --store (or NEIGHBORSCOPE_STORE), e.g. "
            "--store influx://127.0.0.1:8086/neighborscope"
        )
    return chosen


@app.command()
def init(
    url: str | None = typer.Argument(
        None, help="Store URL, e.g. influx://user:pass@127.0.0.1:8086/neighborscope?rp=autogen"
    ),
    store_opt: str | None = STORE_OPTION,
    retention: str | None = typer.Option(
        None, "--retention", help="Keep data this long (InfluxQL duration: 30d, 12w, INF). Default: forever."
    ),
    default: bool = typer.Option(True, "--default/--no-default", help="Make the retention policy the default."),
) -> None:
    """Create the database (and retention policy) on InfluxDB 1.x, or the bucket on 2.x. Idempotent.

    Example: neighborscope influx init --store 'influx://127.0.0.1:8086/neighborscope?rp=month' --retention 30d
    """
    store = InfluxStore(InfluxConfig.from_url(store_url(url, store_opt)))
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
    url: str | None = typer.Argument(None, help="Store URL (the same as the collector's --store)."),
    store_opt: str | None = STORE_OPTION,
) -> None:
    """Ping InfluxDB and show the collector's local queue (batches waiting, rejected lines).

    Example: neighborscope influx status --store 'influx://127.0.0.1:8086/neighborscope'
    """
    config = InfluxConfig.from_url(store_url(url, store_opt))
    store = InfluxStore(config)
    try:
        try:
            typer.echo(f"InfluxDB {store.ping()} at {config.url}: up")
        except Exception as exc:
            typer.echo(f"InfluxDB at {config.url}: DOWN ({exc})")
    finally:
        store.close()
    queue = config.queue_dir or default_state_dir(config) / "queue"
    sizes = [f.stat().st_size for f in queue.glob("q-*.arrow")] if queue.is_dir() else []
    sizes = [s for s in sizes if s]  # empty files are spares made ahead for the next writes
    typer.echo(f"queue {queue}: {len(sizes)} batch(es) waiting, {sum(sizes)} bytes")
    rejected = queue / "rejected.lp"
    if rejected.exists():
        n = sum(1 for line in rejected.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#"))
        typer.echo(f"rejected lines kept in {rejected}: {n}")
