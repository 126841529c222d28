"""`neighborscope analyze` from serving data alone (no benchmark files): the same command, the live source, the
range options, and the clear error when the group has no serving data in the range."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from analysis.analyze import analyze
from analysis.cli import analyze as command
from analysis.cli import parse_when, time_range
from telemetry.errors import ConfigError
from telemetry.store.factory import open_store
from tests.analysis.alerts.serving_sim import scenario

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)
    return app


def _run(*args: str):
    return CliRunner().invoke(_app(), ["analyze", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def live_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("live")
    s = scenario(minutes=45, itl_effect=0.3, seed=1, knee_load=15_000)
    st = open_store(root / "store")
    try:
        st.write("serving", s.serving)
        st.write("tenant", s.tenant)
    finally:
        st.close()
    return root / "store"


def test_analyze_works_from_serving_data_alone(live_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = _run("--store", str(live_store), "--victim", "hive0", "--from", "2026-03-02T09:00:00Z",
               "--until", "2026-03-02T09:45:00Z", "--shifts", "199", "--json", str(out))  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["source"] == "live" and doc["node"] == "n1"
    assert doc["range"] == {"from": "2026-03-02T09:00:00+00:00", "until": "2026-03-02T09:45:00+00:00"}
    assert doc["phases"] == []
    top = doc["antagonists"][0]
    assert (top["antagonist"], top["metric"], top["significant"]) == ("batch1", "itl", True)
    assert [a["metric"] for a in doc["antagonists_ttft"]] == ["ttft"]
    assert doc["knee"]["found"] is True
    assert "live analysis of hive0" in res.output
    assert "Who slows hive0: ITL windows" in res.output and "Who slows hive0: TTFT windows" in res.output
    assert "TTFT knee at load" in res.output


def test_auto_source_picks_serving_data_when_the_group_has_no_benchmark_runs(live_store: Path) -> None:
    st = open_store(live_store, create=False)
    try:
        res = analyze(st, "hive0", n_shifts=0, end=datetime(2026, 3, 2, 9, 45, tzinfo=UTC))
    finally:
        st.close()
    assert res.source == "live"
    assert res.start == datetime(2026, 3, 2, 7, 45, tzinfo=UTC)  # default span: 2 h before the end


def test_a_group_without_serving_data_in_the_range_names_who_has_it(live_store: Path) -> None:
    res = CliRunner().invoke(_app(), ["analyze", "--store", str(live_store), "--victim", "hive0", "--since", "2h"])
    assert res.exit_code == 2
    line = res.output.strip()
    assert line.startswith("error: no serving rows of group 'hive0' between")
    assert line.endswith("groups with serving data: hive0 on n1 (2026-03-02 09:00 .. 2026-03-02 09:45 UTC)")
    res = CliRunner().invoke(_app(), ["analyze", "--store", str(live_store), "--victim", "nope"])
    assert res.exit_code == 2
    assert "no benchmark runs of group 'nope'" in res.output and "hive0 on n1" in res.output


def test_live_source_without_a_victim_is_an_error(live_store: Path) -> None:
    res = CliRunner().invoke(_app(), ["analyze", "--store", str(live_store), "--source", "live"])
    assert res.exit_code == 2 and "needs --victim GROUP" in res.output


def test_range_options_take_iso_times_and_durations_ago() -> None:
    assert parse_when("2h", "--from", NOW) == NOW - timedelta(hours=2)
    assert parse_when("now-90m", "--from", NOW) == NOW - timedelta(minutes=90)
    assert parse_when("-30m", "--from", NOW) == NOW - timedelta(minutes=30)
    assert parse_when("now", "--until", NOW) == NOW
    assert parse_when("2026-03-02T09:00:00", "--from", NOW) == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert parse_when("2026-03-02T10:00:00+01:00", "--from", NOW) == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert time_range("2h", None, None, NOW) == (NOW - timedelta(hours=2), NOW)
    assert time_range(None, "1h", "30m", NOW) == (NOW - timedelta(hours=1), NOW - timedelta(minutes=30))
    with pytest.raises(ConfigError, match="--from 'yesterday': expected an ISO time"):
        parse_when("yesterday", "--from", NOW)
    with pytest.raises(ConfigError, match="--since and --from"):
        time_range("2h", "1h", None, NOW)
    with pytest.raises(ConfigError, match="--since 'soon'"):
        time_range("soon", None, None, NOW)
