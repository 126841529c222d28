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


def test_a_summary_without_a_time_gets_no_made_up_start(store, tmp_path: Path) -> None:
    """Seed 000's printed blocks carry no time: no start, no start / end events, a summary event at the import time
    (never 1970, never "the file's time minus the duration") and the import order."""
    import time

    pasted = tmp_path / "block.txt"
    pasted.write_text(SEED000.read_text())  # a paste: its mtime is now
    before = time.time_ns()
    runs = import_bench_files(store, [pasted], run_id="seed", phase="baseline")
    after = time.time_ns()
    assert [(r.start, r.end, r.timed, r.time_source) for r in runs] == [(None, None, False, "unknown")] * 5
    seqs = [r.import_seq for r in runs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5 and before <= seqs[0] and seqs[-1] <= after
    events = store.query("run_event", tags={"run_id": "seed.1"})
    assert events["event"].to_list() == ["summary"]
    assert before // 1000 <= events["time"][0].timestamp() * 1e6 <= after // 1000 + 1
    back = load_run(store, "seed.1")
    assert back.start is None and back.timed is False and back.import_seq == seqs[0]


def test_runs_without_a_start_list_in_import_order(store) -> None:
    first = import_bench_files(store, [SEED000], run_id="stress", phase="stress")
    second = import_bench_files(store, [SEED000], run_id="base", phase="baseline")
    assert min(r.import_seq for r in second) > max(r.import_seq for r in first)
    assert [r.run_id for r in list_runs(store)] == [r.run_id for r in first + second]


def test_a_per_request_run_placed_by_the_files_mtime_says_its_time_is_a_guess(tmp_path: Path) -> None:
    import json
    import os

    from analysis.ingest import parse_bench_files
    from tests.analysis.ingest.fake_bench import sglang_details

    path = tmp_path / "sglang.jsonl"
    path.write_text(json.dumps(sglang_details(fake_workload(seed=5))) + "\n")
    os.utime(path, (1_763_800_000, 1_763_800_000))
    [run] = parse_bench_files([path], run_id="s")
    assert run.time_source == "file_mtime" and run.timed is False
    assert run.end.timestamp() == pytest.approx(1_763_800_000, abs=1e-3)
