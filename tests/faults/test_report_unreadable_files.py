"""Issue 17 item 5 (report side): a store file that cannot be read (corrupt, or 0 bytes) never gives a false
all-clear. The report lists the inputs it could not read, its verdict says the result is incomplete (never "OK"),
and `neighborscope report` exits 1 after writing it; the same store without the bad file is judged as usual."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.ingest import import_bench_files
from telemetry.cli import app
from telemetry.sim import preset, simulate, write_output
from telemetry.store.factory import open_store

WINDOW = ("--start", "2026-03-02T08:00:00Z", "--end", "2026-03-02T10:00:00Z")
HOT = ("--gpu-warm-c", "60", "--gpu-hot-c", "70")  # seed 000's accelerators reach 77 °C: HOT, so ATTENTION


def build_store(root: Path) -> Path:
    """Seed 000 (short phases): telemetry written to the store, the AIPerf runs imported as a user would."""
    res = simulate(preset("seed000", phase_s=150, num_prompts=80), seed=1)
    write_output(res, root / "sim", formats=["aiperf"])
    store = open_store(root / "store")
    try:
        for name, frame in res.telemetry().items():
            if name != "run_event":
                store.write(name, frame)
        for run in res.runs:
            import_bench_files(
                store,
                [root / "sim" / "bench" / run.run_id / "profile_export.jsonl"],
                run_id=run.run_id,
                phase=run.phase,
                group=run.group,
                node=run.node,
            )
    finally:
        store.close()
    return root / "store"


@pytest.fixture(scope="module", name="good_store")
def good_store_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("faults-report"))


@pytest.fixture(name="store")
def store_fixture(good_store: Path, tmp_path: Path) -> Path:
    """A copy of the good store, for one test to break."""
    return Path(shutil.copytree(good_store, tmp_path / "store"))


def _report(store: Path, out: Path, *extra: str):
    return CliRunner().invoke(
        app, ["report", "--store", str(store), "--out", str(out), *WINDOW, *extra], catch_exceptions=False
    )


def _accel_dir(store: Path) -> Path:
    return next((store / "accel").iterdir())


def test_the_good_store_is_judged_ok_and_attention_with_lower_thermal_limits(store: Path, tmp_path: Path) -> None:
    res = _report(store, tmp_path / "ok")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert (s["verdict"]["status"], s["unreadable_inputs"]) == ("OK", [])
    res = _report(store, tmp_path / "hot", *HOT)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "hot" / "summary.json").read_text())["verdict"]["status"] == "ATTENTION"


@pytest.mark.parametrize("content", [b"", b"PAR1 this is not a parquet file PAR1"], ids=["empty", "corrupt"])
def test_an_unreadable_accel_file_makes_the_report_incomplete_never_all_clear(
    store: Path, tmp_path: Path, content: bytes
) -> None:
    bad = _accel_dir(store) / "w-bad.parquet"
    bad.write_bytes(content)
    res = _report(store, tmp_path / "r")
    assert res.exit_code == 1, res.output
    assert "incomplete report" in res.stderr and str(bad) in res.stderr
    assert "Traceback" not in res.output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["verdict"]["status"] == "INCOMPLETE"
    assert "No noisy-neighbour slowdown" not in s["verdict"]["headline"]
    assert [b["path"] for b in s["unreadable_inputs"]] == [str(bad)]
    assert s["verdict"]["lines"][0]["topic"] == "incomplete" and str(bad) in s["verdict"]["lines"][0]["text"]
    page = (tmp_path / "r" / "index.html").read_text()
    assert 'id="unreadable-inputs"' in page and f'data-path="{bad}"' in page


def test_an_unreadable_file_does_not_hide_an_attention_verdict(store: Path, tmp_path: Path) -> None:
    bad = _accel_dir(store) / "w-bad.parquet"
    bad.write_bytes(b"")
    res = _report(store, tmp_path / "r", *HOT)
    assert res.exit_code == 1, res.output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["verdict"]["status"] == "ATTENTION"
    assert "incomplete" in s["verdict"]["headline"]
    assert s["thermal"]["nodes"], "the good accel file is still read"


def test_an_unreadable_run_event_file_makes_the_report_incomplete(store: Path, tmp_path: Path) -> None:
    bad = next((store / "run_event").iterdir()) / "w-bad.parquet"
    bad.write_bytes(b"PAR1\x00\x01garbage")
    res = _report(store, tmp_path / "r")
    assert res.exit_code == 1, res.output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["verdict"]["status"] != "OK"
    assert str(bad) in {b["path"] for b in s["unreadable_inputs"]}


def test_an_unreadable_requests_artifact_makes_the_report_incomplete_not_a_crash(store: Path, tmp_path: Path) -> None:
    artifact = next((store / "artifacts" / "bench").iterdir()) / "requests.parquet"
    artifact.write_bytes(b"not parquet")
    res = _report(store, tmp_path / "r")
    assert res.exit_code == 1, res.output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["verdict"]["status"] == "INCOMPLETE"
    assert [b["path"] for b in s["unreadable_inputs"]] == [str(artifact)], "named once"
    assert s["phases"]["rows"], "the phase table is still there, from the runs' summaries"
    assert any("not every run has per-request data" in n for n in s["phases"]["method_notes"])
