"""The nightly report of a fleet: the night's runs listed once, every node's report drawn from that node's data in
worker processes, an index over them. A node's report in the fleet is the report of a store holding that node alone."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analysis.ingest.model import artifact_key, list_runs, run_event_frame
from analysis.report.fleet import node_dir
from telemetry.cli import app
from telemetry.store.factory import open_store
from tests.analysis.report.conftest import SIM_START

START, END = SIM_START.replace(hour=8), SIM_START.replace(hour=10)
OTHER = "node-b"


@pytest.fixture(scope="module")
def fleet_store(sim_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated node and a copy of it named `OTHER` (its run ids prefixed ``node-b.``)."""
    root = tmp_path_factory.mktemp("fleet") / "store"
    shutil.copytree(sim_store, root)
    st = open_store(root)
    (node,) = {r.node for r in list_runs(st)}
    for m in st.measurements():
        if m != "run_event":
            frame = st.query(m).with_columns(pl.lit(OTHER).alias("node"))
            if "run_id" in frame.columns:
                frame = frame.with_columns((pl.lit(f"{OTHER}.") + pl.col("run_id")).alias("run_id"))
            st.write(m, frame)
    for r in list_runs(st, {"node": node}):
        rid = f"{OTHER}.{r.run_id}"
        st.write("run_event", run_event_frame(replace(r, run_id=rid, node=OTHER)))
        for what in ("requests", "tokens"):
            art = st.read_artifact(artifact_key(r.run_id, what))
            if art is not None:
                st.write_artifact(artifact_key(rid, what), art.with_columns(pl.lit(rid).alias("run_id")))
    st.close()
    return root


def _node(fleet_store: Path) -> str:
    st = open_store(fleet_store, create=False)
    try:
        return next(r.node for r in list_runs(st) if r.node != OTHER)
    finally:
        st.close()


def test_report_nightly_on_a_fleet_writes_each_nodes_report_as_that_node_alone_would_have_it(
    fleet_store: Path, sim_report: dict[str, Path], tmp_path: Path
) -> None:
    res = CliRunner().invoke(app, ["report", "--store", str(fleet_store), "--out", str(tmp_path), "--start",
                                   START.isoformat(), "--end", END.isoformat(), "--nightly", "--jobs", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    day = tmp_path / END.strftime("%Y-%m-%d")
    assert res.output.strip().splitlines()[-1] == str(day / "index.html")
    node = _node(fleet_store)
    fleet = json.loads((day / "summary.json").read_text())
    assert [r["node"] for r in fleet["nodes"]] == sorted([node, OTHER]) and sum(fleet["counts"].values()) == 2
    index = (day / "index.html").read_text()
    alone = json.loads(sim_report["summary"].read_text())  # the store holding the simulated node alone
    for name in (node, OTHER):
        assert f'href="{node_dir(name)}/index.html"' in index
        mine = json.loads((day / node_dir(name) / "summary.json").read_text())
        assert mine["metadata"]["nodes"] == [name]  # its own telemetry only
        assert mine["metadata"]["accel_rows"] == alone["metadata"]["accel_rows"]
        assert mine["verdict"]["status"] == alone["verdict"]["status"]
        for section in ("phases", "antagonists"):
            ours = json.dumps(mine[section], sort_keys=True).replace(f"{OTHER}.", "")
            assert ours == json.dumps(alone[section], sort_keys=True)
