"""Line protocol exported from the store re-imports to identical frames; Telegraf's inputs map onto the schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import import import_telemetry_files, parse_telemetry_files
from telemetry.line_protocol import encode
from telemetry.schema import conform
from telemetry.store.factory import open_store

T0 = 1_772_841_600_000_000_000


def _frames() -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(0)
    n = 20
    accel = conform(
        pl.DataFrame(
            {
                "time": [T0 + (i // 2) * 10**9 for i in range(n)],
                "node": ["n1"] * n,
                "device": [f"gpu{i % 2}" for i in range(n)],
                "vendor": ["amd"] * n,
                "group": ["hive0", "hive1"] * (n // 2),
                "power_w": rng.uniform(100, 700, n).round(3),
                "temp_c": rng.uniform(30, 90, n).round(1),
                "pcie_link_gen": [5] * n,
                "throttle_power": [i % 3 == 0 for i in range(n)],
                "util_pct": [None if i == 3 else float(i) for i in range(n)],
            }
        ),
        "accel",
    )
    host = conform(
        pl.DataFrame(
            {"time": [T0 + i * 10**9 for i in range(5)], "node": ["n1"] * 5, "load1": [0.5, 1.0, 1.5, 2, 3.25]}
        ),
        "host",
    )
    return {"accel": accel, "host": host}


def test_store_export_reimports_to_identical_frames(tmp_path: Path) -> None:
    src = open_store(tmp_path / "a")
    for m, f in _frames().items():
        src.write(m, f)
    exported = tmp_path / "export.lp"
    exported.write_bytes(b"".join(encode(src.query(m), m) for m in ("accel", "host")))
    dst = open_store(tmp_path / "b")
    import_telemetry_files(dst, [exported])
    for m in ("accel", "host"):
        want = src.query(m).sort(["time", "device"] if m == "accel" else ["time"])
        got = dst.query(m).sort(["time", "device"] if m == "accel" else ["time"])
        assert got.equals(want), m
    src.close()
    dst.close()


def test_telegraf_nvidia_smi_cpu_mem_map_onto_accel_and_host(tmp_path: Path) -> None:
    p = tmp_path / "telegraf.out"
    p.write_text(
        "nvidia_smi,host=gpu-node-7,index=0,name=NVIDIA\\ H100,pstate=P0 power_draw=412.5,temperature_gpu=61i,"
        "memory_used=1024i,utilization_gpu=97i,clocks_current_sm=1980i 1772841600000000000\n"
        "cpu,cpu=cpu-total,host=gpu-node-7 usage_user=10.5,usage_system=2.5,usage_idle=85 1772841600000000000\n"
        "cpu,cpu=cpu0,host=gpu-node-7 usage_user=99,usage_idle=1 1772841600000000000\n"
        "mem,host=gpu-node-7 total=1000i,used=400i,available=600i 1772841600000000000\n"
        "system,host=gpu-node-7 load1=3.5,n_cpus=64i 1772841600000000000\n"
        "disk,host=gpu-node-7 used=1i 1772841600000000000\n"
    )
    frames = parse_telemetry_files([p])
    a = frames["accel"].row(0, named=True)
    assert (a["node"], a["device"], a["model"], a["vendor"]) == ("gpu-node-7", "gpu0", "NVIDIA H100", "nvidia")
    assert (a["power_w"], a["temp_c"], a["util_pct"], a["sm_clock_mhz"]) == (412.5, 61.0, 97.0, 1980.0)
    assert a["mem_used_bytes"] == 1024 * 2**20
    h = frames["host"]
    assert h.height == 1
    r = h.row(0, named=True)
    assert (r["cpu_user_pct"], r["cpu_util_pct"], r["mem_used_bytes"], r["load1"], r["cpu_count"]) == (
        10.5, 15.0, 400.0, 3.5, 64
    )  # fmt: skip


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.lp"
    p.write_text("host,node=n1 load1=1.0 1772841600000000000\nhost,node=n1 load1= 1772841600000000000\n")
    with pytest.raises(TelemetryFormatError, match=r"bad.lp:2: line protocol"):
        parse_telemetry_files([p])


def test_a_file_read_in_small_chunks_gives_the_same_rows_as_read_whole(tmp_path: Path) -> None:
    """Telegraf's cpu / mem / system lines of one time may straddle a chunk boundary: still one host row per time."""
    from analysis.ingest.telemetry_import import import_telemetry_file

    lines = []
    for i in range(400):
        t = T0 + i * 10**9
        lines += [
            f"cpu,cpu=cpu-total,host=h1 usage_user={i % 50}.5,usage_idle=50 {t}",
            f"mem,host=h1 total=1000i,used={i}i {t}",
            f"system,host=h1 load1={i / 100},n_cpus=64i {t}",
            f"nvidia_smi,host=h1,index=0 power_draw={100 + i}.25 {t}",
        ]
    p = tmp_path / "telegraf.out"
    p.write_text("\n".join(lines) + "\n")
    whole = parse_telemetry_files([p])
    st = open_store(tmp_path / "store")
    try:
        result = import_telemetry_file(st, p, chunk_bytes=4096)  # about 60 lines a chunk
        assert result.chunks_stored > 20
        for m in ("host", "accel"):
            got = st.query(m).sort("time").select(whole[m].columns)
            assert got.height == 400 and got.equals(whole[m].sort("time")), m
    finally:
        st.close()
