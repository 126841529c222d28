"""NVIDIA GPUs through NVML (`nvidia-ml-py`, imported as ``pynvml``).

One door to NVML, `_query`: NotSupported and FunctionNotFound make the field absent (and the call is
not made again for that device), GPU-is-lost marks the device lost (an `accel_event`), any other
error counts as a read error and the field is absent this tick.

What is read, per device per tick (units converted here, names carry the unit):

- temperature: `nvmlDeviceGetTemperatureV` (not the deprecated `nvmlDeviceGetTemperature`), memory
  temperature from field `NVML_FI_DEV_MEMORY_TEMP`;
- power: field `NVML_FI_DEV_POWER_INSTANT` (mW -> W), else `nvmlDeviceGetPowerUsage` (a 1 s average on
  Ampere and newer); `NVML_FI_DEV_POWER_AVERAGE`; energy counter (mJ -> J); enforced limit (mW -> W);
- PCIe TX/RX: the cumulative byte counters `NVML_FI_DEV_PCIE_COUNT_{TX,RX}_BYTES` turned into B/s by
  deltas; where those are unsupported, `nvmlDeviceGetPcieThroughput` (KB/s over a 20 ms window, so it
  blocks) runs on one thread per device and the tick reports its latest value, whose age shows in
  `staleness_s`; link generation and width, replay counter;
- clocks (SM, memory), utilisation, memory, fan, clock-event (throttle) reasons, volatile ECC totals;
- XID errors through the NVML event set on a thread, reported as `accel_event` rows (kind ``xid``);
- running compute and graphics processes: host PID -> memory, for the tenants sampler.

Per read and device the sampler makes one ``nvmlDeviceGetFieldValues`` (power instant and average, PCIe byte
counters, memory temperature, and the fields that give what a function gives: energy
``NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, replays ``NVML_FI_DEV_PCIE_REPLAY_COUNTER``, the enforced limit
``NVML_FI_DEV_POWER_CURRENT_LIMIT``, volatile ECC totals ``NVML_FI_DEV_ECC_{SBE,DBE}_VOL_TOTAL``: `FIELD_FALLBACK`)
and the calls of `CALLS`, each resolved once per device; ``nvmlDeviceGetPowerUsage`` only where the instant
field is unsupported. A field the driver answers NotSupported for is not asked again and its function is asked
instead (an old driver without field values gets every value from the functions), so the values are the same
either way.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agents.samplers.base import Row, Rows, SamplerBase, SamplerContext, config_error, counter_delta, register, scaled

log = logging.getLogger(__name__)

# NVML constants, copied so the module imports (and FakeNvml works) without the library.
FI_ECC_SBE_VOL = 3  # NVML_FI_DEV_ECC_SBE_VOL_TOTAL
FI_ECC_DBE_VOL = 4  # NVML_FI_DEV_ECC_DBE_VOL_TOTAL
FI_MEMORY_TEMP = 82
FI_TOTAL_ENERGY = 83  # NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION
FI_PCIE_REPLAY = 94  # NVML_FI_DEV_PCIE_REPLAY_COUNTER
FI_POWER_AVERAGE = 185
FI_POWER_INSTANT = 186
FI_POWER_CURRENT_LIMIT = 190
FI_PCIE_COUNT_TX_BYTES = 197
FI_PCIE_COUNT_RX_BYTES = 198
MEMORY_ERROR_CORRECTED, MEMORY_ERROR_UNCORRECTED = 0, 1
VOLATILE_ECC = 0
FIELD_FALLBACK: dict[int, tuple[str, str, tuple[int, ...]]] = {
    FI_TOTAL_ENERGY: ("energy", "nvmlDeviceGetTotalEnergyConsumption", ()),
    FI_PCIE_REPLAY: ("replay", "nvmlDeviceGetPcieReplayCounter", ()),
    FI_POWER_CURRENT_LIMIT: ("power_limit", "nvmlDeviceGetEnforcedPowerLimit", ()),
    FI_ECC_SBE_VOL: ("ecc_c", "nvmlDeviceGetTotalEccErrors", (MEMORY_ERROR_CORRECTED, VOLATILE_ECC)),
    FI_ECC_DBE_VOL: ("ecc_u", "nvmlDeviceGetTotalEccErrors", (MEMORY_ERROR_UNCORRECTED, VOLATILE_ECC)),
}
"""Fields that give what a function gives (the same counter, the same unit: nvml.h), read in the one field-values
call; where the driver answers NotSupported for the field (or has no field-values call), the function is asked."""
FIELD_IDS = (
    FI_POWER_INSTANT,
    FI_POWER_AVERAGE,
    FI_PCIE_COUNT_TX_BYTES,
    FI_PCIE_COUNT_RX_BYTES,
    FI_MEMORY_TEMP,
    *FIELD_FALLBACK,
)
TEMPERATURE_GPU = 0
CLOCK_SM, CLOCK_MEM = 1, 2
PCIE_UTIL_TX_BYTES, PCIE_UTIL_RX_BYTES = 0, 1
EVENT_XID = 0x8
ERROR_NOT_SUPPORTED = 3
ERROR_TIMEOUT = 10
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15
KIB = 1024  # NVML's "KB/s" of nvmlDeviceGetPcieThroughput are KiB/s (nvitop multiplies by 1024 too)

# Clock-event (throttle) reason bits of nvmlDeviceGetCurrentClocksEventReasons.
REASON_IDLE = 0x1
REASON_THERMAL = 0x20 | 0x40  # SW thermal slowdown, HW thermal slowdown
REASON_POWER = 0x4 | 0x80  # SW power cap, HW power brake slowdown

# valueType of nvmlFieldValue_t -> member of its value union
_VALUE_MEMBER = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


_UNRESOLVED = object()

CALLS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("util", "nvmlDeviceGetUtilizationRates", ()),
    ("mem", "nvmlDeviceGetMemoryInfo", ()),
    ("throttle", "nvmlDeviceGetCurrentClocksEventReasons", ()),
    ("temp", "nvmlDeviceGetTemperatureV", (TEMPERATURE_GPU,)),
    ("sm_clock", "nvmlDeviceGetClockInfo", (CLOCK_SM,)),
    ("mem_clock", "nvmlDeviceGetClockInfo", (CLOCK_MEM,)),
    ("fan", "nvmlDeviceGetFanSpeed", ()),
    ("link_gen", "nvmlDeviceGetCurrPcieLinkGeneration", ()),
    ("link_width", "nvmlDeviceGetCurrPcieLinkWidth", ()),
    ("compute_procs", "nvmlDeviceGetComputeRunningProcesses", ()),
    ("graphics_procs", "nvmlDeviceGetGraphicsRunningProcesses", ()),
)
"""What a read asks of every device besides the field values: (key, NVML function, arguments after the handle)."""


class DeviceLostError(Exception):
    """NVML says the GPU fell off the bus (internal to this module)."""


def throttle_flags(mask: int | None) -> dict[str, Any]:
    """Clock-event reason bitmask -> thermal / power / other booleans (idle is not a throttle)."""
    if mask is None:
        return {"throttle_thermal": None, "throttle_power": None, "throttle_other": None, "throttle_reasons": None}
    return {
        "throttle_thermal": bool(mask & REASON_THERMAL),
        "throttle_power": bool(mask & REASON_POWER),
        "throttle_other": bool(mask & ~(REASON_IDLE | REASON_THERMAL | REASON_POWER)),
        "throttle_reasons": int(mask),
    }


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass
class _Device:
    name: str
    index: int
    handle: Any
    model: str
    pci_bus: str
    lost: bool = False
    lost_at: float = 0.0
    unsupported: set[str] = field(default_factory=set)
    field_ids: list[int] = field(default_factory=lambda: list(FIELD_IDS))  # less those answering NotSupported
    field_slots: list[int] = field(default_factory=lambda: list(range(len(FIELD_IDS))))  # their FIELD_IDS index
    plan: tuple[tuple[int, Callable[..., Any], tuple[int, ...]], ...] | None = None  # see NvmlSampler._plan
    prev_counters: tuple[float, int | None, int | None] | None = None
    throughput: tuple[float, float | None, float | None] | None = None  # (monotonic at, tx B/s, rx B/s)
    thread: threading.Thread | None = None


@register("nvml")
class NvmlSampler(SamplerBase):
    """NVIDIA GPUs via NVML."""

    fields: ClassVar = {
        "accel": (
            "temp_c",
            "temp_mem_c",
            "power_w",
            "power_avg_w",
            "power_limit_w",
            "energy_j",
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
    vendor: ClassVar = "nvidia"
    pci_vendor_ids: ClassVar = (0x10DE,)
    order: ClassVar = 10  # first: it feeds the tenants sampler with accelerator memory per host PID

    def __init__(
        self,
        nvml: Any = None,
        devices: list[str] | None = None,
        name_prefix: str = "gpu",
        cadence_s: float = 1.0,
        events: bool = True,
        retry_lost_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if nvml is None:
            import pynvml as nvml
        self.nvml = nvml
        self.cadence_s = cadence_s
        self.retry_lost_s = retry_lost_s
        self.clock = clock
        self.errors = 0
        self._stop = threading.Event()
        self._events: queue.SimpleQueue[Row] = queue.SimpleQueue()
        self._proc_mem: dict[int, int] = {}
        self._warned: set[str] = set()
        self._funcs: dict[str, Any] = {}
        nvml.nvmlInit()
        self._devices: list[_Device] = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            pci = _text(nvml.nvmlDeviceGetPciInfo(handle).busId).lower()
            dev = _Device(f"{name_prefix}{i}", i, handle, _text(nvml.nvmlDeviceGetName(handle)), pci)
            if devices and dev.name not in devices and dev.pci_bus not in devices:
                continue
            self._devices.append(dev)
        self._event_thread: threading.Thread | None = None
        if events and self._devices:
            self._start_events()

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> NvmlSampler:
        opts = dict(ctx.options)
        devices = opts.pop("devices", None)
        prefix = str(opts.pop("name_prefix", "gpu"))
        events = bool(opts.pop("events", True))
        if opts:
            raise config_error(
                f"unknown option(s) {sorted(opts)} (known: devices, name_prefix, events)", "samplers.nvml"
            )
        return cls(devices=devices, name_prefix=prefix, cadence_s=ctx.cadence_s, events=events)

    # --- NVML access --------------------------------------------------------------------------

    def _query(self, dev: _Device, key: str, func_name: str, *args: Any) -> Any:
        """Call ``nvml.<func_name>(handle, *args)``; None when unsupported or failing."""
        if key in dev.unsupported:
            return None
        func = self._funcs.get(func_name, _UNRESOLVED)
        if func is _UNRESOLVED:  # looked up once: the per-read path is a dict hit and the call
            func = self._funcs[func_name] = getattr(self.nvml, func_name, None)
        if func is None:
            dev.unsupported.add(key)
            return None
        try:
            return func(dev.handle, *args)
        except self.nvml.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code == ERROR_GPU_IS_LOST:
                raise DeviceLostError(str(exc)) from None
            if code in (ERROR_NOT_SUPPORTED, ERROR_FUNCTION_NOT_FOUND):
                dev.unsupported.add(key)
                if code == ERROR_FUNCTION_NOT_FOUND and func_name not in self._warned:
                    self._warned.add(func_name)
                    log.info("NVML has no %s (old driver); %s is absent", func_name, key)
                return None
            self.errors += 1
            return None

    def _field_values(self, dev: _Device) -> list[Any]:
        """The value of each of `FIELD_IDS` (in that order; None where it did not answer), from one
        ``nvmlDeviceGetFieldValues``; a field answering NotSupported is not asked again (its `FIELD_FALLBACK`
        function, if any, is asked instead)."""
        out: list[Any] = [None] * len(FIELD_IDS)
        ids = dev.field_ids
        raw = self._query(dev, "field_values", "nvmlDeviceGetFieldValues", ids) if ids else None
        if raw is None:
            return out
        dropped = None
        for slot, v in zip(dev.field_slots, raw, strict=False):
            ret = v.nvmlReturn
            if ret == 0:
                out[slot] = getattr(v.value, _VALUE_MEMBER.get(v.valueType, "ullVal"))
            elif ret == ERROR_NOT_SUPPORTED:
                dropped = [v.fieldId] if dropped is None else [*dropped, v.fieldId]
        if dropped:
            dev.field_ids = [f for f in ids if f not in dropped]
            dev.field_slots = [FIELD_IDS.index(f) for f in dev.field_ids]
        return out

    def _fallback(self, dev: _Device, field_id: int) -> Any:
        """The function standing for a field that did not answer (`FIELD_FALLBACK`)."""
        key, func_name, args = FIELD_FALLBACK[field_id]
        return self._query(dev, key, func_name, *args)

    # --- reading ------------------------------------------------------------------------------

    def devices(self) -> list[str]:
        return [d.name for d in self._devices]

    def process_memory(self) -> dict[int, int]:
        """Host PID -> device memory bytes over all GPUs, as of the last read (for `tenants`)."""
        return dict(self._proc_mem)

    def read(self, ts: float) -> Rows:
        now = self.clock()
        rows: list[Row] = []
        events: list[Row] = []
        proc_mem: dict[int, int] = {}
        for dev in self._devices:
            if dev.lost:
                if now - dev.lost_at >= self.retry_lost_s:
                    self._retry(dev, now, events)
                if dev.lost:
                    continue
            try:
                rows.append(self._read_device(dev, now, proc_mem))
            except DeviceLostError as exc:
                dev.lost, dev.lost_at, dev.prev_counters = True, now, None
                events.append(self._event(dev, "device_lost", ERROR_GPU_IS_LOST, f"GPU lost: {exc}"))
                log.warning("%s (%s) is lost: %s", dev.name, dev.pci_bus, exc)
        self._proc_mem = proc_mem
        pending = self._events
        while not pending.empty():  # the XID thread only adds: no exception raised per read to find it empty
            events.append(pending.get_nowait())
        return {"accel": rows, "accel_event": events}

    def _event(self, dev: _Device, kind: str, code: int, message: str) -> Row:
        return {
            "time": time.time_ns(),
            "device": dev.name,
            "vendor": self.vendor,
            "kind": kind,
            "code": code,
            "message": message,
        }

    def _retry(self, dev: _Device, now: float, events: list[Row]) -> None:
        dev.lost_at = now
        try:
            handle = self.nvml.nvmlDeviceGetHandleByPciBusId(dev.pci_bus)
            self.nvml.nvmlDeviceGetTemperatureV(handle, TEMPERATURE_GPU)
        except self.nvml.NVMLError:
            return
        dev.handle, dev.lost = handle, False
        events.append(self._event(dev, "device_back", 0, "GPU answers again"))

    def _plan(self, dev: _Device) -> tuple[tuple[int, Callable[..., Any], tuple[int, ...]], ...]:
        """The device's per-read calls (`CALLS`) as (slot, bound function, arguments), resolved once; a function
        the library lacks is left out (its field absent), one answering NotSupported is dropped by `_failed`."""
        if dev.plan is None:
            plan = []
            for i, (key, func_name, args) in enumerate(CALLS):
                func = getattr(self.nvml, func_name, None)
                if func is None or key in dev.unsupported:
                    dev.unsupported.add(key)
                    continue
                plan.append((i, func, args))
            dev.plan = tuple(plan)
        return dev.plan

    def _failed(self, dev: _Device, slot: int, exc: Exception) -> None:
        """A planned call raised an NVML error: the device is lost (raises `DeviceLostError`), the call is not
        supported (not made again) or failed this time (counted)."""
        key, func_name, _ = CALLS[slot]
        code = getattr(exc, "value", None)
        if code == ERROR_GPU_IS_LOST:
            raise DeviceLostError(str(exc)) from None
        if code in (ERROR_NOT_SUPPORTED, ERROR_FUNCTION_NOT_FOUND):
            dev.unsupported.add(key)
            dev.plan = tuple(p for p in dev.plan or () if p[0] != slot)
            if code == ERROR_FUNCTION_NOT_FOUND and func_name not in self._warned:
                self._warned.add(func_name)
                log.info("NVML has no %s (old driver); %s is absent", func_name, key)
            return
        self.errors += 1

    def _read_device(self, dev: _Device, now: float, proc_mem: dict[int, int]) -> Row:
        instant, avg, tx, rx, mem_temp, energy, replay, limit, ecc_c, ecc_u = self._field_values(dev)
        vals: list[Any] = [None] * len(CALLS)
        handle, error = dev.handle, self.nvml.NVMLError
        for slot, func, args in dev.plan or self._plan(dev):
            try:
                vals[slot] = func(handle, *args)
            except error as exc:
                self._failed(dev, slot, exc)
        util, mem, mask, temp, sm_clock, mem_clock, fan, link_gen, link_width, compute, graphics = vals
        # the 1 s average is only the fallback of the instant field: not asked while the field answers
        power = instant if instant is not None else self._query(dev, "power_usage", "nvmlDeviceGetPowerUsage")
        if limit is None:
            limit = self._fallback(dev, FI_POWER_CURRENT_LIMIT)
        if energy is None:
            energy = self._fallback(dev, FI_TOTAL_ENERGY)
        if replay is None:
            replay = self._fallback(dev, FI_PCIE_REPLAY)
        if ecc_c is None:
            ecc_c = self._fallback(dev, FI_ECC_SBE_VOL)
        if ecc_u is None:
            ecc_u = self._fallback(dev, FI_ECC_DBE_VOL)
        row: Row = {
            "device": dev.name,
            "vendor": self.vendor,
            "model": dev.model,
            "pci_bus": dev.pci_bus,
            "temp_c": None if temp is None else temp * 1.0,
            "temp_mem_c": None if mem_temp is None else mem_temp * 1.0,
            "power_w": None if power is None else power * 1e-3,
            "power_avg_w": None if avg is None else avg * 1e-3,
            "power_limit_w": None if limit is None else limit * 1e-3,
            "energy_j": None if energy is None else energy * 1e-3,
            "pcie_link_gen": link_gen,
            "pcie_link_width": link_width,
            "pcie_replay_count": replay,
            "util_pct": None if util is None else float(util.gpu),
            "mem_util_pct": None if util is None else float(util.memory),
            "mem_used_bytes": None if mem is None else float(mem.used),
            "mem_total_bytes": None if mem is None else float(mem.total),
            "sm_clock_mhz": None if sm_clock is None else sm_clock * 1.0,
            "mem_clock_mhz": None if mem_clock is None else mem_clock * 1.0,
            "fan_pct": None if fan is None else fan * 1.0,
            "ecc_corrected_count": ecc_c,
            "ecc_uncorrected_count": ecc_u,
        }
        if mask is None:
            row["throttle_thermal"] = row["throttle_power"] = row["throttle_other"] = row["throttle_reasons"] = None
        else:
            row["throttle_thermal"] = bool(mask & REASON_THERMAL)
            row["throttle_power"] = bool(mask & REASON_POWER)
            row["throttle_other"] = bool(mask & ~(REASON_IDLE | REASON_THERMAL | REASON_POWER))
            row["throttle_reasons"] = int(mask)
        if tx is not None or rx is not None:
            prev, dev.prev_counters = dev.prev_counters, (now, tx, rx)
            if prev is not None and now > prev[0]:
                dt = now - prev[0]
                d_tx, d_rx = counter_delta(prev[1], tx, bits=None), counter_delta(prev[2], rx, bits=None)
                row["pcie_tx_bytes_per_s"] = None if d_tx is None else d_tx * (1 / dt)
                row["pcie_rx_bytes_per_s"] = None if d_rx is None else d_rx * (1 / dt)
        else:
            row.update(self._pcie_throughput(dev))
        for procs in (compute, graphics):
            for p in procs or ():
                used = getattr(p, "usedGpuMemory", None)
                if used is not None:
                    proc_mem[int(p.pid)] = proc_mem.get(int(p.pid), 0) + int(used)
        self.mark_row(dev.name, self.fields["accel"], row)
        return row

    def _pcie_throughput(self, dev: _Device) -> Row:
        """PCIe rates where the byte counters are unsupported: the latest of the reader thread."""
        if "throughput" in dev.unsupported:
            return {}
        if dev.thread is None:
            dev.thread = threading.Thread(
                target=self._throughput_loop, args=(dev,), name=f"nvml-pcie-{dev.name}", daemon=True
            )
            dev.thread.start()
        latest = dev.throughput
        if latest is None:
            return {}
        return {"pcie_tx_bytes_per_s": latest[1], "pcie_rx_bytes_per_s": latest[2]}

    def _throughput_loop(self, dev: _Device) -> None:
        """`nvmlDeviceGetPcieThroughput` blocks ~20 ms per direction: keep it off the tick."""
        next_at = self.clock()
        while not self._stop.is_set() and not dev.lost:
            try:
                tx = self._query(dev, "throughput", "nvmlDeviceGetPcieThroughput", PCIE_UTIL_TX_BYTES)
                rx = self._query(dev, "throughput", "nvmlDeviceGetPcieThroughput", PCIE_UTIL_RX_BYTES)
            except DeviceLostError:
                return
            if "throughput" in dev.unsupported:
                return
            dev.throughput = (self.clock(), scaled(tx, KIB), scaled(rx, KIB))
            next_at += self.cadence_s
            self._stop.wait(max(0.0, next_at - self.clock()))

    def staleness_s(self, now: float) -> float | None:
        ages = [self.clock() - d.throughput[0] for d in self._devices if d.throughput is not None and not d.lost]
        return max(ages) if ages else None

    # --- XID events ---------------------------------------------------------------------------

    def _start_events(self) -> None:
        try:
            event_set = self.nvml.nvmlEventSetCreate()
        except self.nvml.NVMLError as exc:
            log.info("NVML event set unavailable (%s): no XID events", exc)
            return
        by_handle: dict[Any, _Device] = {}
        for dev in self._devices:
            try:
                self.nvml.nvmlDeviceRegisterEvents(dev.handle, EVENT_XID, event_set)
                by_handle[_handle_key(dev.handle)] = dev
            except self.nvml.NVMLError as exc:
                log.info("%s: XID events not supported (%s)", dev.name, exc)
        if not by_handle:
            return
        self._event_set = event_set
        self._event_thread = threading.Thread(
            target=self._event_loop, args=(event_set, by_handle), name="nvml-xid", daemon=True
        )
        self._event_thread.start()

    def _event_loop(self, event_set: Any, by_handle: dict[Any, _Device]) -> None:
        while not self._stop.is_set():
            try:
                data = self.nvml.nvmlEventSetWait_v2(event_set, 500)
            except self.nvml.NVMLError as exc:
                if getattr(exc, "value", None) != ERROR_TIMEOUT:
                    self._stop.wait(1.0)
                continue
            dev = by_handle.get(_handle_key(data.device))
            if dev is None:
                continue
            code = int(data.eventData)
            self._events.put(self._event(dev, "xid", code, f"XID {code}"))

    def close(self) -> None:
        self._stop.set()
        threads = [d.thread for d in self._devices if d.thread] + [self._event_thread]
        for t in threads:
            if t is not None:
                t.join(timeout=2.0)
        if getattr(self, "_event_set", None) is not None:
            with contextlib.suppress(self.nvml.NVMLError):
                self.nvml.nvmlEventSetFree(self._event_set)
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()


def _handle_key(handle: Any) -> Any:
    """A hashable identity of an NVML device handle (a ctypes pointer in pynvml)."""
    value = getattr(handle, "contents", None)
    if value is not None:
        try:
            import ctypes

            return ctypes.addressof(value)
        except TypeError:
            pass
    return handle
