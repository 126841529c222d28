"""`import telemetry` into a store a running collector holds the writer lock of: stored, once, with a note."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from telemetry.collector.process import running_collector
from telemetry.store.factory import open_store

LINES = (
    "\n".join(
        f"accel,node=n1,device=gpu{d} temp_c={40 + d}i,power_w={100 + d}.5 {1_764_900_000_000_000_000 + i * 1_000_000_000}"
        for i in range(50)
        for d in range(2)
    )
    + "\n"
)


def _import(store: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telemetry.cli", "import", "telemetry", str(path), "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_beside_a_running_collector_stores_the_rows_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lp = tmp_path / "a.lp"
    lp.write_text(LINES)
    with running_collector(str(store), tmp_path, tokens={"n1": "t0ken-n1-0123456789"}):
        first = _import(store, lp)
        assert first.returncode == 0, first.stderr
        assert "being written by" in first.stderr
        again = _import(store, lp)
        assert again.returncode == 0, again.stderr
        assert "already imported" in again.stderr
    s = open_store(store, create=False)
    try:
        assert s.query("accel").height == 100
    finally:
        s.close()
