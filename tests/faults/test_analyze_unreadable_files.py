"""Issue 17 item 5 (analyze side): a store file that cannot be read gives no polars traceback and no silent
result. `neighborscope analyze` names the file, marks its result incomplete (``complete: false`` and
``unreadable_inputs`` in --json) and exits 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telemetry.cli import app
from tests.faults.test_report_unreadable_files import good_store_fixture, store_fixture  # noqa: F401 - fixtures


def _analyze(store: Path, *extra: str):
    return CliRunner().invoke(
        app, ["analyze", "--store", str(store), "--victim", "hive0", "--shifts", "99", *extra], catch_exceptions=False
    )


def test_the_good_store_analyses_completely(store: Path, tmp_path: Path) -> None:
    res = _analyze(store, "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert (doc["complete"], doc["unreadable_inputs"]) == (True, [])


@pytest.mark.parametrize("measurement", ["accel", "tenant"])
@pytest.mark.parametrize("content", [b"", b"PAR1 not parquet at all PAR1"], ids=["empty", "corrupt"])
def test_an_unreadable_telemetry_file_is_named_and_the_result_is_incomplete(
    store: Path, tmp_path: Path, measurement: str, content: bytes
) -> None:
    bad = next((store / measurement).iterdir()) / "w-bad.parquet"
    bad.write_bytes(content)
    res = _analyze(store, "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "polars" not in res.output
    assert "incomplete result" in res.stderr and str(bad) in res.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["complete"] is False
    assert [u["path"] for u in doc["unreadable_inputs"]] == [str(bad)]
    assert doc["phases"], "what could be read is still analysed"


def test_an_unreadable_requests_artifact_leaves_the_summaries_and_an_incomplete_result(
    store: Path, tmp_path: Path
) -> None:
    artifact = next(d for d in (store / "artifacts" / "bench").iterdir() if "hive0" in d.name) / "requests.parquet"
    artifact.write_bytes(b"not parquet")
    res = _analyze(store, "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    assert str(artifact) in res.stderr and "Traceback" not in res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["complete"] is False and doc["phases"]
    assert {r["method"] for r in doc["phases"]} == {"summary_only"}
    assert any("could not be read" in n for n in doc["notes"])
