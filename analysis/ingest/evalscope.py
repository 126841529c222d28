"""EvalScope perf (modelscope/evalscope ``evalscope perf``, tested with 1.14.1): the files of one load level,
``<outputs>/<time>/<model>/parallel_<P>_number_<N>/`` (one folder per ``--parallel`` / ``--rate`` value).

* ``benchmark_data.db`` (SQLite, table ``result``): one row per request, ``start_time`` / ``completed_time`` are
  ``time.perf_counter()`` seconds (monotonic: timing ``reconstructed``; exact with the ``neighborscope run``
  wall/monotonic pair, else anchored at the file's modification time, written at the run's end), ``latency`` and
  ``first_chunk_latency`` (s), ``inter_token_latencies`` (JSON list of the gaps between streamed chunks, s),
  ``prompt_tokens``, ``completion_tokens``, ``success``. The load level (``parallel``, ``rate``), model and
  ``number`` come from ``benchmark_args.json`` beside it.
* ``benchmark_summary.json`` (averages) and ``benchmark_percentile.json`` (percentiles): summary only; read through
  the file, the percentiles beside a summary are merged into its run.
* ``performance_summary.txt`` (every level, printed tables) and ``benchmark_args.json`` (arguments only): an error
  names the result files instead.

Names (EvalScope -> ours): ``TTFT`` / ``first_chunk_latency`` -> ``ttft``; ``TPOT`` = (latency - TTFT) / (output
tokens - 1) -> ``tpot``; ``ITL`` (each gap between chunks, pooled) -> ``itl``; ``Latency`` -> ``e2e``; ms.
Statistics as EvalScope computes them: averages over successful requests (TTFT and TPOT over streamed ones, TPOT
only where output tokens > 1, ITL over all gaps), nearest-rank percentiles (``min``, 1 ... 99 %, ``max``),
throughput over ``duration_s`` = last completion - first start (its ``Test Duration``). EvalScope rounds what it
saves (4 digits, TTFT / TPOT / ITL averages 2): we keep full precision. Its ``Input Throughput (tok/s)`` is 0.0 for
LLM endpoints (not computed); our ``input_tok_s`` is prompt tokens / duration, its workload throughput's "Total
Prompt tok/s".
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.ingest.base import json_documents, looks_like_json, number, read_head, read_text, register
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun, raw_requests, summary_from_requests

SQLITE_MAGIC = b"SQLite format 3\x00"
_SUMMARY = re.compile(r'"(Test Duration \(s\)|Time taken for tests \(s\)|Req Throughput \(req/s\))"\s*:')
_PERCENTILE = re.compile(r'"Percentiles"\s*:')
_PRINTED = "Performance Test Summary Report"
_ARGS = re.compile(r'"(sla_auto_tune|outputs_dir|queue_size_multiplier)"\s*:')
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
COLUMNS = ("start_time", "completed_time", "latency", "first_chunk_latency", "prompt_tokens", "completion_tokens",
           "time_per_output_token", "inter_token_latencies", "success")  # fmt: skip
_SELECT = (
    "SELECT start_time, completed_time, latency, first_chunk_latency, prompt_tokens, completion_tokens, "
    "time_per_output_token, inter_token_latencies, success"
)
_QUERY = _SELECT + " FROM result ORDER BY rowid"
_QUERY_STREAM = _SELECT + ", is_stream FROM result ORDER BY rowid"
# benchmark_summary.json -> ours (factor)
SUMMARY_KEYS = {
    "Test Duration (s)": ("duration_s", 1.0),
    "Time taken for tests (s)": ("duration_s", 1.0),
    "Success Requests": ("completed", 1.0),
    "Succeed requests": ("completed", 1.0),
    "Failed Requests": ("failed", 1.0),
    "Failed requests": ("failed", 1.0),
    "Req Throughput (req/s)": ("requests_per_s", 1.0),
    "Request throughput (req/s)": ("requests_per_s", 1.0),
    "Output Throughput (tok/s)": ("output_tok_s", 1.0),
    "Output token throughput (tok/s)": ("output_tok_s", 1.0),
    "Total Throughput (tok/s)": ("total_tok_s", 1.0),
    "Total token throughput (tok/s)": ("total_tok_s", 1.0),
    "Input Throughput (tok/s)": ("input_tok_s", 1.0),
    "Avg Latency (s)": ("e2e_ms_mean", 1000.0),
    "Average latency (s)": ("e2e_ms_mean", 1000.0),
    "Avg TTFT (ms)": ("ttft_ms_mean", 1.0),
    "Avg TPOT (ms)": ("tpot_ms_mean", 1.0),
    "Avg ITL (ms)": ("itl_ms_mean", 1.0),
    "Avg Input Tokens": ("input_tokens_mean", 1.0),
    "Avg Output Tokens": ("output_tokens_mean", 1.0),
}
# benchmark_percentile.json columns -> ours (factor to ms)
PERCENTILE_KEYS = {"TTFT (ms)": ("ttft", 1.0), "ITL (ms)": ("itl", 1.0), "TPOT (ms)": ("tpot", 1.0),
                   "Latency (s)": ("e2e", 1000.0)}  # fmt: skip


@register("evalscope")
class EvalscopeParser:
    name = "evalscope"
    describes = "EvalScope perf (benchmark_data.db, benchmark_summary.json, benchmark_percentile.json)"
    markers = (
        "Test Duration (s)", "Req Throughput (req/s)", "Avg TTFT (ms)", "Avg TPOT (ms)", "Percentiles", "TTFT (ms)",
        "result", "first_chunk_latency", "inter_token_latencies", "completed_time",
    )  # fmt: skip

    def sniff_bytes(self, head: bytes) -> bool:
        return head.startswith(SQLITE_MAGIC) and b"first_chunk_latency" in head and b"inter_token_latencies" in head

    def sniff(self, head: str) -> bool:
        if looks_like_json(head):
            if _SUMMARY.search(head) or (_PERCENTILE.search(head) and '"TTFT (ms)"' in head):
                return True
            return len(_ARGS.findall(head)) >= 2  # benchmark_args.json: refused with a pointer to the results
        return _PRINTED in head[:2048]

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        return _parse_text(text, source, None)

    def parse_path(self, path: Path, source: str) -> list[ParsedRun]:
        if read_head(path, len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            return [db_run(path, source)]
        return _parse_text(read_text(path), source, path.parent)


def _args(folder: Path | None) -> Mapping[str, Any]:
    """``benchmark_args.json`` beside the file ({} when absent or unreadable)."""
    path = folder / "benchmark_args.json" if folder is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        obj = json.loads(read_text(path))
    except ValueError:
        return {}
    return obj if isinstance(obj, Mapping) else {}


def _meta(args: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    parallel = args.get("parallel")
    rate = args.get("rate")
    extra: dict[str, Any] = {"format": fmt}
    for key in ("number", "dataset", "api", "url", "stream", "open_loop"):
        if args.get(key) is not None and isinstance(args[key], str | int | float | bool):
            extra[key] = args[key]
    return {
        "model": args.get("model_id") or args.get("model"),
        "backend": args.get("api"),
        "concurrency": parallel if isinstance(parallel, int) and parallel > 0 else None,
        "request_rate": float(rate) if isinstance(rate, int | float) and rate > 0 else None,  # -1: no rate limit
        "num_prompts": args.get("number") if isinstance(args.get("number"), int) else None,
        "extra": extra,
    }


def _parse_text(text: str, source: str, folder: Path | None) -> list[ParsedRun]:
    if not looks_like_json(text[:4096]):
        raise BenchFormatError(
            "EvalScope's performance_summary.txt is the printed tables of every load level: expected (import) each level's "
            "parallel_<P>_number_<N>/benchmark_data.db (per request) or its benchmark_summary.json instead",
            source,
        )
    docs = list(json_documents(text, source))
    if len(docs) != 1:
        raise BenchFormatError("expected one EvalScope JSON document", source, docs[1][0])
    line, doc = docs[0]
    args = _args(folder)
    if isinstance(doc, list):
        summary = percentile_summary(doc, source, line)
        return [
            ParsedRun(tool="evalscope", source=source, summary=summary, meta=_meta(args, "benchmark_percentile.json"))
        ]
    if not isinstance(doc, Mapping):
        raise BenchFormatError("expected an EvalScope benchmark_summary.json object", source, line)
    if "outputs_dir" in doc and not any(k in doc for k in SUMMARY_KEYS):
        raise BenchFormatError(
            "EvalScope's benchmark_args.json holds the run's arguments, no results: expected (import) benchmark_data.db (per "
            "request) or benchmark_summary.json from the same folder",
            source,
            line,
        )
    summary = {}
    for key, value in doc.items():
        if key in SUMMARY_KEYS:
            ours, factor = SUMMARY_KEYS[key]
            v = number(value, key, source, line)
            if v is not None and not (ours == "input_tok_s" and v == 0.0):  # 0.0: not computed for LLM endpoints
                summary[ours] = v * factor
    if "duration_s" not in summary:
        raise BenchFormatError("expected EvalScope's 'Test Duration (s)'", source, line)
    meta = _meta(args, "benchmark_summary.json")
    if not args:
        conc = number(doc.get("Concurrency", doc.get("Number of concurrency")), "Concurrency", source, line)
        rate = number(doc.get("Request Rate (req/s)"), "Request Rate (req/s)", source, line)
        meta["concurrency"] = int(conc) if conc and conc > 0 else None
        meta["request_rate"] = rate if rate and rate > 0 else None
    pct = folder / "benchmark_percentile.json" if folder is not None else None
    if pct is not None and pct.is_file():
        pdocs = list(json_documents(read_text(pct), str(pct)))
        if len(pdocs) == 1 and isinstance(pdocs[0][1], list):
            summary.update(percentile_summary(pdocs[0][1], str(pct), pdocs[0][0]))
            meta["extra"]["format"] = "benchmark_summary.json + benchmark_percentile.json"
    if isinstance(doc.get("Total Requests"), int | float):
        meta["extra"]["total_requests"] = doc["Total Requests"]
    return [ParsedRun(tool="evalscope", source=source, summary=summary, meta=meta)]


def percentile_summary(rows: list[Any], source: str, line: int) -> dict[str, float]:
    summary: dict[str, float] = {}
    for k, row in enumerate(rows):
        if not isinstance(row, Mapping) or "Percentiles" not in row:
            raise BenchFormatError(f"[{k}]: expected {{'Percentiles': ..., 'TTFT (ms)': ...}}", source, line)
        label = str(row["Percentiles"]).strip()
        stat = label if label in ("min", "max") else "p" + label.rstrip("%").replace(".", "_")
        if stat not in ("min", "max") and not re.fullmatch(r"p\d+(_\d+)?", stat):
            raise BenchFormatError(f"[{k}].Percentiles: expected min, max or N%, got {label!r}", source, line)
        for col, (ours, factor) in PERCENTILE_KEYS.items():
            v = number(row.get(col), f"[{k}].{col}", source, line)
            if v is not None and math.isfinite(v):
                summary[f"{ours}_ms_{stat}"] = v * factor
    return summary


def nearest_rank(values: Sequence[float], name: str) -> dict[str, float]:
    """EvalScope's ``calculate_percentiles``: sorted values, index ceil(p / 100 * n) - 1; min and max."""
    data = sorted(values)
    if not data:
        return {}
    n = len(data)
    out = {f"{name}_ms_min": data[0], f"{name}_ms_max": data[-1]}
    for p in PERCENTILES:
        out[f"{name}_ms_p{p}"] = data[max(0, math.ceil(n * p / 100) - 1)]
    return out


def db_run(path: Path, source: str) -> ParsedRun:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BenchFormatError(
            f"cannot open the SQLite database ({exc}): expected an EvalScope benchmark_data.db", source
        ) from None
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(result)")}
        missing = [c for c in COLUMNS if c not in cols]
        if missing:
            raise BenchFormatError(
                f"table 'result' lacks columns {missing}: expected an EvalScope perf benchmark_data.db", source
            )
        has_stream = "is_stream" in cols
        rows = con.execute(_QUERY_STREAM if has_stream else _QUERY).fetchall()
    except sqlite3.DatabaseError as exc:
        raise BenchFormatError(
            f"unreadable SQLite database ({exc}): expected an EvalScope benchmark_data.db", source
        ) from None
    finally:
        con.close()
    if not rows:
        raise BenchFormatError(
            "no request in table 'result' (EvalScope stopped before a request finished): expected at least one", source
        )
    args = _args(path.parent)
    return _db_parsed(rows, has_stream, source, args)


def _db_parsed(rows: list[tuple[Any, ...]], has_stream: bool, source: str, args: Mapping[str, Any]) -> ParsedRun:
    recs = []
    for k, row in enumerate(rows):
        at = f"result row {k + 1}"
        d = dict(zip(COLUMNS, row, strict=False))
        ok = bool(d["success"])
        try:
            itl = json.loads(d["inter_token_latencies"] or "[]") or []
        except ValueError:
            raise BenchFormatError(f"{at}: inter_token_latencies: expected a JSON list", source) from None
        if not isinstance(itl, list):
            raise BenchFormatError(f"{at}: inter_token_latencies: expected a JSON list", source)
        start = number(d["start_time"], f"{at}.start_time", source, 0)
        if start is None:
            raise BenchFormatError(f"{at}: start_time is null: expected the request's start", source)
        rec = {
            "ok": ok,
            "stream": bool(row[len(COLUMNS)]) if has_stream else True,
            "start": start,
            "end": number(d["completed_time"], f"{at}.completed_time", source, 0),
            "latency": number(d["latency"], f"{at}.latency", source, 0),
            "ttft": number(d["first_chunk_latency"], f"{at}.first_chunk_latency", source, 0),
            "in": d["prompt_tokens"],
            "out": d["completion_tokens"],
            "tpot": number(d["time_per_output_token"], f"{at}.time_per_output_token", source, 0),
            "itl": [number(x, f"{at}.inter_token_latencies", source, 0, allow_none=False) for x in itl],
        }
        if ok and (rec["latency"] is None or rec["ttft"] is None):
            raise BenchFormatError(
                f"{at}: a successful request without latency / first_chunk_latency (expected both)", source
            )
        recs.append(rec)
    recs.sort(key=lambda r: r["start"])
    ok = [r for r in recs if r["ok"]]
    timed = [r for r in recs if r["start"] > 0 and r["end"] is not None and r["end"] >= r["start"]]
    duration = (max(r["end"] for r in timed) - min(r["start"] for r in timed)) if timed else None
    stream = [r for r in ok if r["stream"]] or ok
    requests = raw_requests(
        {
            "request_index": np.arange(len(recs)),
            "start_s": [r["start"] for r in recs],
            "ttft_ms": [r["ttft"] * 1000 if r["ok"] else None for r in recs],
            "e2e_ms": [r["latency"] * 1000 if r["ok"] else None for r in recs],
            "itl_ms": [[x * 1000 for x in r["itl"]] if r["ok"] else [] for r in recs],
            "input_tokens": [r["in"] if r["ok"] else None for r in recs],
            "output_tokens": [r["out"] if r["ok"] else None for r in recs],
            "error": [None if r["ok"] else "failed (EvalScope success = 0)" for r in recs],
        }
    )
    # counts and throughput over EvalScope's window (the shared definition), then its own latency statistics
    summary = {k: v for k, v in summary_from_requests(requests, duration).items() if "_ms_" not in k}
    if ok:
        ttft = [r["ttft"] * 1000 for r in stream]
        tpot = [r["tpot"] * 1000 for r in stream if r["tpot"] is not None and (r["out"] or 0) > 1]
        itl = [x * 1000 for r in ok for x in r["itl"]]
        e2e = [r["latency"] * 1000 for r in ok]
        for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e)):
            if values:
                summary[f"{name}_ms_mean"] = float(np.mean(values))
                summary.update(nearest_rank(values, name))
        summary["input_tokens_mean"] = summary["total_input_tokens"] / len(ok)
        summary["output_tokens_mean"] = summary["total_output_tokens"] / len(ok)
    return ParsedRun(
        tool="evalscope",
        source=source,
        summary=summary,
        meta=_meta(args, "benchmark_data.db"),
        requests=requests,
        clock="monotonic",
    )
