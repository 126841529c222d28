"""`neighborscope demo --store vm://...` end to end on a real VictoriaMetrics: collector, agent batches over HTTP,
benchmark import, analysis and report all on the VictoriaMetrics store; what it stored is what the simulator made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry.sim import preset, simulate
from telemetry.store.factory import open_store
from tests.telemetry.store.conftest import VictoriaServer

pytestmark = [pytest.mark.influx, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def test_demo_runs_on_victoriametrics(victoria: VictoriaServer, vm_db: str, tmp_path: Path):
    url = f"vm://127.0.0.1:{victoria.port}/{vm_db}"
    proc = subprocess.run(
        [sys.executable, "-m", "telemetry.cli", "demo", "--dir", str(tmp_path), "--phase-s", "60", "--store", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "demo done" in proc.stdout
    assert (tmp_path / "report" / "index.html").is_file()
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert analysis["victim"] == "hive0" and analysis["phases"]

    res = simulate(preset("seed000", phase_s=60), seed=0)
    store = open_store(f"{url}?artifacts={tmp_path / 'artifacts'}")
    try:
        for name, frame in res.telemetry().items():
            if name != "run_event" and frame.height:
                assert store.query(name).height == frame.height, name
        events = store.query("run_event")
        assert sorted(events.filter(events["event"] == "start")["run_id"].to_list()) == sorted(
            r.run_id for r in res.runs
        )
        assert store.query("bench_request").height == res.bench_requests().height
        assert store.list_artifacts()  # the per-request and per-token arrays the importer kept beside the store
    finally:
        store.close()
