"""`neighborscope import bench|telemetry` through the root command."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from analysis.ingest import load_run
from analysis.ingest.cli import app
from telemetry.store.factory import open_store
from tests.analysis.ingest.fake_bench import fake_workload, vllm_detailed, write_json

BENCH = Path(__file__).resolve().parents[2] / "fixtures" / "bench"
SEED000 = BENCH / "vllm" / "seed000_inferencex_sglang_mi300x_blog.txt"
runner = CliRunner()


def test_every_command_has_help() -> None:
    for args in (["--help"], ["bench", "--help"], ["telemetry", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Example" in result.output or args == ["--help"]


def test_bench_imports_into_the_store(tmp_path: Path) -> None:
    w = fake_workload(seed=1)
    path = write_json(tmp_path / "vllm.json", vllm_detailed(w, perf_counter_at_first=100.0))
    store = tmp_path / "store"
    result = runner.invoke(
        app,
        ["bench", str(path), "--run", "r1", "--phase", "baseline", "--group", "hive0", "--node", "n1",
         "--store", str(store), "--wall-start", "1763800000.0", "--monotonic-start", "99.0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "r1\tvllm\treconstructed\trequests=64" in result.output
    st = open_store(store)
    run = load_run(st, "r1")
    assert run.requests.height == w.n and run.group == "hive0" and run.node == "n1"
    assert run.requests["time"].min().timestamp() == 1763800001.0
    st.close()


def test_bench_store_defaults_to_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEIGHBORSCOPE_STORE", str(tmp_path / "envstore"))
    result = runner.invoke(app, ["bench", str(SEED000), "--run", "seed", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert [x["summary"]["output_tok_s"] for x in lines] == [822.10, 813.02, 804.64, 805.12, 789.46]
    assert (tmp_path / "envstore").is_dir()


def test_bad_file_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"date": "20250101-000000", "completed": 3, "duration": 1.0,\n "num_prompts": ')
    result = runner.invoke(app, ["bench", str(bad), "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}:2: invalid or truncated JSON")
    assert "Traceback" not in result.output


def test_unknown_file_says_what_was_expected(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    result = runner.invoke(app, ["bench", str(bad), "--dry-run"])
    assert result.exit_code == 2
    assert "matches no known benchmark format" in result.stderr and "Expected" in result.stderr


def test_telemetry_imports_an_nvidia_smi_log(tmp_path: Path) -> None:
    log = tmp_path / "gpu_metrics.csv"
    log.write_text(
        "timestamp, index, power.draw [W], temperature.gpu\n"
        "2026/03/07 00:20:37.071, 0, 76.78 W, 30\n"
        "2026/03/07 00:20:38.071, 0, 412.50 W, 61\n"
    )
    store = tmp_path / "store"
    result = runner.invoke(app, ["telemetry", str(log), "--node", "n1", "--tz", "UTC", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "accel\trows=2" in result.stdout
    st = open_store(store)
    assert st.query("accel", tags={"node": "n1"})["power_w"].to_list() == [76.78, 412.50]
    st.close()
