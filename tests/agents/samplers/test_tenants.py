"""The tenants sampler, for real: processes of this machine grouped by rules."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agents.samplers.base import SamplerContext
from agents.samplers.cgroup import (
    cgroup1_mounts,
    cgroup2_mount,
    parse_blkio,
    parse_io_stat,
    parse_mountinfo,
    parse_proc_cgroup,
    read_v1,
)
from agents.samplers.tenants import (
    CGROUP_FIELDS,
    TenantRule,
    TenantsSampler,
    cgroup_path,
    container_id,
    parse_stat,
)
from telemetry.errors import ConfigError


@pytest.fixture
def busy_child():
    """A CPU-busy child whose command line carries a marker, and a worker it forked."""
    marker = f"neighborscope-tenant-test-{os.getpid()}"
    code = (
        "import subprocess, sys, time\n"
        "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "end = time.time() + 30\n"
        "while time.time() < end: pass\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, marker])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not psutil.Process(parent.pid).children():
        time.sleep(0.02)
    yield parent, marker
    try:
        for child in psutil.Process(parent.pid).children():
            child.kill()
    except psutil.NoSuchProcess:
        pass
    parent.kill()
    parent.wait()


def test_a_matching_process_and_its_child_are_counted_in_the_group(busy_child):
    parent, marker = busy_child
    s = TenantsSampler([TenantRule.from_dict({"group": "hive0", "cmdline": marker}, "t")], rescan_s=0.0)
    first = s.read(0.0)["tenant"][0]
    assert first["group"] == "hive0"
    assert first["cpu_pct"] is None  # no previous read
    time.sleep(0.5)
    row = s.read(0.0)["tenant"][0]
    assert row["process_count"] == 2  # the server and the worker it forked
    assert str(parent.pid) in row["pids"].split()
    assert row["cpu_pct"] > 0.0  # a busy loop (close to one core on an idle machine)
    assert row["rss_bytes"] > 1_000_000 and row["threads_count"] >= 2
    assert row["accel_mem_bytes"] is None  # no accelerator process source: absent


def test_accelerator_memory_comes_from_the_host_pid_map(busy_child):
    parent, marker = busy_child
    s = TenantsSampler(
        [TenantRule.from_dict({"group": "g", "cmdline": marker}, "t")],
        accel_process_memory=lambda: {parent.pid: 5 * 2**30, 1: 2**30},
    )
    assert s.read(0.0)["tenant"][0]["accel_mem_bytes"] == 5 * 2**30


def test_a_group_with_no_process_reports_zero_activity():
    s = TenantsSampler([TenantRule.from_dict({"group": "idle", "cmdline": "no-such-process-xyz"}, "t")])
    s.read(0.0)
    row = s.read(0.0)["tenant"][0]
    assert (row["process_count"], row["cpu_pct"], row["rss_bytes"]) == (0, 0.0, 0.0)


def test_processes_that_exit_leave_the_group(busy_child):
    parent, marker = busy_child
    s = TenantsSampler([TenantRule.from_dict({"group": "g", "name": "^python", "cmdline": marker}, "t")], rescan_s=0)
    assert s.read(0.0)["tenant"][0]["process_count"] >= 1
    parent.kill()
    parent.wait()
    time.sleep(0.1)
    assert str(parent.pid) not in s.read(0.0)["tenant"][0]["pids"].split()


def test_unmatched_processes_go_to_other_group_when_configured():
    s = TenantsSampler(
        [TenantRule.from_dict({"group": "g", "cmdline": "no-such-process-xyz"}, "t")], other_group="rest"
    )
    groups = {r["group"]: r for r in s.read(0.0)["tenant"]}
    assert groups["rest"]["process_count"] >= 1 and groups["g"]["process_count"] == 0


def test_rules_are_checked():
    with pytest.raises(ConfigError, match="group"):
        TenantRule.from_dict({"cmdline": "x"}, "tenants[0]")
    with pytest.raises(ConfigError, match="regular expression"):
        TenantRule.from_dict({"group": "g", "cmdline": "("}, "tenants[0]")
    with pytest.raises(ConfigError, match="at least one"):
        TenantRule.from_dict({"group": "g"}, "tenants[0]")


def test_cgroup_and_container_id_parsing():
    docker = "0::/system.slice/docker-" + "a" * 64 + ".scope\n"
    assert cgroup_path(docker) == "/system.slice/docker-" + "a" * 64 + ".scope"
    assert container_id(cgroup_path(docker)) == "a" * 64
    assert container_id("/user.slice") is None
    assert cgroup_path("12:cpu,cpuacct:/kubepods/pod1/" + "b" * 64 + "\n").endswith("b" * 64)


def test_stat_with_spaces_and_parentheses_in_the_name():
    text = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 1234 1000 256 18446744073709551615"
    st = parse_stat(text)
    assert (st["name"], st["ppid"], st["utime"], st["stime"], st["threads"], st["start"], st["rss_pages"]) == (
        "my (odd) name",
        1,
        7,
        3,
        5,
        1234,
        256,
    )


# --- the group's cgroups: pressure, throttling, memory, I/O; resctrl (issue 20) -----------------------------


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


STAT = "{pid} (python) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 1234 1000 256 0\n"


class FakeHost:
    """fake_procfs and fake_sysfs: processes (``<proc>/<pid>/{stat,cmdline,cgroup}``), a cgroup v2 mount and
    optional v1 controller mounts and resctrl, in tmp_path."""

    def __init__(self, root: Path) -> None:
        self.proc, self.sys, self.cg2 = root / "proc", root / "sys", root / "cg2"
        self.proc.mkdir()
        self.cg2.mkdir()
        (self.cg2 / "cgroup.procs").write_text("")
        self.cgroups: dict[int, str] = {}

    def process(self, pid: int, cmdline: str, v2: str, v1: dict[str, str] | None = None) -> None:
        d = self.proc / str(pid)
        d.mkdir(exist_ok=True)
        (d / "stat").write_text(STAT.format(pid=pid))
        (d / "cmdline").write_bytes(cmdline.replace(" ", "\0").encode() + b"\0")
        lines = [f"{i + 1}:{c}:{p}" for i, (c, p) in enumerate((v1 or {}).items())] + [f"0::{v2}"]
        (d / "cgroup").write_text("\n".join(lines) + "\n")
        self.cgroups[pid] = v2
        for path in {p for p in self.cgroups.values()}:
            if path != "/":
                cg = self.cg2 / path.lstrip("/")
                cg.mkdir(parents=True, exist_ok=True)
                (cg / "cgroup.procs").write_text("".join(f"{p}\n" for p, q in self.cgroups.items() if q == path))

    def v2(self, path: str, cpu_some: int, mem_full: int, throttled_us: int, refault: int, rbytes: int) -> Path:
        d = self.cg2 / path.lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.pressure").write_text(f"some avg10=0.00 avg60=0.00 avg300=0.00 total={cpu_some}\n"
                                        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")  # fmt: skip
        (d / "memory.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=9\n"
                                           f"full avg10=0.00 avg60=0.00 avg300=0.00 total={mem_full}\n")  # fmt: skip
        (d / "io.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                                       "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")  # fmt: skip
        (d / "cpu.stat").write_text(f"usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\nnr_periods {throttled_us // 10}\n"
                                    f"nr_throttled {throttled_us // 100}\nthrottled_usec {throttled_us}\n")  # fmt: skip
        (d / "memory.current").write_text("104857600\n")
        (d / "memory.stat").write_text(f"anon 1\nworkingset_refault_anon 0\nworkingset_refault_file {refault}\n"
                                       "pgscan 10\npgsteal 8\npgmajfault 2\n")  # fmt: skip
        (d / "io.stat").write_text(f"8:0 rbytes={rbytes} wbytes=4096 rios=10 wios=1 dbytes=0 dios=0\n"
                                   "253:0 rbytes=0 wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n")  # fmt: skip
        return d

    def sampler(self, clock: FakeClock, rules: list[dict], **kw) -> TenantsSampler:
        return TenantsSampler([TenantRule.from_dict(r, f"t{i}") for i, r in enumerate(rules)], proc_root=self.proc,
                              rescan_s=0.0, clock=clock, sysfs_root=self.sys, cgroup_root=self.cg2, **kw)  # fmt: skip


HIVE_NOISY = [{"group": "hive0", "cmdline": "server"}, {"group": "noisy", "cmdline": "stress"}]


def test_cgroup_v2_pressure_throttling_memory_and_io_rates_from_two_ticks_fake_procfs_fake_sysfs(tmp_path):
    host, clock = FakeHost(tmp_path), FakeClock()
    host.process(100, "server --port 1", "/tenants/hive0")
    host.process(101, "server --worker", "/tenants/hive0")
    host.process(200, "stress --vm 1", "/tenants/noisy")
    host.v2("/tenants/hive0", cpu_some=1_000, mem_full=0, throttled_us=0, refault=0, rbytes=0)
    host.v2("/tenants/noisy", cpu_some=0, mem_full=0, throttled_us=0, refault=0, rbytes=0)
    s = host.sampler(clock, HIVE_NOISY)
    first = {r["group"]: r for r in s.read(0.0)["tenant"]}
    assert first["hive0"]["cpu_pressure_some_us_per_s"] is None  # no delta yet: absent
    assert first["hive0"]["mem_cgroup_bytes"] == 104857600  # a gauge: there at once
    clock.t += 2.0
    host.v2("/tenants/hive0", cpu_some=401_000, mem_full=60, throttled_us=200_000, refault=50, rbytes=8192)
    host.v2("/tenants/noisy", cpu_some=2_000, mem_full=0, throttled_us=0, refault=0, rbytes=0)
    rows = {r["group"]: r for r in s.read(0.0)["tenant"]}
    hive = rows["hive0"]
    assert hive["cpu_pressure_some_us_per_s"] == 200_000.0  # 400 000 µs stalled over 2 s
    assert hive["cpu_pressure_full_us_per_s"] == 0.0
    assert hive["mem_pressure_full_us_per_s"] == 30.0 and hive["mem_pressure_some_us_per_s"] == 0.0
    assert hive["cpu_throttled_us_per_s"] == 100_000.0
    assert hive["cpu_periods_per_s"] == 10_000.0 and hive["cpu_throttled_periods_per_s"] == 1_000.0
    assert hive["workingset_refault_per_s"] == 25.0 and hive["pgscan_per_s"] == 0.0
    assert hive["io_read_bytes_per_s"] == 4096.0 and hive["io_write_ops_per_s"] == 0.0
    assert hive["mem_cgroup_bytes"] == 104857600  # one cgroup, read once though two PIDs are in it
    assert rows["noisy"]["cpu_pressure_some_us_per_s"] == 1000.0
    assert hive["mbm_total_bytes_per_s"] is None  # no resctrl here: absent


def test_processes_in_the_root_cgroup_give_no_cgroup_fields_fake_procfs(tmp_path):
    """The root cgroup is the whole host: never read as a tenant's."""
    host, clock = FakeHost(tmp_path), FakeClock()
    host.process(100, "server", "/")
    host.v2("/", cpu_some=1, mem_full=1, throttled_us=1, refault=1, rbytes=1)
    s = host.sampler(clock, HIVE_NOISY)
    s.read(0.0)
    clock.t += 1.0
    host.v2("/", cpu_some=99, mem_full=99, throttled_us=99, refault=99, rbytes=99)
    hive = s.read(0.0)["tenant"][0]
    assert hive["process_count"] == 1
    assert all(hive[f] is None for f in CGROUP_FIELDS)


def test_a_cgroup_shared_with_another_group_is_no_ones_fake_procfs(tmp_path):
    host, clock = FakeHost(tmp_path), FakeClock()
    host.process(100, "server", "/shared")
    host.process(200, "stress", "/shared")
    host.v2("/shared", cpu_some=1, mem_full=1, throttled_us=1, refault=1, rbytes=1)
    s = host.sampler(clock, HIVE_NOISY)
    s.read(0.0)
    clock.t += 1.0
    rows = s.read(0.0)["tenant"]
    assert all(r[f] is None for r in rows for f in CGROUP_FIELDS)


def test_a_group_in_two_cgroups_sums_them_and_a_nested_one_is_not_counted_twice_fake_procfs(tmp_path):
    host, clock = FakeHost(tmp_path), FakeClock()
    host.process(100, "server a", "/a")
    host.process(101, "server b", "/b")
    host.process(102, "server c", "/a/inner")
    for path in ("/a", "/b", "/a/inner"):
        host.v2(path, cpu_some=0, mem_full=0, throttled_us=0, refault=0, rbytes=0)
    s = host.sampler(clock, HIVE_NOISY)
    s.read(0.0)
    clock.t += 1.0
    host.v2("/a", cpu_some=300, mem_full=0, throttled_us=0, refault=0, rbytes=0)
    host.v2("/b", cpu_some=30, mem_full=0, throttled_us=0, refault=0, rbytes=0)
    host.v2("/a/inner", cpu_some=100, mem_full=0, throttled_us=0, refault=0, rbytes=0)  # included in /a's 300
    hive = s.read(0.0)["tenant"][0]
    assert hive["cpu_pressure_some_us_per_s"] == 330.0
    assert hive["mem_cgroup_bytes"] == 2 * 104857600


def test_a_cgroup_counter_that_went_back_is_absent_fake_procfs(tmp_path):
    host, clock = FakeHost(tmp_path), FakeClock()
    host.process(100, "server", "/hive0")
    host.v2("/hive0", cpu_some=5000, mem_full=10, throttled_us=0, refault=0, rbytes=0)
    s = host.sampler(clock, HIVE_NOISY)
    s.read(0.0)
    clock.t += 1.0
    host.v2("/hive0", cpu_some=10, mem_full=20, throttled_us=0, refault=0, rbytes=0)  # cgroup re-created
    hive = s.read(0.0)["tenant"][0]
    assert hive["cpu_pressure_some_us_per_s"] is None and hive["mem_pressure_full_us_per_s"] == 10.0


def test_a_process_moved_into_a_cgroup_after_it_started_is_followed_fake_procfs(tmp_path):
    host, clock = FakeHost(tmp_path), FakeClock()
    host.process(100, "server", "/")
    s = host.sampler(clock, HIVE_NOISY)
    assert s.read(0.0)["tenant"][0]["mem_cgroup_bytes"] is None
    host.process(100, "server", "/hive0")  # what the stress runner does: write the PID to cgroup.procs
    host.v2("/hive0", cpu_some=0, mem_full=0, throttled_us=0, refault=0, rbytes=0)
    clock.t += 1.0
    assert s.read(0.0)["tenant"][0]["mem_cgroup_bytes"] == 104857600


def test_hybrid_host_reads_throttling_memory_and_blkio_from_cgroup_v1_fake_sysfs(tmp_path):
    """fake_sysfs: v2 gives pressure only (no controllers, as on a hybrid host); v1 cpu, memory and blkio give
    the rest."""
    host, clock = FakeHost(tmp_path), FakeClock()
    v1 = {"cpu": "/hive0", "memory": "/hive0", "blkio": "/hive0"}
    host.process(100, "server", "/hive0", v1)
    d2 = host.cg2 / "hive0"
    (d2 / "cpu.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=100\n")
    (d2 / "cpu.stat").write_text("usage_usec 5\nuser_usec 4\nsystem_usec 1\n")  # no nr_periods: no v2 cpu
    base = host.sys / "fs/cgroup"

    def v1_files(throttled_ns: int, refault: int, read_bytes: int) -> None:
        for c, f in (
            ("cpu", "cpu.stat"),
            ("memory", "memory.stat"),
            ("blkio", "blkio.throttle.io_service_bytes_recursive"),
        ):
            (base / c / "hive0").mkdir(parents=True, exist_ok=True)
            (base / c / f).write_text("")  # the mount's root has the controller's files too
            (base / c / "hive0" / "cgroup.procs").write_text("100\n")
        (base / "cpu/hive0/cpu.stat").write_text(f"nr_periods 50\nnr_throttled 5\nthrottled_time {throttled_ns}\n")
        (base / "memory/hive0/memory.usage_in_bytes").write_text("4096\n")
        (base / "memory/hive0/memory.stat").write_text(f"pgmajfault 1\ntotal_workingset_refault_anon 0\n"
                                                       f"total_workingset_refault_file {refault}\ntotal_pgmajfault 3\n")  # fmt: skip
        (base / "blkio/hive0/blkio.throttle.io_service_bytes_recursive").write_text(
            f"8:0 Read {read_bytes}\n8:0 Write 0\n8:16 Read 100\n8:16 Write 0\nTotal {read_bytes + 100}\n"
        )

    v1_files(throttled_ns=0, refault=0, read_bytes=0)
    s = host.sampler(clock, HIVE_NOISY)
    s.read(0.0)
    clock.t += 0.5
    (d2 / "cpu.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=600\n")
    v1_files(throttled_ns=250_000_000, refault=40, read_bytes=1000)
    hive = s.read(0.0)["tenant"][0]
    assert hive["cpu_pressure_some_us_per_s"] == 1000.0  # from v2
    assert hive["cpu_throttled_us_per_s"] == 500_000.0  # v1 throttled_time: 250 ms (ns) over 0.5 s
    assert hive["cpu_periods_per_s"] == 0.0
    assert hive["mem_cgroup_bytes"] == 4096 and hive["workingset_refault_per_s"] == 80.0
    assert hive["io_read_bytes_per_s"] == 2000.0
    assert hive["pgscan_per_s"] is None  # v1 has no per-cgroup reclaim counters: absent
    assert hive["io_read_ops_per_s"] is None  # no blkio.throttle.io_serviced_recursive here


def test_resctrl_monitoring_group_of_the_tenant_fake_sysfs(tmp_path):
    host, clock = FakeHost(tmp_path), FakeClock()
    host.process(100, "server", "/")
    host.process(200, "stress", "/")
    mon = host.sys / "fs/resctrl"

    def domains(group: str, total: int) -> None:
        for dom in ("mon_L3_00", "mon_L3_01"):
            for root in (mon, mon / "mon_groups" / group):
                d = root / "mon_data" / dom
                d.mkdir(parents=True, exist_ok=True)
                (d / "mbm_total_bytes").write_text(f"{total}\n")
                (d / "mbm_local_bytes").write_text("Unavailable\n")
                (d / "llc_occupancy").write_text("65536\n")

    domains("hive0", 0)
    domains("rdt-noisy", 0)
    rules = [HIVE_NOISY[0], {**HIVE_NOISY[1], "resctrl_group": "rdt-noisy"}]
    s = host.sampler(clock, rules)
    s.read(0.0)
    clock.t += 2.0
    domains("hive0", 1_000_000)
    domains("rdt-noisy", 3_000_000)
    rows = {r["group"]: r for r in s.read(0.0)["tenant"]}
    assert rows["hive0"]["mbm_total_bytes_per_s"] == 1_000_000.0  # 2 domains x 1 MB over 2 s
    assert rows["noisy"]["mbm_total_bytes_per_s"] == 3_000_000.0
    assert rows["noisy"]["mbm_local_bytes_per_s"] is None  # "Unavailable"
    assert rows["noisy"]["llc_occupancy_bytes"] == 131072


def test_cgroup_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"\[samplers.tenants\] cgroup_root: .* is not a cgroup v2 mount"):
        TenantsSampler.from_context(SamplerContext(options={"cgroup_root": str(tmp_path)}))
    with pytest.raises(ConfigError, match="resctrl_group"):
        TenantRule.from_dict({"group": "g", "name": "x", "resctrl_group": "a/b"}, "tenants[0]")


def test_cgroup_file_parsing():
    cg = parse_proc_cgroup("12:cpu,cpuacct:/kube/pod1\n4:memory:/kube/pod1\n1:name=systemd:/x\n0::/kube/pod1\n")
    assert cg.v2 == "/kube/pod1" and cg.v1["cpu"] == cg.v1["cpuacct"] == cg.v1["memory"] == "/kube/pod1"
    assert parse_proc_cgroup("4:memory:/a\n").v2 is None  # a v1-only host
    mounts = parse_mountinfo(
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "33 31 0:30 / /sys/fs/cgroup/cpu\\040x rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
        "22 1 0:21 / /proc rw - proc proc rw\n"
    )
    assert [(str(m.point), m.fstype) for m in mounts] == [("/sys/fs/cgroup/unified", "cgroup2"),
                                                          ("/sys/fs/cgroup/cpu x", "cgroup")]  # fmt: skip
    assert "cpuacct" in mounts[1].options
    assert parse_io_stat("8:0 rbytes=10 wbytes=2 rios=1 wios=1\n8:16 rbytes=5 wbytes=0 rios=2 wios=0\n") == {
        "rbytes": 15, "wbytes": 2, "rios": 3, "wios": 1}  # fmt: skip
    assert parse_blkio("8:0 Read 10\n8:0 Write 3\n8:0 Sync 13\n8:0 Total 13\nTotal 13\n") == {"Read": 10, "Write": 3}
    assert cgroup_path("1:cpu:/docker/abc\n0::/\n") == "/docker/abc"  # hybrid: the v2 root is no one's


def test_the_cgroup2_mount_is_found_pure_hybrid_or_from_mountinfo_fake_sysfs(tmp_path):
    pure, hybrid, proc = tmp_path / "pure", tmp_path / "hybrid", tmp_path / "proc"
    (pure / "fs/cgroup").mkdir(parents=True)
    (pure / "fs/cgroup/cgroup.controllers").write_text("cpu io memory\n")
    (hybrid / "fs/cgroup/unified").mkdir(parents=True)
    (hybrid / "fs/cgroup/unified/cgroup.controllers").write_text("\n")
    (proc / "self").mkdir(parents=True)
    (proc / "self/mountinfo").write_text("41 31 0:38 / /mnt/cg2 rw - cgroup2 cgroup2 rw\n")
    assert cgroup2_mount(proc, pure) == pure / "fs/cgroup"
    assert cgroup2_mount(proc, hybrid) == hybrid / "fs/cgroup/unified"
    assert cgroup2_mount(proc, tmp_path / "none") == Path("/mnt/cg2")
    assert cgroup2_mount(tmp_path / "noproc", tmp_path / "none") is None


# --- for real: a process in a cgroup of its own on this host -------------------------------------------------


def _skip_unless_root_with_cgroup2() -> Path:
    mount = cgroup2_mount(Path("/proc"), Path("/sys"))
    why = "needs root (to make a cgroup)" if os.geteuid() != 0 else "no cgroup2 mount" if mount is None else ""
    if why:
        pytest.skip(why)
    return mount  # type: ignore[return-value]


def test_a_real_process_in_a_real_cgroup_shows_its_pressure_throttling_and_memory():
    """A busy process in cgroups made here, with a CFS quota of 5 % of a CPU (low enough to be reached on a loaded
    machine). Each controller is taken where this host has it: v2 (``cpu.max``) where the v2 cgroup offers it,
    else v1 (``cpu.cfs_quota_us``), as on a hybrid host. Its group gets CPU pressure (v2), throttling and memory."""
    mount = _skip_unless_root_with_cgroup2()
    name = f"neighborscope-test-{os.getpid()}"
    made: list[Path] = []
    v2 = mount / name
    v2.mkdir()
    made.append(v2)
    marker = f"neighborscope-cgroup-test-{os.getpid()}"
    # 8 MiB written after a moment, once the process is in its cgroups (pages are charged where they are touched)
    code = "import time\ntime.sleep(0.3)\nb = b'x' * (8 << 20)\nend = time.time() + 20\nwhile time.time() < end: pass"
    proc = subprocess.Popen([sys.executable, "-c", code, marker])
    try:
        in_v2 = (v2 / "cgroup.controllers").read_text().split()
        v1 = cgroup1_mounts(Path("/proc"), Path("/sys"))
        for controller in ("cpu", "memory"):
            if controller in in_v2:
                if controller == "cpu":
                    (v2 / "cpu.max").write_text("5000 100000\n")
            elif controller in v1:
                d = v1[controller] / name
                d.mkdir()
                made.append(d)
                if controller == "cpu":
                    (d / "cpu.cfs_quota_us").write_text("5000\n")
                (d / "cgroup.procs").write_text(f"{proc.pid}\n")
            else:
                pytest.skip(f"no {controller} controller, v2 or v1, to put the process under")
        (v2 / "cgroup.procs").write_text(f"{proc.pid}\n")
        s = TenantsSampler([TenantRule.from_dict({"group": "busy", "cmdline": marker}, "t")], rescan_s=0.0)
        s.read(0.0)
        time.sleep(1.5)
        row = s.read(0.0)["tenant"][0]
        assert row["process_count"] == 1
        assert row["cpu_pressure_some_us_per_s"] > 0.0  # throttled for most of each period: stalled
        assert row["cpu_periods_per_s"] > 0.0 and row["cpu_throttled_periods_per_s"] > 0.0
        assert row["cpu_throttled_us_per_s"] > 0.0
        assert row["io_pressure_some_us_per_s"] is not None and row["mem_pressure_full_us_per_s"] is not None
        assert row["mem_cgroup_bytes"] >= 8 << 20
    finally:
        proc.kill()
        proc.wait()
        for d in reversed(made):
            for _ in range(50):  # the killed process leaves its cgroup a moment later
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def test_v1_controller_mounts_are_found_from_mountinfo_fake_procfs(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self/mountinfo").write_text(
        "30 25 0:26 / /cg/cpu,cpuacct rw,nosuid shared:8 - cgroup cgroup rw,cpu,cpuacct\n"
        "31 25 0:27 / /cg/memory rw - cgroup cgroup rw,memory\n"
        "32 25 0:28 /docker/abc /cg/blkio rw - cgroup cgroup rw,blkio\n"  # a container's view: not the root
        "41 25 0:38 / /cg/unified rw - cgroup2 cgroup2 rw\n"
    )
    assert cgroup1_mounts(tmp_path, tmp_path / "nosys") == {
        "cpu": Path("/cg/cpu,cpuacct"),
        "memory": Path("/cg/memory"),
    }


def test_the_catch_all_group_gets_no_cgroup_fields_fake_procfs(tmp_path):
    """other_group is the rest of the host: its processes' cgroups are not read."""
    host, clock = FakeHost(tmp_path), FakeClock()
    host.process(100, "server", "/hive0")
    host.process(300, "sshd", "/system/sshd")
    host.v2("/system/sshd", cpu_some=0, mem_full=0, throttled_us=0, refault=0, rbytes=0)
    s = TenantsSampler([TenantRule.from_dict(HIVE_NOISY[0], "t")], proc_root=host.proc, rescan_s=0.0, clock=clock,
                       other_group="rest", sysfs_root=host.sys, cgroup_root=host.cg2)  # fmt: skip
    s.read(0.0)
    clock.t += 1.0
    rest = {r["group"]: r for r in s.read(0.0)["tenant"]}["rest"]
    assert rest["process_count"] == 1 and rest["mem_cgroup_bytes"] is None


def test_a_v1_blkio_file_without_device_lines_is_absent_not_zero_fake_sysfs(tmp_path):
    """blk-throttle counts only once a rule is set on a device: ``Total 0`` alone means "not counted"."""
    (tmp_path / "blkio.throttle.io_service_bytes_recursive").write_text("Total 0\n")
    (tmp_path / "blkio.throttle.io_serviced_recursive").write_text("Total 0\n")
    assert read_v1("blkio", tmp_path) == {}
    (tmp_path / "blkio.throttle.io_service_bytes_recursive").write_text("254:0 Read 0\n254:0 Write 4096\nTotal 4096\n")
    assert read_v1("blkio", tmp_path) == {"io_read_bytes_per_s": 0, "io_write_bytes_per_s": 4096}
