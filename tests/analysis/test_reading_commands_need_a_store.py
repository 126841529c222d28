"""Issue 18 item 3: a store that does not exist is an error for every reading command (a mistyped --store must
not give a "NO DATA" report that cron would not notice, nor create a directory): one `error:` line, exit 2, and
nothing created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telemetry.cli import app


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "--victim", "hive0"],
        ["report", "--out", "{tmp}/report"],
        ["alerts"],
        ["serve", "--no-collector"],
    ],
    ids=" ".join,
)
def test_a_store_that_does_not_exist_is_a_usage_error_and_is_not_created(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "no-such-store"
    args = [*command, "--store", str(missing)]
    res = subprocess.run(
        [sys.executable, "-m", "telemetry.cli", *(a.replace("{tmp}", str(tmp_path)) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("error: ") and "does not exist" in res.stderr and str(missing) in res.stderr
    assert "Traceback" not in res.stderr
    assert not missing.exists()
    assert not (tmp_path / "report").exists()


def test_an_existing_empty_store_still_reports_no_data(tmp_path: Path) -> None:
    from telemetry.store.factory import open_store

    open_store(tmp_path / "store").close()
    res = CliRunner().invoke(app, ["report", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert '"status": "NO DATA"' in (tmp_path / "r" / "summary.json").read_text()
