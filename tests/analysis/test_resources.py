"""The resource records: each names real topology share keys and real sample fields, the simulator knows the same
resources, and a record is all attribution reads (a new one is picked up by suspects, mediators and evidence)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import get_args

import numpy as np
import polars as pl
import pytest

from analysis import attribution
from analysis.align import Grid, device_windows, group_windows, group_windows_direct
from analysis.resources import ALL_FIELDS, FIELDS, RESOURCE_NAMES, RESOURCES, Derive, Mediator, Resource
from telemetry import schema, topology
from telemetry.sim import scenario


def test_every_share_key_is_a_topology_column() -> None:
    for r in RESOURCES:
        assert r.share_keys or r.name == "memory", r.name  # memory is host-wide: no share key
        for key in r.share_keys:
            assert key in topology.SHARED and key in topology.TOPOLOGY_COLUMNS, (r.name, key)


def test_every_shared_topology_column_names_a_resource() -> None:
    assert {k for r in RESOURCES for k in r.share_keys} == set(topology.SHARED)


def test_names_mediator_columns_and_fields_are_unique() -> None:
    assert len(set(RESOURCE_NAMES)) == len(RESOURCES) and "unknown" not in RESOURCE_NAMES
    columns = [m.column for r in RESOURCES for m in r.mediators]
    assert len(set(columns)) == len(columns)
    names = [f.name for f in FIELDS]
    assert len(set(names)) == len(names)


def test_the_simulator_couples_through_the_same_resources() -> None:
    assert set(scenario.RESOURCES) == set(RESOURCE_NAMES)


def _fields_read(expr_of) -> set[str]:
    read: set[str] = set()

    def col(name: str) -> pl.Expr:
        read.add(name)
        return pl.col(name)

    expr_of(col)
    return read


def test_every_window_field_reads_its_measurements_sample_fields() -> None:
    for f in ALL_FIELDS:
        read = _fields_read(f.expr)
        assert read and read <= set(schema.measurement(f.measurement).field_names), (f.column, read)
    assert all(f.measurement == "accel" for f in FIELDS)


def test_every_mediator_field_is_a_window_field_and_every_kind_is_known() -> None:
    columns = {f.column for f in ALL_FIELDS} | {"tenant.cpu_pct"}  # a base column of the tenant windows
    for r in RESOURCES:
        for m in r.mediators:
            assert m.kind in ("primary", "hard", "context")
            assert m.derive in get_args(Derive), (r.name, m.column)
            if m.field is not None:
                assert m.field in columns, (r.name, m.column)
            assert set(m.ambiguous_with) <= set(RESOURCE_NAMES) - {r.name}, (r.name, m.column)
        assert any(m.kind == "primary" for m in r.mediators), f"{r.name} has no signal that can name it"
    assert set(get_args(Derive)) == set(attribution._DERIVE)


def test_align_windows_carry_every_resource_field_summed_or_averaged_as_declared() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for s in range(4):
        for dev, scale in (("0", 1.0), ("1", 3.0)):
            rows.append(
                {
                    "time": t0 + timedelta(seconds=s),
                    "node": "n",
                    "device": dev,
                    "group": "g",
                    "power_w": 100.0 * scale,
                    "power_limit_w": 400.0,
                    "util_pct": 50.0,
                    "pcie_rx_bytes_per_s": 10.0 * scale,
                    "pcie_tx_bytes_per_s": 5.0 * scale,
                    "temp_c": 40.0 * scale,
                    "sm_clock_mhz": 1000.0,
                    "throttle_thermal": s == 0,
                    "throttle_power": False,
                }
            )
    accel = pl.DataFrame(rows).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
    dev = device_windows(accel, 10.0)
    for frame in (group_windows(dev), group_windows_direct(accel, 10.0)):
        assert set(FIELDS_BY_NAME) <= set(frame.columns)
        row = frame.row(0, named=True)
        for f in FIELDS:
            per_dev = dev[f.name].to_list()
            want = sum(per_dev) if f.group_agg == "sum" else sum(per_dev) / len(per_dev)
            assert row[f.name] == pytest.approx(want), f.name
    assert dev.filter(pl.col("device") == "1")["pcie_bytes_per_s"].item() == 45.0


FIELDS_BY_NAME = {f.name: f for f in FIELDS}


def _grid_with_cooler(n: int) -> tuple[Grid, np.ndarray]:
    """Victim windows and accelerator groups where a co-tenant switched on lowers the victim's fan-assisted
    cooling headroom (a made-up ninth resource read from ``temp_c``)."""
    on = np.tile([0.0] * 5 + [1.0] * 5, n // 10)
    ws = pl.Series("window_start", np.datetime64("2026-01-01T00:00:00", "ns") + np.arange(n) * np.timedelta64(5, "s"))
    ws = ws.dt.replace_time_zone("UTC")
    victim = pl.DataFrame(
        {
            "run_id": "r",
            "phase": "p",
            "group": "victim",
            "window_start": ws,
            "covered_s": 5.0,
            "tokens": 1000.0,
            "output_tok_s": 200 - 40 * on,
            "itl_n": 1000,
            "itl_ms_p99": 30 + 10 * on,
            "requests_started": 30.0,
            "running_requests": 1.0,
            "prefill_tokens": 640.0,
        }
    )
    rng = np.random.default_rng(0)
    groups = pl.DataFrame(
        {
            "window_start": ws,
            "node": "n",
            "group": "victim",
            "power_w": 300.0,
            "power_limit_w": 400.0,
            "util_pct": 90.0,
            **{f.name: 1.0 for f in FIELDS},
        }
    ).with_columns(pl.Series("temp_c", 50 + 20 * on + rng.normal(0, 0.5, n)))
    empty = pl.DataFrame(schema={"window_start": pl.Datetime("ns", "UTC")})
    return Grid(5.0, victim, empty, groups, empty, empty, empty), on


def test_a_new_record_is_all_attribution_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    coolant = Resource(
        name="coolant",
        share_keys=("cooling_zone",),
        mediators=(
            Mediator(
                "coolant_heat",
                "primary",
                "victim coolant heat",
                "value",
                "accel temp_c",
                lambda s: f"{s:+.0f} heat units",
                field="temp_c",
            ),
        ),
    )
    monkeypatch.setattr(attribution, "RESOURCES", (*RESOURCES, coolant))
    monkeypatch.setattr(attribution, "RESOURCE_NAMES", (*RESOURCE_NAMES, "coolant"))
    monkeypatch.setattr(attribution, "BY_NAME", {**attribution.BY_NAME, "coolant": coolant})
    grid, on = _grid_with_cooler(60)
    med = attribution.mediators(grid, "victim")
    assert med.columns[-1] == "coolant_heat"
    resource, lines, hard = attribution.resource_evidence("hog", on, med, ["coolant"])
    assert resource == "coolant" and not hard
    assert lines[0].startswith("coolant: victim coolant heat +20 heat units with hog at its busiest (t=")
    # its thresholds are the record's: one no t can reach keeps it from naming the resource
    strict = dataclasses.replace(coolant, t_evidence=1e9)
    monkeypatch.setattr(attribution, "BY_NAME", {**attribution.BY_NAME, "coolant": strict})
    assert attribution.resource_evidence("hog", on, med, ["coolant"])[0] == "unknown"
    # suspects through its share key
    topo = topology.topology_frame(
        {
            "devices": [
                {"node": "n", "device": "0", "group": "victim", "cooling_zone": "z"},
                {"node": "n", "device": "1", "group": "hog", "cooling_zone": "z"},
            ]
        }
    )
    grid = dataclasses.replace(
        grid, groups=pl.concat([grid.groups, grid.groups.with_columns(pl.lit("hog").alias("group"))])
    )
    sus = attribution.suspects("victim", grid, topo)
    assert sus.row(0, named=True)["resources"] == ["memory", "thermal", "coolant"]  # memory: host-wide
