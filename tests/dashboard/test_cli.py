"""`neighborscope dashboard`: loopback by default, help text, the Streamlit command it runs."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from dashboard.cli import APP, dashboard, streamlit_command


def test_dashboard_binds_loopback_by_default_and_runs_headless():
    cmd = streamlit_command("127.0.0.1", 8501)
    assert cmd[1:3] == ["-m", "dashboard.serve"]  # streamlit run, with the heavy imports done first
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


def test_dashboard_serves_its_static_folder_for_the_plotly_bundle():
    cmd = streamlit_command("127.0.0.1", 8501)
    assert cmd[cmd.index("--server.enableStaticServing") + 1] == "true"


def test_warm_up_imports_the_heavy_modules_without_streamlit_and_reports_missing_ones():
    import subprocess
    import sys

    code = (
        "import sys; from dashboard.serve import warm_up; missing = warm_up(('polars', 'no_such_module_x')); "
        "print(missing, 'polars' in sys.modules, 'streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['no_such_module_x'] True False"


def test_every_warm_module_is_importable():
    from dashboard.serve import WARM_MODULES, warm_up

    assert warm_up(WARM_MODULES) == []


def run_root(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`neighborscope ARGS` through the root command, as the console script runs it: (exit code, stderr)."""
    import sys

    import pytest

    from telemetry.cli import main

    monkeypatch.setattr(sys, "argv", ["neighborscope", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    code = exc.value.code
    return (0 if code is None else code if isinstance(code, int) else 1), capsys.readouterr().err


def test_a_port_outside_the_tcp_range_is_one_error_line(monkeypatch, capsys, tmp_path):
    (tmp_path / "store").mkdir()
    code, err = run_root(monkeypatch, capsys, "dashboard", "--store", str(tmp_path / "store"), "--port", "99999")
    assert code == 2
    assert err.strip() == "error: --port 99999 is not a TCP port (1 to 65535)"


def test_a_port_already_in_use_is_one_error_line(monkeypatch, capsys, tmp_path):
    import socket

    (tmp_path / "store").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run_root(monkeypatch, capsys, "dashboard", "--store", str(tmp_path / "store"), "--port", str(port))
    assert code == 2
    assert err.strip() == f"error: cannot listen on 127.0.0.1:{port}: already in use"


def test_a_store_directory_that_does_not_exist_is_refused(monkeypatch, capsys, tmp_path):
    code, err = run_root(monkeypatch, capsys, "dashboard", "--store", str(tmp_path / "nowhere"))
    assert code == 2
    assert err.startswith(f"error: --store {tmp_path / 'nowhere'}: the store directory does not exist")
    assert not (tmp_path / "nowhere").exists()


def test_login_adds_no_error_details_to_the_streamlit_command():
    assert "--client.showErrorDetails" not in streamlit_command("127.0.0.1", 8501)
    cmd = streamlit_command("127.0.0.1", 8501, login=True)
    assert cmd[cmd.index("--client.showErrorDetails") + 1] == "none"
