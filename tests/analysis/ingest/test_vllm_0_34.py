"""vLLM 0.34.0 `bench serve --save-result --save-detailed`, made by vLLM's own benchmark code against the example
server (tests/fixtures/bench/vllm/README.md): the JSON, its per-request arrays and the printed block give the
numbers vLLM printed and saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.ingest import parse_bench_files, summary_from_requests
from analysis.ingest.base import detect

VLLM = Path(__file__).resolve().parents[2] / "fixtures" / "bench" / "vllm"
RUNS = {"0.34.0-concurrency2": "vllm_c2.json", "0.34.0-request-rate5": "vllm_rr.json"}
STATS = {"mean": "mean", "median": "p50", "std": "std"}


def saved_under_our_names(doc: dict) -> dict[str, float]:
    """vLLM's saved summary keys under our canonical names."""
    out = {
        "completed": doc["completed"],
        "failed": doc["failed"],
        "duration_s": doc["duration"],
        "total_input_tokens": doc["total_input_tokens"],
        "total_output_tokens": doc["total_output_tokens"],
        "requests_per_s": doc["request_throughput"],
        "output_tok_s": doc["output_throughput"],
        "total_tok_s": doc["total_token_throughput"],
        "peak_output_tok_s": doc["max_output_tokens_per_s"],
        "peak_concurrent_requests": doc["max_concurrent_requests"],
    }
    for metric, ours in (("ttft", "ttft"), ("tpot", "tpot"), ("itl", "itl"), ("e2el", "e2e")):
        for key, value in doc.items():
            head, _, tail = key.partition(f"_{metric}_ms")
            if tail or not _ or "_" in head:
                continue
            stat = STATS.get(head) or (head.replace(".", "_") if head.startswith("p") else None)
            if stat:
                out[f"{ours}_ms_{stat}"] = value
    if doc.get("request_goodput") is not None:
        out["goodput_requests_per_s"] = doc["request_goodput"]
    return out


@pytest.mark.parametrize("folder", RUNS)
def test_json_summary_is_vllms_saved_summary(folder: str) -> None:
    path = VLLM / folder / RUNS[folder]
    doc = json.loads(path.read_text())
    [run] = parse_bench_files([path])
    saved = saved_under_our_names(doc)
    assert len(saved) >= 20
    for key, value in saved.items():
        assert run.summary[key] == value, key
    assert run.tool == "vllm" and run.model == "tiny-cpu-decoder" and run.requests.height == doc["num_prompts"]


@pytest.mark.parametrize("folder", RUNS)
def test_per_request_arrays_recompute_vllms_summary(folder: str) -> None:
    """TPOT per request = (latency - ttft) / (output_len - 1), ITL pooled, numpy percentiles: vLLM's definitions."""
    path = VLLM / folder / RUNS[folder]
    doc = json.loads(path.read_text())
    [run] = parse_bench_files([path])
    ours = summary_from_requests(run.requests, doc["duration"], percentiles=(50, 90, 99))
    saved = saved_under_our_names(doc)
    compared = [k for k in saved if k in ours and not k.startswith(("peak_", "goodput"))]
    assert {"ttft_ms_p99", "tpot_ms_p50", "itl_ms_p99", "output_tok_s", "requests_per_s"} <= set(compared)
    for key in compared:
        assert ours[key] == pytest.approx(saved[key], rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("folder", RUNS)
def test_printed_block_equals_the_saved_json_to_the_printed_decimals(folder: str) -> None:
    console = VLLM / folder / "console.txt"
    assert detect(console.read_text()).name == "vllm"
    [printed] = parse_bench_files([console])
    [saved] = parse_bench_files([VLLM / folder / RUNS[folder]])
    assert printed.timing == "summary_only" and printed.start is None and printed.timed is False
    assert len(printed.summary) >= 15
    for key, value in printed.summary.items():
        assert abs(saved.summary[key] - value) <= 0.005 + 1e-9, (key, saved.summary[key], value)


def test_request_rate_run_keeps_rate_concurrency_goodput_and_metadata() -> None:
    [run] = parse_bench_files([VLLM / "0.34.0-request-rate5" / "vllm_rr.json"])
    assert (run.request_rate, run.concurrency, run.num_prompts) == (5.0, 4, 20)
    assert run.summary["goodput_requests_per_s"] == pytest.approx(4.06, abs=0.005)
    assert run.extra["run"] == "rr" and run.extra["node"] == "dev" and run.extra["burstiness"] == 1.0
    [printed] = parse_bench_files([VLLM / "0.34.0-request-rate5" / "console.txt"])
    assert (printed.request_rate, printed.concurrency) == (5.0, 4)


def test_start_times_map_to_the_wall_clock_through_the_wrappers_pair() -> None:
    path = VLLM / "0.34.0-concurrency2" / "vllm_c2.json"
    doc = json.loads(path.read_text())
    first = min(doc["start_times"])
    [run] = parse_bench_files([path], wall_monotonic_pair=(1_796_000_000.0, first - 2.0))
    assert run.timing == "reconstructed" and run.time_source == "wrapper_wall_monotonic_pair" and run.timed
    assert run.requests["time"].min().timestamp() == pytest.approx(1_796_000_002.0, abs=1e-6)
    [alone] = parse_bench_files([path], tz="UTC")
    assert alone.time_source == "tool_end_time_local" and alone.timed
    assert alone.end.strftime("%Y%m%d-%H%M%S") == doc["date"]
