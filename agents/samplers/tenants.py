"""Co-tenant activity (measurement `tenant`): processes grouped into the node's groups.

A process belongs to the group of the first rule it matches; every rule criterion that is given must
match (regular expressions, searched):

```toml
[[tenants]]
group = "hive0"
cmdline = "sglang.*--port 30000"   # the command line, arguments joined by spaces
name = "python"                    # the process name (comm)
cgroup = "kubepods.*pod1234"       # the cgroup path (v2 unified, or any v1 hierarchy)
container = "^3f1c"                # the container id found in the cgroup path (64 hex digits)
user = "alice"
resctrl_group = "hive0"            # its resctrl monitoring group, when not named like the group
```

Children of a matched process join its group (``children = false`` in the rule turns that off), so
the workers an inference server forks count for it. PIDs are host PIDs read from ``<proc_root>``;
accelerator memory per group comes from the NVML running-process list, which gives host PIDs too.

Per tick only the PIDs of known groups are read (one ``/proc/<pid>/stat`` each); the process list is
rescanned every ``rescan_s`` and a new PID is classified once. CPU % is the group's CPU time between
two reads over the wall time (100 = one core), so a group's first tick has no CPU % (absent).

What the group's cgroups say (issue 20): at each rescan the sampler reads ``/proc/<pid>/cgroup`` of the group's
PIDs again (a process can be moved into a cgroup after it starts) and keeps the distinct cgroups they are in:
the v2 path (``0::/path``) under the unified mount, found by `agents.samplers.cgroup.cgroup2_mount`
(``/sys/fs/cgroup``, or ``/sys/fs/cgroup/unified`` on a hybrid host; the ``cgroup_root`` option names it), and
the v1 ``cpu``, ``memory`` and ``blkio`` paths where those controllers are v1. Each distinct cgroup is read once
per tick: PSI (``{cpu,memory,io}.pressure``: µs stalled per second from the ``total`` counters), CFS quota
throttling (``cpu.stat``), ``memory.current`` and ``memory.stat`` (refaults, reclaim, major faults), ``io.stat``
(bytes and I/Os, all devices); `agents.samplers.cgroup` lists what v1 offers instead where v2 lacks the
controller (a v1 file is read for a field only where no v2 file gives it). Counters become per-second rates:
absent on a cgroup's first tick and on a tick where a counter went back.

- Several cgroups: a group whose processes are in several cgroups gets the **sum** of their rates (stall time
  too, so a group of two cgroups can stall up to 2e6 µs per second) and the sum of their ``memory.current``.
  A cgroup nested in another of the same group is left out (the outer one's counters include it).
- Not the tenant's: the root cgroup (``/``: processes in no cgroup of their own, i.e. the whole host) is never
  read, and neither is a cgroup holding processes of other groups or of no group (its ``cgroup.procs`` is
  checked at each rescan; processes in cgroups nested below it are not): those fields are absent, not the
  host's or a neighbour's values.
- resctrl: where resctrl is mounted with monitoring, the group's monitoring group ``mon_groups/<name>`` (or a
  control group ``<name>/``) gives ``mbm_*_bytes_per_s`` and ``llc_occupancy_bytes``; ``<name>`` is the rule's
  ``resctrl_group``, else the group's own name. The tasks in it are whoever put them there (e.g. the stress
  runner); the sampler only reads it.
"""

from __future__ import annotations

import os
import pwd
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from agents.samplers.base import (
    FileCache,
    KeptFile,
    Rows,
    SamplerBase,
    SamplerContext,
    config_error,
    read_text,
    register,
)
from agents.samplers.cgroup import (
    GAUGES,
    ProcCgroups,
    cgroup1_mounts,
    cgroup2_mount,
    cgroup_dir,
    is_root,
    parse_proc_cgroup,
    read_v1,
    read_v2,
)
from agents.samplers.procfs import rate
from agents.samplers.resctrl import group_dir, read_mbm, resctrl_root
from telemetry.schema import MBM_FIELDS, PRESSURE_FIELDS

CONTAINER_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_PIDS_LISTED = 64


@dataclass(frozen=True)
class TenantRule:
    """One ``[[tenants]]`` rule of the node config."""

    group: str
    cmdline: re.Pattern[str] | None = None
    name: re.Pattern[str] | None = None
    cgroup: re.Pattern[str] | None = None
    container: re.Pattern[str] | None = None
    user: str | None = None
    children: bool = True
    resctrl_group: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> TenantRule:
        known = {"group", "cmdline", "name", "cgroup", "container", "user", "children", "resctrl_group"}
        unknown = set(raw) - known
        if unknown:
            raise config_error(f"unknown key(s) {sorted(unknown)}; known: {sorted(known)}", where)
        if not isinstance(raw.get("group"), str) or not raw["group"]:
            raise config_error('a tenant rule needs a group name (group = "hive0")', where)
        pats: dict[str, re.Pattern[str] | None] = {}
        for key in ("cmdline", "name", "cgroup", "container"):
            value = raw.get(key)
            if value is None:
                pats[key] = None
                continue
            try:
                pats[key] = re.compile(str(value))
            except re.error as exc:
                raise config_error(f"bad regular expression {value!r} for {key}: {exc}", where) from None
        if not any(pats.values()) and raw.get("user") is None:
            raise config_error("a tenant rule needs at least one of cmdline, name, cgroup, container, user", where)
        resctrl = raw.get("resctrl_group")
        if resctrl is not None and (not isinstance(resctrl, str) or not resctrl or "/" in resctrl):
            raise config_error(f"resctrl_group must be a resctrl group name (no '/'), not {resctrl!r}", where)
        children = bool(raw.get("children", True))
        return cls(raw["group"], user=raw.get("user"), children=children, resctrl_group=resctrl, **pats)

    def matches(self, proc: ProcInfo) -> bool:
        checks = (
            (self.cmdline, proc.cmdline),
            (self.name, proc.name),
            (self.cgroup, proc.cgroup),
            (self.container, proc.container or ""),
        )
        for pattern, text in checks:
            if pattern is not None and not pattern.search(text):
                return False
        return self.user is None or self.user == proc.user


@dataclass
class ProcInfo:
    pid: int
    ppid: int
    start: int
    name: str
    cmdline: str
    cgroup: str
    container: str | None
    user: str


def parse_stat(text: str) -> dict[str, int | str]:
    """``/proc/<pid>/stat`` -> the fields we use (comm may hold spaces and parentheses)."""
    lpar, rpar = text.index("("), text.rindex(")")
    rest = text[rpar + 2 :].split()
    # rest[0] is field 3 (state): field n is rest[n - 3]
    return {
        "name": text[lpar + 1 : rpar],
        "ppid": int(rest[1]),
        "utime": int(rest[11]),
        "stime": int(rest[12]),
        "threads": int(rest[17]),
        "start": int(rest[19]),
        "rss_pages": int(rest[21]),
    }


def cgroup_path(text: str) -> str:
    """The unified (v2) cgroup path of ``/proc/<pid>/cgroup``, else (no v2 line, or a hybrid host's v2 root ``/``
    while a v1 hierarchy has a cgroup of its own, as Docker makes there) the first v1 hierarchy's that is not
    ``/``, else the first."""
    v2 = None
    paths = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            if parts[0] == "0" and parts[1] == "":
                v2 = parts[2]
            else:
                paths.append(parts[2])
    if v2 is not None and v2 != "/":
        return v2
    own = [p for p in paths if p != "/"]
    return own[0] if own else (v2 if v2 is not None else (paths[0] if paths else ""))


def container_id(cgroup: str) -> str | None:
    """Docker, containerd, CRI-O and podman name a container's cgroup after its 64-hex id."""
    found = CONTAINER_ID.findall(cgroup)
    return found[-1] if found else None


def _reread(f: KeptFile) -> bytes | None:
    """A kept ``/proc/<pid>/...`` file's content; a kept file whose process is gone is opened again by its path
    once, so a PID reused since reads as the new process. None when the process is not there."""
    try:
        return f.read()
    except OSError:
        try:
            return f.read()
        except OSError:
            return None


def _stat_fast(stat: KeptFile) -> tuple[int, int, int, int] | None:
    """(utime + stime, threads, start time, rss pages) of one ``/proc/<pid>/stat``: the per-tick read, kept lean
    (the file kept open: one ``pread``, one split; a reused PID tells by its start time)."""
    data = _reread(stat)
    if data is None:
        return None
    try:
        f = data[data.rindex(b")") + 2 :].split()
        return int(f[11]) + int(f[12]), int(f[17]), int(f[19]), int(f[21])
    except (ValueError, IndexError):
        return None


CGROUP_FIELDS = (
    *(f.name for f in PRESSURE_FIELDS),
    "cpu_periods_per_s",
    "cpu_throttled_periods_per_s",
    "cpu_throttled_us_per_s",
    "mem_cgroup_bytes",
    "workingset_refault_per_s",
    "pgscan_per_s",
    "pgsteal_per_s",
    "pgmajfault_per_s",
    "io_read_bytes_per_s",
    "io_write_bytes_per_s",
    "io_read_ops_per_s",
    "io_write_ops_per_s",
)
"""The tenant fields read from the group's cgroups."""
MBM_NAMES = tuple(f.name for f in MBM_FIELDS)

Source = tuple[str, Path]
"""One thing read per tick for a group: ``("v2", dir)``, ``("cpu" | "memory" | "blkio", v1 dir)`` or
``("resctrl", group dir)``."""


def _ancestor(a: Path, b: Path) -> bool:
    """``a`` is a strict ancestor directory of ``b``."""
    return a != b and a in b.parents


def group_values(
    sources: list[Source],
    now: dict[Source, tuple[float, dict[str, float | None]]],
    before: dict[Source, tuple[float, dict[str, float | None]]],
    names: tuple[str, ...],
) -> dict[str, float | None]:
    """A group's fields from its sources' reads (``now``, ``before``: source -> (monotonic s, values)).

    A field comes from the v2 sources that give it, else from the v1 ones (a controller is in one hierarchy
    only); gauges (`agents.samplers.cgroup.GAUGES`, ``llc_occupancy_bytes``) are summed as read, counters as
    per-second rates summed over the sources. A counter that a source gives now but gave no earlier value for
    (a cgroup new to the group) or that went back makes the group's field absent for the tick."""
    out: dict[str, float | None] = {}
    for name in names:
        giving = [s for s in sources if now[s][1].get(name) is not None]
        v2 = [s for s in giving if s[0] == "v2"]
        chosen = v2 or giving
        if not chosen:
            out[name] = None
            continue
        if name in GAUGES or name == "llc_occupancy_bytes":
            out[name] = float(sum(now[s][1][name] for s in chosen))  # type: ignore[misc]
            continue
        total: float | None = 0.0
        for s in chosen:
            t1, v1 = now[s]
            t0, v0 = before.get(s, (None, {}))
            r = rate(v0.get(name), v1[name], None if t0 is None else t1 - t0)
            if r is None:
                total = None
                break
            total += r
        out[name] = total
    return out


@register("tenants")
class TenantsSampler(SamplerBase):
    """CPU %, RSS, threads and accelerator memory per co-tenant group; pressure, CPU throttling, memory and I/O
    of its cgroups; memory bandwidth of its resctrl group."""

    fields: ClassVar = {
        "tenant": (
            "cpu_pct",
            "rss_bytes",
            "accel_mem_bytes",
            "process_count",
            "threads_count",
            "pids",
            *CGROUP_FIELDS,
            *MBM_NAMES,
        ),
    }
    order: ClassVar = 90  # after the accelerator samplers: reads their process memory

    def __init__(
        self,
        rules: Sequence[TenantRule],
        proc_root: Path = Path("/proc"),
        accel_process_memory: Callable[[], dict[int, int]] | None = None,
        rescan_s: float = 1.0,
        other_group: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sysfs_root: Path = Path("/sys"),
        cgroup_root: Path | None = None,
        cgroups: bool = True,
    ) -> None:
        super().__init__()
        self.rules = list(rules)
        self.proc_root = Path(proc_root)
        self.accel_process_memory = accel_process_memory
        self.rescan_s = rescan_s
        self.other_group = other_group
        self.clock = clock
        self.groups = list(dict.fromkeys([r.group for r in self.rules] + ([other_group] if other_group else [])))
        self._known: dict[int, tuple[int, str | None]] = {}  # pid -> (start time, group or None)
        self._cpu: dict[int, tuple[int, int]] = {}  # pid -> (start, utime + stime ticks)
        self._members: list[tuple[int, int, str]] | None = None  # (pid, start, group) of the known PIDs of a group
        self._stat: dict[int, KeptFile] = {}  # pid of a group -> its /proc/<pid>/stat, kept open
        self._files = FileCache()  # the cgroup files read per tick, kept open
        self._cgroup_files: dict[int, KeptFile] = {}  # pid of a group -> its /proc/<pid>/cgroup, kept open
        self._cgroup_texts: dict[bytes, tuple[ProcCgroups, list[Source]]] = {}  # /proc/<pid>/cgroup -> parsed
        self._prev_at: float | None = None
        self._scanned_at = -1e18
        self._users: dict[int, str] = {}
        self.cgroups = cgroups
        self.sysfs_root = Path(sysfs_root)
        self.cgroup2 = Path(cgroup_root) if cgroup_root else (cgroup2_mount(self.proc_root, self.sysfs_root))
        self.cgroup1 = cgroup1_mounts(self.proc_root, self.sysfs_root) if cgroups else {}
        self.resctrl = resctrl_root(self.sysfs_root) if cgroups else None
        self._proc_cgroups: dict[int, ProcCgroups] = {}  # pid of a group -> its cgroups, read at each rescan
        self._sources: dict[str, list[Source]] = {}  # group -> what to read for it, made at each rescan
        self._src_prev: dict[Source, tuple[float, dict[str, float | None]]] = {}

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> TenantsSampler:
        opts = dict(ctx.options)
        raw_rules = opts.pop("rules", [])
        rules = [TenantRule.from_dict(r, f"tenants[{i}]") for i, r in enumerate(raw_rules)]
        rescan_s = float(opts.pop("rescan_s", 1.0))
        other = opts.pop("other_group", None) or None
        cgroup_root = opts.pop("cgroup_root", None)
        cgroups = opts.pop("cgroups", True)
        if opts:
            raise config_error(
                f"unknown option(s) {sorted(opts)} (known: rescan_s, other_group, cgroup_root, cgroups)",
                "samplers.tenants",
            )
        if not isinstance(cgroups, bool):
            raise config_error(f"must be true or false, not {cgroups!r}", "samplers.tenants.cgroups")
        if cgroup_root is not None:
            if not isinstance(cgroup_root, str) or not (Path(cgroup_root) / "cgroup.procs").is_file():
                raise config_error(
                    f"{cgroup_root!r} is not a cgroup v2 mount (no cgroup.procs there); see `mount -t cgroup2`",
                    "samplers.tenants.cgroup_root",
                )
            cgroup_root = Path(cgroup_root)
        return cls(
            rules,
            ctx.proc_root,
            ctx.accel_process_memory,
            rescan_s,
            other,
            sysfs_root=ctx.sysfs_root,
            cgroup_root=cgroup_root,
            cgroups=cgroups,
        )

    def _user(self, pid_dir: Path) -> str:
        try:
            uid = pid_dir.stat().st_uid
        except OSError:
            return ""
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._users[uid] = str(uid)
        return self._users[uid]

    def _info(self, pid: int) -> ProcInfo | None:
        d = self.proc_root / str(pid)
        stat_text = read_text(d / "stat")
        if stat_text is None:
            return None
        try:
            stat = parse_stat(stat_text)
        except (ValueError, IndexError):
            return None
        try:
            raw_cmd = (d / "cmdline").read_bytes()
        except OSError:
            raw_cmd = b""
        cgroup = cgroup_path(read_text(d / "cgroup") or "")
        return ProcInfo(
            pid=pid,
            ppid=int(stat["ppid"]),
            start=int(stat["start"]),
            name=str(stat["name"]),
            cmdline=raw_cmd.replace(b"\0", b" ").decode(errors="replace").strip(),
            cgroup=cgroup,
            container=container_id(cgroup),
            user=self._user(d),
        )

    def _forget(self, pid: int) -> None:
        if self._known.pop(pid, None) is not None:
            self._members = None
        self._cpu.pop(pid, None)
        for files in (self._stat, self._cgroup_files):
            f = files.pop(pid, None)
            if f is not None:
                f.close()

    def _rescan(self) -> None:
        try:
            pids = sorted(int(p) for p in os.listdir(self.proc_root) if p.isdigit())
        except OSError:
            return
        live = set(pids)
        for pid in [p for p in self._known if p not in live]:
            self._forget(pid)
        infos: dict[int, ProcInfo] = {}
        for pid in pids:  # parents mostly have lower PIDs, so they are classified first
            if pid in self._known:
                continue
            info = self._info(pid)
            if info is None:
                continue
            infos[pid] = info
            group = next((r.group for r in self.rules if r.matches(info)), None)
            if group is None and info.ppid in self._known:
                parent_group = self._known[info.ppid][1]
                rule = next((r for r in self.rules if r.group == parent_group), None)
                if rule is not None and rule.children:
                    group = parent_group
            self._known[pid] = (info.start, group or self.other_group)
            self._members = None
        if self.cgroups:
            self._rescan_cgroups()

    def _rescan_cgroups(self) -> None:
        """Read the cgroups of every PID of a group (not the catch-all ``other_group``: the rest of the host) and
        make each group's list of sources: its own cgroups (not the root, not shared, not nested in another of
        its own) and its resctrl group."""
        members: dict[str, set[int]] = {}
        for pid, (_, group) in self._known.items():
            if group is not None:
                members.setdefault(group, set()).add(pid)
        for pid in [p for p in self._proc_cgroups if p not in self._known]:
            del self._proc_cgroups[pid]
        sources: dict[str, list[Source]] = {}
        procs_cache: dict[Path, set[int] | None] = {}
        if self.resctrl is None:  # mounted after the agent started
            self.resctrl = resctrl_root(self.sysfs_root)
        for group in self.groups:
            found: list[Source] = []
            proc = str(self.proc_root)
            for pid in sorted(members.get(group, ())) if group != self.other_group else ():
                f = self._cgroup_files.get(pid)
                if f is None:
                    f = self._cgroup_files[pid] = KeptFile(f"{proc}/{pid}/cgroup")
                data = _reread(f)
                if data is None:
                    continue
                known = self._cgroup_texts.get(data)
                if known is None:  # processes share their cgroups: each distinct text is parsed once
                    if len(self._cgroup_texts) > 4096:
                        self._cgroup_texts.clear()
                    known = self._cgroup_texts[data] = self._cgroup_sources(data)
                self._proc_cgroups[pid] = known[0]
                found.extend(known[1])
            found = list(dict.fromkeys(found))
            own = [s for s in found if self._exclusive(s[1], members.get(group, set()), procs_cache)]
            kept = [s for s in own if not any(o[0] == s[0] and _ancestor(o[1], s[1]) for o in own)]
            rule = next((r for r in self.rules if r.group == group and r.resctrl_group), None)
            if self.resctrl is not None and group != self.other_group:
                rd = group_dir(self.resctrl, rule.resctrl_group if rule and rule.resctrl_group else group)
                if rd is not None:
                    kept.append(("resctrl", rd))
            sources[group] = kept
        self._sources = sources
        self._files.keep_only(str(d) for srcs in sources.values() for _, d in srcs)

    def _cgroup_sources(self, data: bytes) -> tuple[ProcCgroups, list[Source]]:
        """A ``/proc/<pid>/cgroup`` text -> (its cgroups, the directories to read for them: not the roots)."""
        cg = parse_proc_cgroup(data.decode(errors="replace"))
        found: list[Source] = []
        if self.cgroup2 is not None and not is_root(cg.v2):
            found.append(("v2", cgroup_dir(self.cgroup2, cg.v2 or "")))
        for controller, mount in self.cgroup1.items():
            path = cg.v1.get(controller)
            if not is_root(path):
                found.append((controller, cgroup_dir(mount, path or "")))
        return cg, found

    @staticmethod
    def _exclusive(d: Path, pids: set[int], cache: dict[Path, set[int] | None]) -> bool:
        """Every process directly in cgroup ``d`` is one of ``pids`` (so the cgroup is the group's own)."""
        if d not in cache:
            text = read_text(d / "cgroup.procs")
            cache[d] = None if text is None else {int(x) for x in text.split() if x.isdigit()}
        procs = cache[d]
        return procs is not None and procs <= pids

    def _cgroup_rows(self, now: float) -> dict[str, dict[str, float | None]]:
        """group -> its cgroup and resctrl fields: each distinct source read once."""
        reads: dict[Source, tuple[float, dict[str, float | None]]] = {}
        for srcs in self._sources.values():
            for src in srcs:
                if src in reads:
                    continue
                kind, d = src
                if kind == "v2":
                    values: dict[str, float | None] = dict(read_v2(d, self._files))
                elif kind == "resctrl":
                    mbm = read_mbm(d)
                    values = {
                        "mbm_total_bytes_per_s": mbm["mbm_total_bytes"],
                        "mbm_local_bytes_per_s": mbm["mbm_local_bytes"],
                        "llc_occupancy_bytes": mbm["llc_occupancy"],
                    }
                else:
                    values = dict(read_v1(kind, d, self._files))
                reads[src] = (now, values)
        out = {}
        for group in self.groups:
            srcs = [s for s in self._sources.get(group, []) if s in reads]
            cg = group_values([s for s in srcs if s[0] != "resctrl"], reads, self._src_prev, CGROUP_FIELDS)
            mbm = group_values([s for s in srcs if s[0] == "resctrl"], reads, self._src_prev, MBM_NAMES)
            out[group] = cg | mbm
        self._src_prev = reads
        return out

    def read(self, ts: float) -> Rows:
        now = self.clock()
        if now - self._scanned_at >= self.rescan_s:
            self._scanned_at = now
            self._rescan()
        dt = None if self._prev_at is None else now - self._prev_at
        self._prev_at = now
        acc = {g: {"cpu_ticks": 0, "rss": 0, "threads": 0, "pids": [], "cpu_known": True} for g in self.groups}
        proc = str(self.proc_root)
        stat_files = self._stat
        if self._members is None:  # the known PIDs of a group, in the order found (rebuilt when they change)
            self._members = [(pid, start, group) for pid, (start, group) in self._known.items() if group is not None]
        for pid, start, group in self._members:
            f = stat_files.get(pid)
            if f is None:
                f = stat_files[pid] = KeptFile(f"{proc}/{pid}/stat", 1024)
            st = _stat_fast(f)
            if st is None:
                self._forget(pid)
                continue
            ticks, threads, st_start, rss_pages = st
            if st_start != start:  # PID reused: classify it again at the next rescan
                self._forget(pid)
                self._scanned_at = -1e18
                continue
            a = acc[group]
            prev = self._cpu.get(pid)
            self._cpu[pid] = (start, ticks)
            a["cpu_ticks"] += ticks - prev[1] if prev else 0
            a["rss"] += rss_pages * _PAGE
            a["threads"] += threads
            a["pids"].append(pid)
        accel = self.accel_process_memory() if self.accel_process_memory else None
        cgroup_rows = self._cgroup_rows(now) if self.cgroups else {}
        rows = []
        for group, a in acc.items():
            pids = a["pids"]
            listed = " ".join(str(p) for p in pids[:MAX_PIDS_LISTED]) + (" ..." if len(pids) > MAX_PIDS_LISTED else "")
            row = {
                "group": group,
                "cpu_pct": 100.0 * a["cpu_ticks"] / _CLK_TCK / dt if dt else None,
                "rss_bytes": float(a["rss"]),
                "accel_mem_bytes": float(sum(accel.get(p, 0) for p in pids)) if accel is not None else None,
                "process_count": len(pids),
                "threads_count": a["threads"],
                "pids": listed,
                **cgroup_rows.get(group, {}),
            }
            self.mark_row(group, self.fields["tenant"], row)
            rows.append(row)
        return {"tenant": rows}
