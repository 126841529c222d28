"""The nvml sampler against FakeNvml (no NVIDIA GPU on this machine)."""

from __future__ import annotations

import time

import pytest

from agents.samplers.nvml import NvmlSampler, throttle_flags
from tests.agents.samplers.fake_nvml import FakeGpu, FakeNvml


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sampler(gpus: list[FakeGpu], clock: FakeClock | None = None, **kw) -> NvmlSampler:
    return NvmlSampler(nvml=FakeNvml(gpus, **kw.pop("fake", {})), clock=clock or FakeClock(), events=False, **kw)


def accel(s: NvmlSampler, ts: float = 0.0) -> dict[str, dict]:
    return {r["device"]: r for r in s.read(ts)["accel"]}


def test_units_are_converted_mw_to_w_and_mj_to_j():
    row = accel(sampler([FakeGpu()]))["gpu0"]
    assert row["power_w"] == pytest.approx(312.25)  # the instant field, not the 1 s average
    assert row["power_avg_w"] == pytest.approx(300.0)
    assert row["power_limit_w"] == pytest.approx(700.0)
    assert row["energy_j"] == pytest.approx(123456.789)
    assert row["temp_c"] == 41 and row["temp_mem_c"] == 55
    assert row["mem_used_bytes"] == 40 * 2**30 and row["util_pct"] == 87
    assert row["sm_clock_mhz"] == 1980 and row["mem_clock_mhz"] == 2619
    assert (row["pcie_link_gen"], row["pcie_link_width"]) == (5, 16)
    assert (row["ecc_corrected_count"], row["ecc_uncorrected_count"]) == (2, 0)
    assert row["pci_bus"] == "00000000:17:00.0" and row["vendor"] == "nvidia"


def test_power_falls_back_to_power_usage_when_the_instant_field_is_unsupported():
    gpu = FakeGpu()
    gpu.fields[186] = None
    assert accel(sampler([gpu]))["gpu0"]["power_w"] == pytest.approx(301.5)


def test_unsupported_fan_is_absent_not_zero_and_not_asked_again():
    s = sampler([FakeGpu()])
    accel(s)
    row = accel(s)["gpu0"]
    assert row["fan_pct"] is None
    assert s.support()["gpu0"]["fan_pct"] is False
    assert s.support()["gpu0"]["temp_c"] is True
    assert s.nvml.calls["nvmlDeviceGetFanSpeed"] == 1


def test_function_missing_from_an_old_driver_makes_the_field_absent():
    row = accel(sampler([FakeGpu()], fake={"missing": ("nvmlDeviceGetTemperatureV",)}))["gpu0"]
    assert row["temp_c"] is None and row["power_w"] is not None


def test_pcie_byte_counters_become_rates_by_delta():
    clock, gpu = FakeClock(), FakeGpu()
    s = sampler([gpu], clock)
    first = accel(s)["gpu0"]
    assert first.get("pcie_tx_bytes_per_s") is None  # no previous read: absent, not 0
    clock.t += 0.5
    gpu.fields[197] += 1_000_000
    gpu.fields[198] += 3_000_000
    row = accel(s)["gpu0"]
    assert row["pcie_tx_bytes_per_s"] == pytest.approx(2_000_000)
    assert row["pcie_rx_bytes_per_s"] == pytest.approx(6_000_000)


def test_pcie_counter_reset_gives_an_absent_rate_not_a_negative_one():
    clock, gpu = FakeClock(), FakeGpu()
    s = sampler([gpu], clock)
    accel(s)
    clock.t += 1.0
    gpu.fields[197] = 10  # driver reloaded: counter restarted
    row = accel(s)["gpu0"]
    assert row["pcie_tx_bytes_per_s"] is None
    assert row["pcie_rx_bytes_per_s"] == 0


def test_pcie_throughput_fallback_runs_on_its_own_thread_and_converts_kb_per_s():
    gpu = FakeGpu()
    gpu.fields[197] = gpu.fields[198] = None  # counters unsupported (pre-Hopper, MIG...)
    s = NvmlSampler(nvml=FakeNvml([gpu]), cadence_s=0.1, events=False)
    try:
        s.read(0.0)  # starts the reader thread; this read reports nothing for PCIe yet
        deadline = time.monotonic() + 5
        row = {}
        while time.monotonic() < deadline:
            row = accel(s)["gpu0"]
            if row.get("pcie_tx_bytes_per_s") is not None:
                break
            time.sleep(0.02)
        assert row["pcie_tx_bytes_per_s"] == 2048 * 1024
        assert row["pcie_rx_bytes_per_s"] == 4096 * 1024
        assert s.staleness_s(0.0) is not None
    finally:
        s.close()


def test_a_gpu_that_falls_off_the_bus_is_reported_lost_then_back():
    clock, gpus = FakeClock(), [FakeGpu(), FakeGpu(bus_id="00000000:18:00.0")]
    s = sampler(gpus, clock, retry_lost_s=10.0)
    assert set(accel(s)) == {"gpu0", "gpu1"}
    gpus[1].lost = True
    out = s.read(0.0)
    assert [r["device"] for r in out["accel"]] == ["gpu0"]
    assert [(e["device"], e["kind"]) for e in out["accel_event"]] == [("gpu1", "device_lost")]
    clock.t += 1
    assert s.read(0.0)["accel_event"] == []  # reported once
    gpus[1].lost = False
    clock.t += 10
    out = s.read(0.0)
    assert [(e["device"], e["kind"]) for e in out["accel_event"]] == [("gpu1", "device_back")]
    assert {r["device"] for r in out["accel"]} == {"gpu0", "gpu1"}


def test_xid_errors_arrive_as_accel_events():
    fake = FakeNvml([FakeGpu(), FakeGpu()])
    s = NvmlSampler(nvml=fake, events=True)
    try:
        fake.events.put((1, 79))
        deadline, events = time.monotonic() + 5, []
        while time.monotonic() < deadline and not events:
            events = s.read(0.0)["accel_event"]
            time.sleep(0.02)
        assert [(e["device"], e["kind"], e["code"]) for e in events] == [("gpu1", "xid", 79)]
        assert isinstance(events[0]["time"], int)
    finally:
        s.close()


@pytest.mark.parametrize(
    ("mask", "thermal", "power", "other"),
    [
        (0x1, False, False, False),
        (0x20, True, False, False),
        (0x40 | 0x4, True, True, False),
        (0x80, False, True, False),
        (0x8, False, False, True),
    ],
)
def test_clock_event_reasons_split_into_thermal_power_other(mask, thermal, power, other):
    flags = throttle_flags(mask)
    assert (flags["throttle_thermal"], flags["throttle_power"], flags["throttle_other"]) == (thermal, power, other)
    assert flags["throttle_reasons"] == mask


def test_running_processes_map_host_pids_to_device_memory():
    gpus = [FakeGpu(processes=[(4242, 10 * 2**30), (77, None)]), FakeGpu(processes=[(4242, 2**30)])]
    s = sampler(gpus)
    s.read(0.0)
    assert s.process_memory() == {4242: 11 * 2**30}


def test_devices_can_be_restricted_by_name_or_pci_bus():
    gpus = [FakeGpu(), FakeGpu(bus_id="00000000:18:00.0"), FakeGpu(bus_id="00000000:19:00.0")]
    s = sampler(gpus, devices=["gpu0", "00000000:19:00.0"])
    assert s.devices() == ["gpu0", "gpu2"]


FUNCTION_FIELDS = ("energy_j", "pcie_replay_count", "power_limit_w", "ecc_corrected_count", "ecc_uncorrected_count")


def test_fields_read_in_one_call_equal_what_their_functions_give():
    gpu = FakeGpu(ecc=(7, 1), replay=3, energy_mj=9_876_543, limit_mw=650_000)
    batched = accel(sampler([gpu]))["gpu0"]
    old_driver = accel(sampler([gpu], fake={"missing": ("nvmlDeviceGetFieldValues",)}))["gpu0"]
    assert {k: batched[k] for k in FUNCTION_FIELDS} == {k: old_driver[k] for k in FUNCTION_FIELDS}
    assert batched["energy_j"] == pytest.approx(9876.543) and batched["ecc_corrected_count"] == 7
    assert old_driver["temp_mem_c"] is None and old_driver["power_w"] == pytest.approx(301.5)  # no fields at all


def test_a_field_the_driver_does_not_support_is_asked_of_its_function_and_never_again():
    gpu = FakeGpu(unsupported_fields={83, 94})
    s = sampler([gpu])
    accel(s)
    row = accel(s)["gpu0"]
    assert row["energy_j"] == pytest.approx(123456.789) and row["pcie_replay_count"] == 0
    assert s.nvml.calls["nvmlDeviceGetTotalEnergyConsumption"] == 2
    assert "nvmlDeviceGetEnforcedPowerLimit" not in s.nvml.calls  # its field answers
    assert "nvmlDeviceGetPowerUsage" not in s.nvml.calls  # the instant field answers: no 1 s average asked
