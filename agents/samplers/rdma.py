"""RDMA / RoCE ports (measurement `rdma`): the fabric collective traffic shares, one row per port per tick.

Read from ``<sysfs_root>/class/infiniband/<device>/ports/<port>/counters/*`` (the InfiniBand port counters every
driver gives) and ``hw_counters/*`` (the driver's own; RoCE congestion control on mlx5):

| field | counter(s) |
| --- | --- |
| ``rx_bytes_per_s`` / ``tx_bytes_per_s`` | ``port_rcv_data`` / ``port_xmit_data`` x 4 (they count 4-byte words) |
| ``rx_packets_per_s`` / ``tx_packets_per_s`` | ``port_rcv_packets`` / ``port_xmit_packets`` |
| ``xmit_wait_per_s`` | ``port_xmit_wait``: ticks the port had data to send but no credit (back-pressure) |
| ``cnp_sent_per_s`` | ``hw_counters/np_cnp_sent``: congestion notifications this port sent (it saw ECN marks) |
| ``cnp_handled_per_s`` | ``hw_counters/rp_cnp_handled``: notifications it acted on (it slowed down) |
| ``ecn_marked_per_s`` | ``hw_counters/np_ecn_marked_roce_packets`` |
| ``rx_discards_per_s`` | ``port_rcv_discards`` + ``port_xmit_discards`` |

Counters become per-second rates from two reads; a counter that went back (a reset: driver reload, ``perfquery
-R``) or that is pegged at 2**32 - 1 (the legacy 32-bit counters stop there instead of wrapping, so their delta
would read as 0) is absent for that tick, and so is a counter the port does not have.

```toml
[samplers.rdma]
include = "^mlx5_"   # only devices whose name matches (a regular expression, searched)
exclude = "^rxe"     # and not these (soft-RoCE)
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
    Rows,
    SamplerBase,
    SamplerContext,
    config_error,
    name_filter,
    read_int,
    register,
    selected,
)
from agents.samplers.procfs import rate

SATURATED_32 = (1 << 32) - 1

FIELDS: dict[str, tuple[tuple[str, ...], float]] = {
    "rx_bytes_per_s": (("counters/port_rcv_data",), 4.0),
    "tx_bytes_per_s": (("counters/port_xmit_data",), 4.0),
    "rx_packets_per_s": (("counters/port_rcv_packets",), 1.0),
    "tx_packets_per_s": (("counters/port_xmit_packets",), 1.0),
    "xmit_wait_per_s": (("counters/port_xmit_wait",), 1.0),
    "cnp_sent_per_s": (("hw_counters/np_cnp_sent",), 1.0),
    "cnp_handled_per_s": (("hw_counters/rp_cnp_handled",), 1.0),
    "ecn_marked_per_s": (("hw_counters/np_ecn_marked_roce_packets",), 1.0),
    "rx_discards_per_s": (("counters/port_rcv_discards", "counters/port_xmit_discards"), 1.0),
}
"""rdma field -> (the port's counter files summed for it, the factor to the field's unit)."""


def port_counters(port: Path) -> dict[str, int | None]:
    """The cumulative value of each rdma field's counters of one port directory: None where a file is missing or
    unreadable, or a counter is pegged at 2**32 - 1."""
    out: dict[str, int | None] = {}
    for name, (files, _) in FIELDS.items():
        values = [read_int(port / f) for f in files]
        ok = all(v is not None and v != SATURATED_32 for v in values)
        out[name] = sum(values) if ok else None  # type: ignore[arg-type]
    return out


@register("rdma")
class RdmaSampler(SamplerBase):
    """Data, packets, back-pressure, congestion notifications, ECN marks and discards per RDMA port."""

    fields: ClassVar = {"rdma": tuple(FIELDS)}
    enabled_by_default: ClassVar = "auto"  # on where /sys/class/infiniband is there
    order: ClassVar = 62

    def __init__(
        self,
        sysfs_root: Path = Path("/sys"),
        include: re.Pattern[str] | None = None,
        exclude: re.Pattern[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.base = Path(sysfs_root) / "class" / "infiniband"
        self.include, self.exclude = include, exclude
        self.clock = clock
        self._prev: dict[tuple[str, str], tuple[float, dict[str, int | None]]] = {}

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> RdmaSampler:
        opts = dict(ctx.options)
        include, exclude = name_filter(opts, "rdma")
        if opts:
            raise config_error(f"unknown option(s) {sorted(opts)} (known: include, exclude)", "samplers.rdma")
        sampler = cls(ctx.sysfs_root, include, exclude)
        if not sampler.base.is_dir():
            raise FileNotFoundError(f"{sampler.base} is not there (no RDMA device)")  # not started when "auto"
        return sampler

    def ports(self) -> list[tuple[str, str, Path]]:
        """(device, port, directory) of every port of the selected devices."""
        out = []
        try:
            devices = sorted(os.listdir(self.base))
        except OSError:
            return []
        for dev in devices:
            if not selected(dev, self.include, self.exclude):
                continue
            try:
                ports = sorted(os.listdir(self.base / dev / "ports"), key=lambda p: (len(p), p))
            except OSError:
                continue
            out += [(dev, p, self.base / dev / "ports" / p) for p in ports]
        return out

    def read(self, ts: float) -> Rows:
        now = self.clock()
        rows = []
        seen: dict[tuple[str, str], tuple[float, dict[str, int | None]]] = {}
        for dev, port, d in self.ports():
            cur = port_counters(d)
            seen[(dev, port)] = (now, cur)
            prev = self._prev.get((dev, port))
            row: dict[str, object] = {"device": dev, "port": port}
            if prev is not None:
                for name, (_, factor) in FIELDS.items():
                    row[name] = rate(prev[1][name], cur[name], now - prev[0], factor)
            self.mark_row(f"{dev}/{port}", self.fields["rdma"], row)
            if any(
                v is not None
                for k, v in row.items()
                if k
                not in (
                    "device",
                    "port",
                )
            ):
                rows.append(row)  # a row with no value (a first tick's rates, no link speed) carries nothing
        self._prev = seen
        return {"rdma": rows}
