"""Host CPU, memory and scheduler activity (measurements `host` and `host_core`).

CPU times, context switches, interrupts and the run-queue length come from one read of
``<proc_root>/stat`` per tick (the file psutil parses for `cpu_times`, `cpu_stats`); utilisation is
the share of non-idle time between two reads, so the first tick has no percentages (absent, not 0).
Memory, swap, CPU count and per-core frequency come from psutil.

What a co-tenant steals shows here too (issue 20):

- Pressure stall information, ``<proc_root>/pressure/{cpu,memory,io}``: the ``some`` / ``full`` lines'
  cumulative ``total=`` µs become ``{cpu,mem,io}_pressure_{some,full}_us_per_s`` (µs stalled per second,
  1e6 = all the time) from two reads; the ``avg10`` gauges are not used. No ``/proc/pressure`` (a kernel
  before 4.20 or built without PSI): the fields are absent. A file that is there but cannot be read (PSI
  turned off with ``psi=0`` answers EOPNOTSUPP; permissions) is counted once in the sampler's health
  (``errors_total``) and logged once; its fields stay absent.
- ``<proc_root>/vmstat``: major faults, workingset refaults (``_anon`` + ``_file``, or the older single
  counter), reclaim scans and steals (``kswapd`` + ``direct``), ``numa_miss`` and ``numa_foreign``, per second.
- resctrl memory-bandwidth monitoring of the root group (``<sysfs_root>/fs/resctrl/mon_data/mon_L3_*``,
  summed over L3 domains; `agents.samplers.resctrl`): ``mbm_total_bytes_per_s``, ``mbm_local_bytes_per_s``
  and ``llc_occupancy_bytes``, where resctrl is mounted with monitoring; absent elsewhere and for a domain
  that says ``Unavailable``.

Every rate is absent on the first tick and on a tick where its counter went back (`agents.samplers.procfs.rate`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import psutil

from agents.samplers.base import FileCache, Rows, SamplerBase, SamplerContext, config_error, read_int, register
from agents.samplers.procfs import PSI_RESOURCES, parse_flat, parse_pressure, rate, vmstat_counters
from agents.samplers.resctrl import read_mbm, resctrl_root
from telemetry.schema import MBM_FIELDS, PRESSURE_FIELDS

log = logging.getLogger(__name__)

# /proc/stat cpu columns: user nice system idle iowait irq softirq steal guest guest_nice (USER_HZ ticks).
_USER, _NICE, _SYSTEM, _IDLE, _IOWAIT, _IRQ, _SOFTIRQ, _STEAL = range(8)


def parse_proc_stat(text: str) -> tuple[dict[str, list[int]], dict[str, int]]:
    """``/proc/stat`` -> ({"cpu": [...], "cpu0": [...]}, {"ctxt": n, "intr": n, "procs_running": n})."""
    cpus: dict[str, list[int]] = {}
    counters: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key.startswith("cpu"):
            cpus[key] = [int(v) for v in parts[1:9]] + [0] * max(0, 8 - len(parts[1:9]))
        elif key in ("ctxt", "intr", "procs_running", "procs_blocked"):
            counters[key] = int(parts[1])
    return cpus, counters


MEMINFO_KEYS = (b"MemTotal:", b"MemAvailable:", b"SwapTotal:", b"SwapFree:")


def parse_meminfo(data: bytes) -> dict[bytes, int] | None:
    """``/proc/meminfo`` -> {b"MemTotal:": bytes, b"MemAvailable:": ..., b"SwapTotal:": ..., b"SwapFree:": ...}
    (kB -> bytes, as psutil reads them); None when one is missing (a kernel before 3.14 has no MemAvailable:
    psutil estimates it then)."""
    out: dict[bytes, int] = {}
    for line in data.split(b"\n"):
        key, _, rest = line.partition(b" ")
        if key in MEMINFO_KEYS:
            try:
                out[key] = int(rest.split()[0]) * 1024
            except (ValueError, IndexError):
                return None
    return out if len(out) == len(MEMINFO_KEYS) else None


def cpu_shares(prev: list[int], cur: list[int]) -> dict[str, float] | None:
    """Percent of time per state between two /proc/stat cpu lines; None if no time passed."""
    d = [max(0, c - p) for p, c in zip(prev, cur, strict=False)]
    total = sum(d[:8])  # guest time is already counted in user/nice
    if total <= 0:
        return None
    idle = d[_IDLE] + d[_IOWAIT] + d[_STEAL]
    return {
        "util_pct": 100.0 * (total - idle) / total,
        "user_pct": 100.0 * (d[_USER] + d[_NICE]) / total,
        "system_pct": 100.0 * (d[_SYSTEM] + d[_IRQ] + d[_SOFTIRQ]) / total,
        "iowait_pct": 100.0 * d[_IOWAIT] / total,
        "steal_pct": 100.0 * d[_STEAL] / total,
    }


CPU_HWMON_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal")


@register("host")
class HostSampler(SamplerBase):
    """CPU utilisation per core and total, load, memory, context switches, interrupts."""

    fields: ClassVar = {
        "host": (
            "cpu_util_pct",
            "cpu_user_pct",
            "cpu_system_pct",
            "cpu_iowait_pct",
            "cpu_steal_pct",
            "cpu_count",
            "load1",
            "load5",
            "load15",
            "mem_total_bytes",
            "mem_used_bytes",
            "mem_available_bytes",
            "swap_used_bytes",
            "ctx_switches_per_s",
            "interrupts_per_s",
            "procs_running",
            "cpu_temp_c",
            *(f.name for f in PRESSURE_FIELDS),
            "pgmajfault_per_s",
            "workingset_refault_per_s",
            "pgscan_per_s",
            "pgsteal_per_s",
            "numa_miss_per_s",
            "numa_foreign_per_s",
            *(f.name for f in MBM_FIELDS),
        ),
        "host_core": ("util_pct", "user_pct", "system_pct", "iowait_pct", "freq_mhz"),
    }
    enabled_by_default: ClassVar = True

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        sysfs_root: Path = Path("/sys"),
        per_core: bool = True,
        freq_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.proc_root = Path(proc_root)
        self.sysfs_root = Path(sysfs_root)
        self.per_core = per_core
        self.freq_every_s = freq_every_s
        self.clock = clock
        self.errors = 0
        """Files that exist but cannot be read, counted once each (the tick adds them to ``errors_total``)."""
        self._unreadable: set[Path] = set()
        self._counters: dict[str, float | None] = {}
        self._resctrl = resctrl_root(self.sysfs_root)
        self._prev: tuple[float, dict[str, list[int]], dict[str, int]] | None = None
        self._sockets: dict[str, str] = {}
        self._freq: list[float | None] = []
        self._freq_at = -1e18
        self._cpu_temp_files: list[Path] | None = None
        self._files = FileCache()  # /proc/stat, meminfo, vmstat, pressure: kept open, read from offset 0

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> HostSampler:
        opts = dict(ctx.options)
        per_core = bool(opts.pop("per_core", True))
        freq_every_s = float(opts.pop("freq_every_s", 5.0))
        if opts:
            raise config_error(f"unknown option(s) {sorted(opts)} (known: per_core, freq_every_s)", "samplers.host")
        return cls(ctx.proc_root, ctx.sysfs_root, per_core, freq_every_s)

    def _socket(self, core: str) -> str | None:
        if core not in self._sockets:
            pkg = read_int(self.sysfs_root / "devices/system/cpu" / f"cpu{core}" / "topology/physical_package_id")
            self._sockets[core] = "" if pkg is None else str(pkg)
        return self._sockets[core] or None

    def _core_freqs(self, now: float) -> list[float | None]:
        if now - self._freq_at >= self.freq_every_s:
            self._freq_at = now
            try:
                self._freq = [f.current or None for f in psutil.cpu_freq(percpu=True)]
            except (OSError, NotImplementedError, AttributeError):
                self._freq = []
        return self._freq

    def _cpu_temp_c(self) -> float | None:
        """Hottest reading of the CPU hwmon chips (coretemp, k10temp, zenpower), m°C -> °C; None if none."""
        if self._cpu_temp_files is None:
            self._cpu_temp_files = []
            base = self.sysfs_root / "class/hwmon"
            for chip in sorted(base.glob("hwmon*")) if base.is_dir() else []:
                name = (chip / "name").read_text().strip() if (chip / "name").is_file() else ""
                if name in CPU_HWMON_CHIPS:
                    self._cpu_temp_files.extend(sorted(chip.glob("temp*_input")))
        readings = [v for v in (read_int(p) for p in self._cpu_temp_files) if v is not None]
        return max(readings) / 1000.0 if readings else None

    def _text(self, path: Path) -> str | None:
        """A procfs file's text; None when absent (quietly: an old kernel) or unreadable (counted once)."""
        try:
            return self._files.file(path).read().decode()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            if path not in self._unreadable:
                self._unreadable.add(path)
                self.errors += 1
                log.warning("host sampler: %s exists but cannot be read (%s); its fields stay absent", path, exc)
            return None

    def _memory(self) -> tuple[int, int, int]:
        """(total, available, swap used) bytes: what psutil's ``virtual_memory`` and ``swap_memory`` give, from one
        read of ``<proc_root>/meminfo`` (kept open); psutil itself where that file lacks a line (an old kernel's
        missing MemAvailable, which psutil estimates) or is not there."""
        try:
            mem = parse_meminfo(self._files.file(self.proc_root / "meminfo").read())
        except OSError:
            mem = None
        if mem is None:
            vm, swap = psutil.virtual_memory(), psutil.swap_memory()
            return vm.total, vm.available, swap.used
        return mem[b"MemTotal:"], mem[b"MemAvailable:"], mem[b"SwapTotal:"] - mem[b"SwapFree:"]

    def _pressure_vmstat_mbm(self) -> tuple[dict[str, float | None], dict[str, float | None]]:
        """(cumulative counters by field: PSI µs, vmstat events, MBM bytes; gauges: LLC occupancy)."""
        counters: dict[str, float | None] = {}
        for res, fname in PSI_RESOURCES.items():
            text = self._text(self.proc_root / "pressure" / fname)
            totals = parse_pressure(text) if text is not None else {}
            for kind in ("some", "full"):
                counters[f"{res}_pressure_{kind}_us_per_s"] = totals.get(kind)
        text = self._text(self.proc_root / "vmstat")
        counters.update(vmstat_counters(parse_flat(text)) if text is not None else {})
        gauges: dict[str, float | None] = {}
        if self._resctrl is None:  # mounted after the agent started: one stat per tick finds it
            self._resctrl = resctrl_root(self.sysfs_root)
        if self._resctrl is not None:
            mbm = read_mbm(self._resctrl)
            counters["mbm_total_bytes_per_s"] = mbm["mbm_total_bytes"]
            counters["mbm_local_bytes_per_s"] = mbm["mbm_local_bytes"]
            gauges["llc_occupancy_bytes"] = mbm["llc_occupancy"]
        return counters, gauges

    def read(self, ts: float) -> Rows:
        mono = self.clock()
        cumulative, gauges = self._pressure_vmstat_mbm()
        prev_cumulative, self._counters = self._counters, cumulative
        cpus, counters = parse_proc_stat(self._files.file(self.proc_root / "stat").read().decode())
        prev, self._prev = self._prev, (mono, cpus, counters)
        total, available, swap_used = self._memory()
        load1, load5, load15 = os.getloadavg()
        row: dict[str, Any] = {
            "cpu_count": len(cpus) - 1 if "cpu" in cpus else psutil.cpu_count(),
            "load1": load1,
            "load5": load5,
            "load15": load15,
            "mem_total_bytes": float(total),
            "mem_used_bytes": float(total - available),
            "mem_available_bytes": float(available),
            "swap_used_bytes": float(swap_used),
            "procs_running": counters.get("procs_running"),
            "cpu_temp_c": self._cpu_temp_c(),
            **gauges,
        }
        cores: list[dict[str, Any]] = []
        if prev is not None:
            dt = mono - prev[0]
            for name, value in cumulative.items():
                row[name] = rate(prev_cumulative.get(name), value, dt)
            shares = cpu_shares(prev[1]["cpu"], cpus["cpu"]) if "cpu" in cpus and "cpu" in prev[1] else None
            if shares:
                row.update({f"cpu_{k}": v for k, v in shares.items()})
            for key, name in (("ctxt", "ctx_switches_per_s"), ("intr", "interrupts_per_s")):
                if dt > 0 and key in counters and key in prev[2] and counters[key] >= prev[2][key]:
                    row[name] = (counters[key] - prev[2][key]) / dt
            if self.per_core:
                freqs = self._core_freqs(mono)
                for key, times in cpus.items():
                    if key == "cpu" or key not in prev[1]:
                        continue
                    core = key[3:]
                    share = cpu_shares(prev[1][key], times)
                    idx = int(core)
                    cores.append(
                        {
                            "core": core,
                            "socket": self._socket(core),
                            "util_pct": share and share["util_pct"],
                            "user_pct": share and share["user_pct"],
                            "system_pct": share and share["system_pct"],
                            "iowait_pct": share and share["iowait_pct"],
                            "freq_mhz": freqs[idx] if idx < len(freqs) else None,
                        }
                    )
        self.mark_row("", self.fields["host"], row)
        if cores:
            self.mark_row("core", self.fields["host_core"], cores[0])
        return {"host": [row], "host_core": cores}

    def close(self) -> None:
        self._files.close()
