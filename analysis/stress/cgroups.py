"""cgroup v2 groups for the tenants of a stress plan: created at the start, processes moved in, removed at the end.

The agent's ``tenants`` sampler finds each process's unified (v2) cgroup in ``/proc/<pid>/cgroup`` and reads that
group's ``cpu.pressure`` / ``memory.pressure`` / ``io.pressure`` and ``cpu.stat`` / ``memory.stat`` / ``io.stat``,
so a tenant in a group of its own gets per-tenant pressure stall figures. PSI works in every v2 group, whether or
not a controller is enabled there, so this works on hybrid hosts too (v2 at ``/sys/fs/cgroup/unified`` beside the
v1 controllers): the groups only account, they limit nothing.

    cg = Cgroup.under(v2_mount(), "neighborscope/hog")
    cg.create()
    subprocess.Popen(argv, preexec_fn=cg.join_self)   # the child and everything it forks are in the group
    ...
    cg.remove()                                      # kills what is left (cgroup.kill), then rmdir

Creating groups needs write access to the v2 hierarchy (root, or a delegated subtree).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from telemetry.errors import NeighborscopeError

CGROUP_PATH = r"^[A-Za-z0-9_.:@-]+(/[A-Za-z0-9_.:@-]+)*$"
"""A cgroup path below the v2 mount: names of letters, digits and ``_ . : @ -`` joined by ``/``, no ``..``."""

_PATH_RE = re.compile(CGROUP_PATH)


class CgroupError(NeighborscopeError):
    """A cgroup could not be created, joined or removed (one line: what and where)."""


def v2_mount(mounts: Path = Path("/proc/self/mounts")) -> Path | None:
    """The cgroup v2 (unified) mount point: ``/sys/fs/cgroup`` on a unified host, ``/sys/fs/cgroup/unified`` on a
    hybrid one; None where there is none (a v1-only host)."""
    try:
        text = mounts.read_text()
    except OSError:
        return None
    found = [
        Path(parts[1].replace("\\040", " "))
        for line in text.splitlines()
        if len(parts := line.split()) >= 3 and parts[2] == "cgroup2"
    ]
    if not found:
        return None
    return next((p for p in found if p == Path("/sys/fs/cgroup")), found[0])


def check_path(path: str, where: str = "") -> str:
    """``path`` without leading / trailing slashes, or ValueError (prefixed by ``where``, if given) when it is not a
    plain path below the mount."""
    p = path.strip("/")
    if not _PATH_RE.match(p) or any(part in (".", "..") for part in p.split("/")):
        msg = "not a cgroup path (names of letters, digits, _ . : @ - joined by /)"
        raise ValueError(f"{where}: {path!r} is {msg}" if where else msg)
    return p


@dataclass
class Cgroup:
    """One v2 group: ``mount / rel``. `create` makes it (and its missing parents, remembered for `remove`)."""

    mount: Path
    rel: str
    created: list[Path] = field(default_factory=list)

    @classmethod
    def under(cls, mount: Path, rel: str) -> Cgroup:
        return cls(mount, check_path(rel, "cgroup"))

    @property
    def path(self) -> Path:
        return self.mount / self.rel

    @property
    def proc_path(self) -> str:
        """The path as ``/proc/<pid>/cgroup`` shows it (``0::/neighborscope/hog``): what a tenant rule matches."""
        return "/" + self.rel

    def create(self) -> Cgroup:
        """Make the group and its missing parents; an existing group is reused (and not removed at the end)."""
        if not (self.mount / "cgroup.procs").exists():
            raise CgroupError(f"cannot create cgroup {self.path}: {self.mount} is not a cgroup v2 mount")
        missing = []
        p = self.path
        while p != self.mount and not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                hint = (
                    " (run as root, or delegate the subtree to this user)"
                    if exc.errno in (errno.EACCES, errno.EPERM)
                    else ""
                )
                raise CgroupError(f"cannot create cgroup {d}: {exc.strerror}{hint}") from None
            self.created.append(d)
        return self

    def add(self, pid: int) -> None:
        """Move process ``pid`` (not its existing children; later children follow it) into the group."""
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            raise CgroupError(f"cannot move process {pid} into cgroup {self.path}: {exc.strerror}") from None

    def join_self(self) -> None:
        """For ``subprocess.Popen(preexec_fn=...)``: the child moves itself in before it execs, so nothing it forks
        escapes the group."""
        fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        """The processes in the group (not in its sub-groups); [] when it is gone."""
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(x) for x in text.split()]

    def kill(self) -> None:
        """SIGKILL everything in the group (``cgroup.kill`` where the kernel has it, 5.14+, else pid by pid)."""
        try:
            (self.path / "cgroup.kill").write_text("1\n")
            return
        except OSError:
            pass
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, timeout_s: float = 5.0) -> str | None:
        """Kill what is left in the group, then remove it and the parents `create` made (deepest first; a parent
        still used by someone else stays). Returns a one-line problem, or None."""
        if not self.path.exists():
            return None
        if not self.created:  # reused, not ours: leave it
            return None
        deadline = time.monotonic() + timeout_s
        if self.pids():
            self.kill()
        problem = None
        for d in sorted(self.created, key=lambda p: len(p.parts), reverse=True):
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EBUSY and d == self.path and time.monotonic() < deadline:
                        time.sleep(0.05)  # the killed processes are still exiting
                        continue
                    if d == self.path:
                        problem = f"cannot remove cgroup {d}: {exc.strerror}"
                    break
        self.created = []
        return problem
