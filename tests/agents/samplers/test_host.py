"""The host sampler, for real on this machine."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from agents.samplers.host import HostSampler, cpu_shares, parse_proc_stat
from agents.tick import SamplerRunner
from telemetry.schema import MBM_FIELDS, PRESSURE_FIELDS


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


# --- pressure stall information, vmstat and resctrl MBM (issue 20) ------------------------------------------


class FakeClock:
    """Monotonic seconds the test sets: rates over a known interval."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


PROC_STAT = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\nctxt 5000\nintr 900\nprocs_running 1\n"


def write_fake_procfs(root, cpu_some: int, mem_full: int, io_some: int, refault_file: int, pgscan_direct: int):
    """fake_procfs: /proc/stat, /proc/pressure/* and /proc/vmstat with the given cumulative counters."""
    (root / "pressure").mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(PROC_STAT)
    (root / "pressure/cpu").write_text(
        f"some avg10=1.00 avg60=0.50 avg300=0.10 total={cpu_some}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    (root / "pressure/memory").write_text(
        f"some avg10=0.00 avg60=0.00 avg300=0.00 total=5000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={mem_full}\n"
    )
    (root / "pressure/io").write_text(
        f"some avg10=0.00 avg60=0.00 avg300=0.00 total={io_some}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"
    )
    (root / "vmstat").write_text(
        "nr_free_pages 1000\npgmajfault 40\nworkingset_refault_anon 10\n"
        f"workingset_refault_file {refault_file}\npgscan_kswapd 100\npgscan_direct {pgscan_direct}\n"
        "pgsteal_kswapd 90\npgsteal_direct 5\nnuma_miss 3\nnuma_foreign 3\n"
    )


def write_fake_resctrl(sysfs, total: tuple[int, int], local: tuple[int, int], llc: tuple[str, str]):
    """fake_sysfs: a resctrl root group with two L3 domains."""
    for i, dom in enumerate(("mon_L3_00", "mon_L3_01")):
        d = sysfs / "fs/resctrl/mon_data" / dom
        d.mkdir(parents=True, exist_ok=True)
        (d / "mbm_total_bytes").write_text(f"{total[i]}\n")
        (d / "mbm_local_bytes").write_text(f"{local[i]}\n")
        (d / "llc_occupancy").write_text(f"{llc[i]}\n")


def test_pressure_vmstat_and_mbm_rates_from_two_ticks_fake_procfs_fake_sysfs(tmp_path):
    proc, sysfs, clock = tmp_path / "proc", tmp_path / "sys", FakeClock()
    write_fake_procfs(proc, cpu_some=1_000_000, mem_full=200, io_some=50, refault_file=1000, pgscan_direct=0)
    write_fake_resctrl(sysfs, total=(10_000, 20_000), local=(5_000, 5_000), llc=("1048576", "2097152"))
    s = HostSampler(proc_root=proc, sysfs_root=sysfs, per_core=False, clock=clock)
    first = s.read(0.0)["host"][0]
    assert first.get("cpu_pressure_some_us_per_s") is None and first.get("pgmajfault_per_s") is None  # no delta yet
    assert first.get("mbm_total_bytes_per_s") is None
    assert first["llc_occupancy_bytes"] == 3 * 1048576  # a gauge: there at once, summed over the domains
    clock.t += 2.0
    write_fake_procfs(proc, cpu_some=1_600_000, mem_full=400, io_some=50, refault_file=1100, pgscan_direct=40)
    write_fake_resctrl(sysfs, total=(4_010_000, 6_020_000), local=(1_005_000, 1_005_000), llc=("1048576", "0"))
    row = s.read(0.0)["host"][0]
    assert row["cpu_pressure_some_us_per_s"] == 300_000.0  # 600 000 µs stalled over 2 s
    assert row["cpu_pressure_full_us_per_s"] == 0.0
    assert row["mem_pressure_some_us_per_s"] == 0.0
    assert row["mem_pressure_full_us_per_s"] == 100.0
    assert (row["io_pressure_some_us_per_s"], row["io_pressure_full_us_per_s"]) == (0.0, 0.0)
    assert row["workingset_refault_per_s"] == 50.0  # (anon + file) delta 100 over 2 s
    assert row["pgscan_per_s"] == 20.0 and row["pgsteal_per_s"] == 0.0 and row["pgmajfault_per_s"] == 0.0
    assert row["numa_miss_per_s"] == 0.0 and row["numa_foreign_per_s"] == 0.0
    assert row["mbm_total_bytes_per_s"] == 5_000_000.0  # (4 000 000 + 6 000 000) bytes over 2 s
    assert row["mbm_local_bytes_per_s"] == 1_000_000.0
    assert row["llc_occupancy_bytes"] == 1048576


def test_a_counter_that_went_back_gives_an_absent_rate_fake_procfs(tmp_path):
    proc, clock = tmp_path / "proc", FakeClock()
    write_fake_procfs(proc, cpu_some=1_000_000, mem_full=200, io_some=50, refault_file=1000, pgscan_direct=0)
    s = HostSampler(proc_root=proc, sysfs_root=tmp_path / "sys", per_core=False, clock=clock)
    s.read(0.0)
    clock.t += 1.0
    write_fake_procfs(proc, cpu_some=10, mem_full=300, io_some=50, refault_file=1000, pgscan_direct=0)
    row = s.read(0.0)["host"][0]
    assert row["cpu_pressure_some_us_per_s"] is None  # reset: unknown, not a negative rate and not 0
    assert row["mem_pressure_full_us_per_s"] == 100.0


def test_no_psi_no_vmstat_no_resctrl_means_absent_fields_and_no_error_fake_procfs(tmp_path):
    proc, clock = tmp_path / "proc", FakeClock()
    proc.mkdir()
    (proc / "stat").write_text(PROC_STAT)
    s = HostSampler(proc_root=proc, sysfs_root=tmp_path / "sys", per_core=False, clock=clock)
    s.read(0.0)
    clock.t += 1.0
    row = s.read(0.0)["host"][0]
    new = [f.name for f in PRESSURE_FIELDS + MBM_FIELDS] + ["pgmajfault_per_s", "numa_miss_per_s"]
    assert all(row.get(n) is None for n in new)
    assert row["ctx_switches_per_s"] == 0.0  # the rest of the row is still there
    assert s.errors == 0
    assert s.support()[""]["cpu_pressure_some_us_per_s"] is False


def test_an_older_kernel_single_workingset_refault_counter_is_used_fake_procfs(tmp_path):
    proc, clock = tmp_path / "proc", FakeClock()
    proc.mkdir()
    (proc / "stat").write_text(PROC_STAT)
    (proc / "vmstat").write_text("workingset_refault 100\npgmajfault 1\n")
    s = HostSampler(proc_root=proc, sysfs_root=tmp_path / "sys", per_core=False, clock=clock)
    s.read(0.0)
    (proc / "vmstat").write_text("workingset_refault 130\npgmajfault 1\n")
    clock.t += 0.5
    row = s.read(0.0)["host"][0]
    assert row["workingset_refault_per_s"] == 60.0
    assert row["pgscan_per_s"] is None and row["numa_miss_per_s"] is None  # not in this vmstat: absent


def test_an_unavailable_resctrl_domain_makes_the_sum_absent_fake_sysfs(tmp_path):
    proc, sysfs = tmp_path / "proc", tmp_path / "sys"
    write_fake_procfs(proc, cpu_some=1, mem_full=1, io_some=1, refault_file=1, pgscan_direct=0)
    write_fake_resctrl(sysfs, total=(1, 2), local=(1, 2), llc=("Unavailable", "4096"))
    row = HostSampler(proc_root=proc, sysfs_root=sysfs, per_core=False).read(0.0)["host"][0]
    assert row["llc_occupancy_bytes"] is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_psi_file_is_reported_once_in_health_fake_procfs(tmp_path, caplog):
    proc, clock = tmp_path / "proc", FakeClock()
    write_fake_procfs(proc, cpu_some=1, mem_full=1, io_some=1, refault_file=1, pgscan_direct=0)
    (proc / "pressure/io").chmod(0)
    s = HostSampler(proc_root=proc, sysfs_root=tmp_path / "sys", per_core=False, clock=clock)
    for _ in range(3):
        clock.t += 1.0
        row = s.read(0.0)["host"][0]
    assert s.errors == 1 and row["io_pressure_some_us_per_s"] is None and row["cpu_pressure_some_us_per_s"] == 0.0
    assert sum("cannot be read" in r.message for r in caplog.records) == 1


def test_an_unreadable_psi_file_is_reported_once_in_health_fake_procfs_as_root(tmp_path, caplog):
    """fake_procfs: a directory where the file should be reads as EISDIR, an OSError root cannot bypass."""
    proc, clock = tmp_path / "proc", FakeClock()
    write_fake_procfs(proc, cpu_some=1, mem_full=1, io_some=1, refault_file=1, pgscan_direct=0)
    (proc / "pressure/io").unlink()
    (proc / "pressure/io").mkdir()
    s = HostSampler(proc_root=proc, sysfs_root=tmp_path / "sys", per_core=False, clock=clock)
    for _ in range(3):
        clock.t += 1.0
        row = s.read(0.0)["host"][0]
    assert s.errors == 1 and row["io_pressure_some_us_per_s"] is None and row["cpu_pressure_some_us_per_s"] == 0.0
    assert sum("cannot be read" in r.message for r in caplog.records) == 1


def test_this_hosts_pressure_and_vmstat_are_read():
    if not os.path.exists("/proc/pressure/cpu"):
        pytest.skip("this kernel has no /proc/pressure")
    s = HostSampler(per_core=False)
    s.read(0.0)
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        sum(range(1000))
    row = s.read(0.0)["host"][0]
    for res in ("cpu", "mem", "io"):
        assert 0.0 <= row[f"{res}_pressure_some_us_per_s"] <= 1.1e6  # at most all of the time (+ rounding)
    assert row["pgmajfault_per_s"] >= 0.0 and row["workingset_refault_per_s"] >= 0.0


def test_the_agent_health_row_counts_an_unreadable_psi_file_once_fake_procfs(tmp_path):
    """Through the real tick runner: the `agent` row's errors_total is 1 after three reads, and the reads are ok."""
    proc = tmp_path / "proc"
    write_fake_procfs(proc, cpu_some=1, mem_full=1, io_some=1, refault_file=1, pgscan_direct=0)
    (proc / "pressure/memory").unlink()
    (proc / "pressure/memory").mkdir()  # EISDIR: exists, cannot be read
    got: list[dict] = []
    runner = SamplerRunner(HostSampler(proc_root=proc, sysfs_root=tmp_path / "sys", per_core=False), 1, got.append,
                           lambda rows, ts: rows)  # fmt: skip
    try:
        for tick in range(3):
            runner.trigger(tick + 1)
            assert runner.wait_idle(10)
    finally:
        runner.stop()
    health = [row for rows in got for row in rows["agent"]]
    assert [(h["ok"], h["errors_total"]) for h in health] == [(True, 1), (True, 1), (True, 1)]


def test_memory_from_one_meminfo_read_equals_psutils():
    from agents.samplers.host import parse_meminfo

    s = HostSampler(per_core=False)
    total, available, swap_used = s._memory()
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    assert total == vm.total and swap_used == swap.used
    assert abs(available - vm.available) < 256 * 2**20  # read a moment apart on a busy host
    text = b"MemTotal:       1000 kB\nMemFree:  10 kB\nMemAvailable:    600 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\n"
    assert parse_meminfo(text) == {b"MemTotal:": 1024000, b"MemAvailable:": 614400, b"SwapTotal:": 51200,
                                   b"SwapFree:": 20480}  # fmt: skip
    assert parse_meminfo(text.replace(b"MemAvailable", b"Cached")) is None  # before Linux 3.14: psutil estimates


def test_memory_of_a_fake_procfs_meminfo_and_psutil_where_it_has_no_meminfo(tmp_path):
    proc = tmp_path / "proc"
    write_fake_procfs(proc, cpu_some=1, mem_full=1, io_some=1, refault_file=1, pgscan_direct=1)
    assert (
        HostSampler(proc_root=proc, per_core=False).read(0.0)["host"][0]["mem_total_bytes"]
        == psutil.virtual_memory().total
    )
    (proc / "meminfo").write_text("MemTotal: 1000 kB\nMemAvailable: 600 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\n")
    row = HostSampler(proc_root=proc, per_core=False).read(0.0)["host"][0]
    assert (row["mem_total_bytes"], row["mem_used_bytes"], row["swap_used_bytes"]) == (1024000.0, 409600.0, 30720.0)
