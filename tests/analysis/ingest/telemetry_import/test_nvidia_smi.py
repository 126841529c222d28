"""nvidia-smi --query-gpu --format=csv logs (InferenceX gpu_metrics.csv) map onto `accel` with units converted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import import parse_telemetry_files

# The format of a real `nvidia-smi --query-gpu=timestamp,index,power.draw,temperature.gpu,clocks.current.sm,
# clocks.current.memory,utilization.gpu,utilization.memory --format=csv -l 1` log (InferenceX gpu_metrics.csv).
REAL = """\
timestamp, index, power.draw [W], temperature.gpu, clocks.current.sm [MHz], clocks.current.memory [MHz], utilization.gpu [%], utilization.memory [%]
2026/03/07 00:20:37.071, 0, 76.78 W, 30, 345 MHz, 3201 MHz, 0 %, 0 %
2026/03/07 00:20:37.071, 1, 76.08 W, 29, 345 MHz, 3201 MHz, 0 %, 0 %
2026/03/07 00:20:38.072, 0, 412.50 W, 61, 1980 MHz, 3201 MHz, 97 %, 43 %
"""


def _write(tmp_path: Path, text: str, name: str = "gpu_metrics.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_real_sample_maps_to_accel_fields(tmp_path: Path) -> None:
    frames = parse_telemetry_files([_write(tmp_path, REAL)], node="n1", tz="UTC")
    accel = frames["accel"]
    assert accel.height == 3
    first = accel.row(0, named=True)
    assert first["time"] == datetime(2026, 3, 7, 0, 20, 37, 71000, tzinfo=UTC)
    assert (first["node"], first["device"], first["vendor"]) == ("n1", "gpu0", "nvidia")
    assert (first["power_w"], first["temp_c"], first["sm_clock_mhz"], first["mem_clock_mhz"]) == (76.78, 30, 345, 3201)
    assert (first["util_pct"], first["mem_util_pct"]) == (0.0, 0.0)
    assert accel["device"].to_list() == ["gpu0", "gpu1", "gpu0"]
    assert accel["power_w"][2] == 412.50 and accel["util_pct"][2] == 97.0


def test_naive_timestamps_are_read_in_the_given_zone(tmp_path: Path) -> None:
    frames = parse_telemetry_files([_write(tmp_path, REAL)], node="n1", tz="Europe/Berlin")
    assert frames["accel"]["time"][0] == datetime(2026, 3, 6, 23, 20, 37, 71000, tzinfo=UTC)


def test_nounits_memory_in_mib_energy_in_mj_and_absent_values(tmp_path: Path) -> None:
    text = (
        "timestamp, index, name, pci.bus_id, memory.used [MiB], memory.total [MiB], total_energy_consumption [mJ], "
        "power.draw [W], fan.speed [%], clocks_event_reasons.active, clocks_event_reasons.sw_power_cap\n"
        "2026/03/07 00:20:37.071, 0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 1024, 81559, 123456789, [N/A], "
        "[Not Supported], 0x0000000000000004, Active\n"
    )
    accel = parse_telemetry_files([_write(tmp_path, text)], node="n1", tz="UTC")["accel"]
    row = accel.row(0, named=True)
    assert row["mem_used_bytes"] == 1024 * 2**20 and row["mem_total_bytes"] == 81559 * 2**20
    assert row["energy_j"] == pytest.approx(123456.789)
    assert row["power_w"] is None and row["fan_pct"] is None  # absent, never 0
    assert (row["model"], row["pci_bus"]) == ("NVIDIA H100 80GB HBM3", "00000000:18:00.0")
    assert row["throttle_reasons"] == 4 and row["throttle_power"] is True


def test_truncated_line_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, REAL + "2026/03/07 00:20:39.072, 0, 41")
    with pytest.raises(TelemetryFormatError, match=rf"^{path}:5: expected 8 fields"):
        parse_telemetry_files([path], node="n1", tz="UTC")


def test_garbage_value_names_the_column(tmp_path: Path) -> None:
    path = _write(tmp_path, REAL.replace("412.50 W", "41x.50 W"))
    with pytest.raises(TelemetryFormatError, match=r":4: power.draw: expected a number, got '41x.50 W'"):
        parse_telemetry_files([path], node="n1", tz="UTC")


def test_a_log_without_node_needs_the_node_option(tmp_path: Path) -> None:
    with pytest.raises(TelemetryFormatError, match="expected --node"):
        parse_telemetry_files([_write(tmp_path, REAL)], tz="UTC")
