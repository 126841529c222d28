"""The simulator's benchmark files (real formats) go through the same importer, and land on its ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.ingest import parse_bench_files, summary_from_requests
from telemetry.sim import (
    preset,
    simulate,
    write_aiperf_jsonl,
    write_sglang_jsonl,
    write_sglang_summary,
    write_vllm_detailed,
)


@pytest.fixture(scope="module")
def sim():
    return simulate(preset("seed000", phase_s=60, num_prompts=32), seed=1)


def _epoch_s(frame: pl.DataFrame) -> np.ndarray:
    return frame["time"].dt.epoch("ns").to_numpy() / 1e9


def test_vllm_detailed_lands_on_the_wall_clock_with_the_wrappers_pair(sim, tmp_path: Path) -> None:
    run = sim.runs[0]
    path = write_vllm_detailed(run, tmp_path / "vllm_detailed.json")
    [got] = parse_bench_files(
        [path], run_id=run.run_id, wall_monotonic_pair=(run.start.timestamp(), run.monotonic_start_s)
    )
    assert got.timing == "reconstructed" and got.requests.height == run.result.n
    truth = run.start.timestamp() + run.result.start_s
    np.testing.assert_allclose(_epoch_s(got.requests), truth, atol=2e-6)
    np.testing.assert_allclose(got.requests["ttft_ms"].to_numpy(), run.result.ttft_s * 1000, atol=1e-3)


def test_vllm_detailed_percentiles_recompute_to_its_summary(sim, tmp_path: Path) -> None:
    run = sim.runs[1]
    [got] = parse_bench_files([write_vllm_detailed(run, tmp_path / "v.json")], run_id="v")
    again = summary_from_requests(got.requests, got.summary["duration_s"])
    # arrays are written to 1 us, the summary from unrounded values: agree to 1e-3 ms
    for key in ("ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "itl_ms_p50", "itl_ms_p99", "e2e_ms_p99"):
        assert again[key] == pytest.approx(got.summary[key], abs=1e-3), key
    assert again["output_tok_s"] == pytest.approx(got.summary["output_tok_s"], rel=1e-9)


def test_aiperf_jsonl_is_wall_clock_exact(sim, tmp_path: Path) -> None:
    run = sim.runs[2]
    [got] = parse_bench_files([write_aiperf_jsonl(run, tmp_path / "profile_export.jsonl")], run_id="a")
    assert got.timing == "wall_clock"
    np.testing.assert_allclose(_epoch_s(got.requests), run.start.timestamp() + run.result.start_s, atol=2e-9 * 1e3)
    truth = run.summary()
    assert got.summary["completed"] == run.result.n
    assert got.summary["output_tok_s"] == pytest.approx(
        run.result.output_tokens.sum() / (got.end - got.start).total_seconds(), rel=1e-6
    )
    assert truth  # the simulator's own headline metrics exist


@pytest.mark.parametrize("style", ["sglang", "inferencex"])
def test_printed_summaries_parse_to_the_printed_numbers(sim, tmp_path: Path, style: str) -> None:
    run = sim.runs[3]
    path = write_sglang_summary(run, tmp_path / "summary.txt", style=style, title="Hive 0 - 8 GPUs")
    [got] = parse_bench_files([path], run_id="p")
    [detailed] = parse_bench_files([write_vllm_detailed(run, tmp_path / "d.json")], run_id="d")
    assert got.tool == ("sglang" if style == "sglang" else "vllm")
    for key in ("output_tok_s", "tpot_ms_p50", "itl_ms_p99", "ttft_ms_p99"):
        assert got.summary[key] == round(detailed.summary[key], 2), key


def test_sglang_output_details_replay_matches_the_dispatch(sim, tmp_path: Path) -> None:
    run = sim.runs[4]
    [got] = parse_bench_files([write_sglang_jsonl(run, tmp_path / "out.jsonl")], run_id="s")
    assert got.timing == "reconstructed"
    rel = _epoch_s(got.requests) - got.start.timestamp()
    # e2e = ttft + sum(itls) from 1-us arrays; the client's own latency adds a few ms per request at most
    np.testing.assert_allclose(rel, run.result.start_s - run.result.start_s.min(), atol=0.05)
