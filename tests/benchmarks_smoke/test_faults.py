"""benchmarks/faults.py at a tiny size: real agents and collector, a kill -9, a full disk and an InfluxDB outage;
nothing acknowledged is lost, nothing is stored twice, everything is acknowledged in the end."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[2]


def _faults():
    spec = importlib.util.spec_from_file_location("faults_bench", ROOT / "benchmarks" / "faults.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_a_tiny_fault_run_loses_and_duplicates_nothing_in_either_store(tmp_path):
    stores = "embedded,influx"
    if shutil.which("influxd") is None:
        if in_ci():
            pytest.fail("CI: influxd is not installed (apt-get install influxdb)")
        stores = "embedded"
    out = tmp_path / "faults.json"
    faults = _faults()
    faults.main(
        [
            "--agents",
            "2",
            "--duration-s",
            "8",
            "--kills",
            "1",
            "--disk-full-s",
            "2",
            "--influx-outage-s",
            "3",
            "--drain-s",
            "30",
            "--disk-mb",
            "16",
            "--stores",
            stores,
            "--json",
            str(out),
        ]
    )
    results = json.loads(out.read_text())
    assert [r["store"] for r in results] == stores.split(",")
    for r in results:
        assert r["acknowledged_batches"] > 10 and r["acknowledged_rows"] > 50, r
        assert (r["lost_rows"], r["duplicated_rows"], r["never_acknowledged_batches"]) == (0, 0, 0), r
        assert any("kill -9" in f for f in r["faults"]), r  # the faults happened and the agents felt them
        assert r["agent_retry_episodes"] > 0, r
