"""The disk sampler: /proc/diskstats per whole disk (fake procfs / sysfs trees with known deltas, and this host's)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agents.samplers.base import SamplerContext
from agents.samplers.disk import DiskSampler
from agents.samplers.procfs import parse_diskstats, whole_disk
from telemetry.errors import ConfigError
from telemetry.schema import DISK


class FakeClock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def line(major: int, minor: int, name: str, reads=0, rsect=0, rms=0, writes=0, wsect=0, wms=0, inflight=0, io=0, q=0):
    """One /proc/diskstats line (merges and the discard / flush fields of newer kernels: 0)."""
    return f"{major:4d} {minor:7d} {name} {reads} 0 {rsect} {rms} {writes} 0 {wsect} {wms} {inflight} {io} {q} 0 0 0 0 0 0\n"


def fake_tree(tmp_path: Path, lines: list[str]) -> tuple[Path, Path]:
    """fake_procfs diskstats and a fake_sysfs block/ listing the whole disks the kernel would list there."""
    proc, sysfs = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir(exist_ok=True)
    (proc / "diskstats").write_text("".join(lines))
    for name in ("sda", "nvme0n1", "loop0", "dm-0", "zram0"):
        (sysfs / "block" / name).mkdir(parents=True, exist_ok=True)
    return proc, sysfs


def test_rates_busy_queue_and_await_of_whole_disks_from_two_ticks_fake_procfs_fake_sysfs(tmp_path):
    others = [line(8, 1, "sda1", reads=5), line(7, 0, "loop0", reads=9), line(253, 0, "dm-0", reads=9),
              line(252, 0, "zram0", reads=9), line(259, 1, "nvme0n1p1", reads=9)]  # fmt: skip
    proc, sysfs = fake_tree(tmp_path, [line(8, 0, "sda", reads=100, rsect=800, rms=50, writes=10, wsect=80, wms=20,
                                            io=1000, q=2000), line(259, 0, "nvme0n1"), *others])  # fmt: skip
    clock = FakeClock()
    s = DiskSampler(proc, sysfs, clock=clock)
    first = s.read(0.0)[DISK.name]
    assert [r["disk"] for r in first] == ["sda", "nvme0n1"]  # partitions, loop, dm, zram left out
    assert first[0].get("read_bytes_per_s") is None and first[0]["in_flight"] == 0
    clock.t += 2.0
    fake_tree(tmp_path, [line(8, 0, "sda", reads=300, rsect=4800, rms=450, writes=10, wsect=80, wms=20, inflight=3,
                              io=2500, q=5000), line(259, 0, "nvme0n1"), *others])  # fmt: skip
    sda = s.read(0.0)[DISK.name][0]
    assert sda["read_bytes_per_s"] == 4000 * 512 / 2  # sectors are 512 bytes
    assert sda["read_ops_per_s"] == 100.0 and sda["write_ops_per_s"] == 0.0 and sda["write_bytes_per_s"] == 0.0
    assert sda["busy_pct"] == 75.0  # 1500 ms of the 2000 ms with I/O in flight
    assert sda["queue_ms_per_s"] == 1500.0  # mean queue depth 1.5
    assert sda["read_await_ms"] == 2.0  # 400 ms over 200 reads
    assert sda["write_await_ms"] is None  # no write completed: absent, not 0
    assert sda["in_flight"] == 3
    assert s.support()["sda"]["write_await_ms"] is True  # the kernel gives it; this interval had none


def test_a_counter_that_went_back_gives_absent_rates_fake_procfs(tmp_path):
    proc, sysfs = fake_tree(tmp_path, [line(8, 0, "sda", reads=100, rsect=800, io=100)])
    clock = FakeClock()
    s = DiskSampler(proc, sysfs, clock=clock)
    s.read(0.0)
    clock.t += 1.0
    fake_tree(tmp_path, [line(8, 0, "sda", reads=3, rsect=900, io=150)])  # re-attached under the same name
    sda = s.read(0.0)[DISK.name][0]
    assert sda["read_ops_per_s"] is None and sda["read_await_ms"] is None
    assert sda["read_bytes_per_s"] == 100 * 512 and sda["busy_pct"] == 5.0


def test_include_exclude_and_device_mapper_options_fake_procfs(tmp_path):
    proc, sysfs = fake_tree(tmp_path, [line(8, 0, "sda"), line(259, 0, "nvme0n1"), line(253, 0, "dm-0")])
    ctx = SamplerContext(options={"dm": True, "exclude": "^sd"}, proc_root=proc, sysfs_root=sysfs)
    assert [r["disk"] for r in DiskSampler.from_context(ctx).read(0.0)[DISK.name]] == ["nvme0n1", "dm-0"]
    ctx = SamplerContext(options={"include": "nvme"}, proc_root=proc, sysfs_root=sysfs)
    assert [r["disk"] for r in DiskSampler.from_context(ctx).read(0.0)[DISK.name]] == ["nvme0n1"]


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"\[samplers.disk\] include: bad regular expression"):
        DiskSampler.from_context(SamplerContext(options={"include": "("}))
    with pytest.raises(ConfigError, match=r"\[samplers.disk\] dm: must be true or false"):
        DiskSampler.from_context(SamplerContext(options={"dm": "yes"}))
    with pytest.raises(ConfigError, match=r"unknown option"):
        DiskSampler.from_context(SamplerContext(options={"disks": ["sda"]}))


def test_no_diskstats_means_not_started(tmp_path):
    with pytest.raises(FileNotFoundError):
        DiskSampler.from_context(SamplerContext(proc_root=tmp_path))


def test_whole_disks_without_a_sysfs_block_directory_are_told_by_name(tmp_path):
    assert [n for n in ("sda", "sda1", "nvme0n1", "nvme0n1p2", "mmcblk0p1", "vdb", "loop3", "md0")
            if whole_disk(n, tmp_path)] == ["sda", "nvme0n1", "vdb"]  # fmt: skip


def test_short_or_malformed_diskstats_lines_are_skipped():
    assert list(parse_diskstats("8 0 sda 1 2 3\n8 0 sdb x 0 0 0 0 0 0 0 0 0 0\n" + line(8, 0, "sdc"))) == ["sdc"]


def test_this_hosts_disks_are_read():
    s = DiskSampler()
    s.read(0.0)
    with open(f"/tmp/neighborscope-disk-test-{os.getpid()}", "wb") as f:  # some I/O for the counters
        f.write(os.urandom(1 << 16))
        f.flush()
        os.fsync(f.fileno())
    os.unlink(f.name)
    rows = s.read(0.0)[DISK.name]
    assert rows, "no whole disk found in /proc/diskstats"
    for r in rows:
        assert not re.match(r"^(loop|ram|zram)\d", r["disk"]) and (Path("/sys/block") / r["disk"]).exists()
        assert r["read_bytes_per_s"] >= 0.0 and 0.0 <= r["busy_pct"] <= 100.0 and r["in_flight"] >= 0
