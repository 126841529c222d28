"""GuideLLM 0.8.1 reports (tests/fixtures/bench/guidellm, made by the real client): one run per benchmark with its
load level, per request on the wall clock, and every summary number equal to GuideLLM's own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from analysis.ingest import BenchFormatError, parse_bench_files
from analysis.ingest.base import parse_file

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "bench" / "guidellm"
SWEEP_JSON = FIX / "guidellm_0.8.1_concurrent-1-2_benchmarks.json"
SWEEP_CSV = FIX / "guidellm_0.8.1_concurrent-1-2_benchmarks.csv"
C2_YAML = FIX / "guidellm_0.8.1_concurrent-2_benchmarks.yaml"
C2_CSV = FIX / "guidellm_0.8.1_concurrent-2_benchmarks.csv"

# GuideLLM's metric -> (our name, factor to ms): its ITL is our TPOT, its TPOT includes the TTFT
LATENCIES = {
    "time_to_first_token_ms": ("ttft", 1.0),
    "inter_token_latency_ms": ("tpot", 1.0),
    "time_per_output_token_ms": ("tpot_incl_ttft", 1.0),
    "request_latency": ("e2e", 1000.0),
}
PCT = {"p001": "p0_1", "p01": "p1", "p05": "p5", "p10": "p10", "p25": "p25", "p50": "p50", "p75": "p75",
       "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99_9"}  # fmt: skip


def _tool_numbers(benchmark: dict) -> dict[str, float]:
    """What GuideLLM saved for one benchmark, under our names (the test's own reading of the file)."""
    m = benchmark["metrics"]
    out = {
        "completed": m["request_totals"]["successful"],
        "failed": m["request_totals"]["errored"],
        "incomplete": m["request_totals"]["incomplete"],
        "duration_s": benchmark["duration"],
        "requests_per_s": m["requests_per_second"]["total"]["mean"],
        "input_tok_s": m["prompt_tokens_per_second"]["total"]["mean"],
        "output_tok_s": m["output_tokens_per_second"]["total"]["mean"],
        "total_tok_s": m["tokens_per_second"]["total"]["mean"],
        "concurrency_mean": m["request_concurrency"]["total"]["mean"],
        "total_input_tokens": m["prompt_token_count"]["successful"]["total_sum"],
        "total_output_tokens": m["output_token_count"]["successful"]["total_sum"],
    }
    for theirs, (ours, f) in LATENCIES.items():
        d = m[theirs]["successful"]
        out |= {f"{ours}_ms_mean": d["mean"] * f, f"{ours}_ms_std": d["std_dev"] * f}
        out |= {f"{ours}_ms_min": d["min"] * f, f"{ours}_ms_max": d["max"] * f}
        out |= {f"{ours}_ms_{PCT[k]}": v * f for k, v in d["percentiles"].items()}
    return out


def test_each_benchmark_of_a_report_is_a_run_with_its_concurrency() -> None:
    runs = parse_bench_files([SWEEP_JSON], run_id="g")
    assert [r.run_id for r in runs] == ["g.1", "g.2"]
    assert [r.concurrency for r in runs] == [1, 2]
    assert [r.extra["strategy"] for r in runs] == ["concurrent@1", "concurrent@2"]
    assert all(r.tool == "guidellm" and r.tool_version == "0.8.1" and r.model == "tiny-cpu-decoder" for r in runs)
    assert [r.requests.height for r in runs] == [12, 12]


def test_every_summary_number_is_guidellm_s_own() -> None:
    report = json.loads(SWEEP_JSON.read_text())
    runs = parse_bench_files([SWEEP_JSON])
    for run, benchmark in zip(runs, report["benchmarks"], strict=True):
        expected = _tool_numbers(benchmark)
        assert set(run.summary) == set(expected)
        for key, value in expected.items():
            assert run.summary[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_the_summary_matches_guidellm_s_printed_table() -> None:
    """The console's Request Latency and Server Throughput rows (1 decimal), tests/fixtures/bench/guidellm/README.md."""
    printed = [  # ITL mean, TPOT mean, TTFT mean / median, req/s, output tok/s
        (5.5, 5.6, 9.0, 8.4, 5.5, 175.9),
        (13.0, 13.1, 15.5, 13.8, 4.7, 149.8),
    ]
    for run, row in zip(parse_bench_files([SWEEP_JSON]), printed, strict=True):
        s = run.summary
        ours = (s["tpot_ms_mean"], s["tpot_incl_ttft_ms_mean"], s["ttft_ms_mean"], s["ttft_ms_p50"])
        ours += (s["requests_per_s"], s["output_tok_s"])
        assert tuple(round(v, 1) for v in ours) == row


def test_requests_are_on_guidellm_s_wall_clock_and_sum_to_its_totals() -> None:
    report = json.loads(SWEEP_JSON.read_text())
    for run, benchmark in zip(parse_bench_files([SWEEP_JSON]), report["benchmarks"], strict=True):
        req = run.requests
        rows = benchmark["requests"]["successful"]
        assert run.timing == "wall_clock"
        first = min(r["request_start_time"] for r in rows)
        assert req["time"].min().timestamp() == pytest.approx(first, abs=1e-6)
        assert run.start.timestamp() == pytest.approx(benchmark["start_time"], abs=1e-6)
        assert req["ttft_ms"].mean() == pytest.approx(run.summary["ttft_ms_mean"], rel=1e-12)
        assert req["e2e_ms"].mean() == pytest.approx(run.summary["e2e_ms_mean"], rel=1e-12)
        assert req["output_tokens"].sum() == run.summary["total_output_tokens"]
        assert req["input_tokens"].sum() == run.summary["total_input_tokens"]
        assert req["error"].null_count() == req.height
        # GuideLLM keeps no per-chunk times: no made-up ITL
        assert req["itl_ms"].list.len().sum() == 0


def test_yaml_and_csv_of_one_run_give_the_same_numbers() -> None:
    [from_yaml] = parse_file(C2_YAML)
    [from_csv] = parse_file(C2_CSV)
    assert from_yaml.meta["concurrency"] == from_csv.meta["concurrency"] == 2
    assert from_yaml.requests is not None and from_yaml.requests.height == 39
    assert from_csv.requests is None  # the CSV holds statistics only
    shared = set(from_csv.summary) & set(from_yaml.summary)
    assert len(shared) >= 40
    for key in shared:
        assert from_csv.summary[key] == pytest.approx(from_yaml.summary[key], rel=1e-9), key


def test_csv_rows_are_summary_only_runs_ending_at_guidellm_s_local_time() -> None:
    runs = parse_bench_files([SWEEP_CSV], run_id="c", tz="UTC")
    assert [(r.concurrency, r.timing) for r in runs] == [(1, "summary_only"), (2, "summary_only")]
    assert runs[1].end == datetime(2026, 12, 5, 10, 6, 43, tzinfo=UTC)
    from_json = parse_bench_files([SWEEP_JSON])
    for csv_run, json_run in zip(runs, from_json, strict=True):
        for key in ("ttft_ms_mean", "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_mean", "e2e_ms_p95", "output_tok_s"):
            assert csv_run.summary[key] == pytest.approx(json_run.summary[key], rel=1e-9), key


def test_a_report_without_per_request_data_is_summary_only(tmp_path: Path) -> None:
    """``--metrics kind=generative,sample_size=0`` keeps no request: a summary, never an empty per-request run."""
    report = json.loads(SWEEP_JSON.read_text())
    for b in report["benchmarks"]:
        b["requests"] = {"successful": [], "errored": [], "incomplete": [], "total": None}
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(report))
    runs = parse_bench_files([path])
    assert [r.timing for r in runs] == ["summary_only", "summary_only"]
    assert runs[0].requests is None and runs[0].summary["completed"] == 12
    assert "summary only" in runs[0].extra["per_request"]


def test_errored_requests_keep_their_error_and_no_latency(tmp_path: Path) -> None:
    report = json.loads(SWEEP_JSON.read_text())
    b = report["benchmarks"][0]
    failed = b["requests"]["successful"].pop(3)
    failed["info"]["error"] = "HTTP 500: boom"
    b["requests"]["errored"] = [failed]
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(report))
    req = parse_bench_files([path])[0].requests
    row = req.filter(req["error"].is_not_null())
    assert row["error"].to_list() == ["HTTP 500: boom"]
    assert row["ttft_ms"].to_list() == [None] and row["e2e_ms"].to_list() == [None]
    assert req.height == 12


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["benchmarks"].clear(), "no benchmark in 'benchmarks'"),
        (lambda r: r["benchmarks"][1].pop("metrics"), "metrics: missing"),
        (lambda r: r["benchmarks"][0]["metrics"]["time_to_first_token_ms"]["successful"].update(mean="fast"),
         r"benchmarks\[0\].metrics.time_to_first_token_ms.successful.mean: expected a number"),
        (lambda r: r["benchmarks"][0]["requests"]["successful"][2].update(request_latency=None),
         r"benchmarks\[0\].requests.successful\[2\]: a successful request without"),
    ],
)  # fmt: skip
def test_bad_reports_are_refused_naming_what_and_where(tmp_path: Path, edit, message: str) -> None:
    report = json.loads(SWEEP_JSON.read_text())
    edit(report)
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(report))
    with pytest.raises(BenchFormatError, match=message):
        parse_file(path)


def test_a_truncated_report_names_the_line(tmp_path: Path) -> None:
    text = SWEEP_JSON.read_text()
    path = tmp_path / "benchmarks.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(BenchFormatError, match=r"benchmarks.json:\d+: invalid or truncated JSON"):
        parse_file(path)


def test_a_csv_row_cut_short_is_refused(tmp_path: Path) -> None:
    lines = C2_CSV.read_text().splitlines()
    path = tmp_path / "benchmarks.csv"
    path.write_text("\n".join([*lines[:3], lines[3][: len(lines[3]) // 2]]) + "\n")
    with pytest.raises(BenchFormatError, match=r"benchmarks.csv:4: row has \d+ cells, the header 167"):
        parse_file(path)


def test_percentiles_of_the_requests_are_guidellm_s_for_its_per_request_metrics() -> None:
    """TTFT is one value per request: GuideLLM's percentiles are points of the sorted request values."""
    for run in parse_bench_files([SWEEP_JSON]):
        ttft = np.sort(run.requests["ttft_ms"].to_numpy())
        for key in ("ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99", "ttft_ms_min", "ttft_ms_max"):
            assert run.summary[key] in ttft, key


def test_a_broken_yaml_report_names_the_line(tmp_path: Path) -> None:
    lines = C2_YAML.read_text().splitlines()
    path = tmp_path / "benchmarks.yaml"
    path.write_text("\n".join([*lines[:200], "      bad: [unclosed", *lines[200:400]]) + "\n")
    with pytest.raises(BenchFormatError, match=r"benchmarks.yaml:\d+: invalid or truncated YAML"):
        parse_file(path)
