"""Per-cgroup counters for the tenants sampler: cgroup v2, and what cgroup v1 offers where v2 has not the controller.

Where the hierarchies are
    ``/proc/<pid>/cgroup`` names a process's cgroup in each hierarchy: ``0::/path`` for the unified (v2) one,
    ``N:cpu,cpuacct:/path`` for a v1 one (`parse_proc_cgroup`). The v2 hierarchy is mounted at
    ``/sys/fs/cgroup`` (pure v2, systemd's default since 2021) or ``/sys/fs/cgroup/unified`` (hybrid: v1
    controllers at ``/sys/fs/cgroup/<controller>``, v2 beside them with no controller, as on Debian hosts booted
    with ``systemd.unified_cgroup_hierarchy=0`` and many container hosts); `cgroup2_mount` probes both under the
    sysfs root, then ``/proc/self/mountinfo``; `cgroup1_mounts` finds the v1 controllers the same way.

What each gives (the tenant fields; counters become per-second rates in the sampler)
    cgroup v2, every cgroup (no controller needed, Linux >= 4.20 with PSI): ``cpu.pressure``,
    ``memory.pressure``, ``io.pressure`` (``some`` / ``full`` ``total=`` µs); ``cpu.stat`` ``usage_usec``.
    With the ``cpu`` controller: ``cpu.stat`` ``nr_periods``, ``nr_throttled``, ``throttled_usec`` (CFS quota).
    With ``memory``: ``memory.current``, ``memory.stat`` (``workingset_refault_anon`` / ``_file`` since 5.9,
    ``workingset_refault`` before; ``pgscan``, ``pgsteal``, ``pgmajfault``). With ``io``: ``io.stat``
    (``rbytes wbytes rios wios`` per device, summed).

    cgroup v1 (a hybrid host's controllers, or a v1-only host), read for a field only where no v2 file gives it:
    the ``cpu`` controller's ``cpu.stat`` (``nr_periods``, ``nr_throttled``, ``throttled_time`` in ns);
    ``memory.usage_in_bytes`` and ``memory.stat`` (``total_workingset_refault_anon`` / ``_file``,
    ``total_pgmajfault``: hierarchical; v1 has no reclaim scan / steal counters per cgroup); ``blkio``
    ``blkio.throttle.io_service_bytes_recursive`` and ``io_serviced_recursive`` (``Read`` / ``Write`` per
    device). Those are counted by blk-throttle, which (Linux 6.x, checked on this project's hybrid host) counts
    only once a throttle rule (``blkio.throttle.*_device``) is set on the device: a file with no device line is
    read as absent, not as no I/O. v1 has no pressure files: a v1-only host has no per-tenant PSI (the host's
    ``/proc/pressure`` still works).

The root cgroup (``/``) of any hierarchy is the whole host, never a tenant's: it is not read (`is_root`).
Each reader returns ``{tenant field: cumulative value in the field's unit numerator}`` (µs, bytes, events) or
the gauge ``mem_cgroup_bytes``; a file that is absent leaves its fields out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agents.samplers.base import FileCache
from agents.samplers.procfs import PSI_RESOURCES, parse_flat, parse_pressure, summed

V1_CONTROLLERS = ("cpu", "memory", "blkio")
"""The v1 controllers read where v2 lacks the controller."""


@dataclass(frozen=True)
class ProcCgroups:
    """A process's cgroups: the v2 path (None on a v1-only host) and v1 controller -> path."""

    v2: str | None
    v1: dict[str, str] = field(default_factory=dict)


def parse_proc_cgroup(text: str) -> ProcCgroups:
    """``/proc/<pid>/cgroup`` -> `ProcCgroups` (``0::/a/b`` is v2; ``4:cpu,cpuacct:/a`` gives both controllers)."""
    v2: str | None = None
    v1: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        else:
            for c in controllers.split(","):
                if c:
                    v1[c] = path
    return ProcCgroups(v2, v1)


def is_root(path: str | None) -> bool:
    """The hierarchy's root (every process not in a cgroup of its own: the whole host), or no path."""
    return not path or path == "/"


def _unescape(text: str) -> str:
    r"""mountinfo escapes space, tab, newline and backslash as ``\040``, ``\011``, ``\012``, ``\134``."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


@dataclass(frozen=True)
class Mount:
    """One cgroup mount: where it is, the hierarchy path it shows (``root``: not ``/`` inside a container),
    its type (``cgroup2`` or ``cgroup``) and its super options (v1: the controllers)."""

    point: Path
    root: str
    fstype: str
    options: tuple[str, ...]


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup mounts of a ``/proc/<pid>/mountinfo`` (proc(5): ``... root mountpoint opts [tags] - fstype
    source superopts``)."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lp, rp = left.split(), right.split()
        if len(lp) < 5 or len(rp) < 3 or rp[0] not in ("cgroup", "cgroup2"):
            continue
        out.append(Mount(Path(_unescape(lp[4])), _unescape(lp[3]), rp[0], tuple(rp[2].split(","))))
    return out


def _mounts(proc_root: Path) -> list[Mount]:
    try:
        return parse_mountinfo((proc_root / "self" / "mountinfo").read_text())
    except OSError:
        return []


def cgroup2_mount(proc_root: Path, sysfs_root: Path) -> Path | None:
    """Where the unified (v2) hierarchy is mounted: ``<sysfs_root>/fs/cgroup`` (pure v2), else
    ``<sysfs_root>/fs/cgroup/unified`` (hybrid), else the first cgroup2 mount of ``<proc_root>/self/mountinfo``;
    None when there is none (a v1-only host)."""
    for d in (sysfs_root / "fs" / "cgroup", sysfs_root / "fs" / "cgroup" / "unified"):
        if (d / "cgroup.controllers").is_file():
            return d
    return next((m.point for m in _mounts(proc_root) if m.fstype == "cgroup2" and m.root == "/"), None)


def cgroup1_mounts(proc_root: Path, sysfs_root: Path) -> dict[str, Path]:
    """v1 controller (of `V1_CONTROLLERS`) -> its mount: ``<sysfs_root>/fs/cgroup/<controller>`` where that holds
    the controller's files, else the ``cgroup`` mounts of ``<proc_root>/self/mountinfo``."""
    out: dict[str, Path] = {}
    probe = {"cpu": "cpu.stat", "memory": "memory.stat", "blkio": "blkio.throttle.io_service_bytes_recursive"}
    for c in V1_CONTROLLERS:
        for name in (c, "cpu,cpuacct" if c == "cpu" else c):
            d = sysfs_root / "fs" / "cgroup" / name
            if (d / probe[c]).is_file() and not (d / "cgroup.controllers").exists():
                out[c] = d
                break
    for m in _mounts(proc_root):
        if m.fstype == "cgroup" and m.root == "/":
            for c in V1_CONTROLLERS:
                if c in m.options:
                    out.setdefault(c, m.point)
    return out


def cgroup_dir(mount: Path, path: str) -> Path:
    """The directory of cgroup ``path`` (as ``/proc/<pid>/cgroup`` writes it) under ``mount``."""
    return mount / path.lstrip("/")


def _read(path: Path, files: FileCache | None = None) -> str | None:
    if files is not None:
        return files.text(path)
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def parse_io_stat(text: str) -> dict[str, int]:
    """cgroup v2 ``io.stat`` (``8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`` per device) -> the keys
    summed over devices."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, sep, value = item.partition("=")
            if sep:
                with contextlib.suppress(ValueError):
                    out[key] = out.get(key, 0) + int(value)
    return out


def parse_blkio(text: str) -> dict[str, int]:
    """cgroup v1 ``blkio.throttle.io_service*`` (``8:0 Read 4096`` per device and operation, then ``Total``)
    -> ``{"Read": n, "Write": n}`` summed over devices; {} when there is no device line."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("Read", "Write"):
            with contextlib.suppress(ValueError):
                out[parts[1]] = out.get(parts[1], 0) + int(parts[2])
    return out


IO_STAT_FIELDS = {
    "io_read_bytes_per_s": "rbytes",
    "io_write_bytes_per_s": "wbytes",
    "io_read_ops_per_s": "rios",
    "io_write_ops_per_s": "wios",
}

GAUGES = frozenset({"mem_cgroup_bytes"})
"""Fields read as they are; every other field of a reader is a cumulative counter."""


def _put(out: dict[str, float], name: str, value: float | None) -> None:
    if value is not None:
        out[name] = value


def read_v2(d: Path, files: FileCache | None = None) -> dict[str, float]:
    """A cgroup v2 directory's counters (and ``mem_cgroup_bytes``) by tenant field; absent files leave their
    fields out. ``files``: keep the files open between reads (the tenants sampler's per-tick path)."""
    out: dict[str, float] = {}
    for res, fname in PSI_RESOURCES.items():
        text = _read(d / f"{fname}.pressure", files)
        if text is not None:
            for kind, total in parse_pressure(text).items():
                out[f"{res}_pressure_{kind}_us_per_s"] = total
    text = _read(d / "cpu.stat", files)
    if text is not None:
        _cpu_stat(out, parse_flat(text), 1.0, "throttled_usec")
    text = _read(d / "memory.current", files)
    if text is not None and text.strip().isdigit():
        out["mem_cgroup_bytes"] = int(text)
    text = _read(d / "memory.stat", files)
    if text is not None:
        _memory_stat(out, parse_flat(text), "")
    text = _read(d / "io.stat", files)
    if text is not None:
        io = parse_io_stat(text)
        for name, key in IO_STAT_FIELDS.items():
            # an io.stat with no device line yet (no I/O since the cgroup was made) is 0 I/O, not absent
            out[name] = io.get(key, 0)
    return out


def _cpu_stat(out: dict[str, float], stat: Mapping[str, int], to_us: float, throttled: str) -> None:
    if "nr_periods" in stat:  # only with the cpu controller (v2: enabled in the parent's subtree_control)
        _put(out, "cpu_periods_per_s", stat.get("nr_periods"))
        _put(out, "cpu_throttled_periods_per_s", stat.get("nr_throttled"))
        if throttled in stat:
            out["cpu_throttled_us_per_s"] = stat[throttled] * to_us


def _memory_stat(out: dict[str, float], stat: Mapping[str, int], prefix: str) -> None:
    p = prefix
    refault = summed(stat, f"{p}workingset_refault_anon", f"{p}workingset_refault_file")
    _put(out, "workingset_refault_per_s", refault if refault is not None else stat.get(f"{p}workingset_refault"))
    _put(out, "pgmajfault_per_s", stat.get(f"{p}pgmajfault"))
    if not prefix:  # v2 only: v1's memory.stat has no reclaim counters
        _put(out, "pgscan_per_s", stat.get("pgscan"))
        _put(out, "pgsteal_per_s", stat.get("pgsteal"))


def read_v1(controller: str, d: Path, files: FileCache | None = None) -> dict[str, float]:
    """A cgroup v1 controller directory's counters by tenant field (see the module docstring)."""
    out: dict[str, float] = {}
    if controller == "cpu":
        text = _read(d / "cpu.stat", files)
        if text is not None:
            _cpu_stat(out, parse_flat(text), 1e-3, "throttled_time")  # ns -> µs
    elif controller == "memory":
        text = _read(d / "memory.usage_in_bytes", files)
        if text is not None and text.strip().isdigit():
            out["mem_cgroup_bytes"] = int(text)
        text = _read(d / "memory.stat", files)
        if text is not None:
            _memory_stat(out, parse_flat(text), "total_")
    elif controller == "blkio":
        for fname, kind in (("io_service_bytes", "bytes"), ("io_serviced", "ops")):
            text = _read(d / f"blkio.throttle.{fname}_recursive", files)
            io = parse_blkio(text) if text is not None else {}
            if io:  # no device line: blk-throttle is not accounting (no rule on any device), not "no I/O"
                out[f"io_read_{kind}_per_s"] = io.get("Read", 0)
                out[f"io_write_{kind}_per_s"] = io.get("Write", 0)
    return out
