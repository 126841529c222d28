"""A synthetic fleet store for the dashboard's fleet-scale tests and `benchmarks/dashboard_load.py --nodes N`.

``nodes`` nodes shaped like seed 000 (34 accelerators: 16 MI300X in two 8-GPU hives, 16 Tenstorrent cards, 2 Furiosa
NPUs) sampled at ``hz`` for ``seconds``, written straight into the embedded store (numpy, seeded: about a minute for
500 nodes x 1 h at 1 Hz, 61 M accel rows; the simulator would take hours for that). Trouble is planted on known
nodes, so a test can say which node must come first:

- every 50th node (index 7, 57, ...): two GPUs throttle (thermal) over the last quarter of the window, running hot;
- every 97th node (index 3, 100, ...): three Tenstorrent cards went stale 10 minutes before the end;
- every 125th node (index 11, 136, ...): the whole node went quiet 15 minutes before the end;
- node index 7 also has a firing ``NoisyNeighborDegradation`` alert (hive0 slowed by tt) in ``<root>/alerts``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from telemetry.store.parquet import ParquetStore

DEVICES: list[tuple[str, str, str, str]] = (
    [(f"gpu{i}", "hive0" if i < 8 else "hive1", "amd", "MI300X") for i in range(16)]
    + [(f"tt{i}", "tt", "tenstorrent", "n300") for i in range(16)]
    + [(f"npu{i}", "furiosa", "furiosa", "RNGD") for i in range(2)]
)


def node_name(i: int) -> str:
    return f"node-{i:03d}"


def throttling(i: int) -> bool:
    return i % 50 == 7


def stale_devices(i: int) -> bool:
    return i % 97 == 3


def quiet(i: int) -> bool:
    return i % 125 == 11


def node_frame(i: int, t0: datetime, seconds: int, hz: float, seed: int, lo: int, hi: int) -> pl.DataFrame:
    """Samples ``lo`` to ``hi`` (of ``seconds * hz``) of node ``i``'s devices, trouble planted as the module
    docstring says; each node's level is seeded by (seed, node), its noise by (seed, node, lo)."""
    n_all = int(seconds * hz)
    n_t = hi - lo
    step_us = int(1e6 / hz)
    times = np.datetime64(t0.replace(tzinfo=None), "us") + np.arange(lo, hi) * np.timedelta64(step_us, "us")
    d = len(DEVICES)
    level = np.random.default_rng([seed, i]).normal(60, 15, (d, 1))
    rng = np.random.default_rng([seed, i, lo])
    util = np.clip(level + rng.normal(0, 8, (d, n_t)), 0, 100)
    temp = 40 + 0.35 * util + rng.normal(0, 1.0, (d, n_t))
    power = 150 + 5 * util + rng.normal(0, 10, (d, n_t))
    sample = np.arange(lo, hi)
    keep = np.ones((d, n_t), dtype=bool)
    thermal = np.zeros((d, n_t), dtype=bool)
    if throttling(i):
        late = sample >= int(0.75 * n_all)
        for k in (2, 5):
            thermal[k] = late
            temp[k, late] += 25
    if stale_devices(i):
        keep[16:19, sample >= n_all - int(600 * hz)] = False
    if quiet(i):
        keep[:, sample >= n_all - int(900 * hz)] = False
    names = np.array([x[0] for x in DEVICES])
    groups = np.array([x[1] for x in DEVICES])
    vendors = np.array([x[2] for x in DEVICES])
    models = np.array([x[3] for x in DEVICES])
    dev_idx = np.repeat(np.arange(d), n_t)
    mask = keep.ravel()
    frame = pl.DataFrame(
        {
            "time": np.tile(times, d)[mask],
            "node": np.full(mask.sum(), node_name(i)),
            "device": names[dev_idx][mask],
            "vendor": vendors[dev_idx][mask],
            "model": models[dev_idx][mask],
            "group": groups[dev_idx][mask],
            "temp_c": temp.ravel()[mask],
            "power_w": power.ravel()[mask],
            "util_pct": util.ravel()[mask],
            "pcie_rx_bytes_per_s": (util.ravel()[mask] * 2e8),
            "pcie_tx_bytes_per_s": (util.ravel()[mask] * 1e8),
            "throttle_thermal": thermal.ravel()[mask],
            "throttle_power": np.zeros(mask.sum(), dtype=bool),
        }
    )
    return frame.with_columns(pl.col("time").dt.replace_time_zone("UTC"))


def write_alerts(root: Path, now: datetime) -> None:
    """A firing noisy-neighbour alert on node index 7 and a resolved thermal one on node index 57."""
    from analysis.alerts.engine import EngineState, write_state
    from analysis.alerts.rules import Alert, AlertBook

    nn = Alert(
        labels={
            "alertname": "NoisyNeighborDegradation",
            "severity": "critical",
            "node": node_name(7),
            "victim": "hive0",
            "antagonist": "tt",
        },
        annotations={"summary": "hive0 p99 ITL +12.0 % while tt is busy (through pcie)"},
        state="firing",
        active_at=now - timedelta(minutes=30),
        last_active_at=now,
        fired_at=now - timedelta(minutes=25),
    )
    th = Alert(
        labels={"alertname": "ThermalRegression", "severity": "warning", "node": node_name(57), "device": "gpu2"},
        annotations={"summary": "gpu2 +4 °C at the same power"},
        state="resolved",
        active_at=now - timedelta(minutes=50),
        last_active_at=now - timedelta(minutes=40),
        fired_at=now - timedelta(minutes=50),
        resolved_at=now - timedelta(minutes=40),
    )
    write_state(root / "alerts", EngineState(AlertBook({a.fingerprint: a for a in (nn, th)}, now), []))


def build_fleet_store(
    root: Path,
    nodes: int = 500,
    seconds: int = 3600,
    hz: float = 1.0,
    seed: int = 0,
    end: datetime | None = None,
    slice_s: int = 300,
) -> Path:
    """Write the fleet under ``root/store`` (and its alert state under ``root/alerts``); returns the store path.
    The window ends at ``end`` (default: now, whole seconds), so a "last hour" range shows all of it. Written
    as a collector leaves it: one file per ``slice_s`` seconds of every node, in time order."""
    end = (end or datetime.now(UTC)).replace(microsecond=0)
    t0 = end - timedelta(seconds=seconds)
    n_all = int(seconds * hz)
    per_slice = max(1, int(slice_s * hz))
    store = ParquetStore(root / "store")
    try:
        for lo in range(0, n_all, per_slice):
            hi = min(n_all, lo + per_slice)
            frame = pl.concat([node_frame(i, t0, seconds, hz, seed, lo, hi) for i in range(nodes)])
            store.write("accel", frame.sort("time"))
    finally:
        store.close()
    write_alerts(root, end)
    return root / "store"
