"""SGLang ``python -m sglang.bench_serving``: the printed "Serving Benchmark Result" block and the
``--output-file`` JSONL (one object appended per run; ``--output-details`` arrays flat or nested under
``details``; ``"request_rate": Infinity``).

SGLang writes no start times and no date: per-request timing is reconstructed by replaying a fixed-concurrency
dispatch (``analysis.ingest.timing``). Canonical names: see `analysis.ingest.model`; SGLang extras:
``total_output_tokens_retokenized``, ``accept_length``, ``itl_ms_p95`` / ``itl_ms_max`` (printed only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from analysis.ingest import _serving as sv
from analysis.ingest.base import integer, json_documents, looks_like_json, register
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun

_JSON_MARK = re.compile(
    r'"(random_input_len|sharegpt_output_len|total_output_tokens_retokenized|total_output_retokenized|'
    r"median_e2e_latency_ms|mean_e2e_latency_ms)\"\s*:"
)
_DATE = re.compile(r'"date"\s*:')
_SGLANG_PRINTED = re.compile(
    r"^\s*(Backend|Concurrency|Total generated tokens \(retokenized\)|Mean E2E Latency \(ms\)|Accept length)\s*:",
    re.IGNORECASE | re.MULTILINE,
)


@register("sglang")
class SglangParser:
    name = "sglang"
    markers = (
        "backend", "dataset_name", "request_rate", "max_concurrency", "random_input_len", "random_output_len",
        "sharegpt_output_len", "duration", "completed", "total_output_tokens_retokenized", "request_throughput",
        "output_throughput", "median_e2e_latency_ms", "mean_ttft_ms", "concurrency", "accept_length",
        "Successful requests", "Concurrency", "Mean E2E Latency (ms)",
    )  # fmt: skip

    def sniff(self, head: str) -> bool:
        if looks_like_json(head):
            return bool(_JSON_MARK.search(head)) and not _DATE.search(head)
        return sv.has_printed_block(head) and bool(_SGLANG_PRINTED.search(head))

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        if looks_like_json(text[:4096]):
            return [self._json_run(obj, source, line) for line, obj in json_documents(text, source)]
        return [sv.printed_run(b, source, "sglang") for b in sv.printed_blocks(text, source)]

    def _json_run(self, obj: Any, source: str, line: int) -> ParsedRun:
        if not isinstance(obj, Mapping):
            raise BenchFormatError("expected one JSON object per line (a bench_serving result)", source, line)
        if "completed" not in obj and "duration" not in obj:
            raise BenchFormatError("expected bench_serving result keys ('completed', 'duration')", source, line)
        summary = sv.json_summary(obj, source, line)
        meta: dict[str, Any] = {
            "backend": obj.get("backend"),
            "request_rate": sv.request_rate(obj.get("request_rate"), source, line),
            "concurrency": integer(obj.get("max_concurrency"), "max_concurrency", source, line),
            "extra": {k: obj[k] for k in ("dataset_name", "tag", "random_range_ratio") if obj.get(k) is not None},
        }
        if obj.get("dataset_name") in ("random", "random-ids", "generated-shared-prefix", None):
            meta["isl"] = integer(obj.get("random_input_len"), "random_input_len", source, line)
            meta["osl"] = integer(obj.get("random_output_len"), "random_output_len", source, line)
        info = obj.get("server_info")
        version = None
        if isinstance(info, Mapping):
            version = info.get("version")
            meta["model"] = info.get("model_path") or info.get("served_model_name")
            meta["tp"] = info.get("tp_size")
        requests = sv.requests_from_arrays(sv.detail_arrays(obj), source, line)
        return ParsedRun(
            tool="sglang",
            source=f"{source}:{line}",
            summary=summary,
            meta=meta,
            tool_version=version,
            requests=requests,
            clock="none",
        )
