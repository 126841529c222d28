"""The documented long format (CSV / Parquet) pivots onto schema frames with units converted."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import import parse_telemetry_files

CSV = """\
time,node,device,metric,value,unit,tags
2026-03-07T00:00:00Z,n1,gpu0,power_w,350000,mW,vendor=nvidia;group=hive0
2026-03-07T00:00:00Z,n1,gpu0,accel.temp_c,61,,vendor=nvidia;group=hive0
2026-03-07T00:00:01Z,n1,gpu0,power_w,351,W,vendor=nvidia;group=hive0
2026-03-07T00:00:00Z,n1,,cpu_util_pct,12.5,,
2026-03-07T00:00:00Z,n1,,load1,3.0,,
"""


def test_csv_pivots_to_accel_and_host(tmp_path: Path) -> None:
    p = tmp_path / "long.csv"
    p.write_text(CSV)
    frames = parse_telemetry_files([p])
    accel, host = frames["accel"], frames["host"]
    assert accel.height == 2 and host.height == 1
    assert accel["power_w"].to_list() == [350.0, 351.0]
    assert accel["temp_c"].to_list() == [61.0, None]
    assert set(accel["group"]) == {"hive0"} and set(accel["vendor"]) == {"nvidia"}
    assert (host["cpu_util_pct"][0], host["load1"][0]) == (12.5, 3.0)


def test_parquet_with_epoch_ns_times(tmp_path: Path) -> None:
    p = tmp_path / "long.parquet"
    pl.DataFrame(
        {"time": [1_772_841_600_000_000_000] * 2, "node": ["n1", "n1"], "device": ["gpu0", "gpu1"],
         "metric": ["mem_used_bytes", "mem_used_bytes"], "value": [1024.0, 2048.0], "unit": ["MiB", "MiB"]}
    ).write_parquet(p)  # fmt: skip
    accel = parse_telemetry_files([p])["accel"]
    assert accel.sort("device")["mem_used_bytes"].to_list() == [1024 * 2**20, 2048 * 2**20]


def test_unknown_metric_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "long.csv"
    p.write_text(CSV + "2026-03-07T00:00:02Z,n1,gpu0,warp_speed,9,,\n")
    with pytest.raises(TelemetryFormatError, match=r"long.csv:7: metric 'warp_speed'"):
        parse_telemetry_files([p])


def test_unconvertible_unit_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "long.csv"
    p.write_text("time,node,device,metric,value,unit\n2026-03-07T00:00:00Z,n1,gpu0,power_w,1,furlong\n")
    with pytest.raises(TelemetryFormatError, match=r":2: power_w: cannot convert unit 'furlong' to 'W'"):
        parse_telemetry_files([p])
