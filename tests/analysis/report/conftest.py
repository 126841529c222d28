"""A small simulated seed-000 store (telemetry + AIPerf runs imported the way the demo does) and its report,
built once per session."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from analysis.ingest import import_bench_files
from telemetry.sim import preset, simulate, write_output
from telemetry.store.factory import open_store

SIM_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 000 with 150 s phases and 80 prompts per run: telemetry written to the store, runs imported."""
    root = tmp_path_factory.mktemp("report-sim")
    res = simulate(preset("seed000", phase_s=150, num_prompts=80), seed=1)
    write_output(res, root / "sim", formats=["aiperf"])
    store = open_store(root / "store")
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
    store.close()
    return root / "store"


@pytest.fixture(scope="session")
def sim_report(sim_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The report of the simulated window (summary.json + index.html)."""
    from analysis.report import write_report

    store = open_store(sim_store)
    try:
        return write_report(
            store,
            SIM_START.replace(hour=8),
            SIM_START.replace(hour=10),
            tmp_path_factory.mktemp("report-out"),
            store_name=str(sim_store),
        )
    finally:
        store.close()
