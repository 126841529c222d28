"""Per-node / per-device thermal profile (`analysis.history.thermal`) as the report shows it: statuses against configurable
limits, like seed 002's table, and the report's plain-words findings (`analysis.report.profile`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analysis.history.thermal import ThermalLimits, device_thermal_profile, thermal_profile
from analysis.report.profile import thermal_finding_lines

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _accel(node: str, temps: list[float], power: float = 34.0, device: str = "gpu0") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "time": [T0 + timedelta(minutes=i) for i in range(len(temps))],
            "node": node,
            "device": device,
            "group": "g",
            "model": "GB10",
            "temp_c": temps,
            "power_w": power,
            "throttle_thermal": False,
        },
        schema_overrides={"time": pl.Datetime("us", "UTC"), "temp_c": pl.Float64},
    ).with_columns(pl.col("time").dt.cast_time_unit("ns"))


def _host(node: str, cpu_temp: float | None) -> pl.DataFrame:
    return pl.DataFrame({"time": [T0], "node": node, "cpu_util_pct": [50.0], "cpu_temp_c": [cpu_temp]}).with_columns(
        pl.col("time").dt.cast_time_unit("ns"), pl.col("cpu_temp_c").cast(pl.Float64)
    )


def test_seed002_nodes_get_seed002_statuses() -> None:
    accel = pl.concat(
        [
            _accel("spark1", [73, 73, 75], 34.1),
            _accel("spark2", [71, 72, 76], 35.0),
            _accel("spark3", [69, 72, 76], 33.4),
            _accel("spark4", [67, 68, 69], 31.0),
        ]
    )
    host = pl.concat([_host("spark1", 90.0), _host("spark2", 95.0), _host("spark3", 87.0), _host("spark4", 89.0)])
    prof = thermal_profile(accel, host, ThermalLimits())
    assert prof["status"].to_list() == ["OK", "WARM", "OK", "COOL"]
    s2 = prof.row(1, named=True)
    assert (s2["gpu_min_c"], s2["gpu_max_c"], s2["cpu_peak_c"], s2["power_avg_w"]) == (71.0, 76.0, 95.0, 35.0)
    assert "CPU peak 95 °C" in s2["reason"]


@pytest.mark.parametrize(("peak", "status"), [(79.0, "OK"), (80.0, "WARM"), (88.0, "HOT")])
def test_gpu_peak_against_the_limits(peak: float, status: str) -> None:
    prof = thermal_profile(_accel("n", [72.0, peak]), None, ThermalLimits())
    assert prof["status"].to_list() == [status]


def test_limits_are_configurable() -> None:
    prof = thermal_profile(_accel("n", [72.0, 76.0]), None, ThermalLimits(gpu_warm_c=70.0, gpu_hot_c=75.0))
    assert prof["status"].to_list() == ["HOT"]


def test_cpu_peak_is_absent_without_a_cpu_temperature() -> None:
    host = pl.DataFrame({"time": [T0], "node": "n", "cpu_util_pct": [88.0]}).with_columns(
        pl.col("time").dt.cast_time_unit("ns")
    )
    row = thermal_profile(_accel("n", [72.0, 74.0]), host).row(0, named=True)
    assert row["cpu_peak_c"] is None and row["cpu_util_peak_pct"] == 88.0


def test_no_accelerator_telemetry_gives_an_empty_profile() -> None:
    empty = _accel("n", [])
    assert thermal_profile(empty).is_empty() and device_thermal_profile(empty).is_empty()


def test_a_device_hotter_than_its_peers_is_a_finding() -> None:
    accel = pl.concat(
        [_accel("n", [60.0 + 0.1 * i] * 3, device=f"gpu{i}") for i in range(7)]
        + [_accel("n", [75.0] * 3, device="gpu7")]
    )
    devices = device_thermal_profile(accel)
    findings = thermal_finding_lines(thermal_profile(accel), devices, ThermalLimits())
    assert any(f.startswith("gpu7 on n runs hot") for f in findings)


def test_throttling_in_seconds_and_as_a_fraction_of_samples() -> None:
    accel = _accel("n", [72.0, 73.0, 74.0, 75.0]).with_columns(
        pl.Series("throttle_thermal", [False, True, True, False])
    )
    dev = device_thermal_profile(accel).row(0, named=True)
    node = thermal_profile(accel).row(0, named=True)
    assert (dev["throttle_thermal_s"], dev["throttled_thermal_frac"]) == (120.0, 0.5)  # one sample a minute
    assert (node["throttle_thermal_s"], node["throttled_thermal_frac"]) == (120.0, 0.5)
    assert device_thermal_profile(accel.drop("throttle_thermal"))["throttle_thermal_s"].to_list() == [None]


def test_thermal_summary_profile_is_the_report_profile() -> None:
    from analysis.history.thermal import thermal_summary

    accel = pl.concat([_accel("spark1", [73, 73, 75], 34.1), _accel("spark4", [67, 68, 69], 31.0)])
    host = pl.concat([_host("spark1", 90.0), _host("spark4", 89.0)])
    summ = thermal_summary(accel, host)
    assert summ["profile"].equals(thermal_profile(accel, host))
    assert summ["device_profile"].equals(device_thermal_profile(accel))
