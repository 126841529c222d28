"""A demo-like embedded store for dashboard tests, made with the simulator (seeded, a few seconds to build).

Layout as the demo leaves it: ``<root>/store`` (Parquet store with telemetry, run events, bench requests and
token artifacts imported from the simulator's AIPerf files) and ``<root>/topology.json`` beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from analysis.ingest.importer import import_bench_files
from telemetry.sim import preset, simulate, write_output
from telemetry.store.parquet import ParquetStore


def build_demo_store(root: Path, *, phase_s: int = 240, num_prompts: int = 0, seed: int = 1) -> Path:
    """Simulate seed 000 (three phases of ``phase_s`` s) and store it under ``root``; returns the store path."""
    res = simulate(preset("seed000", phase_s=phase_s, num_prompts=num_prompts), seed=seed)
    sim_dir = root / "sim"
    write_output(res, sim_dir, formats=["aiperf"])
    shutil.copy(sim_dir / "topology.json", root / "topology.json")
    store = ParquetStore(root / "store")
    for name, frame in res.telemetry().items():
        store.write(name, frame)
    for run in res.runs:
        import_bench_files(
            store,
            [sim_dir / "bench" / run.run_id / "profile_export.jsonl"],
            run_id=run.run_id,
            group=run.group,
            phase=run.phase,
            node=res.scenario.topology.node,
        )
    store.close()
    return root / "store"
