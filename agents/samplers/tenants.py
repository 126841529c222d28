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
```

Children of a matched process join its group (``children = false`` in the rule turns that off), so
the workers an inference server forks count for it. PIDs are host PIDs read from ``<proc_root>``;
accelerator memory per group comes from the NVML running-process list, which gives host PIDs too.

Per tick only the PIDs of known groups are read (one ``/proc/<pid>/stat`` each); the process list is
rescanned every ``rescan_s`` and a new PID is classified once. CPU % is the group's CPU time between
two reads over the wall time (100 = one core), so a group's first tick has no CPU % (absent).
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

from agents.samplers.base import Rows, SamplerBase, SamplerContext, config_error, read_text, register

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

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> TenantRule:
        known = {"group", "cmdline", "name", "cgroup", "container", "user", "children"}
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
        return cls(raw["group"], user=raw.get("user"), children=bool(raw.get("children", True)), **pats)

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
    """The unified (v2) cgroup path of ``/proc/<pid>/cgroup``, else the first v1 hierarchy's."""
    paths = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            if parts[0] == "0" and parts[1] == "":
                return parts[2]
            paths.append(parts[2])
    return paths[0] if paths else ""


def container_id(cgroup: str) -> str | None:
    """Docker, containerd, CRI-O and podman name a container's cgroup after its 64-hex id."""
    found = CONTAINER_ID.findall(cgroup)
    return found[-1] if found else None


def _stat_fast(path: str) -> tuple[int, int, int, int] | None:
    """(utime + stime, threads, start time, rss pages) of one ``/proc/<pid>/stat``: the per-tick read,
    kept lean (one open, one read, one split)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        f = data[data.rindex(b")") + 2 :].split()
        return int(f[11]) + int(f[12]), int(f[17]), int(f[19]), int(f[21])
    except (ValueError, IndexError):
        return None


@register("tenants")
class TenantsSampler(SamplerBase):
    """CPU %, RSS, threads and accelerator memory per co-tenant group."""

    fields: ClassVar = {
        "tenant": ("cpu_pct", "rss_bytes", "accel_mem_bytes", "process_count", "threads_count", "pids"),
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
        self._prev_at: float | None = None
        self._scanned_at = -1e18
        self._users: dict[int, str] = {}

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> TenantsSampler:
        opts = dict(ctx.options)
        raw_rules = opts.pop("rules", [])
        rules = [TenantRule.from_dict(r, f"tenants[{i}]") for i, r in enumerate(raw_rules)]
        rescan_s = float(opts.pop("rescan_s", 1.0))
        other = opts.pop("other_group", None) or None
        if opts:
            raise config_error(f"unknown option(s) {sorted(opts)} (known: rescan_s, other_group)", "samplers.tenants")
        return cls(rules, ctx.proc_root, ctx.accel_process_memory, rescan_s, other)

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

    def _rescan(self) -> None:
        try:
            pids = sorted(int(p) for p in os.listdir(self.proc_root) if p.isdigit())
        except OSError:
            return
        live = set(pids)
        for pid in [p for p in self._known if p not in live]:
            del self._known[pid]
            self._cpu.pop(pid, None)
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

    def read(self, ts: float) -> Rows:
        now = self.clock()
        if now - self._scanned_at >= self.rescan_s:
            self._scanned_at = now
            self._rescan()
        dt = None if self._prev_at is None else now - self._prev_at
        self._prev_at = now
        acc = {g: {"cpu_ticks": 0, "rss": 0, "threads": 0, "pids": [], "cpu_known": True} for g in self.groups}
        proc = str(self.proc_root)
        for pid, (start, group) in list(self._known.items()):
            if group is None:
                continue
            st = _stat_fast(f"{proc}/{pid}/stat")
            if st is None:
                self._known.pop(pid, None)
                self._cpu.pop(pid, None)
                continue
            ticks, threads, st_start, rss_pages = st
            if st_start != start:  # PID reused: classify it again at the next rescan
                self._known.pop(pid, None)
                self._cpu.pop(pid, None)
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
            }
            self.mark_row(group, self.fields["tenant"], row)
            rows.append(row)
        return {"tenant": rows}
