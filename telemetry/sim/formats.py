"""Writers of simulated benchmark runs in the formats real tools write (so importers read them like a
user's files). Keys and units follow /work/shared/research/bench-formats.md:

- `write_vllm_detailed`: ``vllm bench serve --save-result --save-detailed`` JSON (current ``serve.py``):
  summary keys in ms / tok/s, per-request arrays in **seconds** (``ttfts``, ``itls``, ``latencies``),
  ``start_times`` = the client's ``perf_counter`` (host CLOCK_MONOTONIC, not wall clock), ``date`` =
  ``YYYYmmdd-HHMMSS`` of the run's end (the host runs on UTC).
- `write_aiperf_jsonl`: AIPerf ``profile_export.jsonl`` (0.10-style), one record per request with
  ``metadata.request_start_ns / request_ack_ns / request_end_ns`` (wall clock, epoch ns) and metrics
  ``{"value", "unit"}`` in ms (``inter_chunk_latency`` a list in ms, ``inter_token_latency`` = TPOT).
- `write_sglang_summary`: the console block ``python -m sglang.bench_serving`` prints
  (``{:<40} {:<10}`` padding, SGLang 0.5.x labels), or ``style="inferencex"`` for the block seed 000
  quotes (legacy vLLM client labels, E2EL last).
- `write_sglang_jsonl`: the line ``sglang.bench_serving --output-file F --output-details`` appends
  (arrays in seconds, no start times).

``generated_texts`` are empty strings (the simulator has no text); every request succeeds.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from telemetry.sim.engine import BenchRun


def _stats(run: BenchRun) -> dict[str, Any]:
    r = run.result
    itls = r.all_itls() * 1000.0
    out = r.output_tokens
    lat = r.e2e_s * 1000.0
    ttft = r.ttft_s * 1000.0
    tpot = ((lat - ttft) / np.maximum(out - 1, 1))[out > 1]
    dur = r.duration_s
    dec, _ = r.tokens_per_second(int(np.ceil(dur)) + 1)
    firsts = np.bincount(np.minimum((r.start_s + r.ttft_s).astype(int), len(dec) - 1), minlength=len(dec))
    s: dict[str, Any] = {
        "duration": dur,
        "completed": r.n,
        "failed": 0,
        "total_input_tokens": int(r.input_tokens.sum()),
        "total_output_tokens": int(out.sum()),
        "request_throughput": r.n / dur,
        "output_throughput": float(out.sum()) / dur,
        "total_token_throughput": float(out.sum() + r.input_tokens.sum()) / dur,
        "max_output_tokens_per_s": float((dec + firsts).max()),
        "max_concurrent_requests": int(run.max_concurrency),
        "concurrency": float(r.e2e_s.sum() / dur),
    }
    for name, arr in (("ttft", ttft), ("tpot", tpot), ("itl", itls), ("e2el", lat)):
        s[f"mean_{name}_ms"] = float(np.mean(arr))
        s[f"median_{name}_ms"] = float(np.median(arr))
        s[f"std_{name}_ms"] = float(np.std(arr))
        s[f"p95_{name}_ms"] = float(np.percentile(arr, 95))
        s[f"p99_{name}_ms"] = float(np.percentile(arr, 99))
        s[f"max_{name}_ms"] = float(np.max(arr))
    return s


def vllm_detailed(run: BenchRun) -> dict[str, Any]:
    """The JSON object of `write_vllm_detailed` (see module docstring)."""
    r = run.result
    s = _stats(run)
    doc: dict[str, Any] = {
        "date": run.end.strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": "openai",
        "backend": "openai",
        "label": None,
        "model_id": run.model,
        "tokenizer_id": run.model,
        "num_prompts": run.num_prompts,
        "request_rate": "inf",
        "burstiness": 1.0,
        "max_concurrency": run.max_concurrency,
        "duration": s["duration"],
        "completed": s["completed"],
        "failed": 0,
        "total_input_tokens": s["total_input_tokens"],
        "total_output_tokens": s["total_output_tokens"],
        "request_throughput": s["request_throughput"],
        "request_goodput": None,
        "output_throughput": s["output_throughput"],
        "total_token_throughput": s["total_token_throughput"],
        "max_output_tokens_per_s": s["max_output_tokens_per_s"],
        "max_concurrent_requests": s["max_concurrent_requests"],
    }
    for name in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "std", "p99"):
            doc[f"{stat}_{name}_ms"] = s[f"{stat}_{name}_ms"]
    doc["latencies"] = _r6(r.e2e_s)
    doc["queue_times"] = [0.0] * r.n
    doc["input_lens"] = r.input_tokens.tolist()
    doc["output_lens"] = r.output_tokens.tolist()
    doc["start_times"] = _r6(run.monotonic_start_s + r.start_s)
    doc["ttfts"] = _r6(r.ttft_s)
    doc["itls"] = [_r6(r.itls(i)) for i in range(r.n)]
    doc["generated_texts"] = [""] * r.n
    doc["errors"] = [""] * r.n
    return doc


def _r6(a: np.ndarray) -> list[float]:
    return np.round(np.asarray(a, dtype=float), 6).tolist()


def write_vllm_detailed(run: BenchRun, path: Path | str) -> Path:
    """Write ``run`` as a ``vllm bench serve --save-result --save-detailed`` JSON file."""
    p = Path(path)
    p.write_text(json.dumps(vllm_detailed(run)))
    return p


def aiperf_records(run: BenchRun) -> list[dict[str, Any]]:
    """The records of `write_aiperf_jsonl`, one dict per request in dispatch order."""
    r = run.result
    rng = np.random.default_rng(_stable_seed(run.run_id))
    worker = f"worker_{rng.bytes(4).hex()}"
    proc = f"record_processor_{rng.bytes(4).hex()}"
    out = []
    for i in range(r.n):
        start_ns = run.start_ns + int(np.rint(r.start_s[i] * 1e9))
        ttft_ms = float(r.ttft_s[i] * 1000.0)
        e2e_ms = float(r.e2e_s[i] * 1000.0)
        itl = np.round(r.itls(i) * 1000.0, 6)
        osl = int(r.output_tokens[i])
        isl = int(r.input_tokens[i])
        tpot = (e2e_ms - ttft_ms) / (osl - 1) if osl > 1 else None
        metrics: dict[str, Any] = {
            "request_latency": {"value": e2e_ms, "unit": "ms"},
            "time_to_first_token": {"value": ttft_ms, "unit": "ms"},
            "time_to_first_output_token": {"value": ttft_ms, "unit": "ms"},
        }
        if len(itl):
            metrics["time_to_second_token"] = {"value": float(itl[0]), "unit": "ms"}
        metrics.update(
            {
                "output_sequence_length": {"value": osl, "unit": "tokens"},
                "input_sequence_length": {"value": isl, "unit": "tokens"},
                "output_token_count": {"value": osl, "unit": "tokens"},
                "usage_prompt_tokens": {"value": isl, "unit": "tokens"},
                "usage_completion_tokens": {"value": osl, "unit": "tokens"},
                "usage_total_tokens": {"value": isl + osl, "unit": "tokens"},
                "inter_chunk_latency": {"value": itl.tolist(), "unit": "ms"},
                "e2e_output_token_throughput": {"value": osl / (e2e_ms / 1000.0), "unit": "tokens/sec/user"},
            }
        )
        if tpot is not None:
            metrics["inter_token_latency"] = {"value": tpot, "unit": "ms"}
            metrics["output_token_throughput_per_user"] = {"value": 1000.0 / tpot, "unit": "tokens/sec/user"}
        out.append(
            {
                "metadata": {
                    "session_num": i,
                    "x_request_id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                    "x_correlation_id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                    "conversation_id": f"session_{i:06d}",
                    "turn_index": 0,
                    "credit_issued_ns": start_ns - 500_000,
                    "request_start_ns": start_ns,
                    "request_ack_ns": start_ns + 2_000_000,
                    "request_end_ns": start_ns + int(np.rint(e2e_ms * 1e6)),
                    "worker_id": worker,
                    "record_processor_id": proc,
                    "benchmark_phase": "profiling",
                    "was_cancelled": False,
                },
                "metrics": metrics,
                "error": None,
            }
        )
    return out


def _stable_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def write_aiperf_jsonl(run: BenchRun, path: Path | str) -> Path:
    """Write ``run`` as an AIPerf ``profile_export.jsonl`` (one JSON record per line)."""
    p = Path(path)
    with p.open("w") as fh:
        for rec in aiperf_records(run):
            fh.write(json.dumps(rec, separators=(",", ":")))
            fh.write("\n")
    return p


def sglang_summary(run: BenchRun, style: str = "sglang", title: str | None = None) -> str:
    """The printed "Serving Benchmark Result" block (``style`` ``sglang`` or ``inferencex``)."""
    s = _stats(run)
    head = f" Serving Benchmark Result{f' ({title})' if title else ''} "
    lines = [head.center(50 if not title else len(head) + 24, "=")]

    def row(label: str, value: Any, fmt: str = "{:.2f}") -> None:
        v = value if isinstance(value, str) else (str(value) if isinstance(value, int) else fmt.format(value))
        lines.append(f"{label:<40} {v:<10}")

    def sep(text: str) -> None:
        lines.append(text.center(50, "-"))

    if style == "sglang":
        row("Backend:", "sglang")
        row("Traffic request rate:", "inf")
        row("Max request concurrency:", run.max_concurrency)
        row("Successful requests:", s["completed"])
        row("Benchmark duration (s):", s["duration"])
        row("Total input tokens:", s["total_input_tokens"])
        row("Total input text tokens:", s["total_input_tokens"])
        row("Total input vision tokens:", 0)
        row("Total generated tokens:", s["total_output_tokens"])
        row("Total generated tokens (retokenized):", s["total_output_tokens"])
        row("Request throughput (req/s):", s["request_throughput"])
        row("Input token throughput (tok/s):", s["total_input_tokens"] / s["duration"])
        row("Output token throughput (tok/s):", s["output_throughput"])
        row("Peak output token throughput (tok/s):", s["max_output_tokens_per_s"])
        row("Peak concurrent requests:", s["max_concurrent_requests"])
        row("Total token throughput (tok/s):", s["total_token_throughput"])
        row("Concurrency:", s["concurrency"])
        sep("End-to-End Latency")
        row("Mean E2E Latency (ms):", s["mean_e2el_ms"])
        row("Median E2E Latency (ms):", s["median_e2el_ms"])
        sep("Time to First Token")
        row("Mean TTFT (ms):", s["mean_ttft_ms"])
        row("Median TTFT (ms):", s["median_ttft_ms"])
        row("P99 TTFT (ms):", s["p99_ttft_ms"])
        sep("Time per Output Token (excl. 1st token)")
        row("Mean TPOT (ms):", s["mean_tpot_ms"])
        row("Median TPOT (ms):", s["median_tpot_ms"])
        row("P99 TPOT (ms):", s["p99_tpot_ms"])
        sep("Inter-Token Latency")
        row("Mean ITL (ms):", s["mean_itl_ms"])
        row("Median ITL (ms):", s["median_itl_ms"])
        row("P95 ITL (ms):", s["p95_itl_ms"])
        row("P99 ITL (ms):", s["p99_itl_ms"])
        row("Max ITL (ms):", s["max_itl_ms"])
    elif style == "inferencex":
        row("Successful requests:", s["completed"])
        row("Benchmark duration (s):", s["duration"])
        row("Total input tokens:", s["total_input_tokens"])
        row("Total generated tokens:", s["total_output_tokens"])
        row("Request throughput (req/s):", s["request_throughput"])
        row("Output token throughput (tok/s):", s["output_throughput"])
        row("Total Token throughput (tok/s):", s["total_token_throughput"])
        sep("Time to First Token")
        row("Mean TTFT (ms):", s["mean_ttft_ms"])
        row("Median TTFT (ms):", s["median_ttft_ms"])
        row("P99 TTFT (ms):", s["p99_ttft_ms"])
        sep("Time per Output Token (excl. 1st token)")
        row("Mean TPOT (ms):", s["mean_tpot_ms"])
        row("Median TPOT (ms):", s["median_tpot_ms"])
        row("P99 TPOT (ms):", s["p99_tpot_ms"])
        sep("Inter-token Latency")
        row("Mean ITL (ms):", s["mean_itl_ms"])
        row("Median ITL (ms):", s["median_itl_ms"])
        row("P99 ITL (ms):", s["p99_itl_ms"])
        sep("End-to-end Latency")
        row("Mean E2EL (ms):", s["mean_e2el_ms"])
        row("Median E2EL (ms):", s["median_e2el_ms"])
        row("P99 E2EL (ms):", s["p99_e2el_ms"])
    else:
        raise ValueError(f"unknown summary style {style!r} (sglang | inferencex)")
    lines.append("=" * 50)
    return "\n".join(lines) + "\n"


def write_sglang_summary(run: BenchRun, path: Path | str, style: str = "sglang", title: str | None = None) -> Path:
    """Write the printed summary block of ``run`` (see `sglang_summary`)."""
    p = Path(path)
    p.write_text(sglang_summary(run, style=style, title=title))
    return p


def sglang_jsonl_line(run: BenchRun) -> dict[str, Any]:
    """The object ``sglang.bench_serving --output-details`` appends for ``run`` (arrays in seconds)."""
    r = run.result
    s = _stats(run)
    doc: dict[str, Any] = {
        "backend": "sglang",
        "dataset_name": "random",
        "request_rate": float("inf"),
        "max_concurrency": run.max_concurrency,
        "sharegpt_output_len": None,
        "random_input_len": run.input_len,
        "random_output_len": run.output_len,
        "random_range_ratio": run.range_ratio,
        "duration": s["duration"],
        "completed": s["completed"],
        "total_input_tokens": s["total_input_tokens"],
        "total_output_tokens": s["total_output_tokens"],
        "total_output_tokens_retokenized": s["total_output_tokens"],
        "request_throughput": s["request_throughput"],
        "input_throughput": s["total_input_tokens"] / s["duration"],
        "output_throughput": s["output_throughput"],
        "total_throughput": s["total_token_throughput"],
        "concurrency": s["concurrency"],
        "accept_length": None,
        "max_output_tokens_per_s": s["max_output_tokens_per_s"],
        "max_concurrent_requests": s["max_concurrent_requests"],
    }
    for name, key in (("e2el", "e2e_latency"), ("ttft", "ttft"), ("tpot", "tpot"), ("itl", "itl")):
        for stat in ("mean", "median", "std", "p99"):
            doc[f"{stat}_{key}_ms"] = s[f"{stat}_{name}_ms"]
    doc["p95_itl_ms"] = s["p95_itl_ms"]
    doc["input_lens"] = r.input_tokens.tolist()
    doc["output_lens"] = r.output_tokens.tolist()
    doc["ttfts"] = _r6(r.ttft_s)
    doc["itls"] = [_r6(r.itls(i)) for i in range(r.n)]
    doc["generated_texts"] = [""] * r.n
    doc["errors"] = [""] * r.n
    return doc


def write_sglang_jsonl(run: BenchRun, path: Path | str) -> Path:
    """Append ``run``'s line to an SGLang ``--output-file`` JSONL (``Infinity`` for the rate, as SGLang)."""
    p = Path(path)
    with p.open("a") as fh:
        fh.write(json.dumps(sglang_jsonl_line(run)))
        fh.write("\n")
    return p
