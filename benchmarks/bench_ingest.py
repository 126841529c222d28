"""Import speed of detailed benchmark results: one run of the seed-000 workload (640 requests x 1024 output tokens,
concurrency 64) and 100 such runs, per format, parse only and parse + store (Parquet store, requests and tokens
artifacts).

    .venv/bin/python benchmarks/bench_ingest.py [--runs 100] [--formats vllm,aiperf,sglang]

Target: one run under 1 s.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.ingest import import_bench_files, parse_bench_files
from telemetry.store.factory import open_store

N, OSL, ISL, CONC = 640, 1024, 8192, 64


def workload(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    ttft = rng.gamma(2.0, 0.25, N)
    itls = rng.lognormal(np.log(0.045), 0.35, (N, OSL - 1))
    itls[rng.random(itls.shape) < 0.01] *= 9
    lat = ttft + itls.sum(axis=1)
    free = [0.0] * CONC
    starts = np.empty(N)
    for i in range(N):
        t = heapq.heappop(free)
        starts[i] = t
        heapq.heappush(free, t + lat[i])
    return {"ttft": ttft, "itls": itls, "lat": lat, "starts": starts, "duration": float((starts + lat).max())}


def vllm_file(w: dict, path: Path) -> Path:
    doc = {
        "date": "20251122-101500", "backend": "vllm", "model_id": "Qwen/Qwen3.5-397B-A17B-FP8", "num_prompts": N,
        "request_rate": "inf", "max_concurrency": CONC, "duration": w["duration"], "completed": N, "failed": 0,
        "total_input_tokens": N * ISL, "total_output_tokens": N * OSL, "output_throughput": N * OSL / w["duration"],
        "input_lens": [ISL] * N, "output_lens": [OSL] * N, "start_times": (5000.0 + w["starts"]).round(6).tolist(),
        "ttfts": w["ttft"].round(6).tolist(), "itls": w["itls"].round(6).tolist(), "latencies": w["lat"].round(6).tolist(),
        "generated_texts": [""] * N, "errors": [""] * N,
    }  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def sglang_file(w: dict, path: Path) -> Path:
    doc = {
        "backend": "sglang", "dataset_name": "random", "request_rate": float("inf"), "max_concurrency": CONC,
        "random_input_len": ISL, "random_output_len": OSL, "duration": w["duration"], "completed": N,
        "total_input_tokens": N * ISL, "total_output_tokens": N * OSL, "output_throughput": N * OSL / w["duration"],
        "input_lens": [ISL] * N, "output_lens": [OSL] * N, "ttfts": w["ttft"].round(6).tolist(),
        "itls": w["itls"].round(6).tolist(), "generated_texts": [""] * N, "errors": [""] * N,
    }  # fmt: skip
    path.write_text(json.dumps(doc) + "\n")
    return path


def aiperf_file(w: dict, path: Path) -> Path:
    t0 = 1_763_800_000_000_000_000
    with path.open("w") as fh:
        for i in range(N):
            start = t0 + round(w["starts"][i] * 1e9)
            rec = {
                "metadata": {"x_request_id": f"r{i}", "request_start_ns": start,
                             "request_end_ns": start + round(w["lat"][i] * 1e9), "benchmark_phase": "profiling"},
                "metrics": {
                    "time_to_first_token": {"value": w["ttft"][i] * 1000, "unit": "ms"},
                    "request_latency": {"value": w["lat"][i] * 1000, "unit": "ms"},
                    "input_sequence_length": {"value": ISL, "unit": "tokens"},
                    "output_sequence_length": {"value": OSL, "unit": "tokens"},
                    "inter_chunk_latency": {"value": (w["itls"][i] * 1000).round(6).tolist(), "unit": "ms"},
                },
                "error": None,
            }  # fmt: skip
            fh.write(json.dumps(rec) + "\n")
    return path


WRITERS = {"vllm": vllm_file, "aiperf": aiperf_file, "sglang": sglang_file}


def best_of(fn, repeat: int = 3) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeat`` calls (CPU = all threads of this process)."""
    times = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t, time.process_time() - c))
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--formats", default="vllm,aiperf,sglang")
    ap.add_argument("--no-orjson", action="store_true", help="Decode JSON with the standard library only.")
    args = ap.parse_args()
    if args.no_orjson:
        from analysis.ingest import base

        base.orjson = None
    w = workload()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from analysis.ingest import base

        decoder = "orjson" if base.orjson is not None else "json (standard library)"
        print(f"workload: {N} requests x {OSL} output tokens ({N * OSL:,} tokens), concurrency {CONC}; {decoder}")
        for fmt in args.formats.split(","):
            path = WRITERS[fmt](w, root / f"{fmt}.result")
            size_mb = path.stat().st_size / 1e6
            parse_s = best_of(lambda p=path: parse_bench_files([p], run_id="x", wall_monotonic_pair=(1.7e9, 5000.0)))
            k = [0]

            def store_one(p=path, k=k, fmt=fmt) -> None:
                k[0] += 1
                st = open_store(root / f"store-{fmt}-{k[0]}")
                import_bench_files(st, [p], run_id=f"{fmt}-{k[0]}", wall_monotonic_pair=(1.7e9, 5000.0))
                st.close()

            store_s = best_of(store_one)
            st = open_store(root / f"store-{fmt}-many")
            t, c = time.perf_counter(), time.process_time()
            for i in range(args.runs):
                import_bench_files(st, [path], run_id=f"{fmt}-{i}", wall_monotonic_pair=(1.7e9, 5000.0))
            many_s, many_cpu = time.perf_counter() - t, time.process_time() - c
            st.close()
            print(
                f"{fmt:7s} file {size_mb:4.1f} MB | 1 run: parse {parse_s[0]:.3f} s (cpu {parse_s[1]:.3f}), "
                f"parse+store {store_s[0]:.3f} s (cpu {store_s[1]:.3f}) | {args.runs} runs parse+store "
                f"{many_s:.1f} s (cpu {many_cpu:.1f}) = {many_s / args.runs:.3f} s/run"
            )
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
