"""inference-perf 0.7.0 reports (tests/fixtures/bench/inference_perf, a real two-stage run): the per-request file
splits into one run per stage with its concurrency, and every number equals inference-perf's own reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.ingest import BenchFormatError, parse_bench_files
from analysis.ingest.base import parse_file
from analysis.ingest.inference_perf import InferencePerfParser

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "bench" / "inference_perf"
PER_REQUEST = FIX / "per_request_lifecycle_metrics.json"
LATENCIES = {"time_to_first_token": "ttft", "time_per_output_token": "tpot", "inter_token_latency": "itl",
             "request_latency": "e2e", "normalized_time_per_output_token": "ntpot"}  # fmt: skip
THROUGHPUT = {"requests_per_sec": "requests_per_s", "input_tokens_per_sec": "input_tok_s",
              "output_tokens_per_sec": "output_tok_s", "total_tokens_per_sec": "total_tok_s"}  # fmt: skip


def _tool_numbers(report: dict) -> dict[str, float]:
    """inference-perf's lifecycle report under our names (the test's own reading), seconds -> ms."""
    s = report["successes"]
    out = {
        "completed": s["count"],
        "failed": report["failures"]["count"],
        "duration_s": report["benchmark_time_seconds"],
    }
    for theirs, ours in LATENCIES.items():
        for stat, v in (s["latency"][theirs] or {}).items():  # None when no request succeeded
            key = "p50" if stat == "median" else stat.replace(".", "_")
            out[f"{ours}_ms_{key}"] = v * 1000
    out |= {ours: s["throughput"][theirs] for theirs, ours in THROUGHPUT.items()}
    return out


def _assert_equal_to(summary: dict, report_file: Path) -> None:
    expected = _tool_numbers(json.loads(report_file.read_text()))
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_the_per_request_file_imports_as_one_run_per_stage_with_its_concurrency() -> None:
    runs = parse_bench_files([PER_REQUEST], run_id="ip")
    assert [r.run_id for r in runs] == ["ip.1", "ip.2"]
    assert [r.concurrency for r in runs] == [1, 2]
    assert [r.request_rate for r in runs] == [None, None]  # a concurrent stage has no rate
    assert [r.requests.height for r in runs] == [10, 30]
    assert all(r.tool == "inference-perf" and r.timing == "reconstructed" for r in runs)


@pytest.mark.parametrize("stage", [0, 1])
def test_each_stage_run_equals_inference_perf_s_stage_report(stage: int) -> None:
    run = parse_bench_files([PER_REQUEST])[stage]
    _assert_equal_to(dict(run.summary), FIX / f"stage_{stage}_lifecycle_metrics.json")


def test_the_file_alone_is_one_run_equal_to_the_summary_report(tmp_path: Path) -> None:
    alone = tmp_path / "per_request_lifecycle_metrics.json"
    shutil.copy(PER_REQUEST, alone)
    [run] = parse_bench_files([alone])
    assert run.requests.height == 40 and run.concurrency is None
    assert "unknown" in run.extra["stages"]
    _assert_equal_to(dict(run.summary), FIX / "summary_lifecycle_metrics.json")


def test_per_request_values_are_the_token_times_inference_perf_recorded() -> None:
    entries = json.loads(PER_REQUEST.read_text())
    first = min(entries, key=lambda e: e["start_time"])
    times = first["info"]["response_metrics"]["output_token_times"]
    req = parse_bench_files([PER_REQUEST])[0].requests
    row = req.row(0, named=True)
    assert row["ttft_ms"] == pytest.approx((times[0] - first["start_time"]) * 1000, rel=1e-12)
    assert row["e2e_ms"] == pytest.approx((first["end_time"] - first["start_time"]) * 1000, rel=1e-12)
    assert row["itl_ms"] == pytest.approx((np.diff(times) * 1000).tolist(), rel=1e-9)
    assert (row["input_tokens"], row["output_tokens"]) == (48, 32)


def test_requests_map_to_the_wall_clock_through_the_wrapper_pair() -> None:
    """perf_counter() seconds + the ``neighborscope run`` pair (time.time(), time.monotonic()) = exact wall clock."""
    entries = json.loads(PER_REQUEST.read_text())
    first = min(e["start_time"] for e in entries)
    wall0, mono0 = 1_796_465_000.0, first - 5.0
    runs = parse_bench_files([PER_REQUEST], wall_monotonic_pair=(wall0, mono0))
    assert runs[0].requests["time"].min().timestamp() == pytest.approx(wall0 + 5.0, abs=1e-6)
    assert runs[0].time_source == "wrapper_wall_monotonic_pair"


def test_without_the_pair_each_stage_starts_at_its_benchmark_report_time() -> None:
    runs = parse_bench_files([PER_REQUEST])
    # inference-perf.partial.stage_N.yaml run.time.start
    assert runs[0].start.isoformat() == "2026-12-05T10:10:26.855456+00:00"
    assert runs[1].start.isoformat() == "2026-12-05T10:10:34.127208+00:00"


@pytest.mark.parametrize("name", ["summary_lifecycle_metrics.json", "stage_0_lifecycle_metrics.json",
                                  "stage_1_lifecycle_metrics.json"])  # fmt: skip
def test_lifecycle_reports_are_summary_only_runs_with_the_report_s_numbers(name: str) -> None:
    [run] = parse_bench_files([FIX / name])
    assert run.timing == "summary_only" and run.requests is None
    _assert_equal_to(dict(run.summary), FIX / name)


def test_a_stage_report_carries_its_stage_s_concurrency_from_config_yaml() -> None:
    [stage1] = parse_bench_files([FIX / "stage_1_lifecycle_metrics.json"])
    assert stage1.concurrency == 2 and stage1.extra["stage"] == 1
    [whole] = parse_bench_files([FIX / "summary_lifecycle_metrics.json"])
    assert whole.concurrency is None and whole.extra["stages"] == 2


@pytest.mark.parametrize("stage", [0, 1])
def test_the_benchmark_report_yaml_equals_the_stage_report(stage: int) -> None:
    [run] = parse_bench_files([FIX / f"inference-perf.partial.stage_{stage}.yaml"])
    stage_report = json.loads((FIX / f"stage_{stage}_lifecycle_metrics.json").read_text())
    expected = _tool_numbers(stage_report)
    shared = [k for k in expected if k in run.summary]
    assert len(shared) >= 60
    for key in shared:
        assert run.summary[key] == pytest.approx(expected[key], rel=1e-9), key
    assert run.concurrency == stage + 1
    assert run.timing == "summary_only" and run.start is not None


def test_config_yaml_is_refused_naming_the_files_to_import() -> None:
    with pytest.raises(
        BenchFormatError, match=r"config\.yaml.*holds no results: expected \(import\) per_request_lifecycle_metrics"
    ):
        parse_file(FIX / "config.yaml")


def test_stage_reports_that_do_not_add_up_leave_one_run(tmp_path: Path) -> None:
    for path in FIX.glob("*"):
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    (tmp_path / "stage_1_lifecycle_metrics.json").unlink()  # stage 0 alone counts 10 of 40
    [run] = parse_bench_files([tmp_path / PER_REQUEST.name])
    assert run.requests.height == 40
    assert "count 10 requests, this file 40" in run.extra["stages"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "no request in the per-request report"),
        ('[{"start_time": 1.0, "end_time": "soon", "info": {}, "error": null}]', r"\[0\].end_time: expected a number"),
        ('[{"start_time": 1.0, "end_time": 2.0, "info": {"request_metrics": {}}, "error": null}]',
         r"\[0\]: a successful request without info.response_metrics"),
        ('{"benchmark_time_seconds": 3, "successes": {"count": "ten"}}', "successes.count: expected a number"),
    ],
)  # fmt: skip
def test_bad_reports_are_refused_naming_what_and_where(text: str, message: str) -> None:
    with pytest.raises(BenchFormatError, match=message):
        InferencePerfParser().parse(text, "r.json")


def test_failed_requests_count_as_failures_and_keep_their_error() -> None:
    entries = json.loads(PER_REQUEST.read_text())
    entries[5]["error"] = {"error_type": "ClientResponseError", "error_msg": "500 Internal Server Error"}
    [run] = InferencePerfParser().parse(json.dumps(entries), "r.json")
    assert run.summary["failed"] == 1 and run.summary["completed"] == 39
    errors = run.requests["error"].drop_nulls().to_list()
    assert errors == ["ClientResponseError: 500 Internal Server Error"]


def test_the_stage_runs_match_inference_perf_s_printed_tables() -> None:
    """The console's Throughput and Latency tables (1 decimal), tests/fixtures/bench/inference_perf/README.md."""
    printed = [  # req/s, in tok/s, out tok/s, total tok/s, latency mean / median, TTFT mean / median, ITL mean / median
        (2.3, 110.3, 73.6, 183.9, 433.1, 366.0, 25.1, 14.4, 13.1, 10.6),
        (4.6, 218.9, 145.9, 364.8, 430.5, 388.3, 16.5, 15.4, 13.2, 11.2),
    ]
    keys = ("requests_per_s", "input_tok_s", "output_tok_s", "total_tok_s", "e2e_ms_mean", "e2e_ms_p50",
            "ttft_ms_mean", "ttft_ms_p50", "itl_ms_mean", "itl_ms_p50")  # fmt: skip
    for run, row in zip(parse_bench_files([PER_REQUEST]), printed, strict=True):
        assert tuple(round(run.summary[k], 1) for k in keys) == row


KILLED = FIX / "server-killed"


def test_a_run_whose_server_died_keeps_each_failure_and_equals_the_stage_reports() -> None:
    """The example server killed mid-run: stage 0 has 1 success and 3 failures, stage 1 only failures."""
    runs = parse_bench_files([KILLED / "per_request_lifecycle_metrics.json"])
    assert [(r.summary["completed"], r.summary["failed"]) for r in runs] == [(1, 3), (0, 20)]
    for stage, run in enumerate(runs):
        _assert_equal_to(dict(run.summary), KILLED / f"stage_{stage}_lifecycle_metrics.json")
    errors = runs[1].requests["error"].to_list()
    assert all(e.startswith("ClientConnectorError: Cannot connect to host 127.0.0.1") for e in errors)
    assert runs[1].requests["ttft_ms"].null_count() == 20


def test_a_stage_without_any_success_is_a_summary_of_its_failures() -> None:
    [run] = parse_bench_files([KILLED / "inference-perf.partial.stage_1.yaml"])
    assert run.summary == {"completed": 0.0, "failed": 20.0}
    assert run.concurrency == 2
