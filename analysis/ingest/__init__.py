"""Benchmark and telemetry ingest: read what the benchmark clients write (SGLang, vLLM, llama-benchy, AIPerf /
genai-perf, InferenceX, ...: docs/benchmarks.md), per request, on the telemetry clock (`neighborscope import bench`),
and telemetry recorded without our agent (`neighborscope import telemetry`).

Public API (for analysis and tests)::

    runs = import_bench_files(store, paths, run_id="r1", phase="baseline", group="hive0", node="n1",
                              wall_monotonic_pair=(wall_s, mono_s))
    runs = parse_bench_files(paths, ...)          # same, without storing
    run = load_run(store, "r1"); requests = load_requests(store, "r1"); tokens = load_tokens(store, "r1")

Frame layouts: `analysis.ingest.model`.
"""

from __future__ import annotations

from analysis.ingest.errors import BenchFormatError
from analysis.ingest.importer import import_bench_files, parse_bench_files
from analysis.ingest.model import (
    ParsedRun,
    Run,
    bench_request_frame,
    list_runs,
    load_requests,
    load_run,
    load_tokens,
    requests_frame,
    summary_from_requests,
    tokens_frame,
    write_run,
)
from analysis.ingest.timing import ImportOptions

__all__ = [
    "BenchFormatError",
    "ImportOptions",
    "ParsedRun",
    "Run",
    "bench_request_frame",
    "import_bench_files",
    "list_runs",
    "load_requests",
    "load_run",
    "load_tokens",
    "parse_bench_files",
    "requests_frame",
    "summary_from_requests",
    "tokens_frame",
    "write_run",
]
