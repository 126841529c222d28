"""Any PCI accelerator exposing Linux hwmon: Tenstorrent (tt-kmd), Furiosa, others.

Walks ``<sysfs_root>/class/hwmon/hwmonN``, follows ``device`` to the PCI function and keeps the
accelerators: PCI class 0x12 (processing accelerator) or 0x0b40 (co-processor), or a known NPU vendor
(Tenstorrent 0x1e52, Furiosa 0x1ed2). Devices of a vendor another sampler claims (its ``pci_vendor_ids``:
NVIDIA for `nvml`, AMD for `amdgpu`) are left to it (one device, one source). hwmon units (kernel
``Documentation/hwmon/sysfs-interface``): ``temp*`` m°C, ``power*`` µW, ``energy*`` µJ, ``in*`` mV, ``curr*`` mA,
converted here.

Tenstorrent adds ``<pci>/tenstorrent/tenstorrent!N/``: ``tt_aiclk`` (MHz) and
``pcie_perf_counters/``, twelve counters of 32-byte flits (two NOCs each) that wrap at 2^32 and cannot
be reset; their deltas modulo 2^32 become bytes/s. Into the chip (RX): ``slv_posted_wr_data_word_received``,
``slv_nonposted_wr_data_word_received``, ``mst_rd_data_word_received``; out of it (TX):
``slv_rd_data_word_sent``, ``mst_posted_wr_data_word_sent``, ``mst_nonposted_wr_data_word_sent``.
``flit_bytes`` and ``counter_bits`` are options because sources disagree (one describes 4-byte words in
u64 counters): verify on hardware.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from agents.samplers.base import (
    Row,
    Rows,
    SamplerBase,
    SamplerContext,
    config_error,
    counter_delta,
    pci_vendors_claimed,
    read_int,
    read_text,
    register,
    scaled,
)

VENDORS = {0x1E52: ("tenstorrent", "tt"), 0x1ED2: ("furiosa", "furiosa")}
"""PCI vendor id -> (vendor tag, device name prefix) of the NPUs this sampler claims."""
BDF = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
RX_COUNTERS = ("slv_posted_wr_data_word_received", "slv_nonposted_wr_data_word_received", "mst_rd_data_word_received")
TX_COUNTERS = ("slv_rd_data_word_sent", "mst_posted_wr_data_word_sent", "mst_nonposted_wr_data_word_sent")


def is_accelerator(pci_class: int | None, vendor: int | None, elsewhere: Collection[int] = ()) -> bool:
    """An accelerator this sampler reports: a known NPU vendor, or an accelerator PCI class whose vendor no other
    sampler claims (``elsewhere``: their PCI vendor ids, see `pci_vendors_claimed`)."""
    if vendor in VENDORS:
        return True
    if vendor in elsewhere or pci_class is None:
        return False
    return pci_class >> 16 == 0x12 or pci_class >> 8 == 0x0B40


@dataclass
class _Chip:
    name: str
    vendor: str
    model: str
    pci_bus: str
    pci_dir: Path
    hwmon: Path
    tt_dir: Path | None
    lost: bool = False
    prev_flits: tuple[float, dict[str, int | None]] | None = None
    files: dict[str, Path] = field(default_factory=dict)


@register("hwmon")
class HwmonSampler(SamplerBase):
    """Temperature, power, current, voltage (and Tenstorrent PCIe traffic) of hwmon accelerators."""

    fields: ClassVar = {
        "accel": (
            "temp_c",
            "power_w",
            "power_avg_w",
            "power_limit_w",
            "energy_j",
            "current_a",
            "voltage_v",
            "sm_clock_mhz",
            "pcie_tx_bytes_per_s",
            "pcie_rx_bytes_per_s",
        ),
        "accel_event": ("code", "message"),
    }
    pci_vendor_ids: ClassVar = tuple(VENDORS)
    order: ClassVar = 30

    def __init__(
        self,
        sysfs_root: Path = Path("/sys"),
        devices: list[str] | None = None,
        flit_bytes: int = 32,
        counter_bits: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.sysfs_root = Path(sysfs_root)
        self.flit_bytes = flit_bytes
        self.counter_bits = counter_bits
        self.clock = clock
        self._chips = self._discover(devices)

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> HwmonSampler:
        opts = dict(ctx.options)
        devices = opts.pop("devices", None)
        flit_bytes = int(opts.pop("flit_bytes", 32))
        counter_bits = int(opts.pop("counter_bits", 32))
        if opts:
            raise config_error(
                f"unknown option(s) {sorted(opts)} (known: devices, flit_bytes, counter_bits)", "samplers.hwmon"
            )
        return cls(ctx.sysfs_root, devices, flit_bytes, counter_bits)

    def _discover(self, wanted: list[str] | None) -> list[_Chip]:
        base = self.sysfs_root / "class/hwmon"
        found: list[tuple[str, Path, Path]] = []
        elsewhere = pci_vendors_claimed(but=self.name)
        for hw in sorted(base.glob("hwmon*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
            dev = hw / "device"
            if not dev.exists():
                continue
            pci_dir = dev.resolve()
            if not BDF.fullmatch(pci_dir.name):
                continue
            if not is_accelerator(read_int(pci_dir / "class"), read_int(pci_dir / "vendor"), elsewhere):
                continue
            found.append((pci_dir.name, hw, pci_dir))
        chips: list[_Chip] = []
        counts: dict[str, int] = {}
        for bdf, hw, pci_dir in sorted(found):
            vendor_id = read_int(pci_dir / "vendor")
            vendor, prefix = VENDORS.get(vendor_id or -1, ("other", "accel"))
            name = f"{prefix}{counts.get(prefix, 0)}"
            counts[prefix] = counts.get(prefix, 0) + 1
            tt_dirs = sorted((pci_dir / "tenstorrent").glob("tenstorrent!*")) if vendor == "tenstorrent" else []
            tt_dir = tt_dirs[0] if tt_dirs else None
            model = (tt_dir and read_text(tt_dir / "tt_card_type")) or read_text(hw / "name") or vendor
            if wanted and name not in wanted and bdf not in wanted:
                continue
            chip = _Chip(name, vendor, model, bdf, pci_dir, hw, tt_dir)
            chip.files = self._files(hw)
            chips.append(chip)
        return chips

    @staticmethod
    def _files(hw: Path) -> dict[str, Path]:
        """The first sensor of each kind, preferring labelled ASIC / board sensors."""
        out: dict[str, Path] = {}
        for key, pattern in (
            ("temp", "temp*_input"),
            ("power", "power*_input"),
            ("power_avg", "power*_average"),
            ("power_cap", "power*_cap"),
            ("power_max", "power*_max"),
            ("energy", "energy*_input"),
            ("curr", "curr*_input"),
            ("in", "in*_input"),
        ):
            paths = sorted(hw.glob(pattern))
            if paths:
                out[key] = paths[0]
        return out

    def devices(self) -> list[str]:
        return [c.name for c in self._chips]

    def read(self, ts: float) -> Rows:
        rows: list[Row] = []
        events: list[Row] = []
        now = self.clock()
        for chip in self._chips:
            present = chip.hwmon.exists() and (chip.pci_dir / "vendor").exists()
            if not present:
                if not chip.lost:
                    chip.lost, chip.prev_flits = True, None
                    events.append(self._event(chip, "device_lost", "hwmon device vanished"))
                continue
            if chip.lost:
                chip.lost = False
                events.append(self._event(chip, "device_back", "hwmon device is back"))
            rows.append(self._read_chip(chip, now))
        return {"accel": rows, "accel_event": events}

    def _event(self, chip: _Chip, kind: str, message: str) -> Row:
        return {
            "time": time.time_ns(),
            "device": chip.name,
            "vendor": chip.vendor,
            "kind": kind,
            "code": 0,
            "message": message,
        }

    def _read_chip(self, chip: _Chip, now: float) -> Row:
        f = chip.files

        def val(key: str, factor: float) -> float | None:
            return scaled(read_int(f[key]), factor) if key in f else None

        instant, average = val("power", 1e-6), val("power_avg", 1e-6)  # µW -> W
        row: Row = {
            "device": chip.name,
            "vendor": chip.vendor,
            "model": chip.model,
            "pci_bus": chip.pci_bus,
            "temp_c": val("temp", 1e-3),  # m°C -> °C
            "power_w": instant if instant is not None else average,
            "power_avg_w": average,
            "power_limit_w": val("power_cap", 1e-6) if "power_cap" in f else val("power_max", 1e-6),
            "energy_j": val("energy", 1e-6),  # µJ -> J
            "current_a": val("curr", 1e-3),  # mA -> A
            "voltage_v": val("in", 1e-3),  # mV -> V
        }
        if chip.tt_dir is not None:
            row["sm_clock_mhz"] = scaled(read_int(chip.tt_dir / "tt_aiclk"), 1.0)
            row.update(self._flit_rates(chip, now))
        self.mark_row(chip.name, self.fields["accel"], row)
        return row

    def _flit_rates(self, chip: _Chip, now: float) -> Row:
        assert chip.tt_dir is not None
        d = chip.tt_dir / "pcie_perf_counters"
        if not d.is_dir():
            return {}
        cur = {f"{n}{i}": read_int(d / f"{n}{i}") for n in RX_COUNTERS + TX_COUNTERS for i in (0, 1)}
        prev, chip.prev_flits = chip.prev_flits, (now, cur)
        if prev is None or now <= prev[0]:
            return {}
        dt = now - prev[0]
        out: Row = {}
        for key, names in (("pcie_rx_bytes_per_s", RX_COUNTERS), ("pcie_tx_bytes_per_s", TX_COUNTERS)):
            deltas = [
                counter_delta(prev[1].get(f"{n}{i}"), cur[f"{n}{i}"], self.counter_bits) for n in names for i in (0, 1)
            ]
            known = [x for x in deltas if x is not None]
            out[key] = sum(known) * self.flit_bytes / dt if known else None
        return out
