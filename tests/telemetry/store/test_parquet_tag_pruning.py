"""A fleet's per-node read of the embedded store: files whose statistics exclude a tag filter are skipped (a fleet's
day holds one file per node and per write), and a quiet directory is listed once per process; the read returns
exactly what the unpruned, freshly listed read returns."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from telemetry.errors import SchemaError
from telemetry.schema import conform
from telemetry.store.parquet import ParquetStore, _may_match, tag_ranges

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)


def accel(nodes: list[str | None], devices: tuple[str, ...] = ("gpu0", "gpu1"), base: float = 0.0) -> pl.DataFrame:
    rows = [(n, d) for n in nodes for d in devices]
    return conform(
        pl.DataFrame(
            {
                "time": [T0 + timedelta(seconds=i) for i in range(len(rows))],
                "node": [n for n, _ in rows],
                "device": [d for _, d in rows],
                "temp_c": [base + i for i in range(len(rows))],
            }
        ),
        "accel",
    )


@pytest.fixture
def fleet(tmp_path) -> ParquetStore:
    st = ParquetStore(tmp_path / "store")
    for i, node in enumerate(["node-a", "node-b", "node-c"]):
        st.write("accel", accel([node], base=100.0 * i))
    st.write("accel", accel(["node-a", "node-b"], base=1000.0))  # a file holding two nodes (a group commit)
    st.write("accel", accel([None], base=2000.0))  # rows without a node tag
    return st


def test_a_one_node_read_skips_the_files_of_other_nodes_and_returns_the_same_rows(fleet):
    files = fleet.files("accel")
    assert len(files) == 5
    kept = _may_match(files, {"node": "node-c"})
    # its own file, and the file without a node tag (nothing known of it: never skipped)
    assert sorted(str((tag_ranges(f) or {}).get("node")) for f in kept) == ["('node-c', 'node-c')", "None"]
    assert len(_may_match(files, {"node": ["node-a"]})) == 3  # its own file, the two-node file, the untagged one
    everything = pl.concat([pl.read_parquet(f) for f in files])
    for want in ("node-a", "node-b", ["node-a", "node-c"]):
        values = [want] if isinstance(want, str) else want
        got = fleet.query("accel", tags={"node": want})
        assert got.height > 0
        expected = everything.filter(pl.col("node").is_in(values)).sort("time", maintain_order=True)
        assert got.sort(["time", "node", "device"]).equals(expected.sort(["time", "node", "device"]))


def test_a_value_no_file_holds_reads_nothing_with_the_same_schema_and_errors(fleet):
    none = fleet.query("accel", tags={"node": "node-z"})
    assert none.height == 0
    assert none.schema == fleet.query("accel").schema
    with pytest.raises(SchemaError, match="unknown tag"):
        fleet.query("accel", tags={"nope": "x"})
    # a second tag narrows further; a file whose range holds both values stays (statistics are per column)
    assert fleet.query("accel", tags={"node": "node-c", "device": "gpu1"})["device"].unique().to_list() == ["gpu1"]


def test_files_without_usable_statistics_are_never_skipped(fleet, tmp_path):
    files = fleet.files("accel")
    nulls = [f for f in files if "node" not in (tag_ranges(f) or {})]
    assert len(nulls) == 1  # only nulls in the node column: nothing known, never pruned on node
    assert nulls[0] in _may_match(files, {"node": "node-c"})
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not a parquet file")
    assert tag_ranges(broken) is None
    node_a = next(f for f in files if (tag_ranges(f) or {}).get("node") == ("node-a", "node-a"))
    assert _may_match([node_a, broken], {"node": "node-z"}) == [broken]


def _age(d: Path, seconds: float = 3600.0) -> None:
    """Make the directory look like a past day's: its mtime an hour ago."""
    t = os.stat(d).st_mtime - seconds
    os.utime(d, (t, t))


def test_a_quiet_directory_is_listed_once_and_listed_again_when_it_changes(tmp_path) -> None:
    st = ParquetStore(tmp_path / "store")
    st.write("accel", accel(["node-a"]))
    (d,) = {f.parent for f in st.files("accel")}
    _age(d)
    assert len(ParquetStore(tmp_path / "store", create=False).files("accel")) == 1  # listed and kept
    sneaked = d / "w-sneaked.parquet"  # a file put in without changing the directory's mtime
    shutil.copy(st.files("accel")[0], sneaked)
    os.utime(d, ns=(_kept_mtime(d), _kept_mtime(d)))
    assert sneaked not in ParquetStore(tmp_path / "store", create=False).files("accel")  # the kept listing
    st.write("accel", accel(["node-b"]))  # a rename into the directory: its mtime changes
    assert len(st.files("accel")) == 3 and sneaked in st.files("accel")


def test_a_file_damaged_in_place_in_a_kept_listing_is_still_found_and_skipped(tmp_path) -> None:
    st = ParquetStore(tmp_path / "store")
    st.write("accel", accel(["node-a"]))
    st.write("accel", accel(["node-b"], base=100.0))
    (d,) = {f.parent for f in st.files("accel")}
    _age(d)
    reader = ParquetStore(tmp_path / "store", create=False)
    assert reader.query("accel").height == 4  # the listing is kept
    victim = next(f for f in reader.files("accel") if tag_ranges(f)["node"][0] == "node-b")  # type: ignore[index]
    mtime = os.stat(d).st_mtime_ns
    data = victim.read_bytes()
    victim.write_bytes(data[:4] + b"\0" * (len(data) - 8) + data[-4:])  # same size, pages and footer destroyed
    os.utime(d, ns=(mtime, mtime))
    again = ParquetStore(tmp_path / "store", create=False)
    got = again.query("accel")
    assert got["node"].unique().to_list() == ["node-a"]
    assert [p for p, _ in again.unreadable_files()] == [str(victim)]


def _kept_mtime(d: Path) -> int:
    from telemetry.store.parquet import _LISTINGS

    return _LISTINGS[str(d)][0][0]
