"""EvalScope 1.14.1 perf outputs (tests/fixtures/bench/evalscope, a real run at --parallel 1 2): one run per level
from its SQLite rows, with its concurrency, and every number equal to EvalScope's saved summary and percentiles."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from analysis.ingest import BenchFormatError, parse_bench_files
from analysis.ingest.base import parse_file

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "bench" / "evalscope"
LEVELS = {1: FIX / "parallel_1_number_4", 2: FIX / "parallel_2_number_20"}
# benchmark_summary.json key -> (ours, factor, the digits EvalScope rounds it to)
SUMMARY = {
    "Test Duration (s)": ("duration_s", 1, 4), "Success Requests": ("completed", 1, 0),
    "Failed Requests": ("failed", 1, 0), "Req Throughput (req/s)": ("requests_per_s", 1, 4),
    "Avg Latency (s)": ("e2e_ms_mean", 1000, 4), "Output Throughput (tok/s)": ("output_tok_s", 1, 4),
    "Total Throughput (tok/s)": ("total_tok_s", 1, 4), "Avg TTFT (ms)": ("ttft_ms_mean", 1, 2),
    "Avg TPOT (ms)": ("tpot_ms_mean", 1, 2), "Avg ITL (ms)": ("itl_ms_mean", 1, 2),
    "Avg Input Tokens": ("input_tokens_mean", 1, 4), "Avg Output Tokens": ("output_tokens_mean", 1, 4),
}  # fmt: skip
PERCENTILE = {"TTFT (ms)": ("ttft", 1), "ITL (ms)": ("itl", 1), "TPOT (ms)": ("tpot", 1), "Latency (s)": ("e2e", 1000)}


def _close(ours: float, theirs: float, factor: float, digits: int) -> bool:
    """``ours`` rounded the way EvalScope rounds what it saves equals ``theirs`` (half a last digit of slack)."""
    return abs(ours / factor - theirs) <= 0.5 * 10**-digits + 1e-12


@pytest.mark.parametrize("parallel", [1, 2])
def test_the_database_is_a_run_with_evalscope_s_summary(parallel: int) -> None:
    [run] = parse_bench_files([LEVELS[parallel] / "benchmark_data.db"])
    assert run.tool == "evalscope" and run.concurrency == parallel and run.model == "tiny-cpu-decoder"
    saved = json.loads((LEVELS[parallel] / "benchmark_summary.json").read_text())
    for key, (ours, factor, digits) in SUMMARY.items():
        assert _close(run.summary[ours], saved[key], factor, digits), (key, run.summary[ours], saved[key])


@pytest.mark.parametrize("parallel", [1, 2])
def test_the_database_gives_evalscope_s_percentiles(parallel: int) -> None:
    [run] = parse_bench_files([LEVELS[parallel] / "benchmark_data.db"])
    rows = json.loads((LEVELS[parallel] / "benchmark_percentile.json").read_text())
    checked = 0
    for row in rows:
        label = row["Percentiles"]
        stat = label if label in ("min", "max") else "p" + label.rstrip("%")
        for col, (ours, factor) in PERCENTILE.items():
            assert _close(run.summary[f"{ours}_ms_{stat}"], row[col], factor, 4), (label, col)
            checked += 1
    assert checked == 11 * 4


def test_two_levels_import_as_two_runs_with_their_concurrency() -> None:
    runs = parse_bench_files([LEVELS[1] / "benchmark_data.db", LEVELS[2] / "benchmark_data.db"], run_id="es")
    assert [(r.run_id, r.concurrency, r.num_prompts, r.requests.height) for r in runs] == [
        ("es.1", 1, 4, 4),
        ("es.2", 2, 20, 20),
    ]
    assert all(r.timing == "reconstructed" for r in runs)


def test_per_request_rows_are_the_database_s(tmp_path: Path) -> None:
    db = LEVELS[2] / "benchmark_data.db"
    with sqlite3.connect(db) as con:
        start, latency, ttft, itl = con.execute(
            "SELECT start_time, latency, first_chunk_latency, inter_token_latencies FROM result ORDER BY start_time"
        ).fetchone()
    wall0, mono0 = 1_796_465_000.0, start - 2.0
    [run] = parse_bench_files([db], wall_monotonic_pair=(wall0, mono0))
    row = run.requests.row(0, named=True)
    assert run.requests["time"].min().timestamp() == pytest.approx(wall0 + 2.0, abs=1e-6)
    assert row["e2e_ms"] == pytest.approx(latency * 1000, rel=1e-12)
    assert row["ttft_ms"] == pytest.approx(ttft * 1000, rel=1e-12)
    assert row["itl_ms"] == pytest.approx([x * 1000 for x in json.loads(itl)], rel=1e-12)
    assert (row["input_tokens"], row["output_tokens"]) == (48, 32)


def test_the_summary_file_beside_its_percentiles_is_one_summary_run() -> None:
    [run] = parse_bench_files([LEVELS[2] / "benchmark_summary.json"])
    assert run.timing == "summary_only" and run.concurrency == 2
    assert (
        run.summary["ttft_ms_p99"] == json.loads((LEVELS[2] / "benchmark_percentile.json").read_text())[9]["TTFT (ms)"]
    )
    assert run.summary["requests_per_s"] == 1.955  # "Req Throughput (req/s)" as saved
    assert "input_tok_s" not in run.summary  # EvalScope writes 0.0: not computed for LLM endpoints


def test_the_summary_file_alone_takes_its_level_from_its_own_keys(tmp_path: Path) -> None:
    shutil.copy(LEVELS[2] / "benchmark_summary.json", tmp_path / "benchmark_summary.json")
    [run] = parse_bench_files([tmp_path / "benchmark_summary.json"])
    assert run.concurrency == 2 and "ttft_ms_p99" not in run.summary


def test_the_printed_summary_is_refused_naming_the_per_level_files() -> None:
    with pytest.raises(
        BenchFormatError, match=r"expected \(import\) each level's parallel_<P>_number_<N>/benchmark_data.db"
    ):
        parse_file(FIX / "performance_summary.txt")


def test_failed_rows_are_failures_without_latency(tmp_path: Path) -> None:
    db = tmp_path / "benchmark_data.db"
    shutil.copy(LEVELS[2] / "benchmark_data.db", db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE result SET success = 0, latency = NULL WHERE rowid = 3")
    [run] = parse_bench_files([db])
    assert run.summary["failed"] == 1 and run.summary["completed"] == 19
    failed = run.requests.filter(run.requests["error"].is_not_null())
    assert failed.height == 1 and failed["e2e_ms"].to_list() == [None]


def test_a_database_without_evalscope_s_columns_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "benchmark_data.db"
    shutil.copy(LEVELS[1] / "benchmark_data.db", db)
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE result DROP COLUMN completed_time")
    with pytest.raises(BenchFormatError, match=r"lacks columns \['completed_time'\]"):
        parse_file(db, "evalscope")


def test_an_empty_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "benchmark_data.db"
    shutil.copy(LEVELS[1] / "benchmark_data.db", db)
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM result")
    with pytest.raises(BenchFormatError, match="no request in table 'result'"):
        parse_file(db)


def test_a_truncated_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "benchmark_data.db"
    data = (LEVELS[2] / "benchmark_data.db").read_bytes()
    db.write_bytes(data[: len(data) // 3])
    with pytest.raises(BenchFormatError, match=r"benchmark_data\.db"):
        parse_file(db)


def test_the_runs_match_evalscope_s_printed_tables() -> None:
    """The console's Performance Overview and Per-Request Metrics rows, tests/fixtures/bench/evalscope/README.md."""
    [run] = parse_bench_files([LEVELS[1] / "benchmark_data.db"])
    s = run.summary
    assert (round(s["requests_per_s"], 2), round(s["output_tok_s"], 2)) == (2.37, 75.89)
    assert (round(s["e2e_ms_mean"] / 1000, 2), round(s["e2e_ms_p50"] / 1000, 2), round(s["e2e_ms_p99"] / 1000, 3)) == (
        0.42,
        0.22,
        0.779,
    )
    assert tuple(round(s[f"ttft_ms_{k}"], 2) for k in ("mean", "p50", "p99")) == (23.68, 15.69, 43.73)
    assert tuple(round(s[f"tpot_ms_{k}"], 2) for k in ("mean", "p50", "p99")) == (12.78, 6.69, 23.73)


def test_the_arguments_file_is_refused_naming_the_result_files() -> None:
    with pytest.raises(
        BenchFormatError, match=r"benchmark_args\.json holds the run's arguments, no results: expected \(import\)"
    ):
        parse_file(LEVELS[1] / "benchmark_args.json")


KILLED = FIX / "server-killed" / "parallel_2_number_20"


def test_a_run_whose_server_died_counts_its_failures_as_evalscope_does() -> None:
    """The example server killed mid-run: 9 requests succeeded, 11 failed (connection refused)."""
    [run] = parse_bench_files([KILLED / "benchmark_data.db"])
    saved = json.loads((KILLED / "benchmark_summary.json").read_text())
    assert (run.summary["completed"], run.summary["failed"]) == (9, 11)
    for key, (ours, factor, digits) in SUMMARY.items():
        assert _close(run.summary[ours], saved[key], factor, digits), (key, run.summary[ours], saved[key])
    failed = run.requests.filter(run.requests["error"].is_not_null())
    assert failed.height == 11
    assert failed["ttft_ms"].null_count() == failed["e2e_ms"].null_count() == 11
