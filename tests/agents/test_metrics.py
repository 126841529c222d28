"""Prometheus exposition of the latest values: compared byte for byte, and checked by the real
``promtool check metrics`` (Prometheus naming: base units, ``_total`` only on counters)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from pathlib import Path

import httpx
import pytest

from agents.agent import Agent, Built
from agents.config import parse_config
from agents.metrics import PROM_UNITS, LatestValues, prom_metric, prometheus_text, serve_metrics
from agents.samplers.disk import DiskSampler
from agents.samplers.host import HostSampler
from agents.samplers.net import NetSampler
from agents.samplers.simulated import SimulatedSampler
from agents.samplers.tenants import TenantRule, TenantsSampler
from agents.spool import MemorySpool
from telemetry.schema import DISK, MEASUREMENTS, NET, FieldSpec
from tests.agents.samplers.test_simulated import fake_source
from tests.conftest import ROOT
from tests.telemetry.collector.test_metrics_promtool import promtool_problems, types


def latest() -> LatestValues:
    lv = LatestValues("node1")
    lv.update(
        {
            "accel": [
                {
                    "time": 1,
                    "device": "gpu0",
                    "vendor": "nvidia",
                    "power_w": 300.0,
                    "throttle_power": True,
                    "temp_c": None,
                }
            ]
        }
    )
    lv.update({"accel": [{"time": 2, "device": "gpu0", "vendor": "nvidia", "power_w": 310.5, "throttle_power": False,
                          "energy_j": 12345, "sm_clock_mhz": 1980.0}],
               "tenant": [{"time": 2, "group": "hive0", "cpu_pct": 12.5, "pids": "1 2"}],
               "agent": [{"time": 2, "sampler": "nvml", "latency_ms": 4.0}]})  # fmt: skip
    return lv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_latest_values_are_exposed_in_base_units_with_tags_as_labels():
    gpu0 = '{device="gpu0",group="",model="",node="node1",pci_bus="",vendor="nvidia"}'
    assert prometheus_text(latest()).decode() == (
        "# HELP neighborscope_accel_power_watts board power, instantaneous where the device gives it "
        "(watts; schema field accel.power_w in W)\n"
        "# TYPE neighborscope_accel_power_watts gauge\n"
        f"neighborscope_accel_power_watts{gpu0} 310.5\n"
        "# HELP neighborscope_accel_energy_joules_total cumulative energy counter since driver load "
        "(joules; schema field accel.energy_j in J)\n"
        "# TYPE neighborscope_accel_energy_joules_total counter\n"
        f"neighborscope_accel_energy_joules_total{gpu0} 12345.0\n"
        "# HELP neighborscope_accel_sm_clock_hertz core (SM / GFX / AI core) clock "
        "(hertz; schema field accel.sm_clock_mhz in MHz)\n"
        "# TYPE neighborscope_accel_sm_clock_hertz gauge\n"
        f"neighborscope_accel_sm_clock_hertz{gpu0} 1.98e+09\n"
        "# HELP neighborscope_accel_throttle_power clocks held down for power (cap or brake) "
        "(1 or 0; schema field accel.throttle_power)\n"
        "# TYPE neighborscope_accel_throttle_power gauge\n"
        f"neighborscope_accel_throttle_power{gpu0} 0.0\n"
        "# HELP neighborscope_agent_latency_seconds time the sampler's read took "
        "(seconds; schema field agent.latency_ms in ms)\n"
        "# TYPE neighborscope_agent_latency_seconds gauge\n"
        'neighborscope_agent_latency_seconds{node="node1",sampler="nvml"} 0.004\n'
        "# HELP neighborscope_tenant_cpu_ratio CPU use summed over the group's processes (100 = one core) "
        "(ratio, 1 = 100 %; schema field tenant.cpu_pct in %)\n"
        "# TYPE neighborscope_tenant_cpu_ratio gauge\n"
        'neighborscope_tenant_cpu_ratio{group="hive0",node="node1"} 0.125\n'
    )


def test_metrics_endpoint_serves_the_text():
    port = free_port()
    server = serve_metrics(latest(), "127.0.0.1", port)
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'neighborscope_tenant_cpu_ratio{group="hive0",node="node1"} 0.125' in body
    finally:
        server.shutdown()


def test_every_schema_field_has_a_prometheus_name_that_passes_promtool():
    value = {"float": 1.5, "int": 3, "bool": True, "str": "text"}
    lv = LatestValues("node1")
    lv.update({name: [{"time": 1, **{t: "x" for t in m.tags if t != "node"}, **{f.name: value[f.kind] for f in m.fields}}]
               for name, m in MEASUREMENTS.items()})  # fmt: skip
    text = prometheus_text(lv).decode()
    numeric = [(name, f) for name, m in MEASUREMENTS.items() for f in m.fields if f.kind != "str"]
    assert sorted(types(text)) == sorted(prom_metric(name, f).exposed for name, f in numeric)  # one each, no clash
    assert promtool_problems(text) == []
    counters = sorted(n for n, t in types(text).items() if t == "counter")
    assert counters == [
        "neighborscope_accel_ecc_corrected_total", "neighborscope_accel_ecc_uncorrected_total",
        "neighborscope_accel_energy_joules_total", "neighborscope_accel_pcie_replay_total",
        "neighborscope_agent_errors_total", "neighborscope_agent_skipped_total", "neighborscope_agent_spool_dropped_total",
    ]  # fmt: skip


def test_a_running_agent_serves_metrics_that_pass_promtool():
    port = free_port()
    cfg = parse_config({"node": "n1", "agent": {"cadence_s": 0.1, "metrics_port": port, "spool_dir": ""}})
    me = TenantRule.from_dict({"group": "me", "cmdline": "pytest"}, "t")
    built = [Built(SimulatedSampler(fake_source(seconds=60)), 0.1), Built(HostSampler(), 0.1),
             Built(DiskSampler(), 0.1), Built(NetSampler(), 0.1), Built(TenantsSampler([me]), 0.1)]  # fmt: skip
    agent = Agent(cfg, built, spool=MemorySpool())
    stop = threading.Event()
    t = threading.Thread(target=agent.run, args=(stop,))
    t.start()
    want = ["neighborscope_accel_power_watts", "neighborscope_host_cpu_util_ratio", 'sampler="spool"',
            f"neighborscope_{DISK.name}_busy_ratio", f"neighborscope_{DISK.name}_queue_seconds_per_second",
            "neighborscope_tenant_cpu_ratio"]  # fmt: skip
    if Path("/proc/pressure/cpu").exists():
        want.append("neighborscope_host_cpu_pressure_some_seconds_per_second")
    if any(p.name != "lo" for p in Path("/sys/class/net").iterdir()):
        want.append(f"neighborscope_{NET.name}_rx_bytes_per_second")
    try:
        body = ""
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            if all(w in body for w in want):
                break
            stop.wait(0.1)
    finally:
        stop.set()
        t.join(10)
    assert all(w in body for w in want), body
    assert types(body)["neighborscope_agent_spool_dropped_total"] == "counter"
    assert promtool_problems(body) == []


def test_a_unit_outside_the_table_is_a_clear_error():
    with pytest.raises(ValueError, match=r"accel.speed_kmh: unit 'km/h' has no Prometheus base unit"):
        prom_metric("accel", FieldSpec("speed_kmh", "km/h"))
    with pytest.raises(ValueError, match=r"accel.power: the name does not spell its unit 'W' as '_w'"):
        prom_metric("accel", FieldSpec("power", "W"))


def test_every_schema_unit_is_in_the_table():
    assert {f.unit for m in MEASUREMENTS.values() for f in m.fields if f.kind != "str"} <= set(PROM_UNITS)


def test_the_metrics_documented_for_dashboards_are_the_names_served():
    """Every served field is in one of the two tables: renamed (old name, new name) or added (no old name)."""
    doc = (ROOT / "docs" / "agent-metrics.md").read_text()
    renamed = re.findall(r"^\| `(\w+)\.(\w+)` \| `(\w+)` \| `(\w+)` \| (counter|gauge) \|$", doc, re.M)
    added = re.findall(r"^\| `(\w+)\.(\w+)` \| `(\w+)` \| (counter|gauge) \|$", doc, re.M)
    served = {name for name, m in MEASUREMENTS.items() if name not in ("bench_request", "run_event")}
    want = {(name, f.name) for name in served for f in MEASUREMENTS[name].fields if f.kind != "str"}
    documented = [(m, f) for m, f, *_ in renamed] + [(m, f) for m, f, *_ in added]
    assert sorted(documented) == sorted(want)  # each once
    for m, f, old, now, kind in renamed:
        pm = prom_metric(m, MEASUREMENTS[m].field_index[f])
        assert (old, now, kind) == (f"neighborscope_{m}_{f}", pm.exposed, "counter" if pm.counter else "gauge")
    for m, f, now, kind in added:
        pm = prom_metric(m, MEASUREMENTS[m].field_index[f])
        assert (now, kind) == (pm.exposed, "counter" if pm.counter else "gauge")


def test_stall_throttle_and_queue_time_are_seconds_per_second_and_link_speed_bytes_per_second():
    lv = LatestValues("n1")
    lv.update({"host": [{"cpu_pressure_some_us_per_s": 250_000.0}],
               "tenant": [{"group": "g", "cpu_throttled_us_per_s": 500_000.0}],
               NET.name: [{"interface": "eth0", "speed_mbit_per_s": 25000.0}],
               DISK.name: [{"disk": "sda", "queue_ms_per_s": 1500.0}]})  # fmt: skip
    text = prometheus_text(lv).decode()
    assert 'neighborscope_host_cpu_pressure_some_seconds_per_second{node="n1"} 0.25\n' in text
    assert 'neighborscope_tenant_cpu_throttled_seconds_per_second{group="g",node="n1"} 0.5\n' in text
    assert f'neighborscope_{NET.name}_speed_bytes_per_second{{interface="eth0",node="n1"}} 3.125e+09\n' in text
    assert f'neighborscope_{DISK.name}_queue_seconds_per_second{{disk="sda",node="n1"}} 1.5\n' in text
    assert promtool_problems(text) == []
