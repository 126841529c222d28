"""`neighborscope collector`: serve the collector with uvicorn."""

from __future__ import annotations

import ipaddress
import signal
from pathlib import Path

import typer

from telemetry.collector.server import bind, tune_gc, uvicorn_server
from telemetry.errors import ConfigError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_tokens(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        node, sep, token = v.partition("=")
        if not sep or not node or not token:
            raise ConfigError(f"--node-token wants NODE=TOKEN, got {v!r}")
        out[node] = token
    return out


def collector(
    store: str = typer.Option(
        "neighborscope-data/store",
        "--store",
        envvar="NEIGHBORSCOPE_STORE",
        help="Store: a directory or influx://... URL.",
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="Collector TOML (node tokens, limits)."),
    node_token: list[str] = typer.Option([], "--node-token", help="NODE=TOKEN, repeatable (adds to --config)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; non-loopback needs tokens."),
    port: int = typer.Option(8428, "--port", help="Port to bind (0 = any free port)."),
    port_file: Path | None = typer.Option(None, "--port-file", help="Write the bound port here once listening."),
    hash_token: str | None = typer.Option(
        None, "--hash-token", help="Print the sha256 of a token for the config and exit."
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate (chain): serve HTTPS."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=64,
        help="HTTP worker processes on the one port, plus one store writer process (default: `workers` in "
        "--config, else 1: one process does everything).",
    ),
) -> None:
    """Run the collector: agents POST batches to /v1/batches; Telegraf / influx clients write line
    protocol to /api/v2/write or /write; /healthz and /metrics for operations.

    Send SIGHUP to reload --config (tokens, limits) without a restart. With --tls-cert/--tls-key the
    collector speaks HTTPS only. With --workers N (N > 1) N processes serve HTTP on the port and one more owns
    the store (docs/fleet.md); SIGTERM and SIGHUP go to the first process, which passes them on.

    Example: neighborscope collector --store ./data --config collector.toml --port 8428
    """
    from telemetry.collector.settings import hash_token as _hash
    from telemetry.collector.settings import load_settings

    if hash_token is not None:
        typer.echo(_hash(hash_token))
        return
    extra = _parse_tokens(node_token)
    settings = load_settings(config, extra)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    for p in (tls_cert, tls_key):
        if p is not None and not p.is_file():
            raise ConfigError(f"{p}: no such file")
    if not settings.nodes:
        if not _is_loopback(host):
            raise ConfigError(f"refusing to listen on {host} without node tokens (--config or --node-token)")
        typer.echo("warning: no node tokens configured: every write will be refused with 401", err=True)

    n_workers = workers if workers is not None else settings.collector.workers
    if n_workers > 1:
        from telemetry.collector.workers import Supervisor

        Supervisor(n_workers, store, config, extra, settings, host, port, port_file, log_level, tls_cert, tls_key).run()
        return

    from telemetry.collector.app import create_app
    from telemetry.store.factory import open_store

    db = open_store(store)
    if hasattr(db, "start_compactor"):
        db.start_compactor()
    if hasattr(db, "start"):  # a queued store: drain what a crash left before the first new write
        db.start()
    app = create_app(db, settings)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)

    def reload(_signum: int, _frame: object) -> None:
        try:
            app.state.settings = load_settings(config, extra)
            typer.echo(f"reloaded {config}: {len(app.state.settings.nodes)} node(s)", err=True)
        except ConfigError as exc:
            typer.echo(f"reload failed, keeping the old settings: {exc}", err=True)

    signal.signal(signal.SIGHUP, reload)
    scheme = "https" if tls_cert else "http"
    server = uvicorn_server(app, settings, log_level, tls_cert, tls_key)
    typer.echo(f"neighborscope collector listening on {scheme}://{host}:{bound} (store: {db!r})", err=True)
    try:
        tune_gc()
        server.run(sockets=[sock])
    finally:
        db.close()
