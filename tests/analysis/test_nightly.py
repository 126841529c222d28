"""`analysis.nightly`: the night's runs listed once and split per node; per-node work in worker processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from analysis.ingest.model import Run, run_event_frame
from analysis.nightly import NodeJob, plan_night, run_night
from telemetry.schema import conform
from telemetry.store.factory import open_store

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
START, END = T0 - timedelta(hours=1), T0 + timedelta(hours=1)


def _run(rid: str, node: str, group: str, at: datetime) -> Run:
    return Run(rid, "aiperf", "test", {}, start=at, end=at + timedelta(minutes=1), timed=True, node=node,
               group=group, phase="baseline")  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three nodes with runs in the window (one run outside it), one run naming no node, accel rows per node."""
    root = tmp_path_factory.mktemp("nightly") / "store"
    st = open_store(root)
    runs = [
        _run("a1", "node-a", "hive0", T0),
        _run("a2", "node-a", "hive1", T0 + timedelta(minutes=5)),
        _run("a3", "node-a", "hive0", END + timedelta(minutes=5)),  # after the window
        _run("b1", "node-b", "hive0", T0),
        _run("c1", "node-c", "hive1", T0),
        _run("x1", "", "hive0", T0),
    ]
    for r in runs:
        st.write("run_event", run_event_frame(r))
    for i, node in enumerate(["node-a", "node-b", "node-c"]):
        n = 10 * (i + 1)
        st.write("accel", conform(pl.DataFrame({"time": [T0 + timedelta(seconds=s) for s in range(n)],
                                                "node": [node] * n, "device": ["gpu0"] * n,
                                                "temp_c": [50.0] * n}), "accel"))  # fmt: skip
    st.close()
    return root


def _accel_rows(store: object, job: NodeJob, *, factor: int = 1) -> int:
    """A node's work (module level: it pickles to a worker): its accelerator rows, times ``factor``."""
    if job.node == "boom":
        raise ValueError("no such node\nsecond line")
    return factor * store.query("accel", tags={"node": job.node}).height  # type: ignore[attr-defined]


def test_the_plan_splits_the_windows_runs_per_node_with_their_victims(store: Path) -> None:
    st = open_store(store, create=False)
    try:
        jobs = {j.node: j for j in plan_night(st, START, END)}
        assert list(jobs) == ["", "node-a", "node-b", "node-c"]
        assert [r.run_id for r in jobs["node-a"].runs] == ["a1", "a2"]  # a3 started after the window
        assert jobs["node-a"].victims == ("hive0", "hive1") and jobs["node-c"].victims == ("hive1",)
        assert [j.node for j in plan_night(st, START, END, victims=["hive1"])] == ["node-a", "node-c"]
        assert plan_night(st, END + timedelta(hours=1), END + timedelta(hours=2)) == []
    finally:
        st.close()


def test_run_night_runs_each_node_in_a_worker_and_reports_a_failure_as_one_line(store: Path) -> None:
    jobs = [NodeJob(n, ("hive0",), ()) for n in ("node-a", "node-b", "boom", "node-c")]
    done = {d.node: d for d in run_night(store, jobs, _accel_rows, workers=2, factor=2)}
    assert {n: d.value for n, d in done.items()} == {"node-a": 20, "node-b": 40, "boom": None, "node-c": 60}
    assert done["boom"].error == "ValueError: no such node"
    assert all(d.peak_rss_bytes > 0 and d.cpu_s >= 0 for d in done.values())
    inline = {d.node: d.value for d in run_night(store, jobs, _accel_rows, workers=1, factor=2)}
    assert inline == {n: d.value for n, d in done.items()}
    (missing,) = run_night(store / "missing", jobs[:1], _accel_rows, workers=1)
    assert missing.value is None and "does not exist" in (missing.error or "")
