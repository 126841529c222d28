"""`neighborscope influx init | status` take the store as ``--store`` (env NEIGHBORSCOPE_STORE), like every command."""

from __future__ import annotations

from typer.testing import CliRunner

from telemetry.store.influx_cli import app


def test_status_takes_the_store_as_an_option(tmp_path):
    url = f"influx://127.0.0.1:9/db?queue={tmp_path / 'q'}&timeout=1"
    result = CliRunner().invoke(app, ["status", "--store", url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "DOWN" in result.output and "0 batch(es) waiting" in result.output


def test_status_reads_the_store_from_the_environment(tmp_path):
    url = f"influx://127.0.0.1:9/db?queue={tmp_path / 'q'}&timeout=1"
    result = CliRunner().invoke(app, ["status"], env={"NEIGHBORSCOPE_STORE": url}, catch_exceptions=False)
    assert result.exit_code == 0 and "DOWN" in result.output


def test_status_without_a_store_says_how_to_give_one():
    result = CliRunner().invoke(app, ["status"], env={"NEIGHBORSCOPE_STORE": ""})
    assert result.exit_code != 0 and "give it with --store" in str(result.exception or result.output)


def test_two_different_store_urls_are_refused():
    result = CliRunner().invoke(app, ["status", "influx://127.0.0.1:9/a", "--store", "influx://127.0.0.1:9/b"])
    assert result.exit_code != 0 and "two store URLs" in str(result.exception or result.output)
