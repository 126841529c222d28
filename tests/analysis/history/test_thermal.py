"""Thermal regressions: the temp ≈ a + b·power model, residuals, peer outliers, throttling, the node profile."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from analysis.history.thermal import (
    ThermalLimits,
    nightly_residuals,
    peer_outliers,
    thermal_backtest,
    thermal_change_points,
    thermal_findings,
    thermal_fits,
    thermal_profile,
    throttle_fraction,
)
from tests.analysis.history.history_sim import HistorySpec, simulate_history

T0 = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


def _accel(devices: dict[str, float], n: int = 200, seed: int = 0, inlet: float | None = None) -> pl.DataFrame:
    """Devices with known °C/W: temp = 25 (+ inlet) + r * power + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        p_all = 150 + 400 * rng.random()
        for d, r in devices.items():
            p = p_all + rng.normal(0, 20)
            base = inlet if inlet is not None else 25.0
            rows.append(
                {
                    "time": T0 + timedelta(seconds=10 * k),
                    "node": "n1",
                    "device": d,
                    "model": "H100",
                    "power_w": p,
                    "temp_c": base + r * p + rng.normal(0, 0.3),
                    "throttle_thermal": k % 10 == 0 and d == "gpu0",
                    "throttle_power": False,
                }
            )
    return pl.DataFrame(rows)


def test_fit_recovers_the_thermal_resistance() -> None:
    fits = thermal_fits(_accel({"gpu0": 0.08, "gpu1": 0.10}))
    got = dict(fits.select("device", "c_per_w").rows())
    assert got["gpu0"] == pytest.approx(0.08, abs=0.002)
    assert got["gpu1"] == pytest.approx(0.10, abs=0.002)
    assert fits["r2"].min() > 0.95
    assert fits["night"].to_list() == [date(2026, 10, 31)] * 2  # 01:00 belongs to the evening before


def test_a_night_without_power_spread_has_no_coefficients() -> None:
    frame = _accel({"gpu0": 0.08}).with_columns(pl.lit(300.0).alias("power_w"))
    fits = thermal_fits(frame)
    assert fits["c_per_w"].to_list() == [None]
    assert fits["temp_mean_c"][0] is not None


def test_peer_outlier_among_same_model_devices() -> None:
    devices = {f"gpu{i}": 0.080 + 0.001 * (i % 3) for i in range(7)} | {"gpu7": 0.10}
    out = peer_outliers(thermal_fits(_accel(devices, n=100)))
    flagged = out.filter(pl.col("outlier"))["device"].to_list()
    assert flagged == ["gpu7"]


def test_throttle_fraction_per_device() -> None:
    tf = throttle_fraction(_accel({"gpu0": 0.08, "gpu1": 0.08}, n=100))
    assert dict(tf.select("device", "throttled_thermal_frac").rows()) == {"gpu0": 0.1, "gpu1": 0.0}


def test_throttle_fraction_is_null_when_the_device_has_no_flag() -> None:
    tf = throttle_fraction(_accel({"gpu0": 0.08}, n=10).drop("throttle_thermal"))
    assert tf["throttled_thermal_frac"].to_list() == [None]


def _fits_and_residuals(spec: HistorySpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    fits = thermal_fits(simulate_history(spec)["accel"])
    return fits, nightly_residuals(fits)


def test_residual_is_flat_without_a_change_and_steps_with_one() -> None:
    _, flat = _fits_and_residuals(HistorySpec(nights=12))
    assert flat["residual_c"].abs().max() < 3.5  # unmeasured inlet (± 0.7 °C) and nightly ± 2 % in r
    _, res = _fits_and_residuals(HistorySpec(nights=12, thermal_night=8, thermal_c_per_w=0.02))
    gpu3 = res.filter(pl.col("device") == "gpu3").sort("night")["residual_c"].to_numpy()
    assert gpu3[8:].mean() - gpu3[:8].mean() > 5.0  # 0.02 °C/W at ~370 W mean power


def test_thermal_regression_found_on_its_night_and_only_on_that_device() -> None:
    fits, res = _fits_and_residuals(HistorySpec(nights=30, thermal_night=25, thermal_c_per_w=0.02))
    bt = thermal_backtest(fits, res)
    hits = bt.filter(pl.col("status").is_in(["suspected", "confirmed"]))
    assert set(hits["device"].to_list()) == {"gpu3"}
    first = hits.group_by("status").agg(pl.col("night").min())
    assert dict(first.rows()) == {"suspected": date(2026, 10, 26), "confirmed": date(2026, 10, 27)}
    now = thermal_findings(fits, res).filter((pl.col("device") == "gpu3") & (pl.col("metric") == "c_per_w"))
    assert now["status"][0] == "confirmed"
    assert now["effect"][0] == pytest.approx(0.02, abs=0.004)
    assert now["peer_z"][0] > 2.0  # stands out among its 7 peers (|z| > 3.5 is the outlier flag)
    cps = thermal_change_points(fits, res)
    assert set(cps["device"].to_list()) == {"gpu3"}
    assert set(cps["night"].to_list()) == {date(2026, 10, 26)}


def test_aa_thermal_history_has_no_finding() -> None:
    fits, res = _fits_and_residuals(HistorySpec(nights=30, seed=3))
    bt = thermal_backtest(fits, res)
    assert bt.filter(pl.col("status").is_in(["suspected", "confirmed"])).height == 0


def _profile_input(
    node: str, temps: tuple[float, float, float], power: float, cpu: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    times = [T0 + timedelta(minutes=k) for k in range(3)]  # one sample per minute: the range is over 1-minute means
    accel = pl.DataFrame(
        {
            "time": times,
            "node": [node] * 3,
            "device": ["gpu0"] * 3,
            "temp_c": [float(t) for t in temps],
            "power_w": [power] * 3,
        }
    )
    host = pl.DataFrame({"time": times, "node": [node] * 3, "cpu_temp_c": [cpu - 5, cpu, cpu - 3]})
    return accel, host


def test_profile_reproduces_the_seed_002_table() -> None:
    """Seed 002: Spark 1 73 (73-75) 34.1 W CPU 90 OK; Spark 2 72 (71-76) CPU 95 WARM; Spark 4 68 (67-69) COOL."""
    parts = [
        _profile_input("spark1", (73, 73, 75), 34.1, 90),
        _profile_input("spark2", (71.0, 72.0, 76.0), 35.0, 95),
        _profile_input("spark3", (69, 71, 76), 33.4, 87),
        _profile_input("spark4", (67, 68, 69), 31.0, 89),
    ]
    accel = pl.concat([a for a, _ in parts])
    host = pl.concat([h for _, h in parts])
    prof = thermal_profile(accel, host, ThermalLimits())
    assert prof.select("node", "status").rows() == [
        ("spark1", "OK"),
        ("spark2", "WARM"),
        ("spark3", "OK"),
        ("spark4", "COOL"),
    ]
    s1 = prof.row(0, named=True)
    assert (s1["gpu_min_c"], s1["gpu_max_c"], s1["power_avg_w"], s1["cpu_peak_c"]) == (73, 75, 34.1, 90)
    assert "CPU peak 95" in prof.row(1, named=True)["reason"]


def test_profile_limits_are_configurable_and_cpu_is_null_without_a_sensor() -> None:
    accel, _ = _profile_input("n1", (80, 82, 84), 300.0, 0)
    prof = thermal_profile(accel)
    assert prof["cpu_peak_c"].to_list() == [None]
    assert prof["status"][0] == "WARM"
    assert thermal_profile(accel, limits=ThermalLimits(gpu_hot_c=83))["status"][0] == "HOT"
