"""What SGLang ``bench_serving`` and vLLM ``benchmark_serving`` / ``bench serve`` share (one reader, not copies):
the printed "Serving Benchmark Result" block, the JSON summary keys and the per-request detail arrays, and the runs
made of them (`printed_run`, and `json_run` for vLLM-style result objects, which InferenceX's client writes too):
parsers share this module, never each other.

Labels and keys are matched case-insensitively; unknown lines / keys are kept in ``meta['extra']`` (version drift),
but a known label whose value is not a number is an error naming the line.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from analysis.ingest.base import integer, number
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun, raw_requests

# ---------------------------------------------------------------------------------------------------------------
# Printed block

BLOCK_START = re.compile(r"^\s*=+\s*Serving Benchmark Result\s*(?:\((?P<title>[^)]*)\))?\s*=+\s*$", re.IGNORECASE)
BLOCK_END = re.compile(r"^\s*=+\s*$")
SECTION = re.compile(r"^\s*-{3,}.*-{3,}\s*$")
LABEL_LINE = re.compile(r"^\s*(?P<label>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")
STAT_LABEL = re.compile(
    r"^(?P<stat>mean|median|std|min|max|p(?P<p>\d+(?:\.\d+)?))\s+(?P<metric>.+?)\s*\(ms\)$", re.IGNORECASE
)

SCALAR_LABELS: dict[str, str] = {
    "successful requests": "completed",
    "failed requests": "failed",
    "benchmark duration (s)": "duration_s",
    "total input tokens": "total_input_tokens",
    "total input text tokens": "total_input_text_tokens",
    "total input vision tokens": "total_input_vision_tokens",
    "total generated tokens": "total_output_tokens",
    "total generated tokens (retokenized)": "total_output_tokens_retokenized",
    "request throughput (req/s)": "requests_per_s",
    "request goodput (req/s)": "goodput_requests_per_s",
    "input token throughput (tok/s)": "input_tok_s",
    "output token throughput (tok/s)": "output_tok_s",
    "peak output token throughput (tok/s)": "peak_output_tok_s",
    "peak concurrent requests": "peak_concurrent_requests",
    "total token throughput (tok/s)": "total_tok_s",
    "total throughput (tok/s)": "total_tok_s",
    "concurrency": "concurrency_mean",
    "accept length": "accept_length",
    "acceptance rate (%)": "spec_acceptance_pct",
    "acceptance length": "spec_acceptance_length",
}
META_LABELS = {
    "backend": "backend",
    "traffic request rate": "request_rate",
    "max request concurrency": "concurrency",
    "maximum request concurrency": "concurrency",
    "request rate configured (rps)": "request_rate",
}
METRIC_NAMES = {
    "ttft": "ttft",
    "tpot": "tpot",
    "itl": "itl",
    "e2el": "e2e",
    "e2e latency": "e2e",
    "client queue time": "client_queue",
    "e2el incl. client queue": "e2e_incl_queue",
}


def stat_key(metric: str, stat: str) -> str:
    stat = stat.lower()
    if stat == "median":
        stat = "p50"
    elif stat.startswith("p"):
        stat = "p" + f"{float(stat[1:]):g}".replace(".", "_")
    return f"{metric}_ms_{stat}"


@dataclass
class PrintedBlock:
    line: int
    title: str | None
    summary: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


def has_printed_block(head: str) -> bool:
    return any(BLOCK_START.match(line) for line in head.splitlines())


def printed_blocks(text: str, source: str) -> list[PrintedBlock]:
    """Every "Serving Benchmark Result" block in ``text`` (other text around them is ignored)."""
    blocks: list[PrintedBlock] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = BLOCK_START.match(lines[i])
        if not m:
            i += 1
            continue
        block = PrintedBlock(line=i + 1, title=(m.group("title") or "").strip() or None)
        i += 1
        closed = False
        while i < len(lines):
            line = lines[i]
            if BLOCK_END.match(line):
                closed = True
                break
            if BLOCK_START.match(line):
                break
            if not line.strip() or SECTION.match(line):
                i += 1
                continue
            lm = LABEL_LINE.match(line)
            if not lm:
                raise BenchFormatError(
                    f"expected 'Label: value' or the closing '=====' line of the block opened at line {block.line}, "
                    f"got {line.strip()[:80]!r}",
                    source,
                    i + 1,
                )
            _read_label(block, lm.group("label"), lm.group("value"), source, i + 1)
            i += 1
        if not closed:
            raise BenchFormatError(
                f"truncated 'Serving Benchmark Result' block (opened at line {block.line}): expected its closing "
                "'=====' line",
                source,
                i + 1 if i < len(lines) else len(lines),
            )
        if "completed" not in block.summary:
            raise BenchFormatError(
                "block has no 'Successful requests:' line: expected a Serving Benchmark Result", source, block.line
            )
        blocks.append(block)
        i += 1
    return blocks


def _read_label(block: PrintedBlock, raw_label: str, value: str, source: str, line: int) -> None:
    label = " ".join(raw_label.lower().split())
    if label in SCALAR_LABELS:
        block.summary[SCALAR_LABELS[label]] = _printed_number(value, raw_label, source, line)
        return
    if label in META_LABELS:
        key = META_LABELS[label]
        if key == "backend":
            block.meta["backend"] = value
        elif value.lower() in ("not set", "none", "trace", ""):
            block.meta[key] = None if value.lower() != "trace" else "trace"
        else:
            v = _printed_number(value, raw_label, source, line)
            block.meta[key] = int(v) if key == "concurrency" and v.is_integer() else v
        return
    sm = STAT_LABEL.match(label)
    if sm:
        metric = METRIC_NAMES.get(sm.group("metric").strip())
        if metric:
            block.summary[stat_key(metric, sm.group("stat"))] = _printed_number(value, raw_label, source, line)
            return
    block.extra[raw_label.strip()] = value


def _printed_number(value: str, label: str, source: str, line: int) -> float:
    text = value.strip()
    try:
        v = float(text)
    except ValueError:
        raise BenchFormatError(f"{label.strip()}: expected a number, got {text!r}", source, line) from None
    if math.isnan(v):
        raise BenchFormatError(f"{label.strip()}: expected a number, got {text!r}", source, line)
    return v


# ---------------------------------------------------------------------------------------------------------------
# JSON summaries (vLLM, SGLang, InferenceX raw results)

JSON_SCALARS: dict[str, str] = {
    "completed": "completed",
    "failed": "failed",
    "duration": "duration_s",
    "total_input_tokens": "total_input_tokens",
    "total_input": "total_input_tokens",
    "total_input_text_tokens": "total_input_text_tokens",
    "total_input_vision_tokens": "total_input_vision_tokens",
    "total_output_tokens": "total_output_tokens",
    "total_output": "total_output_tokens",
    "total_output_tokens_retokenized": "total_output_tokens_retokenized",
    "total_output_retokenized": "total_output_tokens_retokenized",
    "request_throughput": "requests_per_s",
    "request_goodput": "goodput_requests_per_s",
    "request_goodput:": "goodput_requests_per_s",
    "input_throughput": "input_tok_s",
    "output_throughput": "output_tok_s",
    "output_throughput_retokenized": "output_tok_s_retokenized",
    "total_token_throughput": "total_tok_s",
    "total_throughput": "total_tok_s",
    "total_throughput_retokenized": "total_tok_s_retokenized",
    "max_output_tokens_per_s": "peak_output_tok_s",
    "max_concurrent_requests": "peak_concurrent_requests",
    "concurrency": "concurrency_mean",
    "accept_length": "accept_length",
    "rtfx": "rtfx",
}
JSON_STAT = re.compile(
    r"^(?P<stat>mean|median|std|min|max|p(?P<p>\d+(?:\.\d+)?))_(?P<metric>ttft|tpot|itl|e2el|e2e_latency|"
    r"client_queue_time|e2el_including_client_queue)_ms$"
)
JSON_METRICS = {
    "ttft": "ttft",
    "tpot": "tpot",
    "itl": "itl",
    "e2el": "e2e",
    "e2e_latency": "e2e",
    "client_queue_time": "client_queue",
    "e2el_including_client_queue": "e2e_incl_queue",
}
DETAIL_KEYS = (
    "input_lens",
    "output_lens",
    "ttfts",
    "itls",
    "generated_texts",
    "errors",
    "start_times",
    "latencies",
    "queue_times",
)


def json_summary(obj: Mapping[str, Any], source: str, line: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in obj.items():
        if key in JSON_SCALARS:
            v = number(value, key, source, line)
            if v is not None:
                out[JSON_SCALARS[key]] = v
            continue
        m = JSON_STAT.match(key)
        if m:
            v = number(value, key, source, line)
            # p{N}_*_ms keys use the "p99" / "p99.9" spelling of the tool
            if v is not None:
                out[stat_key(JSON_METRICS[m.group("metric")], m.group("stat"))] = v
    return out


def request_rate(value: Any, source: str, line: int) -> float | str | None:
    if isinstance(value, str) and value.strip().lower() in ("trace",):
        return "trace"
    return number(value, "request_rate", source, line)


def detail_arrays(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The per-request arrays, flat (vLLM, SGLang monolithic / 1291c7fc) or nested under ``details`` (6e48df33)."""
    nested = obj.get("details")
    found = {k: obj[k] for k in DETAIL_KEYS if k in obj}
    if isinstance(nested, Mapping):
        found.update({k: nested[k] for k in DETAIL_KEYS if k in nested})
    return found


def requests_from_arrays(arrays: Mapping[str, Any], source: str, line: int) -> pl.DataFrame | None:
    """Raw requests from the detail arrays (seconds -> ms), or None when the file holds no per-request data.

    ``latencies`` / ``queue_times`` alone (kept by newer vLLM without ``--save-detailed``) give no per-request TTFT,
    so they do not count as per-request data.
    """
    if "ttfts" not in arrays:
        return None
    lengths = {k: len(v) for k, v in arrays.items() if isinstance(v, list)}
    not_lists = [k for k, v in arrays.items() if not isinstance(v, list)]
    if not_lists:
        raise BenchFormatError(f"per-request {not_lists[0]!r}: expected a list", source, line)
    n = lengths["ttfts"]
    optional = ("latencies", "queue_times", "generated_texts", "start_times")
    wrong = {k: v for k, v in lengths.items() if v != n and not (k in optional and v == 0)}
    if wrong:
        raise BenchFormatError(
            f"per-request arrays of different lengths (ttfts has {n}, {wrong}): expected one entry per request",
            source,
            line,
        )
    ttft = _float_array(arrays["ttfts"], "ttfts", source, line)
    input_tokens = _int_list(arrays.get("input_lens"), n, "input_lens", source, line)
    output_tokens = _int_list(arrays.get("output_lens"), n, "output_lens", source, line)
    if "errors" in arrays:
        errors = [None if not e else str(e) for e in arrays["errors"]]
    else:  # no error strings: a failed request is the one that produced nothing
        errors = ["failed (output_len 0)" if o == 0 else None for o in output_tokens]
    for i, (e, o) in enumerate(zip(errors, output_tokens, strict=True)):
        if e is not None and o:
            raise BenchFormatError(
                f"request {i} has an error but output_lens[{i}] = {o}: expected 0 for a failed request", source, line
            )
    failed = np.array([e is not None for e in errors], dtype=bool)
    ttft_ms = np.where(failed, np.nan, ttft * 1000.0)
    if "itls" in arrays:
        itl_ms = list_column(arrays["itls"], "itls", source, line) * 1000.0
    else:
        itl_ms = pl.Series("itl_ms", [None] * n, dtype=pl.List(pl.Float64))
    if len(arrays.get("latencies") or []) == n:
        e2e_ms = _float_array(arrays["latencies"], "latencies", source, line) * 1000.0
        e2e_ms = np.where(failed, np.nan, e2e_ms)
    elif "itls" in arrays:
        e2e_ms = np.where(failed, np.nan, ttft_ms + itl_ms.list.sum().fill_null(0.0).to_numpy())
    else:
        e2e_ms = np.full(n, np.nan)
    start = _float_array(arrays["start_times"], "start_times", source, line) if arrays.get("start_times") else None
    return raw_requests(
        {
            "request_index": np.arange(n, dtype=np.int64),
            "start_s": start,
            "ttft_ms": ttft_ms,
            "e2e_ms": e2e_ms,
            "itl_ms": itl_ms,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "error": errors,
        }
    ).with_columns(pl.col("ttft_ms").fill_nan(None), pl.col("e2e_ms").fill_nan(None))


def list_column(values: list[Any], what: str, source: str, line: int) -> pl.Series:
    """A list of lists of numbers as a List(Float64) Series, built through one flat array (fast for 1e6 values)."""
    n = len(values)
    lens = np.fromiter((len(v) if isinstance(v, list) else -1 for v in values), dtype=np.int64, count=n)
    if (lens < 0).any():
        bad = int(np.argmax(lens < 0))
        raise BenchFormatError(f"{what}[{bad}]: expected a list of numbers", source, line)
    try:
        flat = np.fromiter(itertools.chain.from_iterable(values), dtype=np.float64, count=int(lens.sum()))
    except (TypeError, ValueError):
        i, bad = _first_non_number(values)
        raise BenchFormatError(f"{what}[{i}]: expected numbers, found {bad!r}", source, line) from None
    if np.isnan(flat).any():
        raise BenchFormatError(f"{what}: expected numbers, found NaN", source, line)
    return list_from_flat(flat, lens, what)


def list_from_flat(flat: np.ndarray, lens: np.ndarray, name: str) -> pl.Series:
    """A List(Float64) Series from all values in one flat array and each row's length (rows in order)."""
    n = lens.size
    idx = np.repeat(np.arange(n, dtype=np.int64), lens)
    grouped = pl.DataFrame({"i": idx, "v": flat}).group_by("i", maintain_order=True).agg(pl.col("v"))
    full = pl.DataFrame({"i": np.arange(n, dtype=np.int64)}).join(grouped, on="i", how="left", maintain_order="left")
    return full["v"].fill_null(pl.lit([], dtype=pl.List(pl.Float64))).alias(name)


def _first_non_number(values: list[Any]) -> tuple[int, Any]:
    for i, v in enumerate(values):
        for x in v:
            if not isinstance(x, int | float) or isinstance(x, bool):
                return i, x
    return 0, None


def _float_array(values: Any, what: str, source: str, line: int) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in values if not isinstance(v, int | float) or isinstance(v, bool)), None)
        raise BenchFormatError(f"{what}: expected numbers (seconds), got {bad!r}", source, line) from None
    if arr.ndim != 1:
        raise BenchFormatError(f"{what}: expected a flat list of numbers", source, line)
    return arr


def _int_list(values: Any, n: int, what: str, source: str, line: int) -> list[int | None]:
    if values is None:
        return [None] * n
    return [integer(v, f"{what}[{i}]", source, line) for i, v in enumerate(values)]


# ---------------------------------------------------------------------------------------------------------------
# Runs: a printed block (SGLang, vLLM) and a vLLM-style result object (vLLM, InferenceX's vendored client)


def printed_run(block: PrintedBlock, source: str, tool: str) -> ParsedRun:
    extra: dict[str, Any] = {"format": "printed", **block.extra}
    if block.title:
        extra["title"] = block.title
    meta = {**block.meta, "extra": extra}
    return ParsedRun(tool=tool, source=f"{source}:{block.line}", summary=block.summary, meta=meta)


VLLM_KNOWN_KEYS = {
    "date", "backend", "endpoint_type", "label", "model_id", "tokenizer_id", "num_prompts", "request_rate",
    "burstiness", "max_concurrency", "best_of", "generated_texts", "benchmark_start_time_unix",
    "benchmark_end_time_unix", "rps_change_events",
}  # fmt: skip


def json_run(obj: Any, source: str, line: int, tool: str) -> ParsedRun:
    """A vLLM-style result object (also InferenceX's vendored client) as a `ParsedRun`."""
    if not isinstance(obj, Mapping):
        raise BenchFormatError("expected a JSON object (a vLLM benchmark result)", source, line)
    if "completed" not in obj and "duration" not in obj:
        raise BenchFormatError("expected vLLM result keys ('completed', 'duration')", source, line)
    summary = json_summary(obj, source, line)
    extra: dict[str, Any] = {}
    for key, value in obj.items():
        if key in VLLM_KNOWN_KEYS or key in DETAIL_KEYS or key in JSON_SCALARS or JSON_STAT.match(key):
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            extra[key] = value  # --metadata k=v keys and newer scalars
    for key in ("label", "endpoint_type", "burstiness", "tokenizer_id"):
        if obj.get(key) is not None:
            extra[key] = obj[key]
    meta: dict[str, Any] = {
        "model": obj.get("model_id"),
        "backend": obj.get("backend"),
        "request_rate": request_rate(obj.get("request_rate"), source, line),
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
    requests = requests_from_arrays(detail_arrays(obj), source, line)
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
