"""Every public example file and the five blocks of seed 000 parse, and the parsed summary equals the printed numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.ingest import parse_bench_files
from analysis.ingest.base import parse_file
from tests.analysis.ingest.bench_fixtures import result_files

BENCH = Path(__file__).resolve().parents[2] / "fixtures" / "bench"
SEED000 = BENCH / "vllm" / "seed000_inferencex_sglang_mi300x_blog.txt"
ALL_FILES = result_files()


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(BENCH))[:60])
def test_every_example_file_parses(path: Path) -> None:
    runs = parse_bench_files([path], run_id="r")
    assert runs
    for run in runs:
        assert run.summary
        assert all(v == v for v in run.summary.values())  # no NaN


def test_seed000_has_five_titled_blocks() -> None:
    runs = parse_bench_files([SEED000], run_id="seed")
    assert [r.extra["title"] for r in runs] == [
        "Single Hive Baseline",
        "Hive 0 - 8 GPUs",
        "Hive 1 - 8 GPUs",
        "Hive 0 - 8 GPUs",
        "Hive 1 - 8 GPUs",
    ]
    assert [r.run_id for r in runs] == [f"seed.{k}" for k in range(1, 6)]


def test_seed000_baseline_numbers_equal_the_printed_block() -> None:
    base = parse_bench_files([SEED000], run_id="seed")[0].summary
    assert base["output_tok_s"] == 822.10
    assert base["tpot_ms_p50"] == 74.22
    assert base["itl_ms_p99"] == 411.67
    assert base["completed"] == 640
    assert base["duration_s"] == 717.59
    assert base["total_input_tokens"] == 4727544
    assert base["total_output_tokens"] == 589927
    assert base["total_tok_s"] == 7410.19
    assert base["ttft_ms_p99"] == 16809.63
    assert base["e2e_ms_p99"] == 113614.71


@pytest.mark.parametrize(
    ("index", "output_tok_s", "itl_ms_p50", "itl_ms_p99"),
    [(1, 813.02, 44.47, 416.67), (2, 804.64, 45.30, 420.28), (3, 805.12, 44.52, 437.30), (4, 789.46, 45.50, 478.71)],
)
def test_seed000_stress_blocks_equal_the_printed_numbers(
    index: int, output_tok_s: float, itl_ms_p50: float, itl_ms_p99: float
) -> None:
    s = parse_bench_files([SEED000], run_id="seed")[index].summary
    assert (s["output_tok_s"], s["itl_ms_p50"], s["itl_ms_p99"]) == (output_tok_s, itl_ms_p50, itl_ms_p99)


def test_seed000_runs_are_summary_only_and_ordered_in_time() -> None:
    runs = parse_bench_files([SEED000], run_id="seed", wall_start_s=1_763_800_000.0)
    assert all(r.timing == "summary_only" and r.requests is None for r in runs)
    starts = [r.start for r in runs]
    assert starts == sorted(starts)


def test_sglang_printed_block_keeps_sglang_only_lines() -> None:
    [run] = parse_bench_files(
        [BENCH / "sglang" / "sglang_0.5.6.post1_printed_summary_lmsys-cookbook_DeepSeek-R1_chat1k1k_c16.txt"]
    )
    s = run.summary
    assert run.tool == "sglang"
    assert run.backend == "sglang" and run.concurrency == 16 and run.request_rate == float("inf")
    assert s["total_output_tokens_retokenized"] == 40458
    assert s["concurrency_mean"] == 13.93
    assert s["peak_output_tok_s"] == 1088.00
    assert (s["itl_ms_p95"], s["itl_ms_p99"], s["itl_ms_max"]) == (16.41, 112.38, 461.90)
    assert (s["e2e_ms_mean"], s["e2e_ms_p50"]) == (8918.33, 9466.16)


def test_sglang_jsonl_reads_every_appended_line_and_infinity() -> None:
    runs = parse_bench_files([BENCH / "sglang" / "sglang_bench_serving_2024-12_datacrunch_llama33-70b_online.jsonl"])
    assert [r.request_rate for r in runs] == [1.0, 2.0, 4.0, 8.0, 16.0, 4.0, 8.0]
    assert runs[0].summary["output_tok_s"] == 537.4142851849319
    assert runs[0].summary["ttft_ms_p50"] == 85.74514742940664
    assert runs[0].isl == 1024 and runs[0].osl == 1024
    [inf] = parse_bench_files(
        [BENCH / "sglang" / "sglang_bench_serving_2024-12_datacrunch_deepseek-dp-mla_Infinity.jsonl"]
    )
    assert inf.request_rate == float("inf")
    assert inf.summary["completed"] == 10000


def test_vllm_new_printed_block() -> None:
    [run] = parse_bench_files(
        [BENCH / "vllm" / "vllm_bench_serve_printed_summary_nvidia-forum_6x-spark_Qwen3-VL-32B.txt"]
    )
    s = run.summary
    assert run.tool == "vllm"
    assert (s["completed"], s["failed"], s["output_tok_s"], s["total_tok_s"]) == (1, 0, 19.15, 172.39)
    assert (s["peak_output_tok_s"], s["peak_concurrent_requests"]) == (20.00, 1.00)
    assert (s["itl_ms_mean"], s["itl_ms_p50"], s["itl_ms_p99"]) == (51.95, 51.75, 55.00)


def test_vllm_legacy_json_with_request_goodput_colon_key() -> None:
    runs = parse_bench_files([BENCH / "vllm" / "vllm_benchmark_serving_2025-05_nerdalert_results.jsonl"])
    assert len(runs) == 9
    first = runs[0]
    assert first.model == "meta-llama/Llama-3.2-3B-Instruct"
    assert first.summary["output_tok_s"] == 2258.212337970085
    assert first.summary["itl_ms_p99"] == 34.48662216016601
    assert "goodput_requests_per_s" not in first.summary  # null in the file: absent, not 0
    assert first.extra["deployment"] == "no-features"
    assert first.isl == 1000 and first.osl == 500
    assert runs[2].request_rate == float("inf")
    assert first.time_source == "tool_end_time_local"


def test_llama_benchy_table_has_one_run_per_depth() -> None:
    runs = parse_bench_files([BENCH / "llama_benchy" / "llama-benchy_0.3.7_Gabe298_rdtand-prismaaura_table.md"])
    assert [r.extra["depth"] for r in runs] == [0, 1000, 5000, 10000, 20000, 50000, 100000, 130000]
    s = runs[0].summary
    assert (s["prefill_tok_s_mean"], s["prefill_tok_s_std"]) == (5063.05, 507.65)
    assert (s["decode_tok_s_mean"], s["peak_decode_tok_s_mean"]) == (63.48, 76.67)
    assert (s["ttft_ms_mean"], s["est_ppt_ms_mean"]) == (513.19, 409.10)
    assert runs[0].isl == 2048 and runs[0].osl == 480


def test_llama_benchy_progress_agrees_with_its_table() -> None:
    table = parse_bench_files([BENCH / "llama_benchy" / "llama-benchy_0.3.7_Gabe298_rdtand-prismaaura_table.md"])
    progress = parse_bench_files(
        [BENCH / "llama_benchy" / "llama-benchy_0.3.7_Gabe298_rdtand-prismaaura_progress.jsonl"]
    )
    assert len(progress) == len(table) == 8
    for t, p in zip(table, progress, strict=True):
        assert p.timing == "wall_clock" and p.requests is not None and p.requests.height == 3
        assert p.extra["depth"] == t.extra["depth"]
        # e2e_ttft in the table = mean / std of the progress stream's ttft_s (population std, 2 decimals)
        assert round(p.summary["ttft_ms_mean"], 2) == t.summary["ttft_ms_mean"]
        assert round(p.summary["ttft_ms_std"], 2) == t.summary["ttft_ms_std"]


def test_llama_benchy_progress_decode_rate_is_close_to_the_table() -> None:
    table = parse_bench_files([BENCH / "llama_benchy" / "llama-benchy_0.3.7_Gabe298_rdtand-prismaaura_table.md"])
    progress = parse_bench_files(
        [BENCH / "llama_benchy" / "llama-benchy_0.3.7_Gabe298_rdtand-prismaaura_progress.jsonl"]
    )
    for t, p in zip(table, progress, strict=True):
        # the table uses perf_counter times, the stream wall-clock ts of the same events
        assert p.summary["decode_tok_s_mean"] == pytest.approx(t.summary["decode_tok_s_mean"], rel=0.02)


def test_aiperf_record_keeps_inter_chunk_latency_as_itl_and_wall_clock_start() -> None:
    [run] = parse_bench_files(
        [BENCH / "aiperf" / "aiperf_0.10.0_anud18_qwen3vl-ngrok-c1_profile_export_first-record.jsonl"]
    )
    assert run.tool == "aiperf" and run.timing == "wall_clock"
    req = run.requests
    assert req is not None and req.height == 1
    row = req.row(0, named=True)
    assert row["time"].timestamp() == pytest.approx(1785304510.530453714, abs=1e-6)
    assert row["ttft_ms"] == 12817.890388
    assert row["e2e_ms"] == 27618.656839
    assert len(row["itl_ms"]) == 283 and row["output_tokens"] == 284 and row["input_tokens"] == 680
    # AIPerf's inter_token_latency is our TPOT
    assert row["tpot_ms"] == pytest.approx(52.29952809540636, rel=1e-9)
    assert run.summary["itl_ms_max"] == pytest.approx(119.052388)


def test_printed_seed_block_can_be_forced_to_sglang() -> None:
    runs = parse_file(SEED000, "sglang")
    assert [r.tool for r in runs] == ["sglang"] * 5
    assert runs[0].summary["output_tok_s"] == 822.10
