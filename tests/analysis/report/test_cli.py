"""`neighborscope report`: writes index.html + summary.json, prints the path, picks the window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.report.cli import parse_duration, resolve_window
from telemetry.cli import app
from telemetry.errors import ConfigError
from telemetry.store.factory import open_store


def _invoke(*args: str):
    return CliRunner().invoke(app, ["report", *args], catch_exceptions=False)


def test_report_writes_both_files_and_prints_the_html_path(sim_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    res = _invoke(
        "--store", str(sim_store), "--out", str(out), "--start", "2026-03-02T08:00:00Z", "--end", "2026-03-02T10:00:00"
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == str(out / "index.html")
    s = json.loads((out / "summary.json").read_text())
    assert s["window"] == {"start": "2026-03-02T08:00:00Z", "end": "2026-03-02T10:00:00Z"}
    assert s["phases"]["rows"]


def test_without_end_the_window_ends_at_the_newest_data_and_says_so(sim_store: Path, tmp_path: Path) -> None:
    res = _invoke("--store", str(sim_store), "--out", str(tmp_path), "--since", "2h", "--nightly", "--victim", "nobody")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "2026-03-02" / "summary.json").read_text())
    assert s["notes"] and "newest data" in s["notes"][0]
    assert s["verdict"]["lines"][0]["topic"] == "note"
    assert len(s["runs"]) == 5


def test_an_empty_store_gives_a_report_that_says_there_is_no_data(tmp_path: Path) -> None:
    open_store(tmp_path / "store").close()
    res = _invoke("--store", str(tmp_path / "store"), "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["verdict"]["status"] == "NO DATA"
    assert "No benchmark runs in this window" in (tmp_path / "r" / "index.html").read_text()


def test_thermal_limits_come_from_the_options(sim_store: Path, tmp_path: Path) -> None:
    res = _invoke(
        "--store",
        str(sim_store),
        "--out",
        str(tmp_path),
        "--start",
        "2026-03-02T08:00:00Z",
        "--end",
        "2026-03-02T10:00:00Z",
        "--gpu-warm-c",
        "40",
        "--gpu-hot-c",
        "50",
        "--victim",
        "hive1",
    )
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["thermal"]["limits"]["gpu_hot_c"] == 50.0
    assert s["thermal"]["nodes"][0]["status"] == "HOT"
    assert s["verdict"]["status"] == "ATTENTION"
    assert {a["victim"] for a in s["antagonists"]["items"]} == {"hive1"}


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400), ("90s", 90), ("15m", 900), ("7d", 604800), ("1d12h", 129600)]
)
def test_since_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "24", "tomorrow", "5y", "3h soon"])
def test_a_bad_since_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--since"):
        parse_duration(text)


def test_start_after_end_is_a_config_error(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    with pytest.raises(ConfigError, match="empty window"):
        resolve_window(store, "24h", "2026-03-02T10:00:00Z", "2026-03-02T09:00:00Z")


def test_with_recent_data_the_window_is_the_last_since_before_now(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    t0, t1, notes = resolve_window(store, "24h", None, None, now=now)
    assert (t0, t1, notes) == (now - timedelta(hours=24), now, [])


def test_bad_input_is_one_error_line_without_a_traceback(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["report", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "r"), "--since", "tomorrow"]
    )
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --since 'tomorrow'") and "Traceback" not in res.output


def test_a_topology_file_that_is_not_one_is_a_config_error(tmp_path: Path) -> None:
    from analysis.report.data import read_topology

    store = open_store(tmp_path / "store")
    (tmp_path / "store" / "topology.json").write_text("[1, 2")
    with pytest.raises(ConfigError, match="not a topology file"):
        read_topology(store, str(tmp_path / "store"), [{"run_id": "r1", "node": "n1"}])
