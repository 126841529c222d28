"""vLLM: legacy ``benchmarks/benchmark_serving.py`` JSON (``"request_goodput:"`` key), ``vllm bench serve`` JSON
(summary, ``--save-detailed`` arrays incl. ``start_times``, ``--append-result`` concatenated objects), and the
printed "Serving Benchmark Result" block (old ``Total Token throughput`` and new ``Failed requests`` / ``Peak``
variants, titled blocks such as InferenceX's).

Checked against the vLLM 0.34.0 release (``vllm/benchmarks/serve.py``; every key it writes, with units:
``tests/fixtures/bench/vllm/README.md``, ``docs/benchmarks.md``). ``start_times`` are ``time.perf_counter()``
(monotonic) seconds: mapped to the wall clock through the wrapper's wall/monotonic pair
(``analysis.ingest.timing``). ``date`` is local time taken after the run (1 s resolution).
"""

from __future__ import annotations

import re

from analysis.ingest import _serving as sv
from analysis.ingest.base import json_documents, looks_like_json, register
from analysis.ingest.model import ParsedRun

_DATE = re.compile(r'"date"\s*:')
_VLLM_KEYS = re.compile(r'"(request_throughput|num_prompts|completed|total_token_throughput|model_id)"\s*:')


@register("vllm")
class VllmParser:
    name = "vllm"
    markers = (
        "date", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness", "max_concurrency",
        "duration", "completed", "failed", "request_throughput", "output_throughput", "total_token_throughput",
        "mean_ttft_ms", "median_tpot_ms", "p99_itl_ms", "ttfts", "itls", "start_times", "latencies",
        "Successful requests", "Benchmark duration (s)", "Output token throughput (tok/s)",
    )  # fmt: skip

    def sniff(self, head: str) -> bool:
        if looks_like_json(head):
            return bool(_DATE.search(head)) and bool(_VLLM_KEYS.search(head))
        return sv.has_printed_block(head)

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        if looks_like_json(text[:4096]):
            return [sv.json_run(obj, source, line, "vllm") for line, obj in json_documents(text, source)]
        return [sv.printed_run(b, source, "vllm") for b in sv.printed_blocks(text, source)]
