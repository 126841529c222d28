"""`neighborscope dashboard`: loopback by default, help text, the Streamlit command it runs."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from dashboard.cli import APP, dashboard, streamlit_command


def test_dashboard_binds_loopback_by_default_and_runs_headless():
    cmd = streamlit_command("127.0.0.1", 8501)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    assert str(APP) in cmd


def test_dashboard_help_names_the_store_and_host_options():
    app = typer.Typer()
    app.command()(dashboard)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "--store" in result.output and "--host" in result.output
    assert "NEIGHBORSCOPE_STORE" in result.output
