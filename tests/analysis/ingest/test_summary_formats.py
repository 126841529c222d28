"""Summary-only formats with no public example file, written from their documented layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.ingest import parse_bench_files


def test_aiperf_aggregate_json_maps_inter_token_latency_to_tpot(tmp_path: Path) -> None:
    doc = {
        "schema_version": "1.3", "aiperf_version": "0.10.0", "benchmark_id": "abc",
        "time_to_first_token": {"unit": "ms", "avg": 120.5, "p50": 110.0, "p99": 300.25, "min": 80.0, "max": 320.0},
        "inter_token_latency": {"unit": "ms", "avg": 21.0, "p50": 20.5, "p99": 40.0},
        "request_latency": {"unit": "ms", "avg": 2200.0, "p99": 4100.0},
        "output_token_throughput": {"unit": "tokens/sec", "avg": 822.1},
        "request_throughput": {"unit": "requests/sec", "avg": 0.89},
        "request_count": {"unit": "requests", "avg": 640},
        "start_time": "2026-07-29T05:55:10.529668", "end_time": "2026-07-29T06:07:08.000000",
    }  # fmt: skip
    p = tmp_path / "profile_export_aiperf.json"
    p.write_text(json.dumps(doc, indent=2))
    [run] = parse_bench_files([p], run_id="agg", tz="UTC")
    s = run.summary
    assert run.tool == "aiperf" and run.tool_version == "0.10.0" and run.timing == "summary_only"
    assert (s["ttft_ms_p50"], s["ttft_ms_p99"], s["ttft_ms_mean"]) == (110.0, 300.25, 120.5)
    assert (s["tpot_ms_p50"], s["tpot_ms_p99"]) == (20.5, 40.0)
    assert (s["output_tok_s"], s["requests_per_s"], s["completed"]) == (822.1, 0.89, 640)
    assert run.end.isoformat() == "2026-07-29T06:07:08+00:00"


def test_llama_benchy_json_result(tmp_path: Path) -> None:
    doc = {
        "version": "0.3.7", "timestamp": "2026-07-10 16:02:28Z", "latency_mode": "generation", "latency_ms": 104.1,
        "model": "Qwen3.6-27B", "prefix_caching_enabled": False, "max_concurrency": 1,
        "benchmarks": [
            {"concurrency": 1, "context_size": 0, "prompt_size": 2048, "response_size": 480,
             "is_context_prefill_phase": False,
             "pp_throughput": {"mean": 5063.05, "std": 507.65, "values": [1, 2, 3]},
             "tg_throughput": {"mean": 63.48, "std": 2.54, "values": [1, 2, 3]},
             "peak_throughput": {"mean": 76.67, "std": 5.25, "values": [1, 2, 3]},
             "ttfr": {"mean": 513.19, "std": 43.93, "values": []},
             "est_ppt": {"mean": 409.10, "std": 43.93, "values": []},
             "e2e_ttft": {"mean": 513.19, "std": 43.93, "values": []}},
        ],
    }  # fmt: skip
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    [run] = parse_bench_files([p], run_id="lb")
    assert run.tool == "llama-benchy" and run.tool_version == "0.3.7"
    assert (run.isl, run.osl, run.concurrency) == (2048, 480, 1)
    assert run.summary["decode_tok_s_mean"] == 63.48 and run.summary["prefill_tok_s_std"] == 507.65
    assert run.summary["ttft_ms_mean"] == 513.19
    assert run.end.isoformat() == "2026-07-10T16:02:28+00:00"


def test_llama_benchy_csv_result(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text(
        "model,test_name,t_s_mean,t_s_std,peak_t_s_mean,peak_t_s_std,ttfr_mean,ttfr_std,est_ppt_mean,est_ppt_std,"
        "e2e_ttft_mean,e2e_ttft_std\n"
        "Qwen3.6-27B,pp2048 @ d1000 (c2),4938.83,600.47,,,730.08,72.32,625.99,72.32,730.08,72.32\n"
        "Qwen3.6-27B,tg480 @ d1000 (c2),69.03,2.59,83.67,2.87,,,,,,\n"
    )
    [run] = parse_bench_files([p], run_id="lb")
    assert (run.isl, run.osl, run.concurrency, run.extra["depth"]) == (2048, 480, 2, 1000)
    assert run.summary["prefill_tok_s_mean"] == 4938.83 and run.summary["decode_tok_s_mean"] == 69.03
    assert run.summary["peak_decode_tok_s_mean"] == 83.67


def test_vllm_printed_block_with_fractional_percentile_and_goodput(tmp_path: Path) -> None:
    p = tmp_path / "out.txt"
    p.write_text(
        "Traffic request rate: inf\n"
        "============ Serving Benchmark Result ============\n"
        "Successful requests:                     100\n"
        "Failed requests:                         2\n"
        "Maximum request concurrency:             8\n"
        "Benchmark duration (s):                  10.00\n"
        "Request goodput (req/s):                 9.50\n"
        "Output token throughput (tok/s):         1000.00\n"
        "---------------Time to First Token----------------\n"
        "P99.9 TTFT (ms):                         99.90\n"
        "----------------End-to-end Latency----------------\n"
        "Median E2EL (ms):                        500.00\n"
        "==================================================\n"
    )
    [run] = parse_bench_files([p], run_id="v")
    assert run.tool == "vllm" and run.concurrency == 8
    assert run.summary["ttft_ms_p99_9"] == 99.90 and run.summary["e2e_ms_p50"] == 500.00
    assert (run.summary["failed"], run.summary["goodput_requests_per_s"]) == (2, 9.50)


@pytest.mark.parametrize("value", ["82x2.10", "", "nan"])
def test_printed_value_that_is_not_a_number_names_the_line(tmp_path: Path, value: str) -> None:
    from analysis.ingest.errors import BenchFormatError

    p = tmp_path / "out.txt"
    p.write_text(
        "============ Serving Benchmark Result ============\n"
        "Successful requests:                     640\n"
        f"Output token throughput (tok/s):         {value}\n"
        "==================================================\n"
    )
    with pytest.raises(BenchFormatError, match=r"out.txt:3: Output token throughput \(tok/s\): expected a number"):
        parse_bench_files([p])
