"""The net sampler: /sys/class/net/*/statistics per interface (a fake sysfs with known deltas, and this host's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.samplers.base import SamplerContext
from agents.samplers.net import COUNTERS, NetSampler
from telemetry.errors import ConfigError
from telemetry.schema import NET


class FakeClock:
    def __init__(self, t: float = 10.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def interface(sysfs: Path, name: str, speed: str | None, **counters: int) -> None:
    """fake_sysfs: one interface's statistics files (counters not given are 0) and its speed file."""
    stats = sysfs / "class/net" / name / "statistics"
    stats.mkdir(parents=True, exist_ok=True)
    for c in COUNTERS:
        (stats / c).write_text(f"{counters.get(c, 0)}\n")
    if speed is not None:
        (sysfs / "class/net" / name / "speed").write_text(speed + "\n")


def test_rates_per_interface_from_two_ticks_and_loopback_left_out_fake_sysfs(tmp_path):
    clock = FakeClock()
    interface(tmp_path, "lo", None, rx_bytes=10**9)
    interface(tmp_path, "eth0", "25000", rx_bytes=1000, tx_bytes=500, rx_packets=10)
    interface(tmp_path, "veth1", "-1")  # virtual: no speed
    s = NetSampler(tmp_path, clock=clock)
    first = {r["interface"]: r for r in s.read(0.0)[NET.name]}
    # first tick: no rates yet; veth1 (speed -1: absent, not 0 and not negative) has no value at all, so no row
    # (a row of nothing would be dropped by line-protocol stores and counted as lost)
    assert sorted(first) == ["eth0"]
    assert first["eth0"]["speed_mbit_per_s"] == 25000.0 and first["eth0"].get("rx_bytes_per_s") is None
    clock.t += 0.5
    interface(tmp_path, "eth0", "25000", rx_bytes=501_000, tx_bytes=1500, rx_packets=410, rx_dropped=2, tx_errors=1)
    eth0 = {r["interface"]: r for r in s.read(0.0)[NET.name]}["eth0"]
    assert eth0["rx_bytes_per_s"] == 1_000_000.0 and eth0["tx_bytes_per_s"] == 2000.0
    assert eth0["rx_packets_per_s"] == 800.0 and eth0["tx_packets_per_s"] == 0.0
    assert eth0["rx_dropped_per_s"] == 4.0 and eth0["tx_errors_per_s"] == 2.0 and eth0["tx_dropped_per_s"] == 0.0


def test_a_re_created_interface_gives_absent_rates_and_a_new_one_starts_absent_fake_sysfs(tmp_path):
    clock = FakeClock()
    interface(tmp_path, "eth0", "1000", rx_bytes=5000, tx_bytes=5000)
    s = NetSampler(tmp_path, clock=clock)
    s.read(0.0)
    clock.t += 1.0
    interface(tmp_path, "eth0", "1000", rx_bytes=100, tx_bytes=6000)
    interface(tmp_path, "veth9", None)
    rows = {r["interface"]: r for r in s.read(0.0)[NET.name]}
    assert rows["eth0"]["rx_bytes_per_s"] is None and rows["eth0"]["tx_bytes_per_s"] == 1000.0
    assert "veth9" not in rows  # new: no rate yet and no speed, so no row until its second tick
    clock.t += 1.0
    interface(tmp_path, "veth9", None, rx_bytes=300)
    assert {r["interface"]: r for r in s.read(0.0)[NET.name]}["veth9"]["rx_bytes_per_s"] == 300.0


def test_include_and_exclude_options_fake_sysfs(tmp_path):
    for name in ("eth0", "veth1", "docker0"):
        interface(tmp_path, name, None)
    ctx = SamplerContext(options={"exclude": "^(veth|docker)"}, sysfs_root=tmp_path)
    assert NetSampler.from_context(ctx).interfaces() == ["eth0"]
    ctx = SamplerContext(options={"include": "^veth"}, sysfs_root=tmp_path)
    assert NetSampler.from_context(ctx).interfaces() == ["veth1"]
    with pytest.raises(ConfigError, match=r"\[samplers.net\] exclude: bad regular expression"):
        NetSampler.from_context(SamplerContext(options={"exclude": "["}, sysfs_root=tmp_path))


def test_no_sys_class_net_means_not_started(tmp_path):
    with pytest.raises(FileNotFoundError):
        NetSampler.from_context(SamplerContext(sysfs_root=tmp_path))


def test_this_hosts_interfaces_are_read():
    s = NetSampler()
    s.read(0.0)
    before = {p.name for p in Path("/sys/class/net").iterdir()}
    rows = s.read(0.0)[NET.name]
    after = {p.name for p in Path("/sys/class/net").iterdir()}  # other tests may add or remove a veth meanwhile
    names = {r["interface"] for r in rows}
    assert "lo" not in names and (before & after) - {"lo"} <= names <= before | after
    for r in rows:
        assert all(r[f"{c}_per_s"] >= 0.0 for c in COUNTERS)
        assert r["speed_mbit_per_s"] is None or r["speed_mbit_per_s"] > 0
