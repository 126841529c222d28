"""The host sampler, for real on this machine."""

from __future__ import annotations

import time

import psutil
import pytest

from agents.samplers.host import HostSampler, cpu_shares, parse_proc_stat


def test_first_read_has_no_percentages_then_utilisation_per_core_and_total():
    s = HostSampler()
    first = s.read(time.time())
    assert first["host"][0].get("cpu_util_pct") is None  # no previous read: absent, not 0
    assert first["host_core"] == []
    end = time.monotonic() + 0.2
    while time.monotonic() < end:  # burn a little CPU so the counters move
        sum(range(1000))
    out = s.read(time.time())
    host = out["host"][0]
    assert 0.0 <= host["cpu_util_pct"] <= 100.0
    assert host["cpu_count"] == psutil.cpu_count()
    assert host["mem_total_bytes"] >= host["mem_used_bytes"] > 0
    assert host["ctx_switches_per_s"] >= 0 and host["interrupts_per_s"] >= 0
    assert host["procs_running"] >= 1
    cores = out["host_core"]
    assert len(cores) == psutil.cpu_count()
    assert all(0.0 <= c["util_pct"] <= 100.0 for c in cores if c["util_pct"] is not None)
    assert {c["core"] for c in cores} == {str(i) for i in range(psutil.cpu_count())}


def test_per_core_rows_can_be_turned_off():
    s = HostSampler(per_core=False)
    s.read(0.0)
    assert s.read(0.0)["host_core"] == []


def test_proc_stat_parsing_and_shares():
    text = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\nctxt 5000\nintr 900 1 2\nprocs_running 3\n"
    cpus, counters = parse_proc_stat(text)
    assert counters == {"ctxt": 5000, "intr": 900, "procs_running": 3}
    later = [200, 0, 100, 1600, 100, 0, 0, 0]
    shares = cpu_shares(cpus["cpu"], later)
    assert shares["util_pct"] == pytest.approx(150 / 1000 * 100)
    assert shares["iowait_pct"] == pytest.approx(5.0)
    assert cpu_shares(cpus["cpu"], cpus["cpu"]) is None  # no time passed


def test_cpu_temperature_is_the_hottest_cpu_hwmon_sensor_in_degrees_c_fake_sysfs(tmp_path):
    """fake_sysfs: coretemp (m°C) counts, an accelerator's hwmon chip does not."""
    for chip, name, temps in (("hwmon0", "coretemp", (51000, 63500)), ("hwmon1", "amdgpu", (99000,))):
        d = tmp_path / "class/hwmon" / chip
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        for i, t in enumerate(temps, start=1):
            (d / f"temp{i}_input").write_text(f"{t}\n")
    row = HostSampler(sysfs_root=tmp_path).read(time.time())["host"][0]
    assert row["cpu_temp_c"] == 63.5


def test_cpu_temperature_is_absent_without_cpu_sensors_fake_sysfs(tmp_path):
    (tmp_path / "class/hwmon").mkdir(parents=True)
    row = HostSampler(sysfs_root=tmp_path).read(time.time())["host"][0]
    assert row["cpu_temp_c"] is None
