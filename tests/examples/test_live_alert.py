"""Issue 16 acceptance, end to end: the example victim server speaks vLLM's `/metrics`, an unmodified benchmark
client (llama-benchy) drives it as production traffic (nothing imported as a benchmark), the real agent's `serving`
sampler scrapes it, a co-tenant is switched on and off at random (`neighborscope stress run`), and the live
`NoisyNeighbour` rule (`neighborscope alerts`) fires in a real Alertmanager naming the co-tenant and the resource;
with an idle co-tenant (A/A) nothing fires. `examples/noisy-neighbor/live.py` runs it; the fast tests below check
its configuration pieces against the real loaders."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import in_ci
from tests.examples.conftest import EXAMPLE, ROOT, example_module


def _live():
    return example_module("live")


def test_agent_config_scrapes_the_server_as_vllm_and_maps_the_tenants(tmp_path):
    from agents.config import load_config

    live = _live()
    path = tmp_path / "agent.toml"
    port_file = tmp_path / "run" / "server.port"
    path.write_text(
        live.agent_toml("http://127.0.0.1:1", "t" * 16, tmp_path / "spool", "http://127.0.0.1:2", port_file)
    )
    cfg = load_config(path)
    assert [r["group"] for r in cfg.tenants] == ["victim", "cpuhog", "idler"]
    # the patterns match this run's processes (as the plans and live.py start them), not another experiment's
    pattern = {r["group"]: re.compile(r["cmdline"]) for r in cfg.tenants}
    py = sys.executable
    ours = {
        "victim": f"{py} {EXAMPLE / 'server.py'} --port 0 --port-file {port_file} --token-ms 1.0",
        "cpuhog": f"{py} -X live-neighbor-cpuhog {EXAMPLE / 'cpuhog.py'} --autogroup-nice -10",
        "idler": f"{py} -X live-neighbor-idler -c import time; time.sleep(86400)",
    }
    theirs = {
        "victim": f"{py} {EXAMPLE / 'server.py'} --port 0 --port-file /tmp/other/server.port --token-ms 2.5",
        "cpuhog": f"{py} {EXAMPLE / 'cpuhog.py'} --autogroup-nice -10",
        "idler": "sleep 86400",
    }
    for group, rx in pattern.items():
        assert rx.search(ours[group]) and not rx.search(theirs[group]), group
    assert [(e["group"], e["url"], e["engine"]) for e in cfg.serving] == [
        ("victim", "http://127.0.0.1:2/metrics", "vllm")
    ]
    assert cfg.samplers["serving"].enabled is True
    assert cfg.samplers["serving"].cadence_s == 0.5


def test_alerts_config_has_only_the_live_rule_firing_at_once_and_delivers_to_alertmanager(tmp_path):
    from analysis.alerts.engine import load_config

    live = _live()
    path = tmp_path / "alerts.toml"
    path.write_text(live.alerts_toml(tmp_path / "alerts", "http://127.0.0.1:9093", 54, 0.05, 10.0))
    cfg = load_config(path)
    assert cfg.alerts.builtin_rules is False
    (rule,) = cfg.rule
    assert (rule.name, rule.kind, rule.for_s, rule.lookback_s, rule.fdr, rule.enter_pct) == (
        "NoisyNeighbour", "noisy_neighbour_live", 0.0, 54.0, 0.05, 10.0)  # fmt: skip
    assert [(n.kind, n.url) for n in cfg.notifier if n.kind == "alertmanager"] == [
        ("alertmanager", "http://127.0.0.1:9093")
    ]
    path.write_text(live.alerts_toml(tmp_path / "alerts", None, 54, 0.05, 10.0))
    assert [n.kind for n in load_config(path).notifier] == ["log"]


@pytest.mark.parametrize("plan", ["live_plan.toml", "live_plan_aa.toml"])
@pytest.mark.parametrize("blocks", [10, 11, 12, 16])
def test_live_plans_switch_the_cotenant_at_random_and_import_no_benchmark(plan, blocks):
    from analysis.stress.plan import load_plan, schedule

    p = load_plan(EXAMPLE / plan)
    assert p.plan.design == "randomized" and p.plan.node == _live().NODE
    assert p.victim.result is None  # the traffic is production traffic: nothing is imported
    p.plan.blocks = blocks
    (step,) = schedule(p, "t")
    on = np.array([bool(b) for b in step.blocks], dtype=int)
    assert on[0] == 0
    assert int((np.diff(np.r_[0, on]) == 1).sum()) >= 3
    assert int((np.diff(np.r_[1, on]) == -1).sum()) >= 3


def test_check_wants_the_hog_named_through_cpu_and_nothing_in_aa():
    live = _live()
    hit = {"labels": {"alertname": "NoisyNeighbour", "antagonist": "cpuhog", "resource": "cpu", "victim": "victim"}}
    wrong = {"labels": {"alertname": "NoisyNeighbour", "antagonist": "cpuhog", "resource": "memory",
                        "victim": "victim"}}  # fmt: skip

    def outcome(aa: list, ab: list) -> dict:
        return {"phases": {"aa": {"cotenant": "idler", "alertmanager": aa, "fired": []},
                           "ab": {"cotenant": "cpuhog", "alertmanager": ab, "fired": []}}}  # fmt: skip

    assert live.check(outcome([], [hit])) == []
    assert live.check(outcome([], [wrong])) == ["phase ab: no NoisyNeighbour alert naming cpuhog through cpu"]
    assert live.check(outcome([hit], [hit])) == ["phase aa: 1 NoisyNeighbour alert(s) fired with an idle co-tenant"]


def test_bad_options_are_one_line_errors():
    for args, msg in (
        (["--phases", "ab,zz"], "--phases: a comma-separated list of aa, ab"),
        (["--duration-s", "20", "--block-s", "5"], "holds fewer than 6 blocks"),
    ):
        p = subprocess.run([sys.executable, str(EXAMPLE / "live.py"), *args], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.slow
def test_live_alert_fires_in_alertmanager_naming_the_cpu_hog_and_nothing_fires_in_aa(alertmanager, tmp_path):
    """Both phases in one run of live.py (about 3 minutes on 2 cores) under continuous llama-benchy traffic: A/A (a
    sleeping co-tenant), then the CPU hog, each 16 randomised blocks of 5 s (with 10 blocks the
    effect's interval was too wide to clear the rule's +10 % lower bound in half the runs); ``--cotenant-nice -10``
    gives the hog's session a heavier CPU weight (on a busy host it otherwise gets ~1/(N+1) of the CPU)."""
    if importlib.util.find_spec("llama_benchy") is None:
        if in_ci():
            pytest.fail("llama-benchy is not installed (pip install llama-benchy)")
        pytest.skip("llama-benchy is not installed")
    out = tmp_path / "findings.json"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "live.py"), "--duration-s", "80",
         "--cotenant-nice", "-10",
         "--alertmanager", alertmanager.url, "--workdir", str(tmp_path / "run"), "--out", str(out), "--no-check"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = json.loads(out.read_text())
    aa, ab = found["phases"]["aa"], found["phases"]["ab"]
    for name, phase in found["phases"].items():  # what the rule's analysis saw: the figures to keep an eye on
        print(f"{name}: {phase['blocks']} blocks, {len(phase['fired'])} fired, itl {phase['analysis'].get('itl')}, "
              f"victim {phase['victim']}")  # fmt: skip
    print(f"wall {found['setup']['wall_s']:.0f} s, load {found['setup']['loadavg_end']}")
    assert (aa["blocks"], ab["blocks"]) == (16, 16)
    for phase in (aa, ab):
        assert phase["stress_exit_code"] == 0 and phase["alerts_exit_code"] == 0, phase
    # A/A: the idle co-tenant was tested by the rule's analysis, and nothing reached Alertmanager
    assert aa["alertmanager"] == [], aa
    tested = [a for a in aa["analysis"].get("itl") or [] if a["antagonist"] == "idler"]
    assert tested and not any(a["significant"] for a in tested), aa["analysis"]
    # A/B: Alertmanager holds the NoisyNeighbour alert naming the co-tenant and the resource
    held = alertmanager.alerts(filter='alertname="NoisyNeighbour"')
    assert held, (found["phases"]["ab"]["analysis"], found["phases"]["ab"]["alerts_stderr_tail"])
    named = [a for a in held if a["labels"]["antagonist"] == "cpuhog" and a["labels"]["resource"] == "cpu"]
    assert named, held
    alert = named[0]
    assert alert["labels"]["victim"] == "victim" and alert["labels"]["node"] == "live-neighbor"
    assert alert["status"]["state"] == "active"
    assert float(alert["annotations"]["q_value"]) < 0.05
    assert float(alert["annotations"]["ci_low"]) > 10.0  # the rule's enter_pct: the interval clears it
    link = alert["annotations"]["dashboard_url"]  # the noisy-neighbour page on that victim and range
    assert link.startswith("http://127.0.0.1:8501/noisy-neighbours?") and "victim=victim" in link, link
    assert all(a["labels"]["antagonist"] != "idler" for a in held)
    # the victim really slowed with the hog on, per the engine's own histograms
    v = ab["victim"]
    assert v["cotenant_on"]["itl_ms_p99_median"] > v["cotenant_off"]["itl_ms_p99_median"], v
