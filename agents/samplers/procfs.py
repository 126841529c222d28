"""Pure parsers for the procfs files the host and disk samplers read, and the one rate rule they share.

- ``/proc/pressure/{cpu,memory,io}`` (and a cgroup v2 ``*.pressure`` file, same format): `parse_pressure`
  keeps the cumulative ``total=`` stall counters in µs, never the ``avg10`` gauges (a rate from the counter's
  delta covers exactly the sampling interval).
- ``/proc/vmstat``: `parse_flat` reads it (and cgroup ``cpu.stat`` / ``memory.stat``, same "key value" lines);
  `vmstat_counters` sums the counters the host sampler reports (refaults, reclaim scans and steals, NUMA
  misses), keeping the older kernels' names.
- ``/proc/diskstats``: `parse_diskstats` (one `DiskStat` per device; the 14-field layout of every kernel since
  2.6, the discard and flush fields of newer ones are not needed) and `whole_disk` (partitions, loop, ram and
  zram devices left out).

`rate` turns two reads of a cumulative counter into a per-second rate: absent (None) on the first read, when
either read is absent, and when the counter went back (a reset: a device re-attached, a cgroup re-created).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PSI_RESOURCES = {"cpu": "cpu", "mem": "memory", "io": "io"}
"""Field prefix -> file name under ``/proc/pressure`` (and ``<cgroup>/<name>.pressure``)."""


def parse_pressure(text: str) -> dict[str, int]:
    """A PSI file -> ``{"some": total_us, "full": total_us}``, the cumulative stall time in µs.

    ``cpu`` has a ``full`` line since Linux 5.13 (always 0 at the system level); a line that is missing is
    missing from the result (absent, not 0). Malformed lines are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if key == "total":
                with contextlib.suppress(ValueError):
                    out[parts[0]] = int(value)
    return out


def parse_flat(text: str) -> dict[str, int]:
    """``key value`` lines (``/proc/vmstat``, cgroup ``cpu.stat``, ``memory.stat``) -> {key: int}; lines whose
    value is not an integer are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def summed(stats: Mapping[str, int], *keys: str) -> int | None:
    """The sum of ``keys`` in ``stats``; None when none of them is there (absent, not 0)."""
    values = [stats[k] for k in keys if k in stats]
    return sum(values) if values else None


VMSTAT_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "pgmajfault_per_s": (("pgmajfault",),),
    "workingset_refault_per_s": (("workingset_refault_anon", "workingset_refault_file"), ("workingset_refault",)),
    "pgscan_per_s": (("pgscan_kswapd", "pgscan_direct"),),
    "pgsteal_per_s": (("pgsteal_kswapd", "pgsteal_direct"),),
    "numa_miss_per_s": (("numa_miss",),),
    "numa_foreign_per_s": (("numa_foreign",),),
}
"""host field -> the ``/proc/vmstat`` counters summed for it, newest kernel names first (``workingset_refault``
was split into ``_anon`` and ``_file`` in Linux 5.9; kernels before 4.8 had per-zone ``pgscan_kswapd_normal``
... which are not read)."""


def vmstat_counters(vmstat: Mapping[str, int]) -> dict[str, int | None]:
    """host field -> its cumulative count from a parsed ``/proc/vmstat`` (None: the kernel has none of the
    counters, e.g. ``numa_*`` without CONFIG_NUMA)."""
    out: dict[str, int | None] = {}
    for name, choices in VMSTAT_FIELDS.items():
        out[name] = next((v for keys in choices if (v := summed(vmstat, *keys)) is not None), None)
    return out


def rate(prev: int | float | None, cur: int | float | None, dt: float | None, scale: float = 1.0) -> float | None:
    """``(cur - prev) / dt * scale``; None on a first read (``prev`` None), an absent value, no time passed, or a
    counter that went back (reset)."""
    if prev is None or cur is None or not dt or dt <= 0 or cur < prev:
        return None
    return (cur - prev) / dt * scale


@dataclass(frozen=True)
class DiskStat:
    """One ``/proc/diskstats`` line (Documentation/admin-guide/iostats.rst): counters since boot."""

    reads: int  # reads completed
    read_sectors: int  # 512-byte sectors, whatever the device's block size
    read_ms: int  # time spent reading (sum over requests)
    writes: int
    write_sectors: int
    write_ms: int
    in_flight: int  # a gauge: I/Os in progress now
    io_ms: int  # io_ticks: time with at least one I/O in flight
    queue_ms: int  # time_in_queue: weighted by the number in flight


SECTOR_BYTES = 512


def parse_diskstats(text: str) -> dict[str, DiskStat]:
    """``/proc/diskstats`` -> device name -> `DiskStat`; short or malformed lines are skipped."""
    out: dict[str, DiskStat] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 14:
            continue
        try:
            v = [int(x) for x in parts[3:14]]
        except ValueError:
            continue
        out[parts[2]] = DiskStat(
            reads=v[0],
            read_sectors=v[2],
            read_ms=v[3],
            writes=v[4],
            write_sectors=v[6],
            write_ms=v[7],
            in_flight=v[8],
            io_ms=v[9],
            queue_ms=v[10],
        )
    return out


VIRTUAL_DISKS = re.compile(r"^(loop|ram|zram|nbd|fd|sr)\d+$")
"""Devices that are not storage a co-tenant shares with the victim: loop files (whose I/O the backing disk
counts again), RAM disks, compressed swap in RAM, network block devices, floppies and optical drives."""
STACKED_DISKS = re.compile(r"^(dm-|md)\d+$")
"""Device-mapper (LVM, dm-crypt) and software RAID: I/O the member disks count again (``dm = true`` keeps them)."""
PARTITION = re.compile(r"^(sd[a-z]+|hd[a-z]+|vd[a-z]+|xvd[a-z]+)\d+$|^(nvme\d+n\d+|mmcblk\d+|nbd\d+)p\d+$")
"""Partition names, for a sysfs without ``block/`` (a fake tree, a container)."""


def whole_disk(name: str, sysfs_root: Path, stacked: bool = False) -> bool:
    """Whether ``name`` is a whole disk to report: in ``<sysfs_root>/block`` (where the kernel lists whole
    disks only; partitions are not there), or, with no ``block/`` directory, not named like a partition; never a
    `VIRTUAL_DISKS` device; `STACKED_DISKS` only with ``stacked``."""
    if VIRTUAL_DISKS.match(name) or (STACKED_DISKS.match(name) and not stacked):
        return False
    block = sysfs_root / "block"
    if block.is_dir():
        return (block / name).exists()
    return not PARTITION.match(name)
