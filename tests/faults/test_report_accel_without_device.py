"""Issue 17 item 11: an ``accel`` row without a ``device`` tag (the collector accepts one) does not crash the
report: it is shown as 'device unknown' and a note says how many such rows there were."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from telemetry.cli import app
from telemetry.store.factory import open_store
from tests.faults.test_report_unreadable_files import WINDOW, build_store


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return Path(shutil.copytree(build_store(tmp_path_factory.mktemp("no-device")), tmp_path / "store"))


def test_an_accel_row_without_a_device_is_reported_as_device_unknown(store: Path, tmp_path: Path) -> None:
    st = open_store(store)
    try:
        st.write(
            "accel",
            pl.DataFrame(
                {
                    "time": [datetime(2026, 3, 2, 9, 30, tzinfo=UTC)],
                    "node": ["ionx-sixtyfour-01"],
                    "temp_c": [51.0],
                    "power_w": [120.0],
                }
            ),
        )
    finally:
        st.close()
    res = CliRunner().invoke(
        app, ["report", "--store", str(store), "--out", str(tmp_path / "r"), *WINDOW], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert "device unknown" in {d["device"] for d in s["thermal"]["devices"]}
    assert any("1 accelerator row(s) have no device tag" in n for n in s["notes"])
    assert 'data-device="device unknown"' in (tmp_path / "r" / "index.html").read_text()
