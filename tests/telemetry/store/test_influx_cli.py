"""`neighborscope influx init | status` against a real influxd."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from telemetry.store.influx_cli import app

pytestmark = pytest.mark.influx


def test_init_creates_the_database_once_and_says_so(influxd, tmp_path):
    url = f"influx://127.0.0.1:{influxd.http_port}/cli_db_x?rp=month"
    result = CliRunner().invoke(app, ["init", url, "--retention", "30d"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'CREATE DATABASE "cli_db_x"' in result.output and "DURATION 30d" in result.output
    names = [r["name"] for r in influxd.select("cli_db_x", "SHOW DATABASES")]
    assert "cli_db_x" in names
    again = CliRunner().invoke(app, ["init", url, "--retention", "30d"], catch_exceptions=False)
    assert again.exit_code == 0


def test_status_reports_a_down_server_and_the_queue(tmp_path):
    url = f"influx://127.0.0.1:9/db?queue={tmp_path / 'q'}&timeout=1"
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "q-00000000000000000000.arrow").write_bytes(b'{"rows": 1, "parts": []}\n')
    (tmp_path / "q" / "q-00000000000000000001.arrow").touch()  # a spare made ahead: no batch
    result = CliRunner().invoke(app, ["status", url], catch_exceptions=False)
    assert result.exit_code == 0
    assert "DOWN" in result.output and "1 batch(es) waiting" in result.output
