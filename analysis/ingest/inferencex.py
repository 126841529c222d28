"""SemiAnalysis InferenceX (InferenceMAX): the raw ``<RESULT_FILENAME>.json`` written by its vendored vLLM client
(vLLM legacy keys plus ``benchmark_start_time_unix`` / ``benchmark_end_time_unix``, exact run-level wall clock)
and the aggregate ``agg_<RESULT_FILENAME>.json`` / ``agg_bmk.json`` (hw, conc, isl, osl, tp, ep, ...; every
``*_ms`` key converted to seconds without the suffix, ``*_tpot*`` also as ``*_intvty*`` = 1000 / ms).

Aggregate names: latencies back in ms (``ttft_ms_p99``, ...), ``total_tok_s_per_gpu`` (tput_per_gpu),
``output_tok_s_per_gpu``, ``input_tok_s_per_gpu``, and ``output_tok_s`` / ``total_tok_s`` = per GPU x the GPU
count where the count is known (``num_gpus`` or tp x dp... : here ``tp`` for single-node results).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from analysis.ingest import _serving as sv
from analysis.ingest.base import integer, json_documents, looks_like_json, number, register
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun

_MARK = re.compile(r'"(benchmark_start_time_unix|tput_per_gpu|output_tput_per_gpu|infmax_model_prefix)"\s*:')
_AGG_LAT = re.compile(r"^(?P<stat>mean|median|std|min|max|p\d+(?:\.\d+)?)_(?P<metric>ttft|tpot|itl|e2el)$")
_AGG_META = {"conc": "concurrency", "isl": "isl", "osl": "osl", "tp": "tp", "ep": "ep", "pp": "pp", "model": "model"}


@register("inferencex")
class InferencexParser:
    name = "inferencex"
    markers = (
        "benchmark_start_time_unix", "benchmark_end_time_unix", "tput_per_gpu", "output_tput_per_gpu",
        "infmax_model_prefix", "conc", "isl", "osl", "tp", "ep", "model_id", "median_ttft", "p99_itl",
    )  # fmt: skip

    def sniff(self, head: str) -> bool:
        return looks_like_json(head) and bool(_MARK.search(head))

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        runs: list[ParsedRun] = []
        for line, doc in json_documents(text, source):
            items = doc if isinstance(doc, list) else [doc]
            for k, obj in enumerate(items):
                src = source if len(items) == 1 else f"{source}[{k}]"
                if not isinstance(obj, Mapping):
                    raise BenchFormatError("expected an InferenceX result object", src, line)
                if "tput_per_gpu" in obj or "output_tput_per_gpu" in obj:
                    runs.append(aggregate_run(obj, src, line))
                else:
                    runs.append(sv.json_run(obj, src, line, "inferencex"))
        return runs


def aggregate_run(obj: Mapping[str, Any], source: str, line: int) -> ParsedRun:
    summary: dict[str, float] = {}
    for key, value in obj.items():
        m = _AGG_LAT.match(key)
        if m:
            v = number(value, key, source, line)
            if v is not None:
                summary[sv.stat_key(sv.JSON_METRICS[m.group("metric")], m.group("stat"))] = v * 1000.0
    for key, name in (
        ("tput_per_gpu", "total_tok_s_per_gpu"),
        ("output_tput_per_gpu", "output_tok_s_per_gpu"),
        ("input_tput_per_gpu", "input_tok_s_per_gpu"),
    ):
        v = number(obj.get(key), key, source, line)
        if v is not None:
            summary[name] = v
    meta: dict[str, Any] = {}
    for key, name in _AGG_META.items():
        if obj.get(key) is not None:
            meta[name] = obj[key] if name == "model" else integer(obj[key], key, source, line)
    gpus = integer(obj.get("num_gpus"), "num_gpus", source, line) or (
        None if obj.get("is_multinode") else meta.get("tp")
    )
    if gpus:
        for per_gpu, total in (("total_tok_s_per_gpu", "total_tok_s"), ("output_tok_s_per_gpu", "output_tok_s")):
            if per_gpu in summary:
                summary[total] = summary[per_gpu] * gpus
    keep = ("hw", "framework", "precision", "image", "spec_decoding", "disagg", "dp_attention", "recipe_fingerprint")
    meta["extra"] = {"format": "agg", **{k: obj[k] for k in keep if k in obj}}
    meta["backend"] = obj.get("framework")
    return ParsedRun(tool="inferencex", source=f"{source}:{line}", summary=summary, meta=meta)
