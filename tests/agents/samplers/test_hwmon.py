"""The hwmon sampler on a fake sysfs tree: Tenstorrent, Furiosa, and devices it must leave alone."""

from __future__ import annotations

import shutil

import pytest

from agents.samplers.hwmon import HwmonSampler

TT_COUNTERS = "devices/pci0000:00/0000:00:01.0/0000:01:00.0/tenstorrent/tenstorrent!0/pcie_perf_counters"


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def rows(s: HwmonSampler) -> dict[str, dict]:
    return {r["device"]: r for r in s.read(0.0)["accel"]}


def test_finds_tenstorrent_and_furiosa_but_not_an_ssd_or_a_gpu_of_another_sampler(fake_sysfs):
    s = HwmonSampler(fake_sysfs("tenstorrent_furiosa"))
    assert s.devices() == ["tt0", "furiosa0"]


def test_hwmon_units_are_converted_mdegc_uw_ma_mv(fake_sysfs):
    tt = rows(HwmonSampler(fake_sysfs("tenstorrent_furiosa")))["tt0"]
    assert tt["temp_c"] == pytest.approx(45.25)  # m°C -> °C
    assert tt["power_w"] == pytest.approx(85.0)  # µW -> W
    assert tt["power_limit_w"] == pytest.approx(150.0)
    assert tt["current_a"] == pytest.approx(104.0)  # mA -> A
    assert tt["voltage_v"] == pytest.approx(0.78)  # mV -> V
    assert tt["sm_clock_mhz"] == 1350
    assert (tt["vendor"], tt["model"], tt["pci_bus"]) == ("tenstorrent", "p150a", "0000:01:00.0")


def test_sensors_a_device_lacks_are_absent_not_zero(fake_sysfs):
    s = HwmonSampler(fake_sysfs("tenstorrent_furiosa"))
    fu = rows(s)["furiosa0"]
    assert fu["power_w"] == pytest.approx(62.5)  # only power1_average: used as the board power
    assert fu["current_a"] is None and fu["voltage_v"] is None and fu["energy_j"] is None
    assert s.support()["furiosa0"]["current_a"] is False
    assert s.support()["tt0"]["current_a"] is True


def test_tenstorrent_flit_counters_become_bytes_per_s_across_the_u32_wrap(fake_sysfs):
    root = fake_sysfs("tenstorrent_furiosa")
    clock = FakeClock()
    s = HwmonSampler(root, clock=clock)
    assert rows(s)["tt0"].get("pcie_rx_bytes_per_s") is None  # first read: no delta yet
    d = root / TT_COUNTERS
    (d / "slv_posted_wr_data_word_received0").write_text("704\n")  # 4294967000 -> wrapped: +1000 flits
    (d / "mst_rd_data_word_received1").write_text("1500\n")  # +1000
    (d / "slv_rd_data_word_sent0").write_text("60\n")  # +50
    clock.t += 2.0
    tt = rows(s)["tt0"]
    assert tt["pcie_rx_bytes_per_s"] == pytest.approx(2000 * 32 / 2.0)
    assert tt["pcie_tx_bytes_per_s"] == pytest.approx(50 * 32 / 2.0)


def test_a_device_that_disappears_mid_run_is_reported_once_and_comes_back(fake_sysfs):
    root = fake_sysfs("tenstorrent_furiosa")
    s = HwmonSampler(root)
    rows(s)
    hw = root / "devices/pci0000:00/0000:00:01.0/0000:02:00.0/hwmon/hwmon4"
    shutil.move(hw, root / "hwmon4.away")
    out = s.read(0.0)
    assert [r["device"] for r in out["accel"]] == ["tt0"]
    assert [(e["device"], e["kind"]) for e in out["accel_event"]] == [("furiosa0", "device_lost")]
    assert s.read(0.0)["accel_event"] == []
    shutil.move(root / "hwmon4.away", hw)
    out = s.read(0.0)
    assert [(e["device"], e["kind"]) for e in out["accel_event"]] == [("furiosa0", "device_back")]
    assert {r["device"] for r in out["accel"]} == {"tt0", "furiosa0"}


def test_a_sensor_read_error_is_absent_for_that_tick(fake_sysfs):
    root = fake_sysfs("tenstorrent_furiosa")
    s = HwmonSampler(root)
    (root / "devices/pci0000:00/0000:00:01.0/0000:01:00.0/hwmon/hwmon3/temp1_input").write_text("garbage\n")
    assert rows(s)["tt0"]["temp_c"] is None
