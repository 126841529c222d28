"""FakeNvml: a stand-in for the `pynvml` module, built in tests (no NVIDIA GPU here).

It implements the subset of NVML calls the nvml sampler makes, with the same return shapes and units
(mW, mJ, KB/s, bytes) and `NVMLError` codes. A `FakeGpu` holds each device's state; tests change it
between reads (counters, a lost GPU, XID events).
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NOT_SUPPORTED, TIMEOUT, FUNCTION_NOT_FOUND, GPU_IS_LOST, UNKNOWN = 3, 10, 13, 15, 999
VALUE_TYPE_DOUBLE, VALUE_TYPE_ULL = 0, 3


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        self.value = value
        super().__init__(f"NVML error {value}")


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    bus_id: str = "00000000:17:00.0"
    temp_c: int = 41
    power_mw: int = 301_500  # nvmlDeviceGetPowerUsage (1 s average on Hopper)
    fields: dict[int, int | float | None] = field(
        default_factory=lambda: {
            186: 312_250,  # POWER_INSTANT, mW
            185: 300_000,  # POWER_AVERAGE, mW
            197: 1_000_000,  # PCIE_COUNT_TX_BYTES
            198: 5_000_000,  # PCIE_COUNT_RX_BYTES
            82: 55,  # MEMORY_TEMP, °C
        }
    )
    energy_mj: int = 123_456_789
    limit_mw: int = 700_000
    util: tuple[int, int] = (87, 45)
    mem: tuple[int, int] = (40 * 2**30, 80 * 2**30)
    clocks: dict[int, int] = field(default_factory=lambda: {1: 1980, 2: 2619})
    throttle: int = 0x1
    ecc: tuple[int, int] = (2, 0)  # volatile (corrected, uncorrected) totals
    replay: int = 0  # PCIe replay counter
    fan_pct: int | None = None  # data-centre GPUs have no fan: NotSupported
    throughput_kb: tuple[int, int] = (2048, 4096)  # nvmlDeviceGetPcieThroughput, KB/s
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, used bytes)
    unsupported: set[str] = field(default_factory=set)  # function names answering NotSupported
    unsupported_fields: set[int] = field(default_factory=set)  # field ids answering NotSupported
    lost: bool = False


DERIVED_FIELDS: dict[int, tuple[str, Any]] = {
    3: ("nvmlDeviceGetTotalEccErrors", lambda g: g.ecc[0]),  # NVML_FI_DEV_ECC_SBE_VOL_TOTAL
    4: ("nvmlDeviceGetTotalEccErrors", lambda g: g.ecc[1]),  # NVML_FI_DEV_ECC_DBE_VOL_TOTAL
    83: ("nvmlDeviceGetTotalEnergyConsumption", lambda g: g.energy_mj),  # NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION
    94: ("nvmlDeviceGetPcieReplayCounter", lambda g: g.replay),  # NVML_FI_DEV_PCIE_REPLAY_COUNTER
    190: ("nvmlDeviceGetEnforcedPowerLimit", lambda g: g.limit_mw),  # NVML_FI_DEV_POWER_CURRENT_LIMIT
}
"""Field id -> (the function giving the same value, its value from a `FakeGpu`); nvml.h documents each pair."""


class FakeNvml:
    """A fake `pynvml` module: ``NvmlSampler(nvml=FakeNvml([FakeGpu(), ...]))``."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu], missing: tuple[str, ...] = ()) -> None:
        self.gpus = gpus
        self.events: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()  # (gpu index, xid)
        self.calls: dict[str, int] = {}
        self._answers: dict[tuple[int, Any, type], Any] = {}  # (field id, value, type) -> its nvmlFieldValue_t
        self.initialised = False
        for name in missing:  # functions an old driver lacks: getattr fails like a missing symbol
            setattr(self, name, None)

    # -- helpers -----------------------------------------------------------------------------------
    def _gpu(self, handle: int, func: str) -> FakeGpu:
        self.calls[func] = self.calls.get(func, 0) + 1
        gpu = self.gpus[handle]
        if gpu.lost:
            raise NVMLError(GPU_IS_LOST)
        if func in gpu.unsupported:
            raise NVMLError(NOT_SUPPORTED)
        return gpu

    # -- library -----------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetHandleByPciBusId(self, bus: str) -> int:
        for i, g in enumerate(self.gpus):
            if g.bus_id.lower() == bus.lower() and not g.lost:
                return i
        raise NVMLError(GPU_IS_LOST)

    def nvmlDeviceGetName(self, h: int) -> str:
        return self.gpus[h].name

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return SimpleNamespace(busId=self.gpus[h].bus_id.encode())

    def nvmlDeviceGetTemperatureV(self, h: int, sensor: int) -> int:
        return self._gpu(h, "nvmlDeviceGetTemperatureV").temp_c

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetFieldValues(self, h: int, ids: list[int]) -> list[Any]:
        """One `nvmlFieldValue_t` per id, each with its own ``nvmlReturn``. The fields that stand for a function
        (energy, replay counter, enforced power limit, volatile ECC totals: `DERIVED_FIELDS`) give that function's
        value, and NotSupported where the GPU does not support the function or the driver lacks it."""
        gpu = self._gpu(h, "nvmlDeviceGetFieldValues")
        out = []
        for fid in ids:
            derived = DERIVED_FIELDS.get(fid)
            if fid in gpu.unsupported_fields:
                v = None
            elif derived is None:
                v = gpu.fields.get(fid)
            elif getattr(self, derived[0], None) is None or derived[0] in gpu.unsupported:
                v = None
            else:
                v = derived[1](gpu)
            key = (fid, v, type(v))
            answer = self._answers.get(key)
            if answer is None:  # one object per distinct answer: the fake's own cost stays out of the measurements
                if v is None:
                    value = SimpleNamespace(ullVal=0, dVal=0.0)
                    answer = SimpleNamespace(
                        fieldId=fid, nvmlReturn=NOT_SUPPORTED, valueType=VALUE_TYPE_ULL, value=value
                    )
                else:
                    vt = VALUE_TYPE_DOUBLE if isinstance(v, float) else VALUE_TYPE_ULL
                    value = SimpleNamespace(ullVal=int(v), dVal=float(v))
                    answer = SimpleNamespace(fieldId=fid, nvmlReturn=0, valueType=vt, value=value)
                self._answers[key] = answer
            out.append(answer)
        return out

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetTotalEnergyConsumption").energy_mj

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetEnforcedPowerLimit").limit_mw

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: int) -> int:
        self._gpu(h, "nvmlDeviceGetCurrPcieLinkGeneration")
        return 5

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: int) -> int:
        self._gpu(h, "nvmlDeviceGetCurrPcieLinkWidth")
        return 16

    def nvmlDeviceGetPcieReplayCounter(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetPcieReplayCounter").replay

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        gpu = self._gpu(h, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=gpu.util[0], memory=gpu.util[1])

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        gpu = self._gpu(h, "nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(used=gpu.mem[0], total=gpu.mem[1], free=gpu.mem[1] - gpu.mem[0])

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        return self._gpu(h, "nvmlDeviceGetClockInfo").clocks[clock]

    def nvmlDeviceGetFanSpeed(self, h: int) -> int:
        gpu = self._gpu(h, "nvmlDeviceGetFanSpeed")
        if gpu.fan_pct is None:
            raise NVMLError(NOT_SUPPORTED)
        return gpu.fan_pct

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetCurrentClocksEventReasons").throttle

    def nvmlDeviceGetTotalEccErrors(self, h: int, error_type: int, counter_type: int) -> int:
        return self._gpu(h, "nvmlDeviceGetTotalEccErrors").ecc[error_type]

    def nvmlDeviceGetPcieThroughput(self, h: int, counter: int) -> int:
        gpu = self._gpu(h, "nvmlDeviceGetPcieThroughput")
        time.sleep(0.02)  # the real call measures over a 20 ms window
        return gpu.throughput_kb[counter]

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        gpu = self._gpu(h, "nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in gpu.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: int) -> list[Any]:
        self._gpu(h, "nvmlDeviceGetGraphicsRunningProcesses")
        return []

    # -- events ------------------------------------------------------------------------------------
    def nvmlEventSetCreate(self) -> str:
        return "fake-event-set"

    def nvmlDeviceRegisterEvents(self, h: int, types: int, event_set: str) -> None:
        self._gpu(h, "nvmlDeviceRegisterEvents")

    def nvmlEventSetWait_v2(self, event_set: str, timeout_ms: int) -> Any:
        try:
            h, xid = self.events.get(timeout=timeout_ms / 1000)  # blocks like the real call: no polling
        except queue.Empty:
            raise NVMLError(TIMEOUT) from None
        return SimpleNamespace(device=h, eventType=0x8, eventData=xid)

    def nvmlEventSetFree(self, event_set: str) -> None:
        return None
