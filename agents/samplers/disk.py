"""Block devices (measurement `host_disk`): what a storage co-tenant takes, one row per whole disk per tick.

Read from one ``<proc_root>/diskstats`` per tick (Documentation/admin-guide/iostats.rst). Whole disks only
(`agents.samplers.procfs.whole_disk`): partitions (their I/O is the disk's), loop, RAM, zram, nbd, floppy and
optical devices are left out, and so are device-mapper and md devices (LVM, dm-crypt, software RAID: their I/O
is counted again on the member disks) unless ``dm = true``.

Per disk, from two reads: ``read_bytes_per_s`` / ``write_bytes_per_s`` (sectors x 512, whatever the block
size), ``read_ops_per_s`` / ``write_ops_per_s`` (I/Os completed), ``busy_pct`` (share of the interval with at
least one I/O in flight: ``io_ticks``; near 100 means saturated for a single-queue disk, not for NVMe, which
serves many at once), ``queue_ms_per_s`` (``time_in_queue``: the mean number in flight x 1000),
``read_await_ms`` / ``write_await_ms`` (time per I/O completed in the interval: absent when none completed),
and ``in_flight`` (I/Os in progress at the read). Rates are absent on a disk's first tick and on a tick where a
counter went back (the device was re-attached).

```toml
[samplers.disk]
include = "^(nvme|sd)"   # only disks whose name matches (a regular expression, searched)
exclude = "^sdz$"        # and not these
dm = false               # true: device-mapper / md devices too
```
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from agents.samplers.base import (
    KeptFile,
    Rows,
    SamplerBase,
    SamplerContext,
    config_error,
    name_filter,
    register,
    selected,
)
from agents.samplers.procfs import SECTOR_BYTES, DiskStat, parse_diskstats, rate, whole_disk
from telemetry.schema import DISK


def disk_row(prev: DiskStat | None, cur: DiskStat, dt: float | None) -> dict[str, Any]:
    """One disk's fields from two reads ``dt`` seconds apart (``prev`` None: the first read, rates absent)."""
    row: dict[str, Any] = {"in_flight": cur.in_flight}
    if prev is None:
        return row
    row["read_bytes_per_s"] = rate(prev.read_sectors, cur.read_sectors, dt, SECTOR_BYTES)
    row["write_bytes_per_s"] = rate(prev.write_sectors, cur.write_sectors, dt, SECTOR_BYTES)
    row["read_ops_per_s"] = rate(prev.reads, cur.reads, dt)
    row["write_ops_per_s"] = rate(prev.writes, cur.writes, dt)
    busy = rate(prev.io_ms, cur.io_ms, dt, 0.1)  # ms per s -> % of the interval
    row["busy_pct"] = None if busy is None else min(100.0, busy)
    row["queue_ms_per_s"] = rate(prev.queue_ms, cur.queue_ms, dt)
    for op, n0, n1, t0, t1 in (
        ("read", prev.reads, cur.reads, prev.read_ms, cur.read_ms),
        ("write", prev.writes, cur.writes, prev.write_ms, cur.write_ms),
    ):
        ops, ms = n1 - n0, t1 - t0
        row[f"{op}_await_ms"] = ms / ops if ops > 0 and ms >= 0 else None
    return row


@register("disk")
class DiskSampler(SamplerBase):
    """Bytes, I/Os, busy time, queue and await per whole disk, from /proc/diskstats."""

    fields: ClassVar = {
        DISK.name: (
            "read_bytes_per_s",
            "write_bytes_per_s",
            "read_ops_per_s",
            "write_ops_per_s",
            "busy_pct",
            "queue_ms_per_s",
            "read_await_ms",
            "write_await_ms",
            "in_flight",
        )
    }
    enabled_by_default: ClassVar = "auto"  # on where /proc/diskstats is readable
    order: ClassVar = 60

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        sysfs_root: Path = Path("/sys"),
        include: re.Pattern[str] | None = None,
        exclude: re.Pattern[str] | None = None,
        dm: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.path = Path(proc_root) / "diskstats"
        self.sysfs_root = Path(sysfs_root)
        self.include, self.exclude, self.dm = include, exclude, dm
        self.clock = clock
        self._whole: dict[str, bool] = {}
        self._file = KeptFile(self.path)  # kept open, read again from offset 0
        self._prev: dict[str, DiskStat] = {}
        self._prev_at: float | None = None

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> DiskSampler:
        opts = dict(ctx.options)
        include, exclude = name_filter(opts, "disk")
        dm = opts.pop("dm", False)
        if not isinstance(dm, bool):
            raise config_error(f"must be true or false, not {dm!r}", "samplers.disk.dm")
        if opts:
            raise config_error(f"unknown option(s) {sorted(opts)} (known: include, exclude, dm)", "samplers.disk")
        sampler = cls(ctx.proc_root, ctx.sysfs_root, include, exclude, dm)
        sampler.path.read_text()  # no diskstats (a container without /proc): not started when "auto"
        return sampler

    def _wanted(self, name: str) -> bool:
        if name not in self._whole:
            self._whole[name] = whole_disk(name, self.sysfs_root, self.dm) and selected(
                name, self.include, self.exclude
            )
        return self._whole[name]

    def read(self, ts: float) -> Rows:
        now = self.clock()
        stats = {n: s for n, s in parse_diskstats(self._file.read().decode()).items() if self._wanted(n)}
        dt = None if self._prev_at is None else now - self._prev_at
        rows = []
        for name, cur in stats.items():
            row = {"disk": name, **disk_row(self._prev.get(name), cur, dt)}
            self.mark_row(name, self.fields[DISK.name], row)
            if row.get("read_ops_per_s") is not None:  # await is absent while no I/O completes, yet supported
                self.mark(name, "read_await_ms", True)
                self.mark(name, "write_await_ms", True)
            if any(v is not None for k, v in row.items() if k not in ("disk",)):
                rows.append(row)  # a row with no value (a first tick's rates, no link speed) carries nothing
        self._prev, self._prev_at = stats, now
        return {DISK.name: rows}

    def close(self) -> None:
        self._file.close()
