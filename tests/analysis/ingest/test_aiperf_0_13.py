"""AIPerf 0.13.0, run for real against the example server (tests/fixtures/bench/aiperf/README.md): every number we
report equals AIPerf's own, as it printed it and as it saved it; raw exports, multi-run aggregates and AIPerf's
throughput window (its profiling phase) are read the way AIPerf reads them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.ingest import parse_bench_files
from analysis.ingest.base import parse_file
from analysis.ingest.cli import app
from analysis.ingest.errors import BenchFormatError

AIPERF = Path(__file__).resolve().parents[2] / "fixtures" / "bench" / "aiperf"
RUNS = ["0.13.0-concurrency2", "0.13.0-request-rate5", "0.13.0-export-level-raw"]

# AIPerf's summary metric -> our canonical prefix (its inter_token_latency is our TPOT, inter_chunk_latency our ITL)
LATENCY = {
    "time_to_first_token": "ttft",
    "inter_token_latency": "tpot",
    "inter_chunk_latency": "itl",
    "request_latency": "e2e",
}
SCALARS = {
    "output_token_throughput": "output_tok_s",
    "input_token_throughput": "input_tok_s",
    "total_token_throughput": "total_tok_s",
    "request_throughput": "requests_per_s",
    "request_count": "completed",
    "benchmark_duration": "benchmark_duration_s",
    "total_osl": "total_output_tokens",
    "total_isl": "total_input_tokens",
}
PRINTED = {
    "Time to First Token (ms)": "ttft",
    "Inter Token Latency (ms)": "tpot",
    "Request Latency (ms)": "e2e",
}
PRINTED_SCALARS = {
    "Output Token Throughput (tokens/sec)": "output_tok_s",
    "Input Token Throughput (tokens/sec)": "input_tok_s",
    "Request Throughput (requests/sec)": "requests_per_s",
    "Request Count (requests)": "completed",
}
OURS_ONLY = {"output_tok_s_request_span", "failed"}  # no AIPerf statistic of that meaning in these runs


def saved_summary(doc: dict) -> dict[str, float]:
    """AIPerf's profile_export_aiperf.json under our names (its phase window as duration_s)."""
    out: dict[str, float] = {}
    for name, prefix in LATENCY.items():
        for stat, value in doc[name].items():
            if stat in ("unit", "count", "sum"):
                continue
            out[f"{prefix}_ms_{'mean' if stat == 'avg' else stat}"] = value
    for name, key in SCALARS.items():
        if name in doc:
            out[key] = doc[name]["avg"]
    start, end = (datetime_of(doc[k]) for k in ("start_time", "end_time"))
    out["duration_s"] = end - start
    return out


def datetime_of(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def printed_summary(folder: Path) -> dict[str, float]:
    """AIPerf's printed "LLM Metrics" table and "Benchmark Duration" line under our names (2 decimals)."""
    out: dict[str, float] = {}
    table = (folder / "profile_export_console.txt").read_text()
    section = table[table.index("NVIDIA AIPerf | LLM Metrics\n") if "NVIDIA AIPerf | LLM Metrics\n" in table else 0 :]
    header: list[str] = []
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if not cells:
            continue
        if cells[0] == "Metric":
            header = cells[1:]
            continue
        label, values = cells[0], cells[1:]
        if label in PRINTED:
            for stat, value in zip(header, values, strict=True):
                out[f"{PRINTED[label]}_ms_{'mean' if stat == 'avg' else stat}"] = float(value.replace(",", ""))
        elif label in PRINTED_SCALARS:
            out[PRINTED_SCALARS[label]] = float(values[0].replace(",", ""))
    m = re.search(r"^Benchmark Duration: ([\d.]+) sec$", (folder / "console_tail.txt").read_text(), re.MULTILINE)
    assert m, "the printed Benchmark Duration line"
    out["benchmark_duration_s"] = float(m.group(1))
    return out


def records_file(folder: Path) -> Path:
    raw = folder / "profile_export_raw.jsonl"
    return raw if raw.exists() else folder / "profile_export.jsonl"


@pytest.mark.parametrize("name", RUNS)
def test_every_number_equals_what_aiperf_saved(name: str) -> None:
    folder = AIPERF / name
    [run] = parse_bench_files([records_file(folder)])
    saved = saved_summary(json.loads((folder / "profile_export_aiperf.json").read_text()))
    compared = 0
    for key, ours in run.summary.items():
        if key in OURS_ONLY:
            continue
        assert key in saved, f"{key}: no AIPerf statistic to compare with"
        # 1e-5: AIPerf's phase times are saved to the microsecond; the 6-request raw run's phase is 0.33 s
        assert ours == pytest.approx(saved[key], rel=1e-5, abs=1e-9), key
        compared += 1
    assert compared >= 40


@pytest.mark.parametrize("name", RUNS)
def test_every_printed_number_equals_ours_to_the_printed_decimals(name: str) -> None:
    folder = AIPERF / name
    [run] = parse_bench_files([records_file(folder)])
    printed = printed_summary(folder)
    assert {"output_tok_s", "requests_per_s", "ttft_ms_p99", "tpot_ms_p50", "benchmark_duration_s"} <= set(printed)
    for key, value in printed.items():
        assert abs(run.summary[key] - value) <= 0.005 + 1e-9, (key, run.summary[key], value)


@pytest.mark.parametrize("name", RUNS)
def test_the_summary_file_alone_gives_the_same_numbers_without_requests(name: str) -> None:
    folder = AIPERF / name
    [records] = parse_bench_files([records_file(folder)])
    [summary] = parse_bench_files([folder / "profile_export_aiperf.json"])
    assert summary.timing == "summary_only" and summary.tool_version == "0.13.0"
    for key in ("output_tok_s", "requests_per_s", "duration_s", "ttft_ms_p99", "tpot_ms_p50", "itl_ms_p99"):
        assert summary.summary[key] == pytest.approx(records.summary[key], rel=1e-5), key
    assert (summary.concurrency, summary.request_rate, summary.model) == (
        records.concurrency,
        records.request_rate,
        records.model,
    )


def test_request_rate_throughput_is_over_aiperfs_phase_and_the_request_span_is_kept_beside_it() -> None:
    [run] = parse_bench_files([AIPERF / "0.13.0-request-rate5" / "profile_export.jsonl"])
    s = run.summary
    assert run.request_rate == 5.0 and run.concurrency is None
    assert round(s["output_tok_s"], 2) == 116.20  # AIPerf printed 116.20
    assert round(s["benchmark_duration_s"], 2) == 5.18  # AIPerf printed "Benchmark Duration: 5.18 sec"
    assert s["output_tok_s_request_span"] == pytest.approx(s["total_output_tokens"] / s["benchmark_duration_s"])
    assert s["output_tok_s_request_span"] / s["output_tok_s"] - 1 > 0.05  # the phase is longer than the requests
    assert run.extra["throughput_window"].startswith("AIPerf profiling phase")
    assert run.start.timestamp() == pytest.approx(run.requests["time"].min().timestamp(), abs=0.5)


def test_records_without_the_summary_beside_them_use_the_request_span_and_say_so(tmp_path: Path) -> None:
    alone = tmp_path / "profile_export.jsonl"
    shutil.copy(AIPERF / "0.13.0-request-rate5" / "profile_export.jsonl", alone)
    [run] = parse_bench_files([alone])
    s = run.summary
    assert s["duration_s"] == pytest.approx(s["benchmark_duration_s"])
    assert s["output_tok_s"] == pytest.approx(s["output_tok_s_request_span"])
    assert "no profile_export_aiperf.json beside the records" in run.extra["throughput_window"]


def test_a_summary_of_another_run_beside_the_records_is_not_used(tmp_path: Path) -> None:
    shutil.copy(AIPERF / "0.13.0-request-rate5" / "profile_export.jsonl", tmp_path / "profile_export.jsonl")
    shutil.copy(AIPERF / "0.13.0-concurrency2" / "profile_export_aiperf.json", tmp_path / "profile_export_aiperf.json")
    [run] = parse_bench_files([tmp_path / "profile_export.jsonl"])
    assert run.summary["duration_s"] == pytest.approx(run.summary["benchmark_duration_s"])


def test_raw_export_gives_the_same_requests_as_the_processed_records() -> None:
    folder = AIPERF / "0.13.0-export-level-raw"
    [raw] = parse_bench_files([folder / "profile_export_raw.jsonl"])
    [processed] = parse_bench_files([folder / "profile_export.jsonl"])
    assert raw.extra["format"] == "profile_export_raw.jsonl" and raw.timing == "wall_clock"
    a, b = raw.requests, processed.requests
    assert a["time"].to_list() == b["time"].to_list()
    assert a["output_tokens"].to_list() == b["output_tokens"].to_list()
    assert a["input_tokens"].to_list() == b["input_tokens"].to_list()
    for col in ("ttft_ms", "e2e_ms"):
        assert a[col].to_list() == pytest.approx(b[col].to_list(), abs=1e-9), col
    for x, y in zip(a["itl_ms"].to_list(), b["itl_ms"].to_list(), strict=True):
        assert x == pytest.approx(y, abs=1e-9)


def test_multi_run_aggregate_imports_as_the_runs_it_names() -> None:
    folder = AIPERF / "0.13.0-num-profile-runs2"
    runs = parse_bench_files([folder / "aggregate" / "profile_export_aiperf_aggregate.json"], run_id="m")
    assert [r.run_id for r in runs] == ["m.1", "m.2"]
    assert [r.extra["profile_run"] for r in runs] == ["run_0001", "run_0002"]
    for r in runs:
        assert r.requests.height == 8 and r.concurrency == 2 and r.timing == "wall_clock"
        assert r.extra["throughput_window"].startswith("AIPerf profiling phase")
    aggregate = json.loads((folder / "aggregate" / "profile_export_aiperf_aggregate.json").read_text())["metrics"]
    tput = [r.summary["output_tok_s"] for r in runs]
    assert sum(tput) / 2 == pytest.approx(aggregate["output_token_throughput_avg"]["mean"], rel=1e-6)
    assert min(tput) == pytest.approx(aggregate["output_token_throughput_avg"]["min"], rel=1e-6)
    p99 = [r.summary["ttft_ms_p99"] for r in runs]
    assert sum(p99) / 2 == pytest.approx(aggregate["time_to_first_token_p99"]["mean"], rel=1e-6)


def test_multi_run_aggregate_without_its_run_files_is_refused_naming_them(tmp_path: Path) -> None:
    target = tmp_path / "aggregate" / "profile_export_aiperf_aggregate.json"
    target.parent.mkdir()
    shutil.copy(AIPERF / "0.13.0-num-profile-runs2" / "aggregate" / target.name, target)
    with pytest.raises(BenchFormatError) as err:
        parse_file(target)
    msg = str(err.value)
    assert "multi-run aggregate (--num-profile-runs 2" in msg and "no run of its own" in msg
    assert str(tmp_path / "profile_runs" / "run_0001" / "profile_export.jsonl") in msg


def test_multi_run_aggregate_without_its_run_files_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    target = tmp_path / "agg.json"
    shutil.copy(AIPERF / "0.13.0-num-profile-runs2" / "aggregate" / "profile_export_aiperf_aggregate.json", target)
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["bench", str(target), "--store", str(store)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {target}: an AIPerf multi-run aggregate")
    assert "stored" not in result.stderr


def test_import_bench_prints_tput_ttft_tpot_itl_and_explains_the_two_windows(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", str(AIPERF / "0.13.0-request-rate5" / "profile_export.jsonl"), "--dry-run", "--run", "rr"]
    )
    assert result.exit_code == 0, result.output
    row = dict(cell.split("=", 1) for cell in result.stdout.split("\t") if "=" in cell)
    assert row["output_tok_s"] == "116.20" and row["requests"] == "20"
    assert {"ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "itl_ms_p99"} <= set(row)
    assert "output_tok_s 116.20 is aiperf's own" in result.stderr and "+6." in result.stderr
