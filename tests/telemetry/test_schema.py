"""The schema: one vocabulary, units in names, absent never 0."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from telemetry.errors import SchemaError
from telemetry.schema import MEASUREMENTS, conform, schema_markdown

UNIT_SUFFIXES = {
    "degC": "_c",
    "W": "_w",
    "J": "_j",
    "V": "_v",
    "A": "_a",
    "B/s": "_bytes_per_s",
    "B": "_bytes",
    "MHz": "_mhz",
    "%": "_pct",
    "ms": "_ms",
    "s": "_s",
    "1/s": "_per_s",
}


def test_docs_schema_md_matches_the_code():
    doc = (Path(__file__).parents[2] / "docs" / "schema.md").read_text()
    assert schema_markdown() in doc


@pytest.mark.parametrize("m", MEASUREMENTS.values(), ids=lambda m: m.name)
def test_every_field_has_a_unit_and_the_unit_is_in_its_name(m):
    for f in m.fields:
        assert f.unit, f.name
        suffix = UNIT_SUFFIXES.get(f.unit)
        if suffix and f.unit != "ms":
            assert f.name.endswith(suffix) or re.search(rf"{suffix}_(p\d+|mean|max)$", f.name), f.name
        if f.unit == "ms":
            assert "_ms" in f.name, f.name


def test_accel_has_the_tags_and_fields_the_issue_names():
    accel = MEASUREMENTS["accel"]
    assert accel.tags == ("node", "device", "vendor", "model", "group", "pci_bus")
    for name in (
        "temp_c",
        "temp_mem_c",
        "power_w",
        "energy_j",
        "pcie_tx_bytes_per_s",
        "pcie_rx_bytes_per_s",
        "pcie_link_gen",
        "pcie_link_width",
        "util_pct",
        "mem_used_bytes",
        "mem_total_bytes",
        "sm_clock_mhz",
        "mem_clock_mhz",
        "throttle_thermal",
        "throttle_power",
        "throttle_other",
    ):
        assert name in accel.field_index


def test_conform_adds_missing_columns_as_absent_not_zero():
    f = conform(pl.DataFrame({"time": [1], "device": ["gpu0"], "temp_c": [40.0]}), "accel")
    assert f.columns == list(MEASUREMENTS["accel"].columns)
    assert f["power_w"][0] is None


def test_conform_turns_nan_and_infinity_into_absent():
    f = conform(pl.DataFrame({"time": [1, 2], "temp_c": [float("nan"), float("inf")]}), "accel")
    assert f["temp_c"].to_list() == [None, None]


def test_conform_names_column_and_row_of_a_bad_value():
    with pytest.raises(SchemaError) as exc:
        conform(pl.DataFrame({"time": [1, 2], "temp_c": ["40", "hot"]}), "accel", where="frames[0]")
    assert exc.value.where == "frames[0].temp_c[1]"


def test_conform_refuses_unknown_columns_and_fractional_integers():
    with pytest.raises(SchemaError, match="unknown column"):
        conform(pl.DataFrame({"time": [1], "temp_f": [1.0]}), "accel")
    with pytest.raises(SchemaError, match=r"pcie_link_gen\[0\]"):
        conform(pl.DataFrame({"time": [1], "pcie_link_gen": [4.5]}), "accel")


def test_time_accepts_epoch_ns_seconds_and_iso_text():
    ns = conform(pl.DataFrame({"time": [1_700_000_000_000_000_000]}), "host")["time"]
    s = conform(pl.DataFrame({"time": [1_700_000_000.0]}), "host")["time"]
    iso = conform(pl.DataFrame({"time": ["2023-11-14T22:13:20Z"]}), "host")["time"]
    assert ns.equals(s) and ns.equals(iso)


def test_conform_refuses_a_boolean_for_a_number():
    with pytest.raises(SchemaError, match=r"expected a number") as exc:
        conform(pl.DataFrame({"time": [1, 2], "temp_c": [None, True]}), "accel")
    assert exc.value.where == "temp_c[1]"
