"""The tenants sampler, for real: processes of this machine grouped by rules."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from agents.samplers.tenants import TenantRule, TenantsSampler, cgroup_path, container_id, parse_stat
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
