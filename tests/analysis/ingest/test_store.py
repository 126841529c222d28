"""Runs go through the store protocol and come back by run id."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analysis.ingest import import_bench_files, list_runs, load_requests, load_run, load_tokens, tokens_frame
from telemetry.errors import StoreError
from telemetry.store.factory import open_store
from tests.analysis.ingest.fake_bench import aiperf_records, fake_workload, write_jsonl

SEED000 = (
    Path(__file__).resolve().parents[2] / "fixtures" / "bench" / "vllm" / "seed000_inferencex_sglang_mi300x_blog.txt"
)


@pytest.fixture
def store(tmp_path: Path):
    st = open_store(tmp_path / "store")
    yield st
    st.close()


def test_detailed_run_round_trips_through_the_store(store, tmp_path: Path) -> None:
    w = fake_workload(seed=1)
    path = write_jsonl(tmp_path / "profile_export.jsonl", aiperf_records(w))
    [run] = import_bench_files(store, [path], run_id="r1", phase="baseline", group="hive0", node="n1", tokens=True)
    back = load_run(store, "r1")
    assert back == run  # metadata and summary (requests compare=False)
    assert back.requests is not None
    assert back.requests.equals(run.requests)
    assert load_tokens(store, "r1").equals(tokens_frame(run))


def test_bench_request_rows_are_queryable_by_run(store, tmp_path: Path) -> None:
    w = fake_workload(seed=2)
    path = write_jsonl(tmp_path / "profile_export.jsonl", aiperf_records(w))
    import_bench_files(store, [path], run_id="r2", phase="stress", group="hive1", node="n1")
    rows = store.query("bench_request", tags={"run_id": "r2"})
    assert rows.height == w.n
    assert set(rows["phase"]) == {"stress"} and set(rows["group"]) == {"hive1"} and set(rows["tool"]) == {"aiperf"}
    assert rows["success"].sum() == w.n - 2
    assert set(rows["timing"]) == {"wall_clock"}
    ok = rows.filter(pl.col("success"))
    assert (ok["itl_ms_max"] >= ok["itl_ms_mean"]).all()


def test_summary_only_runs_store_run_events_only(store) -> None:
    runs = import_bench_files(store, [SEED000], run_id="seed", phase="baseline", wall_start_s=1_763_800_000.0)
    assert len(runs) == 5
    events = store.query("run_event", tags={"run_id": "seed.1"})
    assert sorted(events["event"].to_list()) == ["end", "start", "summary"]
    assert load_requests(store, "seed.1") is None
    assert load_tokens(store, "seed.1").height == 0
    assert load_run(store, "seed.1").summary["output_tok_s"] == 822.10
    assert [r.run_id for r in list_runs(store, {"phase": "baseline"})] == [f"seed.{k}" for k in range(1, 6)]


def test_unknown_run_id_is_a_key_error(store) -> None:
    with pytest.raises(KeyError, match="nope"):
        load_run(store, "nope")


def test_tokens_are_derived_from_the_requests_artifact_when_not_materialised(store, tmp_path: Path) -> None:
    w = fake_workload(seed=3)
    path = write_jsonl(tmp_path / "profile_export.jsonl", aiperf_records(w))
    [run] = import_bench_files(store, [path], run_id="r3")
    assert store.read_artifact("bench/r3/tokens") is None
    assert load_tokens(store, "r3").equals(tokens_frame(run))


def test_a_run_is_imported_once(store) -> None:
    import_bench_files(store, [SEED000], run_id="seed")
    with pytest.raises(StoreError, match="already in the store"):
        import_bench_files(store, [SEED000], run_id="seed")


def test_the_wrappers_start_and_end_events_are_not_duplicated(store, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    wrapper = pl.DataFrame(
        {"time": [datetime(2026, 3, 7, tzinfo=UTC), datetime(2026, 3, 7, 0, 10, tzinfo=UTC)],
         "node": ["n1", "n1"], "run_id": ["w1", "w1"], "group": ["hive0"] * 2, "phase": ["baseline"] * 2,
         "event": ["start", "end"], "monotonic_s": [100.0, 700.0]}
    )  # fmt: skip
    store.write("run_event", wrapper)
    w = fake_workload(seed=4)
    path = write_jsonl(tmp_path / "profile_export.jsonl", aiperf_records(w))
    import_bench_files(store, [path], run_id="w1", phase="baseline", group="hive0", node="n1")
    events = store.query("run_event", tags={"run_id": "w1"})
    assert sorted(events["event"].to_list()) == ["end", "start", "summary"]
