"""`neighborscope analyze`: seed 000's printed blocks alone give the phase table; a store filled with the simulated
node gives the ranked antagonists; --json writes the documented shape; bad input is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from analysis.attribution import ANTAGONIST_COLUMNS
from analysis.cli import analyze as command
from analysis.degradation import PHASE_COLUMNS
from analysis.ingest import import_bench_files
from telemetry.sim import preset, simulate, write_output
from telemetry.store.factory import open_store

SEED000 = Path(__file__).parents[1] / "fixtures" / "bench" / "vllm" / "seed000_inferencex_sglang_mi300x_blog.txt"
BLOCKS = "baseline/hive0,dual/hive0,dual/hive1,stress/hive0,stress/hive1"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)
    return app


def _run(*args: str):
    return CliRunner().invoke(_app(), ["analyze", *args], catch_exceptions=False)


def test_help_shows_examples_and_options() -> None:
    res = _run("--help")
    assert res.exit_code == 0
    assert "--victim" in res.output and "--bench" in res.output and "--json" in res.output


def test_seed000_blocks_give_the_phase_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = _run("--bench", str(SEED000), "--blocks", BLOCKS, "--victim", "hive0", "--json", str(out))
    assert res.exit_code == 0, res.output
    assert "-1.10" in res.output and "-2.07" in res.output and "+6.23" in res.output
    doc = json.loads(out.read_text())
    assert set(doc) >= {"phases", "antagonists", "notes"}
    assert doc["antagonists"] == []
    rows = {(r["phase"], r["metric"]): r for r in doc["phases"]}
    assert rows["stress", "output_tok_s"]["value"] == 805.12
    assert round(rows["stress", "itl_ms_p99"]["change_pct"], 2) == 6.23
    assert rows["stress", "itl_ms_p99"]["ci_low_pct"] is None
    assert any("no per-run uncertainty" in n for n in doc["notes"])


def test_json_to_stdout_is_plain_json() -> None:
    res = _run("--bench", str(SEED000), "--blocks", BLOCKS, "--json", "-")
    doc = json.loads(res.output)
    assert {r["group"] for r in doc["phases"]} == {"hive0", "hive1"}


def test_block_count_mismatch_is_one_clear_error() -> None:
    res = CliRunner().invoke(_app(), ["analyze", "--bench", str(SEED000), "--blocks", "baseline/hive0"])
    assert res.exit_code == 2
    assert "--blocks lists 1 block(s) but the file(s) hold 5 run(s)" in res.output


def test_blocks_need_phase_and_group() -> None:
    res = CliRunner().invoke(_app(), ["analyze", "--bench", str(SEED000), "--blocks", "baseline"])
    assert res.exit_code == 2 and "expected PHASE/GROUP" in res.output


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated node in a store, imported the way a user would: telemetry frames + benchmark files."""
    root = tmp_path_factory.mktemp("sim")
    res = simulate(preset("pcie_antagonist", phase_s=240, num_prompts=0), seed=7)
    write_output(res, root / "out", formats=("aiperf",))
    st = open_store(root / "store")
    try:
        for name, frame in res.telemetry().items():
            st.write(name, frame)
        for run in res.runs:
            import_bench_files(
                st,
                [root / "out" / "bench" / run.run_id / "profile_export.jsonl"],
                run_id=run.run_id,
                phase=run.phase,
                group=run.group,
                node=run.node,
            )
    finally:
        st.close()
    return root


def test_store_analysis_ranks_the_simulated_antagonist_first(sim_store: Path) -> None:
    out = sim_store / "result.json"
    res = _run("--store", str(sim_store / "store"), "--victim", "hive0", "--json", str(out), "--shifts", "299")
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    top = doc["antagonists"][0]
    assert (top["antagonist"], top["resource"], top["significant"]) == ("tt", "pcie", True)
    assert {
        "victim",
        "antagonist",
        "resource",
        "effect_pct",
        "ci_low",
        "ci_high",
        "q_value",
        "evidence",
        "confidence",
    } <= set(top)
    assert {r["phase"] for r in doc["phases"]} == {"stress"}
    assert "Who slows hive0" in res.output
    assert all(list(r) == list(PHASE_COLUMNS) for r in doc["phases"])
    assert all(list(a) == list(ANTAGONIST_COLUMNS) for a in doc["antagonists"])


def test_docs_describe_every_json_field() -> None:
    docs = Path(__file__).parents[2] / "docs"
    text = (docs / "analysis.md").read_text() + (docs / "live.md").read_text()
    live_keys = ["source", "range", "node", "window_s_ttft", "antagonists_ttft", "knee"]
    for name in [*PHASE_COLUMNS, *ANTAGONIST_COLUMNS, "schema_version", "window_s", "notes", *live_keys]:
        assert name in text, name


def test_store_analysis_uses_a_topology_file(sim_store: Path) -> None:
    res = _run(
        "--store",
        str(sim_store / "store"),
        "--victim",
        "hive0",
        "--topology",
        str(sim_store / "out" / "topology.json"),
        "--json",
        "-",
        "--shifts",
        "199",
    )
    doc = json.loads(res.output)
    tt = next(a for a in doc["antagonists"] if a["antagonist"] == "tt")
    assert any(s.startswith("pcie_switch=") for s in tt["shares"])


def test_unknown_victim_is_one_clear_error(sim_store: Path) -> None:
    res = CliRunner().invoke(_app(), ["analyze", "--store", str(sim_store / "store"), "--victim", "nope"])
    assert res.exit_code == 2
    assert "no benchmark runs of group 'nope'" in res.output
