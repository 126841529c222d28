"""The overview's fleet table: one row per node, the nodes in most trouble first, from a fleet-sized store's
cheap reductions (`dashboard.data.fleet_frame`) and the alert engine's alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from dashboard.alerts_view import alerts_frame, load_state
from dashboard.data import STATUS_SCHEMA, Reader, fleet_frame, node_frame, status_frame
from dashboard.fleet import fleet_counts, fleet_rows, neighbour_findings
from dashboard.settings import Settings
from telemetry.schema import conform
from telemetry.store.parquet import ParquetStore
from tests.dashboard.fleet_store import build_fleet_store

END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STALE = timedelta(seconds=90)


def status(rows: list[tuple[str, str, int, float | None, float]]) -> pl.DataFrame:
    """(node, device, seconds before END of its last sample, temp_c, throttled share) -> a status frame."""
    return pl.DataFrame(
        [
            {
                "node": n,
                "device": d,
                "last_seen": END - timedelta(seconds=ago),
                "temp_c": t,
                "power_w": 300.0,
                "util_pct": 50.0,
                "throttled_share": share,
            }
            for n, d, ago, t, share in rows
        ],
        schema=STATUS_SCHEMA,
    )


def test_nodes_are_ordered_quiet_then_alerts_then_stale_then_throttled_then_hottest():
    frame = status(
        [
            ("cool", "d0", 1, 50.0, 0.0),
            ("cool", "d1", 1, 51.0, 0.0),
            ("hot", "d0", 1, 88.0, 0.0),
            ("hot", "d1", 1, 60.0, 0.0),
            ("throttled", "d0", 1, 70.0, 0.2),
            ("throttled", "d1", 1, 70.0, 0.05),
            ("stale", "d0", 1, 60.0, 0.0),
            ("stale", "d1", 600, 60.0, 0.0),
            ("quiet", "d0", 900, 60.0, 0.0),
            ("quiet", "d1", 900, 60.0, 0.0),
            ("alerting", "d0", 1, 55.0, 0.0),
        ]
    )
    alerts = alerts_frame(
        [{"labels": {"alertname": "PerfRegression", "node": "alerting", "severity": "critical"}, "status": "firing"}],
        now=END,
    )
    rows = fleet_rows(frame, alerts, END, STALE)
    assert rows["node"].to_list() == ["quiet", "alerting", "stale", "throttled", "hot", "cool"]
    why = dict(zip(rows["node"], rows["trouble"], strict=True))
    assert why["quiet"] == f"quiet since {(END - timedelta(seconds=900)):%H:%M:%S}"
    assert why["alerting"] == "1 alert(s) firing"
    assert why["stale"] == "1 stale device(s)"
    assert why["throttled"] == "2 throttling (worst 20.0 %)"
    assert why["hot"] == why["cool"] == "ok"
    assert dict(zip(rows["node"], rows["hottest"], strict=True))["hot"] == "d0 · 88 °C"
    assert fleet_counts(rows) == {"nodes": 6, "accelerators": 11, "in_trouble": 4, "quiet": 1, "firing": 1}


def test_the_worst_neighbour_finding_is_a_firing_one_and_reads_as_a_sentence():
    alerts = alerts_frame(
        [
            {
                "labels": {
                    "alertname": "NoisyNeighborDegradation",
                    "node": "n1",
                    "victim": "hive0",
                    "antagonist": "tt",
                    "severity": "warning",
                },
                "annotations": {"summary": "old"},
                "status": "resolved",
                "startsAt": "2026-03-02T08:00:00Z",
                "endsAt": "2026-03-02T09:00:00Z",
            },
            {
                "labels": {
                    "alertname": "NoisyNeighborDegradation",
                    "node": "n1",
                    "victim": "hive1",
                    "antagonist": "cpu",
                    "severity": "warning",
                },
                "annotations": {"summary": "p99 ITL +9 %"},
                "status": "firing",
                "startsAt": "2026-03-02T10:00:00Z",
            },
            {"labels": {"alertname": "ThermalRegression", "node": "n2"}, "status": "firing"},
        ],
        now=END,
    )
    found = neighbour_findings(alerts)
    assert found.rows() == [("n1", "hive1 slowed by cpu: p99 ITL +9 %")]


def test_an_empty_store_gives_an_empty_table():
    rows = fleet_rows(status([]), alerts_frame([]), END, STALE)
    assert rows.height == 0 and "trouble" in rows.columns


@pytest.fixture(scope="module")
def small_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 nodes x 34 accelerators, 20 minutes at 1 Hz (trouble planted on node-003, node-007, node-011)."""
    return build_fleet_store(tmp_path_factory.mktemp("fleet"), nodes=12, seconds=1200, end=END)


def test_a_fleet_store_puts_the_planted_trouble_on_top(small_fleet: Path):
    r = Reader(ParquetStore(small_fleet))
    frame = fleet_frame(r, END - timedelta(hours=1), END + timedelta(seconds=10))
    assert frame.height == 12 * 34
    alerts = load_state(Settings(str(small_fleet), None, None, None, 30)).alerts
    rows = fleet_rows(frame, alerts, END + timedelta(seconds=10), STALE)
    assert rows["node"].head(3).to_list() == ["node-011", "node-007", "node-003"]
    top = {r["node"]: r for r in rows.head(3).iter_rows(named=True)}
    assert top["node-011"]["quiet_since"] == END - timedelta(seconds=901)
    assert top["node-007"]["firing_alerts"] == 1 and top["node-007"]["throttling_devices"] == 2
    assert top["node-007"]["neighbour"].startswith("hive0 slowed by tt")
    assert top["node-007"]["hottest"].startswith(("gpu2", "gpu5"))
    assert top["node-003"]["stale_devices"] == 3
    assert set(rows["trouble"].tail(9)) == {"ok"}


def test_the_fleet_reduction_agrees_with_the_full_scan_per_device(small_fleet: Path):
    """Sampled inventory, pushed-down flags and the newest minutes give the same last samples and values as
    reading every row (`status_frame`); the throttled share counts minutes instead of samples."""
    r = Reader(ParquetStore(small_fleet))
    start, end = END - timedelta(hours=1), END + timedelta(seconds=10)
    cheap, full = fleet_frame(r, start, end), status_frame(r, None, start, end)
    assert cheap.select("node", "device").equals(full.select("node", "device"))
    assert cheap["last_seen"].equals(full["last_seen"])
    recent = full["last_seen"] > END - timedelta(minutes=2)
    assert cheap.filter(recent).select("temp_c", "power_w").equals(full.filter(recent).select("temp_c", "power_w"))
    assert ((cheap["throttled_share"] > 0) == (full["throttled_share"] > 0)).all()


def test_nodes_without_accelerators_are_listed_with_what_they_send(tmp_path: Path):
    """A CPU-only node (host and tenant rows) and a serving-only node (engine metrics) appear in the fleet table
    with 0 accelerators; an accelerator node that also sends host rows says so; a host-only node that stopped
    reporting is quiet."""
    store = ParquetStore(tmp_path / "store")
    t = [END - timedelta(seconds=s) for s in (120, 60, 5)]

    def rows(measurement: str, node: str, times: list[datetime], **fields: object) -> None:
        n = len(times)
        store.write(
            measurement,
            conform(
                pl.DataFrame({"time": times, "node": [node] * n, **{k: [v] * n for k, v in fields.items()}}),
                measurement,
            ),
        )

    rows("host", "cpu-only", t, cpu_util_pct=40.0)
    rows("tenant", "cpu-only", t, group="batch", cpu_pct=100.0)
    rows("serving", "engine-only", t, group="hive0", engine="vllm", model="m", requests_running=3.0)
    rows("host", "old-cpu", [END - timedelta(seconds=900)], cpu_util_pct=1.0)
    rows("host", "gpu-node", t, cpu_util_pct=10.0)
    r = Reader(store)
    start, end = END - timedelta(hours=1), END + timedelta(seconds=10)
    others = node_frame(r, start, end)
    assert dict(zip(others["node"], others["telemetry"], strict=True)) == {
        "cpu-only": "host, tenant",
        "engine-only": "serving",
        "gpu-node": "host",
        "old-cpu": "host",
    }
    assert others.filter(pl.col("node") == "cpu-only")["last_seen"][0] == END - timedelta(seconds=5)
    accel = status([("gpu-node", "d0", 5, 60.0, 0.0)])
    table = fleet_rows(accel, alerts_frame([]), end, STALE, others)
    got = {r["node"]: r for r in table.iter_rows(named=True)}
    assert set(got) == {"cpu-only", "engine-only", "gpu-node", "old-cpu"}
    assert got["cpu-only"]["devices"] == got["engine-only"]["devices"] == 0
    assert got["gpu-node"]["devices"] == 1 and got["gpu-node"]["telemetry"] == "accel, host"
    assert got["engine-only"]["telemetry"] == "serving" and got["engine-only"]["trouble"] == "ok"
    assert got["old-cpu"]["quiet_since"] is not None and table["node"][0] == "old-cpu"
    assert fleet_counts(table)["accelerators"] == 1 and fleet_counts(table)["nodes"] == 4
    # nothing but non-accelerator nodes: still a table
    assert fleet_rows(status([]), alerts_frame([]), end, STALE, others).height == 4
