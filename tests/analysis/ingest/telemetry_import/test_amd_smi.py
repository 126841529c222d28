"""amd-smi metric --csv output maps onto `accel`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import import parse_telemetry_files


def test_iso_timestamps_and_bare_numbers(tmp_path: Path) -> None:
    p = tmp_path / "amd.csv"
    p.write_text(
        "timestamp,gpu,socket_power,gfx_usage,hotspot,mem,gfx_0_clk,used_vram,total_vram\n"
        "2026-03-07T00:20:37.071,0,652,99,81,70,2100 MHz,150000 MB,196592 MB\n"
        "2026-03-07T00:20:37.071,1,N/A,98,79,69,2100,150000,196592\n"
    )
    accel = parse_telemetry_files([p], node="mi300x-1", tz="UTC")["accel"]
    row = accel.row(0, named=True)
    assert row["time"] == datetime(2026, 3, 7, 0, 20, 37, 71000, tzinfo=UTC)
    assert (row["device"], row["vendor"], row["node"]) == ("gpu0", "amd", "mi300x-1")
    assert (row["power_w"], row["util_pct"], row["temp_hotspot_c"], row["temp_mem_c"]) == (652, 99, 81, 70)
    assert row["sm_clock_mhz"] == 2100 and row["mem_used_bytes"] == 150000e6
    assert accel["power_w"][1] is None


def test_without_a_time_column_says_how_to_get_one(tmp_path: Path) -> None:
    p = tmp_path / "amd.csv"
    p.write_text("gpu,socket_power\n0,652\n")
    with pytest.raises(TelemetryFormatError, match="-w INTERVAL"):
        parse_telemetry_files([p], node="n1")
