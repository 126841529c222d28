"""The amdgpu sampler on a fake sysfs tree (an MI300X with gpu_metrics v1.5, a Navi card with v1.3)."""

from __future__ import annotations

import shutil
import time
from typing import ClassVar

import pytest

from agents.samplers.amdgpu import AmdgpuSampler, parse_dpm_current, parse_gpu_metrics, parse_link_gen


def rows(s: AmdgpuSampler) -> dict[str, dict]:
    return {r["device"]: r for r in s.read(0.0)["accel"]}


def test_finds_the_amd_cards_in_drm_order(fake_sysfs):
    s = AmdgpuSampler(fake_sysfs("amdgpu"))
    assert s.devices() == ["amd0", "amd1"]


def test_hwmon_units_are_converted_mdegc_uw_mv(fake_sysfs):
    mi = rows(AmdgpuSampler(fake_sysfs("amdgpu")))["amd0"]
    assert mi["temp_hotspot_c"] == pytest.approx(52.0)  # junction, m°C -> °C
    assert mi["temp_mem_c"] == pytest.approx(60.0)
    assert mi["power_w"] == pytest.approx(350.0)  # power1_input µW -> W (sysfs wins over gpu_metrics)
    assert mi["power_limit_w"] == pytest.approx(750.0)
    assert mi["voltage_v"] == pytest.approx(0.75)
    assert mi["model"] == "AMD Instinct MI300X" and mi["pci_bus"] == "0000:0c:00.0"


def test_mi300_without_an_edge_sensor_has_no_temp_c_not_zero(fake_sysfs):
    s = AmdgpuSampler(fake_sysfs("amdgpu"))
    mi = rows(s)["amd0"]
    assert mi.get("temp_c") is None
    assert s.support()["amd0"]["temp_c"] is False
    assert s.support()["amd1"]["temp_c"] is True


def test_gpu_metrics_v1_5_gives_clocks_energy_link_and_bidirectional_pcie(fake_sysfs):
    root = fake_sysfs("amdgpu")
    mi = rows(AmdgpuSampler(root))["amd0"]
    assert mi["sm_clock_mhz"] == 2100 and mi["mem_clock_mhz"] == 1300
    assert mi["energy_j"] == pytest.approx(1000.0)  # 15.259 µJ units -> J
    assert (mi["pcie_link_gen"], mi["pcie_link_width"]) == (5, 16)
    assert mi["throttle_reasons"] == 2
    assert mi.get("pcie_tx_bytes_per_s") is None  # MI300 has no TX/RX split
    blob = (root / "devices/pci0000:00/0000:00:01.0/0000:0c:00.0/gpu_metrics").read_bytes()
    assert parse_gpu_metrics(blob)["pcie_bidir_bytes_per_s"] == pytest.approx(12e9)  # GB/s -> B/s


def test_gpu_metrics_v1_3_sentinels_are_absent_and_indep_throttle_bits_are_split(fake_sysfs):
    blob = (fake_sysfs("amdgpu") / "devices/pci0000:00/0000:00:01.0/0000:0d:00.0/gpu_metrics").read_bytes()
    m = parse_gpu_metrics(blob)
    assert m["temp_c"] == 48 and m["power_avg_w"] == 180 and m["sm_clock_mhz"] == 2400
    assert m["throttle_thermal"] is True and m["throttle_power"] is False
    assert "energy_j" not in m  # v1.3 energy units are not documented: not reported


def test_unknown_gpu_metrics_revision_is_ignored():
    assert parse_gpu_metrics(bytes([8, 0, 9, 9]) + b"\0" * 4) == {}
    assert parse_gpu_metrics(b"\x01") == {}


def test_ras_counts_are_summed_over_blocks(fake_sysfs):
    mi = rows(AmdgpuSampler(fake_sysfs("amdgpu")))["amd0"]
    assert (mi["ecc_corrected_count"], mi["ecc_uncorrected_count"]) == (3, 1)


def test_fan_pwm_becomes_percent_and_missing_files_are_absent(fake_sysfs):
    navi = rows(AmdgpuSampler(fake_sysfs("amdgpu")))["amd1"]
    assert navi["fan_pct"] == pytest.approx(100 * 128 / 255)
    assert navi["mem_used_bytes"] is None and navi["pcie_replay_count"] is None


def test_pcie_bw_is_read_on_its_own_thread_as_messages_times_payload(fake_sysfs):
    s = AmdgpuSampler(fake_sysfs("amdgpu"), pcie_bw=True, cadence_s=0.05)
    try:
        deadline, navi = time.monotonic() + 5, {}
        while time.monotonic() < deadline:
            navi = rows(s)["amd1"]
            if navi.get("pcie_tx_bytes_per_s") is not None:
                break
            time.sleep(0.02)
        assert navi["pcie_tx_bytes_per_s"] == 1000 * 256  # first number: sent (rocm_smi's reading)
        assert navi["pcie_rx_bytes_per_s"] == 2000 * 256
        assert s.staleness_s(0.0) is not None
    finally:
        s.close()


def test_a_card_that_disappears_mid_run_is_reported_lost(fake_sysfs):
    root = fake_sysfs("amdgpu")
    s = AmdgpuSampler(root)
    rows(s)
    dev = root / "devices/pci0000:00/0000:00:01.0/0000:0d:00.0"
    shutil.move(dev, root / "gone")
    out = s.read(0.0)
    assert [r["device"] for r in out["accel"]] == ["amd0"]
    assert [(e["device"], e["kind"]) for e in out["accel_event"]] == [("amd1", "device_lost")]


class FakePyamdgpuinfo:
    """A fake of the optional GPL pyamdgpuinfo module."""

    class GPU:
        pci_slot = "0000:0d:00.0"
        memory_info: ClassVar[dict[str, int]] = {"vram_size": 16 * 2**30}

        def query_vram_usage(self) -> int:
            return 3 * 2**30

        def query_load(self) -> float:
            return 0.5

    def detect_gpus(self) -> int:
        return 1

    def get_gpu(self, i: int) -> GPU:
        return self.GPU()


def test_pyamdgpuinfo_fills_only_what_sysfs_lacks(fake_sysfs):
    navi = rows(AmdgpuSampler(fake_sysfs("amdgpu"), amdgpuinfo=FakePyamdgpuinfo()))["amd1"]
    assert navi["mem_used_bytes"] == 3 * 2**30 and navi["mem_total_bytes"] == 16 * 2**30
    assert navi["util_pct"] == 95  # sysfs had it


@pytest.mark.parametrize(("text", "gen"), [("16.0 GT/s PCIe", 4), ("8 GT/s", 3), ("2.5 GT/s PCIe", 1), ("", None)])
def test_link_speed_text_becomes_a_generation(text, gen):
    assert parse_link_gen(text) == gen


def test_dpm_current_level_is_the_starred_line():
    assert parse_dpm_current("0: 500Mhz\n1: 1200Mhz *\n2: 1800Mhz\n") == 1200
    assert parse_dpm_current("0: 500Mhz\n") is None
