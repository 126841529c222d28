"""`neighborscope dashboard`: start the Streamlit SRE dashboard on a store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from dashboard.settings import DEFAULT_STORE

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(host: str, port: int, theme: str | None = None) -> list[str]:
    """The ``streamlit run`` command line for the dashboard (headless, no telemetry, no file watcher), through
    `dashboard.serve`, which imports the pages' heavy modules before the server listens."""
    args = [sys.executable, "-m", "dashboard.serve", str(APP),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
            # serves dashboard/static/, where dashboard.plotly_view's plotly.js bundle lives
            "--server.enableStaticServing", "true"]
    if theme:
        args += ["--theme.base", theme]
    return args


def dashboard(
    store: str = typer.Option(DEFAULT_STORE, "--store", envvar="NEIGHBORSCOPE_STORE",
                              help="Store to read: a directory (embedded Parquet) or influx://HOST:PORT/DB; "
                                   "the same as the collector's."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes the dashboard."),
    port: int = typer.Option(8501, "--port", help="Port to listen on."),
    topology: Path | None = typer.Option(None, "--topology", envvar="NEIGHBORSCOPE_TOPOLOGY",
                                         help="topology.json (default: in or beside the store directory)."),
    reports: Path | None = typer.Option(None, "--reports", envvar="NEIGHBORSCOPE_REPORTS",
                                        help="Directory of nightly HTML reports (default: reports/ beside the store)."),
    alert_state: Path | None = typer.Option(None, "--alert-state", envvar="NEIGHBORSCOPE_ALERT_STATE",
                                            help="The alert engine's state file (default: beside the store)."),
    refresh_s: int = typer.Option(30, "--refresh-s", min=2, help="Seconds between live refreshes of the overview."),
    theme: str | None = typer.Option(None, "--theme", help="light or dark (default: follow the browser)."),
    login: bool = typer.Option(
        False, "--login", help="Require an OIDC login (Streamlit st.login; [auth] in .streamlit/secrets.toml)."
    ),
) -> None:
    """Start the SRE dashboard (Streamlit) on the collector's store; Ctrl-C stops it.

    Pages: Fleet overview, Node detail, Noisy neighbours, Runs & history, Alerts.

    Example: neighborscope dashboard --store neighborscope-demo/store --port 8501
    """
    if theme not in (None, "light", "dark"):
        raise typer.BadParameter("use light or dark", param_hint="--theme")
    env = dict(os.environ)
    env["NEIGHBORSCOPE_STORE"] = store
    env["NEIGHBORSCOPE_REFRESH_S"] = str(refresh_s)
    env["NEIGHBORSCOPE_DASHBOARD_LOGIN"] = "1" if login else "0"
    for name, value in (("NEIGHBORSCOPE_TOPOLOGY", topology), ("NEIGHBORSCOPE_REPORTS", reports),
                        ("NEIGHBORSCOPE_ALERT_STATE", alert_state)):
        if value is not None:
            env[name] = str(value)
    typer.echo(f"neighborscope dashboard on http://{host}:{port} (store {store})", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    cmd = streamlit_command(host, port, theme)
    # become the Streamlit server: signals (Ctrl-C, SIGTERM from a supervisor) reach it directly, no orphan
    os.execve(cmd[0], cmd, env)  # noqa: S606 - argv list, no shell
