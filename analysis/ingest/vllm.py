"""vLLM: legacy ``benchmarks/benchmark_serving.py`` JSON (``"request_goodput:"`` key), ``vllm bench serve`` JSON
(summary, ``--save-detailed`` arrays incl. ``start_times``, ``--append-result`` concatenated objects), and the
printed "Serving Benchmark Result" block (old ``Total Token throughput`` and new ``Failed requests`` / ``Peak``
variants, titled blocks such as InferenceX's).

``start_times`` are ``time.perf_counter()`` (monotonic) seconds: mapped to the wall clock through the wrapper's
wall/monotonic pair (``analysis.ingest.timing``). ``date`` is local time taken after the run (1 s resolution).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from analysis.ingest import _serving as sv
from analysis.ingest.base import integer, json_documents, looks_like_json, number, register
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun
from analysis.ingest.sglang import printed_run

_DATE = re.compile(r'"date"\s*:')
_VLLM_KEYS = re.compile(r'"(request_throughput|num_prompts|completed|total_token_throughput|model_id)"\s*:')
_KNOWN = {
    "date", "backend", "endpoint_type", "label", "model_id", "tokenizer_id", "num_prompts", "request_rate",
    "burstiness", "max_concurrency", "best_of", "generated_texts", "benchmark_start_time_unix",
    "benchmark_end_time_unix", "rps_change_events",
}  # fmt: skip


@register("vllm")
class VllmParser:
    name = "vllm"

    def sniff(self, head: str) -> bool:
        if looks_like_json(head):
            return bool(_DATE.search(head)) and bool(_VLLM_KEYS.search(head))
        return sv.has_printed_block(head)

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        if looks_like_json(text[:4096]):
            return [json_run(obj, source, line, "vllm") for line, obj in json_documents(text, source)]
        return [printed_run(b, source, "vllm") for b in sv.printed_blocks(text, source)]


def json_run(obj: Any, source: str, line: int, tool: str) -> ParsedRun:
    """A vLLM-style result object (also InferenceX's vendored client) as a `ParsedRun`."""
    if not isinstance(obj, Mapping):
        raise BenchFormatError("expected a JSON object (a vLLM benchmark result)", source, line)
    if "completed" not in obj and "duration" not in obj:
        raise BenchFormatError("expected vLLM result keys ('completed', 'duration')", source, line)
    summary = sv.json_summary(obj, source, line)
    extra: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _KNOWN or key in sv.DETAIL_KEYS or key in sv.JSON_SCALARS or sv.JSON_STAT.match(key):
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            extra[key] = value  # --metadata k=v keys and newer scalars
    for key in ("label", "endpoint_type", "burstiness", "tokenizer_id"):
        if obj.get(key) is not None:
            extra[key] = obj[key]
    meta: dict[str, Any] = {
        "model": obj.get("model_id"),
        "backend": obj.get("backend"),
        "request_rate": sv.request_rate(obj.get("request_rate"), source, line),
        "concurrency": integer(obj.get("max_concurrency"), "max_concurrency", source, line),
        "num_prompts": integer(obj.get("num_prompts"), "num_prompts", source, line),
        "extra": extra,
    }
    for key, names in (
        ("isl", ("random_input_len", "input_len", "isl")),
        ("osl", ("random_output_len", "output_len", "osl")),
    ):
        for name in names:
            value = obj.get(name)
            if value not in (None, ""):
                try:
                    meta[key] = int(float(value))
                except (TypeError, ValueError):
                    continue
                break
    end_local = None
    if isinstance(obj.get("date"), str):
        try:
            end_local = datetime.strptime(obj["date"], "%Y%m%d-%H%M%S")
        except ValueError:
            raise BenchFormatError(f"date: expected YYYYmmdd-HHMMSS, got {obj['date']!r}", source, line) from None
    requests = sv.requests_from_arrays(sv.detail_arrays(obj), source, line)
    start = number(obj.get("benchmark_start_time_unix"), "benchmark_start_time_unix", source, line)
    end = number(obj.get("benchmark_end_time_unix"), "benchmark_end_time_unix", source, line)
    clock = "none"
    if requests is not None and requests["start_s"].null_count() < requests.height:
        clock = "monotonic"
    return ParsedRun(
        tool=tool,
        source=f"{source}:{line}",
        summary=summary,
        meta=meta,
        requests=requests,
        clock=clock,
        start_epoch_s=start,
        end_epoch_s=end,
        end_local=end_local,
    )
