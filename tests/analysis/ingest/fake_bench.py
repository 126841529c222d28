"""Fake detailed benchmark files, written the way the tools write them (for formats with no public detailed file).

`fake_workload` draws a seeded closed-loop run (``--request-rate inf --max-concurrency C``); the writers follow
vLLM's ``calculate_metrics`` / SGLang's ``calculate_metrics`` (numpy mean / median / percentile over successful
requests; TPOT = (latency - ttft) / (output_len - 1); ITL pooled) and AIPerf's / genai-perf's record layouts.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FakeWorkload:
    n: int
    concurrency: int
    input_lens: list[int]
    output_lens: list[int]  # 0 for failed requests
    ttfts_s: list[float]  # 0.0 for failed
    itls_s: list[list[float]]  # [] for failed
    errors: list[str]  # "" when ok
    start_rel_s: list[float]  # dispatch time relative to the first request
    duration_s: float

    @property
    def latencies_s(self) -> list[float]:
        return [t + sum(i) if not e else 0.0 for t, i, e in zip(self.ttfts_s, self.itls_s, self.errors, strict=True)]


def fake_workload(seed: int = 0, n: int = 64, concurrency: int = 8, osl: int = 64, failures: int = 2) -> FakeWorkload:
    rng = np.random.default_rng(seed)
    input_lens = rng.integers(100, 400, n).tolist()
    output_lens = rng.integers(max(1, osl // 2), osl + 1, n).tolist()
    failed = set(rng.choice(n, size=failures, replace=False).tolist()) if failures else set()
    ttfts, itls, errors = [], [], []
    for i in range(n):
        if i in failed:
            ttfts.append(0.0)
            itls.append([])
            errors.append("HTTP 500: boom")
            output_lens[i] = 0
            continue
        ttfts.append(float(rng.gamma(4.0, 0.05)))
        gaps = rng.lognormal(np.log(0.02), 0.4, output_lens[i] - 1)
        gaps[rng.random(gaps.size) < 0.02] *= 8  # prefill stalls: the long tail
        itls.append(gaps.tolist())
        errors.append("")
    lat = [t + sum(g) for t, g in zip(ttfts, itls, strict=True)]
    free = [0.0] * concurrency
    starts, ends = [], []
    for i in range(n):
        t = heapq.heappop(free)
        starts.append(t)
        d = lat[i] if not errors[i] else 0.0
        ends.append(t + d)
        heapq.heappush(free, t + d)
    return FakeWorkload(n, concurrency, input_lens, output_lens, ttfts, itls, errors, starts, max(ends))


def tool_summary(w: FakeWorkload, percentiles: tuple[float, ...] = (99,)) -> dict[str, float]:
    """vLLM's / SGLang's summary keys, computed their way."""
    ok = [i for i in range(w.n) if not w.errors[i]]
    ttfts = [w.ttfts_s[i] for i in ok]
    lat = w.latencies_s
    tpots = [(lat[i] - w.ttfts_s[i]) / (w.output_lens[i] - 1) for i in ok if w.output_lens[i] > 1]
    itls = [g for i in ok for g in w.itls_s[i]]
    e2els = [lat[i] for i in ok]
    out: dict[str, float] = {
        "duration": w.duration_s,
        "completed": len(ok),
        "total_input_tokens": sum(w.input_lens[i] for i in ok),
        "total_output_tokens": sum(w.output_lens),
        "request_throughput": len(ok) / w.duration_s,
        "output_throughput": sum(w.output_lens) / w.duration_s,
        "total_token_throughput": (sum(w.input_lens[i] for i in ok) + sum(w.output_lens)) / w.duration_s,
    }
    for name, values in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els)):
        out[f"mean_{name}_ms"] = float(np.mean(values)) * 1000
        out[f"median_{name}_ms"] = float(np.median(values)) * 1000
        out[f"std_{name}_ms"] = float(np.std(values)) * 1000
        for p in percentiles:
            label = str(int(p)) if int(p) == p else str(p)
            out[f"p{label}_{name}_ms"] = float(np.percentile(values, p)) * 1000
    return out


def vllm_detailed(w: FakeWorkload, *, perf_counter_at_first: float | None = 5000.25, legacy: bool = False) -> dict:
    """``vllm bench serve --save-result --save-detailed`` JSON (legacy: benchmark_serving.py, no start_times)."""
    d: dict = {
        "date": "20251122-101500",
        "backend": "vllm",
        "model_id": "Qwen/Qwen3-8B",
        "tokenizer_id": "Qwen/Qwen3-8B",
        "num_prompts": w.n,
        "request_rate": "inf",
        "burstiness": 1.0,
        "max_concurrency": w.concurrency,
        "failed": w.n - w.errors.count(""),
    }
    s = tool_summary(w)
    if legacy:
        d.pop("failed")
        s["request_goodput:"] = None
    else:
        s["request_goodput"] = None
        s["max_output_tokens_per_s"] = 123.0
        s["max_concurrent_requests"] = w.concurrency
    d.update(s)
    d.update(
        {
            "input_lens": [w.input_lens[i] for i in range(w.n)],
            "output_lens": w.output_lens,
            "ttfts": w.ttfts_s,
            "itls": w.itls_s,
            "generated_texts": ["x" * 3 for _ in range(w.n)],
            "errors": w.errors,
        }
    )
    if not legacy and perf_counter_at_first is not None:
        d["start_times"] = [perf_counter_at_first + t for t in w.start_rel_s]
        d["latencies"] = w.latencies_s
    return d


def sglang_details(w: FakeWorkload, *, nested: bool = False) -> dict:
    """``sglang.bench_serving --output-file X --output-details`` line (monolithic layout, or nested ``details``)."""
    s = tool_summary(w)
    d: dict = {
        "backend": "sglang",
        "dataset_name": "random",
        "request_rate": float("inf"),
        "max_concurrency": w.concurrency,
        "random_input_len": 256,
        "random_output_len": 64,
        "random_range_ratio": 0.0,
        "duration": s["duration"],
        "completed": s["completed"],
        "total_input_tokens": s["total_input_tokens"],
        "total_output_tokens": s["total_output_tokens"],
        "total_output_tokens_retokenized": s["total_output_tokens"],
        "request_throughput": s["request_throughput"],
        "output_throughput": s["output_throughput"],
    }
    for k, v in s.items():
        if k.endswith("_ms"):
            d[k.replace("e2el", "e2e_latency")] = v
    details = {
        "input_lens": w.input_lens,
        "output_lens": w.output_lens,
        "ttfts": w.ttfts_s,
        "itls": w.itls_s,
        "generated_texts": ["" for _ in range(w.n)],
        "errors": w.errors,
    }
    if nested:
        d["details"] = details
    else:
        d.update(details)
    return d


def aiperf_records(w: FakeWorkload, wall_start_ns: int = 1_785_304_510_530_453_714) -> list[dict]:
    """AIPerf ``profile_export.jsonl`` records (ms metrics, wall-clock ns metadata), one warm-up record first."""
    out = [
        {
            "metadata": {"benchmark_phase": "warmup", "request_start_ns": wall_start_ns - 10**9},
            "metrics": {},
            "error": None,
        }
    ]
    for i in range(w.n):
        start = wall_start_ns + round(w.start_rel_s[i] * 1e9)
        meta = {
            "session_num": i,
            "x_request_id": f"req-{i}",
            "request_start_ns": start,
            "request_end_ns": start + round(w.latencies_s[i] * 1e9),
            "benchmark_phase": "profiling",
            "was_cancelled": False,
        }
        if w.errors[i]:
            out.append(
                {
                    "metadata": meta,
                    "metrics": {"error_isl": {"value": w.input_lens[i], "unit": "tokens"}},
                    "error": {"code": 500, "type": "HTTPError", "message": w.errors[i]},
                }
            )
            continue
        ttft = w.ttfts_s[i] * 1000
        lat = w.latencies_s[i] * 1000
        osl = w.output_lens[i]
        metrics = {
            "time_to_first_token": {"value": ttft, "unit": "ms"},
            "request_latency": {"value": lat, "unit": "ms"},
            "input_sequence_length": {"value": w.input_lens[i], "unit": "tokens"},
            "output_sequence_length": {"value": osl, "unit": "tokens"},
            "inter_chunk_latency": {"value": [g * 1000 for g in w.itls_s[i]], "unit": "ms"},
        }
        if osl > 1:
            metrics["inter_token_latency"] = {"value": (lat - ttft) / (osl - 1), "unit": "ms"}
        out.append({"metadata": meta, "metrics": metrics, "error": None})
    return out


def genai_perf_export(w: FakeWorkload, wall_start_ns: int = 1_763_800_000_000_000_000) -> dict:
    reqs = []
    for i in range(w.n):
        if w.errors[i]:
            continue
        t0 = wall_start_ns + round(w.start_rel_s[i] * 1e9)
        offs = np.cumsum([w.ttfts_s[i], *w.itls_s[i]])
        reqs.append(
            {
                "timestamp": t0,
                "request_inputs": {"payload": "{}"},
                "response_timestamps": [t0 + round(o * 1e9) for o in offs],
                "response_outputs": [{"response": "{}"} for _ in offs],
            }
        )
    return {
        "service_kind": "openai",
        "endpoint": "v1/chat/completions",
        "experiments": [{"experiment": {"mode": "concurrency", "value": w.concurrency}, "requests": reqs}],
    }


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def write_jsonl(path: Path, objs: list) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path
