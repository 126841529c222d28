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


def test_tiny_step_reports_cpu_per_batch_and_commit_groups(tmp_path):
    fl = _fleet_load()
    out = tmp_path / "fleet.json"
    fl.main(["--steps", "3", "--step-s", "2", "--accels", "4", "--cores", "2", "--commit-pace-s", "0.02",
             "--json", str(out)])  # fmt: skip
    (step,) = json.loads(out.read_text())["steps"]
    assert step["ok"] > 0 and step["collector_cpu_ms_per_batch"] > 0
    assert step["commit_groups"] >= 1 and step["batches_per_group"] >= 1
    assert step["commit_groups"] * step["batches_per_group"] == step["ok"]  # every stored batch was in a group


def test_collector_cpu_benchmark_compares_paced_and_unpaced_against_baselines(tmp_path):
    spec = importlib.util.spec_from_file_location("collector_cpu", ROOT / "benchmarks" / "collector_cpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "cpu.json"
    assert mod.main(["--nodes", "3", "--step-s", "2", "--accels", "4", "--cores", "2", "--pace", "0,0.02",
                     "--json", str(out)]) == 0  # fmt: skip
    got = json.loads(out.read_text())
    assert [r["commit_pace_s"] for r in got["runs"]] == [0, 0.02]
    assert all(r["ok"] == r["scheduled"] == 6 and r["cpu_ms_per_batch"] > 0 for r in got["runs"])
    base = got["baselines_ms"]
    assert 0 < base["decode"] < base["decode+validate generic"] and base["store"] > 0
    assert base["decode+validate typed"] > 0
