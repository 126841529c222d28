"""AMD GPUs through sysfs (``/sys/class/drm/cardN/device``), with `pyamdgpuinfo` where it adds something.

Sources, units converted here:

- hwmon (``device/hwmon/hwmonM``): ``temp*_input`` by label (edge, junction, mem; m°C -> °C),
  ``power1_input`` (instantaneous) and ``power1_average`` (µW -> W; socket power), ``power1_cap``,
  ``in0_input`` (mV -> V), ``energy1_input`` (µJ -> J), ``pwm1`` (0-255 -> %);
- device attributes: ``gpu_busy_percent``, ``mem_busy_percent``, ``mem_info_vram_{used,total}``,
  ``current_link_speed`` / ``current_link_width``, ``pcie_replay_count``, ``pp_dpm_{sclk,mclk}`` (the
  line marked ``*``), RAS ``ras/*_err_count`` (``ue:`` / ``ce:`` lines);
- ``gpu_metrics``: the binary blob (v1.1-v1.5) for clocks, throttle status, energy and, on MI300
  (v1.4+), the PCIe bandwidth, which is bidirectional only;
- ``pcie_bw`` (opt-in, ``pcie_bw = true``): message counts over a 1 s window: a read blocks for 1 s, so
  it runs on one thread per device and the tick reports the latest value with its age. Bytes are
  count x max payload size, an upper bound; the first number is taken as *sent* (TX), the second as
  *received*, as rocm_smi / amdsmi read it (the kernel comment disagrees: verify on hardware).

`pyamdgpuinfo` is GPL-3.0 and optional: the sampler runs without it and only uses it for memory and
load where sysfs lacks them. Sentinels (0xFFFF, 0xFFFFFFFF, ...) become absent, never 0.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agents.samplers.base import (
    Row,
    Rows,
    SamplerBase,
    SamplerContext,
    config_error,
    read_int,
    read_text,
    register,
    scaled,
)
from telemetry.schema import ACCEL

log = logging.getLogger(__name__)

AMD_VENDOR = 0x1002
ENERGY_UNIT_J = 2.0**-16  # gpu_metrics v1.4+: energy accumulator in 15.259 µJ (2^-16 J) units
GT_S_TO_GEN = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}
# ASIC-independent throttle bits (gpu_metrics v1.3 indep_throttle_status, amdgpu_smu.h SMU_THROTTLER_*):
# 0-15 power (PPT, SPL, ...), 16-31 current (TDC), 32-55 temperature, 56-63 other (PPM, FIT, APCC).
INDEP_POWER = (1 << 16) - 1
INDEP_THERMAL = ((1 << 56) - 1) & ~((1 << 32) - 1)
INDEP_CURRENT = ((1 << 32) - 1) & ~INDEP_POWER
INDEP_OTHER = ((1 << 64) - 1) & ~((1 << 56) - 1)
BIDIR_FIELD = "pcie_bidir_bytes_per_s"  # emitted only once the schema declares it
# gpu_metrics is one atomic snapshot: its clocks and throttle status win over the sysfs files.
_METRICS_WIN = {
    "sm_clock_mhz",
    "mem_clock_mhz",
    "throttle_thermal",
    "throttle_power",
    "throttle_other",
    "throttle_reasons",
}


u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


class _Header(ctypes.LittleEndianStructure):
    _fields_ = (("structure_size", u16), ("format_revision", u8), ("content_revision", u8))


class _V1_1(ctypes.LittleEndianStructure):  # noqa: N801 - kernel struct name
    """gpu_metrics_v1_1 .. v1_3 share this prefix (kgd_pp_interface.h); v1_3 appends voltages and the
    ASIC-independent throttle status."""

    _fields_ = (
        ("header", _Header),
        ("temperature_edge", u16),
        ("temperature_hotspot", u16),
        ("temperature_mem", u16),
        ("temperature_vrgfx", u16),
        ("temperature_vrsoc", u16),
        ("temperature_vrmem", u16),
        ("average_gfx_activity", u16),
        ("average_umc_activity", u16),
        ("average_mm_activity", u16),
        ("average_socket_power", u16),
        ("energy_accumulator", u64),
        ("system_clock_counter", u64),
        ("average_clocks", u16 * 7),
        ("current_gfxclk", u16),
        ("current_socclk", u16),
        ("current_uclk", u16),
        ("current_other_clocks", u16 * 4),
        ("throttle_status", u32),
        ("current_fan_speed", u16),
        ("pcie_link_width", u16),
        ("pcie_link_speed", u16),
        ("padding", u16),
        ("gfx_activity_acc", u32),
        ("mem_activity_acc", u32),
        ("temperature_hbm", u16 * 4),
        ("firmware_timestamp", u64),  # v1.2+
        ("voltage_soc", u16),
        ("voltage_gfx", u16),
        ("voltage_mem", u16),
        ("padding1", u16),  # v1.3
        ("indep_throttle_status", u64),  # v1.3
    )


def _mi300_fields(jpeg: bool) -> tuple[tuple[str, Any], ...]:
    """gpu_metrics_v1_4 (and v1_5 with ``jpeg``): the MI300 layout."""
    return (
        ("header", _Header),
        ("temperature_hotspot", u16),
        ("temperature_mem", u16),
        ("temperature_vrsoc", u16),
        ("curr_socket_power", u16),
        ("average_gfx_activity", u16),
        ("average_umc_activity", u16),
        ("vcn_activity", u16 * 4),
        *((("jpeg_activity", u16 * 32),) if jpeg else ()),
        ("energy_accumulator", u64),
        ("system_clock_counter", u64),
        ("throttle_status", u32),
        ("gfxclk_lock_status", u32),
        ("pcie_link_width", u16),
        ("pcie_link_speed", u16),
        ("xgmi_link_width", u16),
        ("xgmi_link_speed", u16),
        ("gfx_activity_acc", u32),
        ("mem_activity_acc", u32),
        ("pcie_bandwidth_acc", u64),
        ("pcie_bandwidth_inst", u64),
        ("pcie_l0_to_recov_count_acc", u64),
        ("pcie_replay_count_acc", u64),
        ("pcie_replay_rover_count_acc", u64),
        *((("pcie_nak_sent_count_acc", u32), ("pcie_nak_rcvd_count_acc", u32)) if jpeg else ()),
        ("xgmi_read_data_acc", u64 * 8),
        ("xgmi_write_data_acc", u64 * 8),
        ("firmware_timestamp", u64),
        ("current_gfxclk", u16 * 8),
        ("current_socclk", u16 * 4),
        ("current_vclk0", u16 * 4),
        ("current_dclk0", u16 * 4),
        ("current_uclk", u16),
        ("padding", u16),
    )


class _V1_4(ctypes.LittleEndianStructure):  # noqa: N801
    _fields_ = _mi300_fields(jpeg=False)


class _V1_5(ctypes.LittleEndianStructure):  # noqa: N801
    _fields_ = _mi300_fields(jpeg=True)


_SENTINEL = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}


def _v(struct: ctypes.Structure, name: str) -> int | None:
    value = getattr(struct, name)
    size = getattr(type(struct), name).size
    return None if value == _SENTINEL[size] else int(value)


def parse_gpu_metrics(blob: bytes) -> Row:
    """The ``gpu_metrics`` blob -> accel fields (plus ``pcie_bidir_bytes_per_s`` on MI300).

    Unknown revisions give {} (logged by the caller); fields a revision lacks, or that hold the
    all-ones sentinel, are absent."""
    if len(blob) < ctypes.sizeof(_Header):
        return {}
    head = _Header.from_buffer_copy(blob[: ctypes.sizeof(_Header)])
    fmt, content = head.format_revision, head.content_revision
    if fmt != 1:
        return {}
    if 1 <= content <= 3:
        cls: type[ctypes.Structure] = _V1_1
    elif content == 4:
        cls = _V1_4
    elif content == 5:
        cls = _V1_5
    else:
        return {}
    data = blob[: ctypes.sizeof(cls)].ljust(ctypes.sizeof(cls), b"\xff")
    m = cls.from_buffer_copy(data)
    out: Row = {}
    if cls is _V1_1:
        out["temp_c"] = _v(m, "temperature_edge")
        out["temp_hotspot_c"] = _v(m, "temperature_hotspot")
        out["temp_mem_c"] = _v(m, "temperature_mem")
        out["power_avg_w"] = _v(m, "average_socket_power")
        out["sm_clock_mhz"] = _v(m, "current_gfxclk")
        out["mem_clock_mhz"] = _v(m, "current_uclk")
        out["throttle_reasons"] = _v(m, "throttle_status")
        indep = _v(m, "indep_throttle_status") if content >= 3 else None
        if indep is not None:
            out["throttle_thermal"] = bool(indep & INDEP_THERMAL)
            out["throttle_power"] = bool(indep & (INDEP_POWER | INDEP_CURRENT))
            out["throttle_other"] = bool(indep & INDEP_OTHER)
            out["throttle_reasons"] = indep
    else:
        out["temp_hotspot_c"] = _v(m, "temperature_hotspot")
        out["temp_mem_c"] = _v(m, "temperature_mem")
        out["power_w"] = _v(m, "curr_socket_power")
        energy = _v(m, "energy_accumulator")
        out["energy_j"] = scaled(energy, ENERGY_UNIT_J)
        out["throttle_reasons"] = _v(m, "throttle_status")
        out["sm_clock_mhz"] = _first(m.current_gfxclk, 0xFFFF)
        out["mem_clock_mhz"] = _v(m, "current_uclk")
        out["pcie_replay_count"] = _v(m, "pcie_replay_count_acc")
        inst = _v(m, "pcie_bandwidth_inst")
        out[BIDIR_FIELD] = scaled(inst, 1e9)  # GB/s, both directions together (no RX/TX split on MI3xx)
    width, speed = _v(m, "pcie_link_width"), _v(m, "pcie_link_speed")
    out["pcie_link_width"] = width or None
    out["pcie_link_gen"] = GT_S_TO_GEN.get(speed / 10) if speed else None
    for key in ("temp_c", "temp_hotspot_c", "temp_mem_c", "power_w", "power_avg_w"):
        if key in out and out[key] is not None:
            out[key] = float(out[key])
    return out


def _first(values: Any, sentinel: int) -> int | None:
    v = int(values[0])
    return None if v in (sentinel, 0) else v


def parse_link_gen(text: str | None) -> int | None:
    """``current_link_speed`` ("16.0 GT/s PCIe", "8 GT/s") -> PCIe generation."""
    if not text:
        return None
    m = re.search(r"([\d.]+)\s*GT/s", text)
    return GT_S_TO_GEN.get(float(m.group(1))) if m else None


def parse_dpm_current(text: str | None) -> float | None:
    """``pp_dpm_sclk`` lines like ``1: 1200Mhz *`` -> the current level in MHz."""
    for line in (text or "").splitlines():
        if line.rstrip().endswith("*"):
            m = re.search(r"(\d+)\s*[Mm][Hh]z", line)
            if m:
                return float(m.group(1))
    return None


def parse_ras_counts(texts: list[str]) -> tuple[int | None, int | None]:
    """RAS ``*_err_count`` files ("ue: 0\\nce: 3") -> (corrected, uncorrected) summed over blocks."""
    ce = ue = None
    for text in texts:
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if not value.strip().isdigit():
                continue
            if key.strip() == "ce":
                ce = (ce or 0) + int(value)
            elif key.strip() == "ue":
                ue = (ue or 0) + int(value)
    return ce, ue


@dataclass
class _Card:
    name: str
    path: Path  # .../cardN/device
    pci_bus: str
    model: str
    hwmon: Path | None
    temp_files: dict[str, Path] = field(default_factory=dict)
    lost: bool = False
    pcie_bw: tuple[float, float | None, float | None] | None = None
    thread: threading.Thread | None = None
    gpu_info: Any = None


@register("amdgpu")
class AmdgpuSampler(SamplerBase):
    """AMD Instinct / Radeon GPUs via the amdgpu driver's sysfs."""

    fields: ClassVar = {
        "accel": (
            "temp_c",
            "temp_hotspot_c",
            "temp_mem_c",
            "power_w",
            "power_avg_w",
            "power_limit_w",
            "energy_j",
            "voltage_v",
            "pcie_tx_bytes_per_s",
            "pcie_rx_bytes_per_s",
            "pcie_link_gen",
            "pcie_link_width",
            "pcie_replay_count",
            "util_pct",
            "mem_util_pct",
            "mem_used_bytes",
            "mem_total_bytes",
            "sm_clock_mhz",
            "mem_clock_mhz",
            "fan_pct",
            "throttle_thermal",
            "throttle_power",
            "throttle_other",
            "throttle_reasons",
            "ecc_corrected_count",
            "ecc_uncorrected_count",
        ),
        "accel_event": ("code", "message"),
    }
    vendor: ClassVar = "amd"
    pci_vendor_ids: ClassVar = (AMD_VENDOR,)
    order: ClassVar = 20

    def __init__(
        self,
        sysfs_root: Path = Path("/sys"),
        devices: list[str] | None = None,
        name_prefix: str = "amd",
        pcie_bw: bool = False,
        cadence_s: float = 1.0,
        amdgpuinfo: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.sysfs_root = Path(sysfs_root)
        self.use_pcie_bw = pcie_bw
        self.cadence_s = cadence_s
        self.clock = clock
        self.amdgpuinfo = amdgpuinfo
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self.bidir = BIDIR_FIELD in ACCEL.field_index
        self._cards = self._discover(name_prefix, devices)

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> AmdgpuSampler:
        opts = dict(ctx.options)
        devices = opts.pop("devices", None)
        prefix = str(opts.pop("name_prefix", "amd"))
        pcie_bw = bool(opts.pop("pcie_bw", False))
        use_info = bool(opts.pop("pyamdgpuinfo", True))
        if opts:
            raise config_error(
                f"unknown option(s) {sorted(opts)} (known: devices, name_prefix, pcie_bw, pyamdgpuinfo)",
                "samplers.amdgpu",
            )
        info = None
        if use_info:
            try:
                import pyamdgpuinfo as info
            except ImportError:
                info = None
        return cls(ctx.sysfs_root, devices, prefix, pcie_bw, ctx.cadence_s, info)

    def _discover(self, prefix: str, wanted: list[str] | None) -> list[_Card]:
        drm = self.sysfs_root / "class/drm"
        cards: list[_Card] = []
        entries = (
            sorted((p for p in drm.glob("card*") if re.fullmatch(r"card\d+", p.name)), key=lambda p: int(p.name[4:]))
            if drm.is_dir()
            else []
        )
        for card in entries:
            dev = card / "device"
            if read_int(dev / "vendor") != AMD_VENDOR:
                continue
            name = f"{prefix}{len(cards)}"
            pci = dev.resolve().name if dev.exists() else ""
            if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", pci):
                pci = (read_text(dev / "uevent") or "").partition("PCI_SLOT_NAME=")[2].split()[0:1]
                pci = pci[0] if pci else ""
            hwmons = sorted((dev / "hwmon").glob("hwmon*"))
            model = read_text(dev / "product_name") or f"AMD {read_text(dev / 'device') or ''}".strip()
            c = _Card(name, dev, pci, model, hwmons[0] if hwmons else None)
            if c.hwmon is not None:
                c.temp_files = self._temp_files(c.hwmon)
            if wanted and c.name not in wanted and c.pci_bus not in wanted:
                continue
            if self.amdgpuinfo is not None:
                c.gpu_info = self._gpu_info(c.pci_bus)
            cards.append(c)
        return cards

    @staticmethod
    def _temp_files(hwmon: Path) -> dict[str, Path]:
        by_label = {"edge": "temp_c", "junction": "temp_hotspot_c", "mem": "temp_mem_c"}
        by_index = {"1": "temp_c", "2": "temp_hotspot_c", "3": "temp_mem_c"}
        out: dict[str, Path] = {}
        for inp in sorted(hwmon.glob("temp*_input")):
            idx = inp.name[4:].split("_")[0]
            label = read_text(hwmon / f"temp{idx}_label")
            key = by_label.get(label or "") if label else by_index.get(idx)
            if key and key not in out:
                out[key] = inp
        return out

    def _gpu_info(self, pci: str) -> Any:
        try:
            for i in range(self.amdgpuinfo.detect_gpus()):
                gpu = self.amdgpuinfo.get_gpu(i)
                if str(getattr(gpu, "pci_slot", "")).lower() == pci:
                    return gpu
        except Exception as exc:
            log.info("pyamdgpuinfo unusable: %s", exc)
        return None

    def devices(self) -> list[str]:
        return [c.name for c in self._cards]

    def read(self, ts: float) -> Rows:
        rows: list[Row] = []
        events: list[Row] = []
        for card in self._cards:
            present = (card.path / "vendor").exists()
            if not present:
                if not card.lost:
                    card.lost = True
                    events.append(self._event(card, "device_lost", "device vanished from sysfs"))
                continue
            if card.lost:
                card.lost = False
                if card.hwmon is not None and not card.hwmon.exists():
                    hwmons = sorted((card.path / "hwmon").glob("hwmon*"))
                    card.hwmon = hwmons[0] if hwmons else None
                    card.temp_files = self._temp_files(card.hwmon) if card.hwmon else {}
                events.append(self._event(card, "device_back", "device is back in sysfs"))
            rows.append(self._read_card(card))
        return {"accel": rows, "accel_event": events}

    def _event(self, card: _Card, kind: str, message: str) -> Row:
        return {
            "time": time.time_ns(),
            "device": card.name,
            "vendor": self.vendor,
            "kind": kind,
            "code": 0,
            "message": message,
        }

    def _read_card(self, card: _Card) -> Row:
        d, h = card.path, card.hwmon
        row: Row = {"device": card.name, "vendor": self.vendor, "model": card.model, "pci_bus": card.pci_bus}
        for key, path in card.temp_files.items():
            row[key] = scaled(read_int(path), 1e-3)  # m°C -> °C
        if h is not None:
            instant = scaled(read_int(h / "power1_input"), 1e-6)  # µW -> W
            average = scaled(read_int(h / "power1_average"), 1e-6)
            row["power_w"] = instant if instant is not None else average
            row["power_avg_w"] = average
            row["power_limit_w"] = scaled(read_int(h / "power1_cap"), 1e-6)
            row["voltage_v"] = scaled(read_int(h / "in0_input"), 1e-3)  # mV -> V
            row["energy_j"] = scaled(read_int(h / "energy1_input"), 1e-6)  # µJ -> J
            pwm = read_int(h / "pwm1")
            row["fan_pct"] = None if pwm is None else 100.0 * pwm / 255
        row["util_pct"] = scaled(read_int(d / "gpu_busy_percent"), 1.0)
        row["mem_util_pct"] = scaled(read_int(d / "mem_busy_percent"), 1.0)
        row["mem_used_bytes"] = scaled(read_int(d / "mem_info_vram_used"), 1.0)
        row["mem_total_bytes"] = scaled(read_int(d / "mem_info_vram_total"), 1.0)
        row["pcie_link_gen"] = parse_link_gen(read_text(d / "current_link_speed"))
        row["pcie_link_width"] = read_int(d / "current_link_width")
        row["pcie_replay_count"] = read_int(d / "pcie_replay_count")
        row["sm_clock_mhz"] = parse_dpm_current(read_text(d / "pp_dpm_sclk"))
        row["mem_clock_mhz"] = parse_dpm_current(read_text(d / "pp_dpm_mclk"))
        ras = [t for p in sorted((d / "ras").glob("*_err_count")) if (t := read_text(p))]
        if ras:
            row["ecc_corrected_count"], row["ecc_uncorrected_count"] = parse_ras_counts(ras)
        try:
            blob = (d / "gpu_metrics").read_bytes()
        except OSError:
            blob = b""
        if blob:
            metrics = parse_gpu_metrics(blob)
            if not metrics and "gpu_metrics" not in self._warned:
                self._warned.add("gpu_metrics")
                log.info("%s: gpu_metrics revision %s.%s not parsed", card.name, blob[2:3].hex(), blob[3:4].hex())
            for key, value in metrics.items():
                if key == BIDIR_FIELD:
                    if self.bidir:
                        row[key] = value
                elif value is not None and (row.get(key) is None or key in _METRICS_WIN):
                    row[key] = value
                else:
                    row.setdefault(key, None)
        if card.gpu_info is not None:
            self._fill_from_amdgpuinfo(card, row)
        if self.use_pcie_bw:
            self._pcie_bw(card, row)
        self.mark_row(card.name, self.fields["accel"], row)
        return row

    def _fill_from_amdgpuinfo(self, card: _Card, row: Row) -> None:
        gpu = card.gpu_info
        try:
            if row.get("mem_used_bytes") is None:
                row["mem_used_bytes"] = float(gpu.query_vram_usage())
            if row.get("mem_total_bytes") is None:
                row["mem_total_bytes"] = float(gpu.memory_info["vram_size"])
            if row.get("util_pct") is None:
                row["util_pct"] = 100.0 * float(gpu.query_load())
        except Exception as exc:
            if "pyamdgpuinfo" not in self._warned:
                self._warned.add("pyamdgpuinfo")
                log.info("%s: pyamdgpuinfo query failed: %s", card.name, exc)

    def _pcie_bw(self, card: _Card, row: Row) -> None:
        if card.thread is None:
            card.thread = threading.Thread(
                target=self._pcie_bw_loop, args=(card,), name=f"amdgpu-pcie-bw-{card.name}", daemon=True
            )
            card.thread.start()
        if card.pcie_bw is not None:
            row["pcie_tx_bytes_per_s"], row["pcie_rx_bytes_per_s"] = card.pcie_bw[1], card.pcie_bw[2]

    def _pcie_bw_loop(self, card: _Card) -> None:
        """``pcie_bw`` blocks for its 1 s window inside the kernel: keep it off the tick."""
        while not self._stop.is_set():
            text = read_text(card.path / "pcie_bw")
            parts = (text or "").split()
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                sent, received, mps = (int(p) for p in parts)
                card.pcie_bw = (self.clock(), float(sent * mps), float(received * mps))
            else:
                card.pcie_bw = None
                self._stop.wait(self.cadence_s)

    def staleness_s(self, now: float) -> float | None:
        ages = [self.clock() - c.pcie_bw[0] for c in self._cards if c.pcie_bw is not None]
        return max(ages) if ages else None

    def close(self) -> None:
        self._stop.set()
        for c in self._cards:
            if c.thread is not None:
                c.thread.join(timeout=0.1)
