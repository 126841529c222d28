"""resctrl memory-bandwidth monitoring (MBM) and cache occupancy (CMT), pure readers.

Where resctrl is mounted (``mount -t resctrl resctrl /sys/fs/resctrl``; Intel RDT or AMD PQoS), every
monitoring group has ``mon_data/mon_L3_<domain>/{mbm_total_bytes,mbm_local_bytes,llc_occupancy}``, one
directory per L3 cache domain (socket or CCX). The root group (``/sys/fs/resctrl``) counts every task not in a
group of its own (the whole host when there are none); ``mon_groups/<name>`` and control groups
``<name>/`` (with their own ``mon_data``) count the tasks written to their ``tasks`` file.

`read_mbm` sums the three files over the domains: ``mbm_*_bytes`` are cumulative byte counters (the kernel
extends the hardware's 24- to 62-bit counters, so a value going back is a reset: absent for that tick),
``llc_occupancy`` a gauge in bytes. A domain that answers ``Unavailable`` (an RMID not yet counted, a CPU
offline) or ``Error`` makes the sum absent: a partial sum would read as a drop.
"""

from __future__ import annotations

from pathlib import Path

MBM_FILES = ("mbm_total_bytes", "mbm_local_bytes", "llc_occupancy")


def resctrl_root(sysfs_root: Path) -> Path | None:
    """``<sysfs_root>/fs/resctrl`` when it is mounted with monitoring (has ``mon_data``), else None."""
    root = sysfs_root / "fs" / "resctrl"
    return root if (root / "mon_data").is_dir() else None


def group_dir(root: Path, name: str) -> Path | None:
    """The resctrl group named ``name``: a monitoring group (``mon_groups/<name>``) or a control group
    (``<name>/`` with its own ``mon_data``); None when there is none."""
    for d in (root / "mon_groups" / name, root / name):
        if name and "/" not in name and (d / "mon_data").is_dir():
            return d
    return None


def _value(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None  # "Unavailable", "Error"


def read_mbm(group: Path) -> dict[str, int | None]:
    """``{"mbm_total_bytes", "mbm_local_bytes", "llc_occupancy"}`` of one resctrl group, each summed over its L3
    domains; None where a domain has no such file or no value (``Unavailable``) or there is no domain."""
    domains = sorted((group / "mon_data").glob("mon_L3_*"))
    out: dict[str, int | None] = {}
    for name in MBM_FILES:
        values = [_value(d / name) for d in domains]
        out[name] = sum(values) if values and all(v is not None for v in values) else None  # type: ignore[misc]
    return out
