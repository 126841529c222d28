"""`neighborscope collector`: serve the collector with uvicorn."""

from __future__ import annotations

import gc
import ipaddress
import resource
import signal
import socket
from pathlib import Path

import typer

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


def raise_nofile_limit() -> int:
    """Raise the soft file-descriptor limit to the hard one (as Go programs do at start) and return it: a
    collector holds a descriptor per client connection and per store file it writes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


#: young-generation threshold of the cyclic garbage collector in a collector process (Python's default: 700)
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Take what the process holds at start (~100k objects of its imports, the app, the store's index) out of
    the cyclic garbage collector's view (`gc.freeze`) and let it run less often. A batch is a few hundred lists
    and dicts that reference counting frees; with the defaults the collector's full collections, each walking
    every object, took a third of decoding's CPU (docs/collector-performance.md). Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


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
) -> None:
    """Run the collector: agents POST batches to /v1/batches; Telegraf / influx clients write line
    protocol to /api/v2/write or /write; /healthz and /metrics for operations.

    Send SIGHUP to reload --config (tokens, limits) without a restart. With --tls-cert/--tls-key the
    collector speaks HTTPS only.

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

    import uvicorn

    from telemetry.collector.app import create_app
    from telemetry.collector.protocol import guarded_protocol
    from telemetry.collector.settings import FD_RESERVE, connection_limit
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
    opts = settings.collector
    limit = connection_limit(opts, raise_nofile_limit())
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=guarded_protocol(opts.header_timeout_s, hard_limit=limit + FD_RESERVE // 2),
            limit_concurrency=limit,  # uvicorn answers 503 to a request while this many connections are open
            timeout_keep_alive=opts.keep_alive_timeout_s,  # type: ignore[arg-type] - a float works
            h11_max_incomplete_event_size=64 * 1024,  # request line and headers (h11; httptools has its own)
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=10,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
    )
    typer.echo(f"neighborscope collector listening on {scheme}://{host}:{bound} (store: {db!r})", err=True)
    try:
        tune_gc()
        server.run(sockets=[sock])
    finally:
        db.close()
