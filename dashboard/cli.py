"""`neighborscope dashboard`: start the Streamlit SRE dashboard on a store."""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

import typer

from dashboard.login import check_login
from dashboard.settings import DEFAULT_STORE, Settings
from telemetry.errors import ConfigError

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(host: str, port: int, theme: str | None = None, login: bool = False) -> list[str]:
    """The ``streamlit run`` command line for the dashboard (headless, no telemetry, no file watcher), through
    `dashboard.serve`, which imports the pages' heavy modules before the server listens. With ``login`` an error
    in a page shows its message only, never a traceback with server paths."""
    args = [
        sys.executable,
        "-m",
        "dashboard.serve",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
        # serves dashboard/static/, where dashboard.plotly_view's plotly.js bundle lives
        "--server.enableStaticServing",
        "true",
    ]
    if theme:
        args += ["--theme.base", theme]
    if login:
        args += ["--client.showErrorDetails", "none"]
    return args


def check_listen(host: str, port: int) -> None:
    """Raise `ConfigError` unless ``host:port`` is a TCP address this process can listen on now."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port (1 to 65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine: {exc}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it: TIME_WAIT is fine
        try:
            sock.bind(addr)
        except OSError as exc:
            why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise ConfigError(f"cannot listen on {host}:{port}: {why}") from None


def check_store(store: str) -> None:
    """Raise `ConfigError` when ``store`` names a local directory that does not exist (an InfluxDB URL is
    checked by the pages, which say when it cannot be read)."""
    root = Settings(store, None, None, None, 30).local_root()
    if root is not None and not root.is_dir():
        raise ConfigError(
            f"--store {store}: the store directory does not exist (the collector's store, e.g. "
            "neighborscope-demo/store after `neighborscope demo`)"
        )


def dashboard(
    store: str = typer.Option(
        DEFAULT_STORE,
        "--store",
        envvar="NEIGHBORSCOPE_STORE",
        help="Store to read: a directory (embedded Parquet) or influx://HOST:PORT/DB; the same as the collector's.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes the dashboard."),
    port: int = typer.Option(8501, "--port", help="Port to listen on (1 to 65535)."),
    topology: Path | None = typer.Option(
        None,
        "--topology",
        envvar="NEIGHBORSCOPE_TOPOLOGY",
        help="topology.json (default: in or beside the store directory).",
    ),
    reports: Path | None = typer.Option(
        None,
        "--reports",
        envvar="NEIGHBORSCOPE_REPORTS",
        help="Directory of nightly HTML reports (default: reports/ beside the store).",
    ),
    alert_state: Path | None = typer.Option(
        None,
        "--alert-state",
        envvar="NEIGHBORSCOPE_ALERT_STATE",
        help="The alert engine's state file (default: beside the store).",
    ),
    refresh_s: int = typer.Option(30, "--refresh-s", min=2, help="Seconds between live refreshes of the overview."),
    theme: str | None = typer.Option(None, "--theme", help="light or dark (default: follow the browser)."),
    login: bool = typer.Option(
        False,
        "--login",
        help="Require an OIDC sign-in (Streamlit st.login); needs [auth] in "
        ".streamlit/secrets.toml (docs/dashboard.md, 'Login').",
    ),
) -> None:
    """Start the SRE dashboard (Streamlit) on the collector's store; Ctrl-C stops it.

    Pages: Fleet overview, Node detail, Noisy neighbours, Runs & history, Alerts.

    Example: neighborscope dashboard --store neighborscope-demo/store --port 8501
    """
    if theme not in (None, "light", "dark"):
        raise typer.BadParameter("use light or dark", param_hint="--theme")
    check_listen(host, port)
    check_store(store)
    if login:
        check_login()
    env = dict(os.environ)
    env["NEIGHBORSCOPE_STORE"] = store
    env["NEIGHBORSCOPE_REFRESH_S"] = str(refresh_s)
    env["NEIGHBORSCOPE_DASHBOARD_LOGIN"] = "1" if login else "0"
    for name, value in (
        ("NEIGHBORSCOPE_TOPOLOGY", topology),
        ("NEIGHBORSCOPE_REPORTS", reports),
        ("NEIGHBORSCOPE_ALERT_STATE", alert_state),
    ):
        if value is not None:
            env[name] = str(value)
    typer.echo(f"neighborscope dashboard on http://{host}:{port} (store {store})", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    cmd = streamlit_command(host, port, theme, login)
    # become the Streamlit server: signals (Ctrl-C, SIGTERM from a supervisor) reach it directly, no orphan
    os.execve(cmd[0], cmd, env)  # noqa: S606 - argv list, no shell
