"""Issue 17.10: `neighborscope import telemetry` streams, so its peak memory does not grow with the file's size.

The same command imports a 1 MB and a 100 MB line-protocol file, each in its own process; the larger file raises
the peak RSS by less than 200 MiB, what a few chunks in flight take (reading files whole took 5 to 15 bytes of memory
per byte of file: 409 MiB for 43 MB, 7.6 GB for 500 MB). `benchmarks/import_telemetry.py` measures a 500 MB file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from telemetry.store.factory import open_store
from tests.conftest import NEIGHBORSCOPE

T0 = 1_772_841_600_000_000_000
MIB = 2**20


def write_accel_lines(path: Path, size_bytes: int) -> int:
    """Accel lines of 8 devices, one second apart, until ``size_bytes``; returns the number of lines."""
    fields = ",".join(
        f"{f}={v}"
        for f, v in (
            ("temp_c", 61.5),
            ("temp_mem_c", 70.25),
            ("power_w", 512.75),
            ("power_limit_w", 750.0),
            ("util_pct", 97.0),
            ("mem_used_bytes", 8e10),
            ("sm_clock_mhz", 1980.0),
            ("pcie_rx_bytes_per_s", 3.1e8),
        )
    )
    n = 0
    with open(path, "w") as fh:
        while fh.tell() < size_bytes:
            block = [
                f"accel,node=n1,device=gpu{d},vendor=nvidia {fields} {T0 + (n // 8 + i) * 10**9}\n"
                for i in range(1000)
                for d in range(8)
            ]
            fh.write("".join(block))
            n += len(block)
    return n


def peak_rss_of_import(lp: Path, store: Path) -> int:
    proc = subprocess.Popen(
        [*NEIGHBORSCOPE, "import", "telemetry", str(lp), "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    err = proc.stderr.read().decode()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, err
    return usage.ru_maxrss * 1024


@pytest.mark.slow
def test_peak_memory_of_an_import_does_not_grow_with_the_file_size(tmp_path):
    small, large = tmp_path / "small.lp", tmp_path / "large.lp"
    write_accel_lines(small, 1_000_000)
    lines = write_accel_lines(large, 100_000_000)
    rss_small = peak_rss_of_import(small, tmp_path / "s1")
    rss_large = peak_rss_of_import(large, tmp_path / "s2")
    assert rss_large - rss_small < 200 * MIB, (rss_small / MIB, rss_large / MIB)
    st = open_store(tmp_path / "s2")
    try:
        assert st.scan("accel").select("time").collect().height == lines  # streamed, and every row stored
    finally:
        st.close()
