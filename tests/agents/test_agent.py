"""The agent end to end in-process: one timestamp per tick across samplers, groups, health, SIGTERM-style stop."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading

import httpx
import pytest

from agents.agent import Agent, Built, build_samplers
from agents.config import parse_config
from agents.samplers.host import HostSampler
from agents.samplers.nvml import NvmlSampler
from agents.samplers.simulated import SimulatedSampler
from agents.spool import MemorySpool
from telemetry.errors import ConfigError
from tests.agents.samplers.fake_nvml import FakeGpu, FakeNvml
from tests.agents.samplers.test_simulated import fake_source


def batches(spool: MemorySpool) -> list[dict]:
    out = []
    while (entry := spool.peek()) is not None:
        out.append(json.loads(gzip.decompress(entry[1])))
        spool.remove(entry[0])
    return out


def columns(docs: list[dict], name: str) -> dict[str, list]:
    """The rows of one measurement across batches, as columns (missing = None)."""
    rows = []
    for d in docs:
        for f in d["frames"]:
            if f["measurement"] == name:
                n = len(f["columns"]["time"])
                rows += [{k: v[i] for k, v in f["columns"].items()} for i in range(n)]
    keys = {k for r in rows for k in r}
    return {k: [r.get(k) for r in rows] for k in keys}


def test_all_samplers_of_a_tick_share_its_timestamp_and_devices_get_their_group():
    cfg = parse_config({"node": "n1", "agent": {"cadence_s": 0.1, "flush_s": 0.2}, "groups": {"hive0": ["gpu0"]}})
    spool = MemorySpool()
    built = [Built(SimulatedSampler(fake_source(seconds=60)), 0.1), Built(HostSampler(per_core=False), 0.2)]
    agent = Agent(cfg, built, spool=spool)
    summary = agent.run(threading.Event(), max_ticks=6)
    docs = batches(spool)
    assert [d["seq"] for d in docs] == list(range(len(docs)))
    accel, host = columns(docs, "accel"), columns(docs, "host")
    accel_times, host_times = set(accel["time"]), set(host["time"])
    assert len(accel_times) == 6 and len(host_times) == 3  # host every 2nd tick
    assert host_times <= accel_times  # the same tick, the same timestamp
    groups = dict(zip(accel["device"], accel["group"], strict=True))
    assert groups == {"gpu0": "hive0", "gpu1": "hive0"}  # gpu0 from the config, gpu1 keeps the simulated group
    health = columns(docs, "agent")
    assert {"simulated", "host", "spool"} <= set(health["sampler"])
    assert summary["rows"]["accel"] == 12 and summary["ticks"] == 6


def test_tenants_get_accelerator_memory_from_nvml_processes():
    import os

    cfg = parse_config(
        {
            "node": "n1",
            "samplers": {"nvml": {"enabled": False}, "host": {"enabled": False}},
            "tenants": [{"group": "me", "cmdline": "pytest|python"}],
        }
    )
    fake = FakeNvml([FakeGpu(processes=[(os.getpid(), 7 * 2**30)])])
    nvml = NvmlSampler(nvml=fake, events=False)
    from agents.samplers.tenants import TenantRule, TenantsSampler

    tenants = TenantsSampler([TenantRule.from_dict(cfg.tenants[0], "t")], accel_process_memory=nvml.process_memory)
    nvml.read(0.0)
    assert tenants.read(0.0)["tenant"][0]["accel_mem_bytes"] >= 7 * 2**30
    nvml.close()


def test_explicitly_enabled_sampler_that_cannot_start_is_an_error():
    cfg = parse_config({"node": "n1", "samplers": {"nvml": {"enabled": True}}})
    with pytest.raises(ConfigError, match="sampler 'nvml' could not start"):  # no NVIDIA driver here
        build_samplers(cfg)


def test_auto_samplers_without_hardware_are_left_out():
    cfg = parse_config({"node": "n1", "agent": {"sysfs_root": "/nonexistent"}})
    names = [b.sampler.name for b in build_samplers(cfg)]
    assert names == [
        "host",
        "disk",
    ]  # no NVML library, no AMD / hwmon devices, no tenant rules; /proc/diskstats is real


def test_prometheus_endpoint_is_optional_and_serves_the_latest_samples():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = parse_config({"node": "n1", "agent": {"cadence_s": 0.1, "metrics_port": port, "spool_dir": ""}})
    agent = Agent(cfg, [Built(SimulatedSampler(fake_source(seconds=60)), 0.1)], spool=MemorySpool())
    stop = threading.Event()
    t = threading.Thread(target=agent.run, args=(stop,))
    t.start()
    try:
        body = ""
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            if "neighborscope_accel_power_watts" in body:
                break
            stop.wait(0.05)
        assert 'neighborscope_accel_power_watts{device="gpu1"' in body
        assert 'neighborscope_agent_ok{node="n1",sampler="simulated"} 1.0' in body
    finally:
        stop.set()
        t.join(10)
