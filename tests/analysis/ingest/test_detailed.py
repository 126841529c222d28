"""Per-request arrays: recomputed percentiles match the tool's own summary; requests land on the wall clock."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.ingest import parse_bench_files, summary_from_requests, tokens_frame
from tests.analysis.ingest.fake_bench import (
    aiperf_records,
    fake_workload,
    genai_perf_export,
    sglang_details,
    tool_summary,
    vllm_detailed,
    write_json,
    write_jsonl,
)

CANON = {
    "mean_ttft_ms": "ttft_ms_mean",
    "median_ttft_ms": "ttft_ms_p50",
    "p99_ttft_ms": "ttft_ms_p99",
    "mean_tpot_ms": "tpot_ms_mean",
    "median_tpot_ms": "tpot_ms_p50",
    "p99_tpot_ms": "tpot_ms_p99",
    "mean_itl_ms": "itl_ms_mean",
    "median_itl_ms": "itl_ms_p50",
    "p99_itl_ms": "itl_ms_p99",
    "std_itl_ms": "itl_ms_std",
    "mean_e2el_ms": "e2e_ms_mean",
    "p99_e2el_ms": "e2e_ms_p99",
}


def _recomputed_matches_tool(run_summary: dict, requests: pl.DataFrame, tool: dict) -> None:
    again = summary_from_requests(requests, run_summary.get("duration_s"))
    for key, canon in CANON.items():
        assert again[canon] == pytest.approx(tool[key], rel=1e-9), key
        assert run_summary[canon] == pytest.approx(tool[key], rel=1e-9), key
    assert again["completed"] == tool["completed"]
    assert again["output_tok_s"] == pytest.approx(tool["output_throughput"], rel=1e-9)


def test_vllm_save_detailed_recomputes_to_its_summary(tmp_path: Path) -> None:
    w = fake_workload(seed=1)
    path = write_json(tmp_path / "vllm.json", vllm_detailed(w))
    [run] = parse_bench_files([path], run_id="v")
    assert run.requests is not None and run.requests.height == w.n
    _recomputed_matches_tool(dict(run.summary), run.requests, tool_summary(w))
    assert run.summary["failed"] == 2


def test_vllm_start_times_map_through_the_wall_monotonic_pair(tmp_path: Path) -> None:
    w = fake_workload(seed=2)
    path = write_json(tmp_path / "vllm.json", vllm_detailed(w, perf_counter_at_first=5000.25))
    wall0 = 1_763_800_000.5
    # the wrapper read time.time() = wall0 - 3 while time.monotonic() = 4997.25
    [run] = parse_bench_files([path], run_id="v", wall_monotonic_pair=(wall0 - 3.0, 4997.25))
    assert run.timing == "reconstructed" and run.time_source == "wrapper_wall_monotonic_pair"
    got = run.requests["time"].dt.epoch("ns").to_numpy() / 1e9
    np.testing.assert_allclose(got, wall0 + np.asarray(w.start_rel_s), atol=1e-6)


def test_vllm_start_times_without_a_pair_are_anchored_on_the_date(tmp_path: Path) -> None:
    w = fake_workload(seed=3)
    path = write_json(tmp_path / "vllm.json", vllm_detailed(w))
    [run] = parse_bench_files([path], run_id="v", tz="UTC")
    assert run.time_source == "tool_end_time_local" and run.timing == "reconstructed"
    # date 2025-11-22 10:15:00 local (UTC here), minus the duration
    assert run.start.timestamp() == pytest.approx(1763806500.0 - w.duration_s, abs=1e-3)
    rel = run.requests["time"].dt.epoch("ns").to_numpy() / 1e9 - run.start.timestamp()
    np.testing.assert_allclose(rel, w.start_rel_s, atol=1e-6)


def test_vllm_legacy_detailed_without_start_times_replays_the_dispatch(tmp_path: Path) -> None:
    w = fake_workload(seed=4, concurrency=4)
    path = write_json(tmp_path / "legacy.json", vllm_detailed(w, legacy=True))
    [run] = parse_bench_files([path], run_id="v", tz="UTC")
    assert run.timing == "reconstructed"
    rel = run.requests["time"].dt.epoch("ns").to_numpy() / 1e9 - run.start.timestamp()
    np.testing.assert_allclose(rel, w.start_rel_s, atol=1e-6)
    _recomputed_matches_tool(dict(run.summary), run.requests, tool_summary(w))


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested-details"])
def test_sglang_output_details_recompute_to_the_summary(tmp_path: Path, nested: bool) -> None:
    w = fake_workload(seed=5)
    line = json.dumps(sglang_details(w, nested=nested)).replace("Infinity", "Infinity")
    assert "Infinity" in line
    path = tmp_path / "sglang.jsonl"
    path.write_text(line + "\n")
    [run] = parse_bench_files([path], run_id="s", wall_start_s=1_763_800_000.0)
    tool = tool_summary(w)
    again = summary_from_requests(run.requests, run.summary["duration_s"])
    for key in ("median_ttft_ms", "p99_itl_ms", "median_tpot_ms", "p99_tpot_ms", "mean_itl_ms"):
        assert again[CANON[key]] == pytest.approx(tool[key], rel=1e-9)
    assert run.summary["e2e_ms_p99"] == pytest.approx(tool["p99_e2el_ms"], rel=1e-12)
    assert run.timing == "reconstructed"
    rel = run.requests["time"].dt.epoch("ns").to_numpy() / 1e9 - run.start.timestamp()
    np.testing.assert_allclose(rel, w.start_rel_s, atol=1e-6)


def test_finite_request_rate_without_start_times_is_unaligned(tmp_path: Path) -> None:
    w = fake_workload(seed=6)
    d = sglang_details(w)
    d["request_rate"] = 4.0
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(d) + "\n")
    [run] = parse_bench_files([path], run_id="s")
    assert run.timing == "unaligned"
    assert run.requests["time"].n_unique() == 1


def test_aiperf_records_are_wall_clock_and_drop_warmup(tmp_path: Path) -> None:
    w = fake_workload(seed=7)
    path = write_jsonl(tmp_path / "profile_export.jsonl", aiperf_records(w))
    [run] = parse_bench_files([path], run_id="a")
    assert run.timing == "wall_clock" and run.requests.height == w.n
    assert run.extra["records_by_phase"] == {"warmup": 1, "profiling": w.n}
    tool = tool_summary(w)
    for key in ("median_ttft_ms", "p99_ttft_ms", "p99_itl_ms", "median_tpot_ms", "p99_tpot_ms", "p99_e2el_ms"):
        assert run.summary[CANON[key]] == pytest.approx(tool[key], rel=1e-9), key
    assert run.summary["failed"] == 2


def test_genai_perf_export_gives_ttft_and_itl_from_response_timestamps(tmp_path: Path) -> None:
    w = fake_workload(seed=8, failures=0)
    path = write_json(tmp_path / "profile_export.json", genai_perf_export(w))
    [run] = parse_bench_files([path], run_id="g")
    assert run.tool == "genai-perf" and run.timing == "wall_clock" and run.concurrency == w.concurrency
    tool = tool_summary(w)
    # timestamps are whole ns: 1e-6 ms agreement
    assert run.summary["ttft_ms_p50"] == pytest.approx(tool["median_ttft_ms"], abs=1e-5)
    assert run.summary["itl_ms_p99"] == pytest.approx(tool["p99_itl_ms"], abs=1e-5)


def test_inferencex_raw_result_uses_its_unix_start(tmp_path: Path) -> None:
    w = fake_workload(seed=9)
    d = vllm_detailed(w, legacy=True)
    d["benchmark_start_time_unix"] = 1_763_800_000.25
    d["benchmark_end_time_unix"] = 1_763_800_000.25 + w.duration_s
    path = write_json(tmp_path / "dsr1_1k1k_fp8_sglang_tp8-pp1-dcp1-pcp1-ep1-dpa0_conc8.json", d)
    [run] = parse_bench_files([path], run_id="ix")
    assert run.tool == "inferencex" and run.time_source == "tool_start_time"
    assert run.start.timestamp() == pytest.approx(1_763_800_000.25, abs=1e-6)
    assert run.requests["time"].min().timestamp() == pytest.approx(1_763_800_000.25, abs=1e-6)


def test_inferencex_aggregate_converts_seconds_back_to_ms(tmp_path: Path) -> None:
    agg = {
        "hw": "mi300x", "tp": 8, "ep": 1, "conc": 64, "isl": 8192, "osl": 1024, "model": "Qwen/Qwen3.5-397B-A17B-FP8",
        "framework": "sglang", "precision": "fp8", "tput_per_gpu": 926.27, "output_tput_per_gpu": 102.76,
        "median_tpot": 0.07422, "median_intvty": 13.473, "p99_itl": 0.41167, "median_ttft": 0.49233,
    }  # fmt: skip
    [run] = parse_bench_files([write_json(tmp_path / "agg_x.json", agg)], run_id="agg")
    assert run.tool == "inferencex" and (run.tp, run.concurrency, run.isl, run.osl) == (8, 64, 8192, 1024)
    assert run.summary["tpot_ms_p50"] == pytest.approx(74.22)
    assert run.summary["itl_ms_p99"] == pytest.approx(411.67)
    assert run.summary["output_tok_s"] == pytest.approx(822.08)


def test_tokens_are_start_plus_ttft_plus_cumulative_itl(tmp_path: Path) -> None:
    w = fake_workload(seed=10)
    path = write_jsonl(tmp_path / "p.jsonl", aiperf_records(w))
    [run] = parse_bench_files([path], run_id="a")
    tok = tokens_frame(run)
    ok = [i for i in range(w.n) if not w.errors[i]]
    assert tok.height == sum(len(w.itls_s[i]) + 1 for i in ok)
    assert tok["tokens"].sum() == sum(w.output_lens)
    i = ok[0]
    one = tok.filter(pl.col("request_index") == i).sort("token_index")
    start_ns = run.requests.filter(pl.col("request_index") == i)["time"].dt.epoch("ns")[0]
    expect = np.cumsum([w.ttfts_s[i], *w.itls_s[i]])
    got = (one["time"].dt.epoch("ns").to_numpy() - start_ns) / 1e9
    np.testing.assert_allclose(got, expect, atol=2e-9)
    assert one["itl_ms"][0] is None
    np.testing.assert_allclose(one["itl_ms"][1:].to_numpy(), np.asarray(w.itls_s[i]) * 1000)


def test_tokens_spread_output_tokens_over_multi_token_chunks(tmp_path: Path) -> None:
    w = fake_workload(seed=11, failures=0)
    d = vllm_detailed(w)
    d["output_lens"] = [n * 3 for n in w.output_lens]  # spec decoding: three tokens per chunk
    [run] = parse_bench_files([write_json(tmp_path / "v.json", d)], run_id="v")
    tok = tokens_frame(run)
    assert tok["tokens"].sum() == sum(d["output_lens"])
    assert set(tok["tokens"].unique().to_list()) == {3}


def test_the_optional_fast_json_decoder_gives_the_same_runs(tmp_path: Path, monkeypatch) -> None:
    from analysis.ingest import base

    w = fake_workload(seed=12)
    paths = [
        write_json(tmp_path / "v.json", vllm_detailed(w)),
        write_jsonl(tmp_path / "a.jsonl", aiperf_records(w)),
    ]
    fast = parse_bench_files(paths, run_id="x", tz="UTC")
    monkeypatch.setattr(base, "orjson", None)
    slow = parse_bench_files(paths, run_id="x", tz="UTC")
    for f, s in zip(fast, slow, strict=True):
        assert replace(f, import_seq=None) == replace(s, import_seq=None) and f.requests.equals(s.requests)
