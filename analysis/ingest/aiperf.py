"""NVIDIA AIPerf and genai-perf.

* AIPerf ``profile_export.jsonl``: one record per request, ``metadata.request_start_ns`` / ``request_end_ns`` are
  ``time.time_ns()`` (wall clock, timing ``wall_clock``). Beware the names: AIPerf's ``inter_token_latency`` is the
  per-request TPOT, its ``inter_chunk_latency`` list is our ITL. Warm-up records (``benchmark_phase`` other than
  ``profiling``) are dropped, as AIPerf's own aggregate does. The summary is recomputed from the records
  (duration = first start to last end).
* AIPerf ``profile_export_aiperf.json`` (aggregate): summary only, ``{metric: {unit, avg, p50, p99, ...}}``.
* genai-perf ``profile_export.json``: ``experiments[].requests[]`` with ``timestamp`` and ``response_timestamps``
  (ns); one run per experiment. Epoch-sized timestamps (> 1e17 ns) are taken as wall clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from analysis.ingest._serving import list_column
from analysis.ingest.base import integer, json_documents, looks_like_json, number, register
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun, raw_requests, summary_from_requests

_RECORD = re.compile(r'"(request_start_ns|benchmark_phase|x_request_id)"\s*:')
_AGGREGATE = re.compile(r'"aiperf_version"\s*:')
_GENAI = re.compile(r'"(response_timestamps|service_kind)"\s*:')
_TO_MS = {"ms": 1.0, "ns": 1e-6, "us": 1e-3, "µs": 1e-3, "s": 1000.0, "sec": 1000.0, "seconds": 1000.0}
EPOCH_NS = 1e17
PHASES = {"warmup", "profiling"}

_AGG_METRICS = {
    "time_to_first_token": "ttft",
    "inter_token_latency": "tpot",
    "inter_chunk_latency": "itl",
    "request_latency": "e2e",
    "time_to_second_token": "ttst",
}
_AGG_STATS = {"avg": "mean", "std": "std", "min": "min", "max": "max"}


@register("aiperf")
class AiperfParser:
    name = "aiperf"

    def sniff(self, head: str) -> bool:
        if not looks_like_json(head):
            return False
        return bool(_RECORD.search(head) or _AGGREGATE.search(head) or (_GENAI.search(head) and "experiments" in head))

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        head = text[:65536]
        if _RECORD.search(head):
            return records_runs(text, source)
        docs = list(json_documents(text, source))
        if len(docs) != 1 or not isinstance(docs[0][1], Mapping):
            raise BenchFormatError("expected one JSON object (AIPerf aggregate or genai-perf export)", source, 1)
        line, obj = docs[0]
        if "aiperf_version" in obj or "schema_version" in obj:
            return [aggregate_run(obj, source, line)]
        return genai_perf_runs(obj, source, line)


def _ms(metrics: Mapping[str, Any], name: str, source: str, line: int) -> float | None:
    m = metrics.get(name)
    if m is None:
        return None
    if not isinstance(m, Mapping) or m.get("value") is None:
        raise BenchFormatError(f"metrics.{name}: expected {{'value': ..., 'unit': ...}}", source, line)
    unit = str(m.get("unit", "ms"))
    if unit not in _TO_MS:
        raise BenchFormatError(f"metrics.{name}: expected a time unit (ms, ns, us, s), got {unit!r}", source, line)
    v = number(m["value"], f"metrics.{name}", source, line)
    return None if v is None else v * _TO_MS[unit]


def _count(metrics: Mapping[str, Any], name: str, source: str, line: int) -> int | None:
    m = metrics.get(name)
    if m is None:
        return None
    if not isinstance(m, Mapping) or m.get("value") is None:
        raise BenchFormatError(f"metrics.{name}: expected {{'value': ..., 'unit': ...}}", source, line)
    return integer(m["value"], f"metrics.{name}", source, line)


def records_runs(text: str, source: str) -> list[ParsedRun]:
    cols: dict[str, list[Any]] = {
        k: [] for k in ("line", "start_s", "end_s", "ttft_ms", "e2e_ms", "itl_ms", "itl_scale", "in", "out", "err")
    }
    phases: dict[str, int] = {}
    for line, rec in json_documents(text, source):
        if not isinstance(rec, Mapping) or not isinstance(rec.get("metadata"), Mapping):
            raise BenchFormatError("expected an AIPerf record {'metadata': {...}, 'metrics': {...}}", source, line)
        meta = rec["metadata"]
        phase = meta.get("benchmark_phase")
        if phase not in PHASES:
            raise BenchFormatError(
                f"metadata.benchmark_phase: expected one of {sorted(PHASES)}, got {phase!r}", source, line
            )
        phases[phase] = phases.get(phase, 0) + 1
        if phase != "profiling":
            continue
        metrics = rec.get("metrics") or {}
        if not isinstance(metrics, Mapping):
            raise BenchFormatError("metrics: expected an object", source, line)
        start_ns = integer(meta.get("request_start_ns"), "metadata.request_start_ns", source, line)
        if start_ns is None:
            raise BenchFormatError("metadata.request_start_ns: expected the request's start (ns)", source, line)
        end_ns = integer(meta.get("request_end_ns"), "metadata.request_end_ns", source, line)
        if end_ns is None:
            raise BenchFormatError("metadata.request_end_ns: expected the request's end (ns)", source, line)
        error = rec.get("error")
        err_text = None
        if error:
            err_text = (
                str(error.get("message") or error.get("type") or error) if isinstance(error, Mapping) else str(error)
            )
        if meta.get("was_cancelled") and not err_text:
            err_text = "cancelled"
        icl = metrics.get("inter_chunk_latency")
        itl: list[float] = []
        scale = 1.0
        if icl is not None:
            if not isinstance(icl, Mapping) or not isinstance(icl.get("value"), list):
                raise BenchFormatError("metrics.inter_chunk_latency: expected {'value': [...]}", source, line)
            scale = _TO_MS.get(str(icl.get("unit", "ms")))
            if scale is None:
                raise BenchFormatError("metrics.inter_chunk_latency: expected a time unit", source, line)
            itl = icl["value"]
        out = _count(metrics, "output_sequence_length", source, line)
        if out is None:
            out = _count(metrics, "output_token_count", source, line)
        if not err_text:
            missing = [
                m for m in ("time_to_first_token", "request_latency", "input_sequence_length") if m not in metrics
            ]
            if out is None:
                missing.append("output_sequence_length")
            elif out > 1 and icl is None:
                missing.append("inter_chunk_latency")
            if missing:
                raise BenchFormatError(f"record without an error: expected metrics {missing}", source, line)
        cols["start_s"].append(start_ns / 1e9)
        cols["end_s"].append(None if end_ns is None else end_ns / 1e9)
        cols["ttft_ms"].append(None if err_text else _ms(metrics, "time_to_first_token", source, line))
        cols["e2e_ms"].append(None if err_text else _ms(metrics, "request_latency", source, line))
        cols["itl_ms"].append(itl)
        cols["itl_scale"].append(scale)
        cols["line"].append(line)
        cols["in"].append(_count(metrics, "input_sequence_length", source, line))
        cols["out"].append(out)
        cols["err"].append(err_text)
    if not cols["start_s"]:
        raise BenchFormatError(
            f"no profiling records (phases seen: {phases or 'none'}): expected AIPerf records of the profiling phase",
            source,
        )
    order = np.argsort(np.asarray(cols["start_s"]), kind="stable")
    req = raw_requests(
        {
            "request_index": np.arange(len(order)),
            "start_s": [cols["start_s"][i] for i in order],
            "ttft_ms": [cols["ttft_ms"][i] for i in order],
            "e2e_ms": [cols["e2e_ms"][i] for i in order],
            "itl_ms": _itl_column(cols, order, source),
            "input_tokens": [cols["in"][i] for i in order],
            "output_tokens": [cols["out"][i] for i in order],
            "error": [cols["err"][i] for i in order],
        }
    )
    start = min(cols["start_s"])
    ends = [e for e in cols["end_s"] if e is not None]
    end = max(ends) if ends else None
    summary = summary_from_requests(req, (end - start) if end is not None else None)
    extra = {"format": "profile_export.jsonl", "records_by_phase": phases}
    return [
        ParsedRun(
            tool="aiperf",
            source=source,
            summary=summary,
            meta={"extra": extra},
            requests=req,
            clock="epoch",
            start_epoch_s=start,
            end_epoch_s=end,
        )
    ]


def _itl_column(cols: dict[str, list[Any]], order: np.ndarray, source: str) -> pl.Series:
    lists = [cols["itl_ms"][i] for i in order]
    scales = [cols["itl_scale"][i] for i in order]
    try:
        col = list_column(lists, "metrics.inter_chunk_latency", source, 0)
    except BenchFormatError as exc:  # name the record's line
        m = re.search(r"\[(\d+)\]", str(exc))
        line = cols["line"][order[int(m.group(1))]] if m else 0
        raise BenchFormatError(str(exc).split(": ", 1)[1], source, line) from None
    if len(set(scales)) <= 1:
        return col * (scales[0] if scales else 1.0)
    return pl.DataFrame({"v": col, "s": scales}).select(pl.col("v") * pl.col("s"))["v"]


def aggregate_run(obj: Mapping[str, Any], source: str, line: int) -> ParsedRun:
    summary: dict[str, float] = {}
    for name, stats in obj.items():
        if not isinstance(stats, Mapping) or "unit" not in stats:
            continue
        unit = str(stats["unit"])
        canon = _AGG_METRICS.get(name)
        for stat, value in stats.items():
            if stat == "unit" or value is None:
                continue
            v = number(value, f"{name}.{stat}", source, line)
            if v is None:
                continue
            if canon and unit in _TO_MS:
                s = _AGG_STATS.get(stat, stat)
                if not (s in ("mean", "std", "min", "max") or re.fullmatch(r"p\d+", s)):
                    continue
                summary[f"{canon}_ms_{s}"] = v * _TO_MS[unit]
            elif stat == "avg":
                if name == "output_token_throughput":
                    summary["output_tok_s"] = v
                elif name == "request_throughput":
                    summary["requests_per_s"] = v
                elif name == "request_count":
                    summary["completed"] = v
                elif name == "benchmark_duration":
                    summary["duration_s"] = v * _TO_MS.get(unit, 1000.0) / 1000.0
                elif name in ("total_output_tokens", "output_sequence_length"):
                    summary[f"{name}_mean"] = v
    end_local = None
    if isinstance(obj.get("end_time"), str):
        try:
            end_local = datetime.fromisoformat(obj["end_time"])
        except ValueError:
            raise BenchFormatError(f"end_time: expected an ISO time, got {obj['end_time']!r}", source, line) from None
    if end_local is not None and end_local.tzinfo is not None:
        end_utc, end_local = end_local, None
    else:
        end_utc = None
    return ParsedRun(
        tool="aiperf",
        source=source,
        summary=summary,
        meta={"extra": {"format": "profile_export_aiperf.json"}},
        tool_version=obj.get("aiperf_version"),
        end_local=end_local,
        end_utc=end_utc,
    )


def genai_perf_runs(obj: Mapping[str, Any], source: str, line: int) -> list[ParsedRun]:
    exps = obj.get("experiments")
    if not isinstance(exps, list):
        raise BenchFormatError("expected genai-perf 'experiments': [...]", source, line)
    runs = []
    for k, exp in enumerate(exps):
        if not isinstance(exp, Mapping) or not isinstance(exp.get("requests"), list):
            raise BenchFormatError(f"experiments[{k}]: expected {{'experiment': ..., 'requests': [...]}}", source, line)
        starts, ttft, e2e, itls, outs = [], [], [], [], []
        for j, r in enumerate(exp["requests"]):
            where = f"experiments[{k}].requests[{j}]"
            if not isinstance(r, Mapping):
                raise BenchFormatError(f"{where}: expected an object", source, line)
            t0 = integer(r.get("timestamp"), f"{where}.timestamp", source, line)
            resp = r.get("response_timestamps")
            if t0 is None or not isinstance(resp, list):
                raise BenchFormatError(f"{where}: expected 'timestamp' and 'response_timestamps' (ns)", source, line)
            ts = np.asarray([integer(x, f"{where}.response_timestamps", source, line) for x in resp], dtype=np.int64)
            starts.append(t0)
            ttft.append((ts[0] - t0) / 1e6 if ts.size else None)
            e2e.append((ts[-1] - t0) / 1e6 if ts.size else None)
            itls.append((np.diff(ts) / 1e6).tolist())
            outs.append(len(r.get("response_outputs") or resp) or None)
        n = len(starts)
        epoch = bool(starts) and min(starts) > EPOCH_NS
        req = raw_requests(
            {
                "request_index": np.arange(n),
                "start_s": [s / 1e9 for s in starts],
                "ttft_ms": ttft,
                "e2e_ms": e2e,
                "itl_ms": itls,
                "output_tokens": outs,
                "error": [None if t is not None else "no response" for t in ttft],
            }
        )
        ends = [s / 1e9 + (e or 0) / 1000 for s, e in zip(starts, e2e, strict=True)]
        duration = (max(ends) - min(starts) / 1e9) if n else None
        info = exp.get("experiment") if isinstance(exp.get("experiment"), Mapping) else {}
        meta: dict[str, Any] = {"extra": {"format": "genai-perf profile_export.json", **dict(info)}}
        if info.get("mode") == "concurrency":
            meta["concurrency"] = info.get("value")
        elif info.get("mode") == "request_rate":
            meta["request_rate"] = info.get("value")
        runs.append(
            ParsedRun(
                tool="genai-perf",
                source=f"{source}:experiments[{k}]",
                summary=summary_from_requests(req, duration),
                meta=meta,
                requests=req.with_columns(pl.col("output_tokens")),
                clock="epoch" if epoch else "monotonic",
            )
        )
    return runs
