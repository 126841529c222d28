"""benchmarks/fleet_load.py runs end to end on a tiny fleet (a real collector; no timing asserts)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _fleet_load():
    spec = importlib.util.spec_from_file_location("fleet_load", ROOT / "benchmarks" / "fleet_load.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_batch_body_is_a_valid_agent_batch():
    from telemetry.batch import BatchIn, batch_frames

    fl = _fleet_load()
    t = fl.node_template(3, accels=34, cores=4, seed=0)
    doc = json.loads(gzip.decompress(fl.batch_body(t, "boot", 7, 1_700_000_000_000_000_000, np.random.default_rng(0))))
    frames = batch_frames(BatchIn.model_validate(doc))
    assert (doc["node"], doc["seq"]) == ("node00003", 7)
    assert {k: v.height for k, v in frames.items()} == {"accel": 34, "host": 1, "host_core": 4}


def test_tiny_fleet_step_reports_latency_and_memory(tmp_path):
    fl = _fleet_load()
    out = tmp_path / "fleet.json"
    fl.main(["--steps", "2", "--step-s", "2", "--accels", "4", "--cores", "2", "--json", str(out)])
    (step,) = json.loads(out.read_text())["steps"]
    assert step["nodes"] == 2 and step["scheduled"] == 4
    assert step["ok"] + sum(step["errors"].values()) == step["sent"]
    assert step["ok"] > 0
    assert step["latency_ms_p99"] is not None and step["collector_rss_mib_peak"] > 0
