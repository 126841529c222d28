"""Which phase is the baseline and in which order phases come: seed 000's five printed blocks, imported one file
at a time as a user pastes them, give seed 000's table; a phase named ``baseline`` is the baseline; runs without a
wall-clock start keep import order and say so; an unknown ``--baseline`` is an error."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.analyze import analyze, phase_order_of
from analysis.ingest.cli import app as import_app
from analysis.ingest.model import Run, write_run
from telemetry.store.factory import open_store
from tests.analysis.test_analyze_cli import _run as _analyze

SEED000 = Path(__file__).parents[1] / "fixtures" / "bench" / "vllm" / "seed000_inferencex_sglang_mi300x_blog.txt"
BLOCKS = [("baseline", "hive0"), ("dual", "hive0"), ("dual", "hive1"), ("stress", "hive0"), ("stress", "hive1")]


@pytest.fixture
def seed000_store(tmp_path: Path) -> Path:
    """Each printed block of seed 000 in its own file (written one after the other, a second apart, as a user
    pastes them), imported with `neighborscope import bench FILE --run ... --phase ... --group ...`."""
    text = SEED000.read_text()
    blocks = re.findall(r"=+ Serving Benchmark Result.*?\n=+\n", text, re.S)
    assert len(blocks) == len(BLOCKS)
    store = tmp_path / "store"
    written = datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp()
    for i, (block, (phase, group)) in enumerate(zip(blocks, BLOCKS, strict=True), 1):
        path = tmp_path / f"block{i}.txt"
        path.write_text(block)
        os.utime(path, (written + i, written + i))
        res = CliRunner().invoke(
            import_app,
            [
                "bench",
                str(path),
                "--run",
                f"seed000-{phase}-{group}",
                "--phase",
                phase,
                "--group",
                group,
                "--store",
                str(store),
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
    return store


def test_seed000_imported_block_by_block_gives_seed000s_table(seed000_store: Path) -> None:
    res = _analyze("--store", str(seed000_store), "--victim", "hive0", "--json", "-")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    rows = {(r["phase"], r["metric"]): r for r in doc["phases"]}
    assert {r["baseline_phase"] for r in doc["phases"]} == {"baseline"}
    assert [p for p in dict.fromkeys(r["phase"] for r in doc["phases"])] == ["dual", "stress"]
    tput_dual, tput_stress = rows["dual", "output_tok_s"], rows["stress", "output_tok_s"]
    assert (tput_dual["baseline_value"], tput_dual["value"], tput_stress["value"]) == (822.10, 813.02, 805.12)
    assert (round(tput_dual["change_pct"], 2), round(tput_stress["change_pct"], 2)) == (-1.10, -2.07)
    itl = rows["stress", "itl_ms_p99"]
    assert (itl["baseline_value"], itl["value"], round(itl["change_pct"], 2)) == (411.67, 437.30, 6.23)
    assert any("no wall-clock start" in n and "baseline -> dual -> stress" in n for n in doc["notes"])


def test_the_terminal_table_compares_against_the_baseline_phase(seed000_store: Path) -> None:
    res = _analyze("--store", str(seed000_store), "--victim", "hive0")
    assert res.exit_code == 0, res.output
    assert "dual vs baseline" in res.output and "stress vs baseline" in res.output
    assert "vs stress" not in res.output
    assert res.output.index("dual vs baseline") < res.output.index("stress vs baseline")


def test_an_explicit_baseline_phase_wins(seed000_store: Path) -> None:
    res = _analyze("--store", str(seed000_store), "--victim", "hive0", "--baseline", "dual", "--json", "-")
    doc = json.loads(res.output)
    assert {r["baseline_phase"] for r in doc["phases"]} == {"dual"}
    assert {r["phase"] for r in doc["phases"]} == {"baseline", "stress"}


def test_an_unknown_baseline_phase_is_a_usage_error(seed000_store: Path) -> None:
    res = _analyze("--store", str(seed000_store), "--victim", "hive0", "--baseline", "basline")
    assert res.exit_code == 2
    assert "--baseline 'basline'" in res.output and "'baseline', 'dual', 'stress'" in res.output
    assert "Traceback" not in res.output


def _run(run_id: str, phase: str, start: datetime | None, import_seq: int) -> Run:
    return Run(
        run_id=run_id,
        tool="vllm",
        source=f"{run_id}.txt",
        summary={"output_tok_s": 100.0, "duration_s": 60.0},
        start=start,
        end=None if start is None else start + timedelta(seconds=60),
        group="hive0",
        phase=phase,
        timed=start is not None,
        import_seq=import_seq,
    )


def test_runs_without_a_start_keep_import_order_and_say_so(tmp_path: Path) -> None:
    st = open_store(tmp_path / "store")
    try:
        # stored out of order; their import sequence numbers say baseline, dual, stress
        t0 = 1_772_442_000_000_000_000  # 2026-03-02 09:00 UTC in ns
        for seq, phase in ((2, "stress"), (0, "baseline"), (1, "dual")):
            write_run(st, _run(f"r-{phase}", phase, None, import_seq=t0 + seq * 60_000_000_000))
        res = analyze(st, "hive0")
        imported = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        in_window = analyze(st, "hive0", start=imported, end=imported + timedelta(minutes=2))  # baseline, dual
    finally:
        st.close()
    assert in_window.phases["phase"].unique().to_list() == ["dual"], "runs without a start count at their import"
    assert res.phases["phase"].unique(maintain_order=True).to_list() == ["dual", "stress"]
    assert set(res.phases["baseline_phase"].to_list()) == {"baseline"}
    assert any("import order: baseline -> dual -> stress" in n for n in res.notes)


def test_runs_with_wall_clock_starts_are_ordered_by_start() -> None:
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    runs = [
        _run("b", "stress", t0 + timedelta(hours=2), import_seq=0),
        _run("a", "warmup", t0, import_seq=1),
        _run("c", "baseline", t0 + timedelta(hours=1), import_seq=2),
    ]
    assert phase_order_of(runs) == (["warmup", "baseline", "stress"], None)
