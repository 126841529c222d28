"""The `agent` and `run` commands: help, effective config, and the benchmark wrapper over real HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from telemetry.cli import app
from telemetry.schema import MBM_FIELDS, PRESSURE_FIELDS
from telemetry.store.factory import open_store
from tests.conftest import NEIGHBORSCOPE

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests/fixtures/bench/sglang/sglang_bench_serving_2024-12_datacrunch_llama33-70b_online.jsonl"


@pytest.mark.parametrize("command", ["agent", "run"])
def test_every_agent_command_has_help_with_an_example(command):
    result = CliRunner().invoke(app, [command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Example: neighborscope " + command in " ".join(result.output.split())


def test_print_config_shows_the_effective_config_with_detected_samplers(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text('node = "n1"\n[collector]\ntoken = "s3cret"\n[samplers.host]\ncadence_s = 0.5\n')
    result = CliRunner().invoke(app, ["agent", "--config", str(cfg), "--print-config"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = tomllib.loads(result.stdout)
    assert doc["samplers"]["host"] == {"enabled": True, "cadence_s": 0.5}
    assert doc["samplers"]["simulated"]["enabled"] is False
    assert doc["collector"]["token"] == "<redacted>"
    # cpu_temp_c depends on the machine having a CPU hwmon chip (a VM often has none)
    m = re.search(r"# host \(node\): (\d+) fields supported; unsupported: (.*)\n", result.stdout)
    optional = {"cpu_temp_c", "numa_miss_per_s", "numa_foreign_per_s", *(f.name for f in PRESSURE_FIELDS + MBM_FIELDS)}
    assert m and (m[2] == "none" or set(m[2].split(", ")) <= optional), result.stdout


def test_a_bad_config_is_one_line_not_a_traceback(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text("[agent]\ncadence_s = 0.001\n")
    proc = subprocess.run([*NEIGHBORSCOPE, "agent", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "agent.toml: [agent] cadence_s: 0.001 s is outside" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def node_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'node = "node1"\n[collector]\nurl = "{url}"\ntoken = "token-node1"\n'
        f'[agent]\nspool_dir = "{tmp_path / "spool"}"\n'
    )
    return path


def run_wrapper(tmp_path: Path, url: str, *args: str, bench: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *NEIGHBORSCOPE,
            "run",
            "--config",
            str(node_config(tmp_path, url)),
            "--group",
            "hive0",
            "--phase",
            "baseline",
            "--run-id",
            "r1",
            *args,
            "--",
            *bench,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_run_records_start_and_end_events_and_streams_the_output(collector, tmp_path):
    proc = run_wrapper(
        tmp_path,
        collector.url,
        "--tool",
        "demo",
        bench=[sys.executable, "-c", "print('bench says hi'); raise SystemExit(3)"],
    )
    assert proc.returncode == 3  # the benchmark's exit code
    assert "bench says hi" in proc.stdout
    collector.stop()
    store = open_store(collector.store)
    try:
        ev = store.query("run_event", tags={"run_id": "r1"})
    finally:
        store.close()
    assert ev["event"].to_list() == ["start", "end"]
    assert ev["group"].to_list() == ["hive0", "hive0"] and ev["phase"].to_list() == ["baseline", "baseline"]
    assert ev["exit_code"].to_list() == [None, 3]
    assert ev["monotonic_s"][1] > ev["monotonic_s"][0]
    assert ev["tool"].to_list() == ["demo", "demo"]


@pytest.mark.slow
def test_run_keeps_its_events_in_the_spool_when_the_collector_is_down(tmp_path):
    proc = run_wrapper(tmp_path, "http://127.0.0.1:9", bench=[sys.executable, "-c", "pass"])
    assert proc.returncode == 0
    assert "spooled in" in proc.stderr
    assert len(list((tmp_path / "spool").glob("*.batch.gz"))) == 2


@pytest.mark.slow
def test_run_hands_the_result_file_to_the_importer(collector, tmp_path):
    proc = run_wrapper(
        tmp_path,
        collector.url,
        "--result",
        str(BENCH),
        "--store",
        str(tmp_path / "bench-store"),
        bench=[sys.executable, "-c", "pass"],
    )
    assert proc.returncode == 0
    assert "neighborscope run:" in proc.stderr
    if "imported" not in proc.stderr:  # the importer is another issue: a failure must be said clearly
        assert (
            "the benchmark importer failed" in proc.stderr and "retry with: neighborscope import bench" in proc.stderr
        )
        pytest.skip(f"importer not working yet: {proc.stderr.strip().splitlines()[-1]}")
    store = open_store(str(tmp_path / "bench-store"))
    try:
        summaries = store.query("run_event").filter(pl.col("event") == "summary")
        assert summaries.height > 0 and all(r.startswith("r1") for r in summaries["run_id"])
    finally:
        store.close()


def test_run_without_a_result_file_says_there_is_nothing_to_import(tmp_path):
    proc = run_wrapper(
        tmp_path, "http://127.0.0.1:9", "--result", str(tmp_path / "missing.json"), bench=[sys.executable, "-c", "pass"]
    )
    assert proc.returncode == 0 and "nothing to import" in proc.stderr


def test_init_config_writes_a_commented_config_for_this_host_that_the_agent_reads_back(tmp_path):
    path = tmp_path / "agent.toml"
    result = CliRunner().invoke(
        app,
        [
            "agent",
            "--init-config",
            "--collector",
            "http://collector:8428",
            "--config",
            str(path),
            "--log-level",
            "warning",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text.startswith("# neighborscope agent config for ") and "\n# token_file = " in text
    from agents.config import load_config

    cfg = load_config(path)
    assert cfg.collector_url == "http://collector:8428"
    assert cfg.samplers["host"].enabled is True and cfg.samplers["simulated"].enabled is False
    again = subprocess.run(
        [*NEIGHBORSCOPE, "agent", "--init-config", "--config", str(path)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "already exists, not overwritten" in again.stderr
    assert path.read_text() == text


def test_init_config_lists_the_devices_it_found_and_enables_their_sampler():
    import tomllib

    from agents.config import init_config_toml, parse_config

    text = init_config_toml("n7", "https://c.example:8428", {"hwmon": ["npu0", "npu1"], "host": []})
    assert "enabled = true              # found 2: npu0, npu1" in text
    cfg = parse_config(tomllib.loads(text))
    assert (cfg.node, cfg.collector_url) == ("n7", "https://c.example:8428")
    assert cfg.samplers["hwmon"].enabled is True and cfg.samplers["nvml"].enabled is False
    assert "devices" not in cfg.samplers["hwmon"].options  # devices found later are picked up too


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[agent]\nbogus = 1\n", "[agent] unknown key 'bogus'; the known keys are cadence_s, "),
        ("[samplers.nope]\n", "[samplers] unknown sampler 'nope'; the known samplers are "),
        ('[collector]\nurl = "ftp://x"\n', "[collector] url: the collector URL must look like http(s)://HOST[:PORT]"),
        ('[[tenants]]\ngroup = "hive0"\n', "tenants[0]: a tenant rule needs at least one of"),
    ],
)
def test_config_errors_are_sentences_that_name_the_file(tmp_path, toml, expected):
    path = tmp_path / "agent.toml"
    path.write_text(toml)
    result = subprocess.run(
        [*NEIGHBORSCOPE, "agent", "--config", str(path), "--log-level", "warning"], capture_output=True, text=True
    )
    assert result.returncode == 2
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert line.startswith(f"error: {path}: ") and expected in line, line
    assert "['" not in line and "('" not in line  # no Python lists or tuples
