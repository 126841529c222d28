"""Network interfaces (measurement `host_net`): what a network co-tenant takes, one row per interface per tick.

Read from ``<sysfs_root>/class/net/<interface>/statistics/{rx,tx}_{bytes,packets,dropped,errors}`` (the
kernel's 64-bit counters, as ``ip -s link`` shows them) and ``speed`` (Mbit/s; reported only where the driver
gives a positive value: virtual devices, a link that is down or virtio answer -1 or EINVAL, which is absent).
The loopback interface (``lo``) is left out: traffic between processes of this host, not a shared link.
Interfaces are listed again at every tick (a veth made by a container runtime appears, one removed goes).

Counters become per-second rates from two reads; absent on an interface's first tick and on a tick where a
counter went back (the interface was re-created under the same name).

```toml
[samplers.net]
include = "^(eth|ens|enp|ib)"   # only interfaces whose name matches (a regular expression, searched)
exclude = "^(veth|docker)"      # and not these
```
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

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
from agents.samplers.procfs import rate
from telemetry.schema import NET


def _int(f: KeptFile, speed: bool = False) -> int | None:
    """One kept statistics or speed file as an integer (None: missing, unreadable, not a number), as `read_int`
    reads it by path (speed's EINVAL on a link that is down is absent)."""
    try:
        try:
            data = f.read()
        except OSError:  # kept open on an interface re-created since: the path again
            data = f.read()
        return int(data.split()[0], 0) if speed else int(data)
    except (OSError, ValueError, IndexError):
        return None


COUNTERS = tuple(f"{d}_{k}" for d in ("rx", "tx") for k in ("bytes", "packets", "dropped", "errors"))
"""The statistics files read; field ``<file>_per_s``."""


@register("net")
class NetSampler(SamplerBase):
    """Bytes, packets, drops and errors per network interface, and its link speed."""

    fields: ClassVar = {NET.name: (*(f"{c}_per_s" for c in COUNTERS), "speed_mbit_per_s")}
    enabled_by_default: ClassVar = "auto"  # on where /sys/class/net is there
    order: ClassVar = 61

    def __init__(
        self,
        sysfs_root: Path = Path("/sys"),
        include: re.Pattern[str] | None = None,
        exclude: re.Pattern[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.base = Path(sysfs_root) / "class" / "net"
        self.include, self.exclude = include, exclude
        self.clock = clock
        self._prev: dict[str, tuple[float, dict[str, int | None]]] = {}
        self._kept: dict[str, list[KeptFile]] = {}
        self._listed: dict[str, bool] = {}  # name -> reported (selected, has statistics), cached while listed

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> NetSampler:
        opts = dict(ctx.options)
        include, exclude = name_filter(opts, "net")
        if opts:
            raise config_error(f"unknown option(s) {sorted(opts)} (known: include, exclude)", "samplers.net")
        sampler = cls(ctx.sysfs_root, include, exclude)
        if not sampler.base.is_dir():
            raise FileNotFoundError(f"{sampler.base} is not there")  # not started when "auto"
        return sampler

    def interfaces(self) -> list[str]:
        """The interfaces reported now: every one with a ``statistics`` directory but ``lo``, filtered."""
        try:
            names = sorted(os.listdir(self.base))
        except OSError:
            return []
        listed = self._listed
        out = []
        for n in names:
            ok = listed.get(n)
            if ok is None:
                ok = n != "lo" and selected(n, self.include, self.exclude) and (self.base / n / "statistics").is_dir()
                if ok or n == "lo" or not selected(n, self.include, self.exclude):  # a decision that cannot change
                    listed[n] = ok
            if ok:
                out.append(n)
        for n in [n for n in listed if n not in names]:
            del listed[n]
        return out

    def _files(self, name: str) -> list[KeptFile]:
        """The interface's statistics files (`COUNTERS`) and its ``speed``, kept open while it is there."""
        files = self._kept.get(name)
        if files is None:
            stats = f"{self.base}/{name}/statistics/"
            files = self._kept[name] = [
                *(KeptFile(stats + c, 64) for c in COUNTERS),
                KeptFile(f"{self.base}/{name}/speed", 64),
            ]
        return files

    def read(self, ts: float) -> Rows:
        now = self.clock()
        rows = []
        seen: dict[str, tuple[float, dict[str, int | None]]] = {}
        for name in self.interfaces():
            files = self._files(name)
            cur = {c: _int(f) for c, f in zip(COUNTERS, files, strict=False)}
            seen[name] = (now, cur)
            prev = self._prev.get(name)
            speed = _int(files[-1], speed=True)
            row: dict[str, object] = {
                "interface": name,
                "speed_mbit_per_s": float(speed) if speed and speed > 0 else None,
            }
            if prev is not None:
                for c in COUNTERS:
                    row[f"{c}_per_s"] = rate(prev[1][c], cur[c], now - prev[0])
            self.mark_row(name, self.fields[NET.name], row)
            if any(v is not None for k, v in row.items() if k not in ("interface",)):
                rows.append(row)  # a row with no value (a first tick's rates, no link speed) carries nothing
        self._prev = seen
        for name in [n for n in self._kept if n not in seen]:  # an interface gone: its files closed
            for f in self._kept.pop(name):
                f.close()
        return {NET.name: rows}

    def close(self) -> None:
        for files in self._kept.values():
            for f in files:
                f.close()
        self._kept.clear()
