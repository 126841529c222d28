"""The simulated sampler replays a source of telemetry chunks live (fake source built here)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from agents.samplers.simulated import SimulatedSampler

T0 = int(datetime(2026, 3, 2, 9, tzinfo=UTC).timestamp() * 1e9)


def fake_source(seconds: int = 3, devices: int = 2):
    """A fake simulator: one chunk per second, power = 100 * second + device index."""

    def factory():
        for s in range(seconds):
            frame = pl.DataFrame(
                {
                    "time": [T0 + s * 10**9] * devices,
                    "node": ["simnode"] * devices,
                    "device": [f"gpu{i}" for i in range(devices)],
                    "group": ["hive0"] * devices,
                    "power_w": [100.0 * s + i for i in range(devices)],
                    "temp_c": [None] * devices,
                }
            ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")), pl.col("temp_c").cast(pl.Float64))
            yield {"accel": frame}

    return factory


def test_replays_the_latest_simulated_sample_per_device_in_real_time():
    s = SimulatedSampler(fake_source())
    assert s.devices() == ["gpu0", "gpu1"]
    first = {r["device"]: r for r in s.read(5000.0)["accel"]}
    assert first["gpu1"]["power_w"] == 1.0
    assert "node" not in first["gpu1"] and "time" not in first["gpu1"]  # the agent stamps these
    assert first["gpu1"]["group"] == "hive0"
    half = {r["device"]: r for r in s.read(5000.5)["accel"]}
    assert half["gpu0"]["power_w"] == 0.0  # still the second-0 sample
    later = {r["device"]: r for r in s.read(5002.0)["accel"]}
    assert later["gpu0"]["power_w"] == 200.0


def test_the_source_loops_when_it_runs_out():
    s = SimulatedSampler(fake_source(seconds=2), loop=True)
    s.read(0.0)
    powers = [s.read(t)["accel"][0]["power_w"] for t in (1.0, 2.0, 3.0)]
    assert powers == [100.0, 0.0, 100.0]


def test_speed_runs_simulated_time_faster():
    s = SimulatedSampler(fake_source(seconds=5), speed=2.0, loop=False)
    s.read(0.0)
    assert s.read(1.0)["accel"][0]["power_w"] == 200.0


def test_absent_simulated_fields_are_marked_unsupported():
    s = SimulatedSampler(fake_source())
    s.read(0.0)
    assert s.support()["gpu0"]["power_w"] is True
    assert s.support()["gpu0"]["temp_c"] is False


@pytest.mark.slow
def test_the_foundation_simulator_is_a_live_source_of_34_accelerators():
    from agents.samplers.simulated import simulator_source

    s = SimulatedSampler(simulator_source("seed000"))
    rows = s.read(0.0)["accel"]
    assert len(rows) == 34 == len(s.devices())
