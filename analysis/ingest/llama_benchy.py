"""llama-benchy 0.3.x / 0.4: the markdown table, ``--format json`` / ``csv`` results and the ``--emit-progress``
JSONL event stream (schema ``llama-benchy-progress.v1``, ``ts`` = Unix seconds: timing ``wall_clock``).

One run per test point (prompt size, response size, depth, concurrency). Table / JSON / CSV results are summaries
(``mean ± std`` over ``--runs``) with these names: ``prefill_tok_s_*`` (pp t/s), ``decode_tok_s_*`` (tg t/s;
total over requests for c > 1), ``decode_tok_s_per_req_*``, ``peak_decode_tok_s_*``, ``ttfr_ms_*``,
``est_ppt_ms_*``, ``ttft_ms_*`` (llama-benchy's e2e_ttft), each ``_mean`` and ``_std``. The progress stream gives
per-request data; its summary also has ``decode_tok_s_mean`` = mean over requests of
(tokens - 1) / (last token - first token), llama-benchy's tg t/s.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from analysis.ingest.base import integer, json_documents, looks_like_json, number, register
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun, raw_requests, summary_from_requests

PROGRESS_SCHEMA = "llama-benchy-progress.v1"
START_KEYS = ("model", "prompt_size", "response_size", "context_size", "concurrency")
END_KEYS = ("total_tokens", "prompt_tokens")
_MD_HEADER = re.compile(r"^\|\s*model\s*\|\s*test\s*\|", re.IGNORECASE | re.MULTILINE)
_CSV_HEADER = re.compile(r"^\s*model,test_name,", re.IGNORECASE)
_JSON_MARK = re.compile(r'"(latency_mode|tg_throughput|pp_throughput)"\s*:')
_TEST = re.compile(
    r"^(?:(?P<pid>.+?) )?(?P<kind>pp|tg|ctx_pp|ctx_tg)(?P<n>\d*)(?: @ d(?P<depth>\d+))?(?: \(c(?P<conc>\d+)\))?$"
)
_CELL = re.compile(r"^(?P<mean>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?:\s*±\s*(?P<std>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?))?$")

# column header (normalised) -> name for pp rows, name for tg rows
_COLUMNS = {
    "t/s": ("prefill_tok_s", "decode_tok_s"),
    "t/s (total)": ("prefill_tok_s", "decode_tok_s"),
    "t/s (req)": ("prefill_tok_s_per_req", "decode_tok_s_per_req"),
    "peak t/s": ("peak_prefill_tok_s", "peak_decode_tok_s"),
    "peak t/s (req)": ("peak_prefill_tok_s_per_req", "peak_decode_tok_s_per_req"),
    "ttfr (ms)": ("ttfr_ms", "ttfr_ms"),
    "est_ppt (ms)": ("est_ppt_ms", "est_ppt_ms"),
    "e2e_ttft (ms)": ("ttft_ms", "ttft_ms"),
}
_CSV_COLUMNS = {
    "t_s": "t/s",
    "t_s_req": "t/s (req)",
    "peak_t_s": "peak t/s",
    "peak_t_s_req": "peak t/s (req)",
    "ttfr": "ttfr (ms)",
    "est_ppt": "est_ppt (ms)",
    "e2e_ttft": "e2e_ttft (ms)",
}
_JSON_FIELDS = {
    "pp_throughput": "prefill_tok_s",
    "pp_req_throughput": "prefill_tok_s_per_req",
    "tg_throughput": "decode_tok_s",
    "tg_req_throughput": "decode_tok_s_per_req",
    "peak_throughput": "peak_decode_tok_s",
    "peak_req_throughput": "peak_decode_tok_s_per_req",
    "ttfr": "ttfr_ms",
    "est_ppt": "est_ppt_ms",
    "e2e_ttft": "ttft_ms",
}


@register("llama_benchy")
class LlamaBenchyParser:
    name = "llama_benchy"
    markers = (
        "schema", "event", "ts", "version", "timestamp", "latency_mode", "model", "max_concurrency", "benchmarks",
        "pp_throughput", "tg_throughput", "ttfr", "e2e_ttft", "test_name", "t/s", "ttfr (ms)",
    )  # fmt: skip

    def sniff(self, head: str) -> bool:
        if PROGRESS_SCHEMA in head[:4096]:
            return True
        if looks_like_json(head):
            return bool(_JSON_MARK.search(head))
        return bool(_MD_HEADER.search(head) or _CSV_HEADER.match(head))

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        if PROGRESS_SCHEMA in text[:4096]:
            return progress_runs(text, source)
        if looks_like_json(text[:4096]):
            return json_runs(text, source)
        if _CSV_HEADER.match(text):
            return csv_runs(text, source)
        return markdown_runs(text, source)


# ---------------------------------------------------------------------------------------------------------------
# Tables (markdown / CSV): one row per test, grouped into runs per (model, prompt id, depth, concurrency)


def _cell(value: str, column: str, source: str, line: int) -> tuple[float, float | None] | None:
    text = value.strip()
    if not text:
        return None
    m = _CELL.match(text)
    if not m:
        raise BenchFormatError(f"column {column!r}: expected 'mean ± std' or a number, got {text!r}", source, line)
    return float(m.group("mean")), (float(m.group("std")) if m.group("std") else None)


class _Grouper:
    def __init__(self, source: str) -> None:
        self.source = source
        self.runs: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(self, model: str, test: str, cells: Mapping[str, str], line: int) -> None:
        m = _TEST.match(test.strip())
        if not m:
            raise BenchFormatError(
                f"test: expected e.g. 'pp2048', 'tg128 @ d4096 (c4)', got {test!r}", self.source, line
            )
        kind = m.group("kind")
        depth = int(m.group("depth") or 0)
        conc = int(m.group("conc") or 1)
        key = (model, m.group("pid"), depth, conc)
        run = self.runs.setdefault(
            key, {"line": line, "summary": {}, "meta": {"model": model, "concurrency": conc, "extra": {"depth": depth}}}
        )
        if m.group("pid"):
            run["meta"]["extra"]["prompt_id"] = m.group("pid")
        if kind.endswith("pp") and m.group("n"):
            run["meta"]["isl"] = int(m.group("n"))
        if kind.endswith("tg") and m.group("n"):
            run["meta"]["osl"] = int(m.group("n"))
        which = 0 if kind.endswith("pp") else 1
        for column, value in cells.items():
            names = _COLUMNS.get(column)
            if names is None:
                continue
            parsed = _cell(value, column, self.source, line)
            if parsed is None:
                continue
            mean, std = parsed
            run["summary"][f"{names[which]}_mean"] = mean
            if std is not None:
                run["summary"][f"{names[which]}_std"] = std

    def parsed(self, fmt: str, version: str | None = None) -> list[ParsedRun]:
        return [
            ParsedRun(
                tool="llama-benchy",
                source=f"{self.source}:{r['line']}",
                summary=r["summary"],
                meta={**r["meta"], "extra": {**r["meta"]["extra"], "format": fmt}},
                tool_version=version,
            )
            for r in self.runs.values()
        ]


def _split_row(line: str, source: str, n: int) -> list[str]:
    s = line.strip()
    if not (s.startswith("|") and s.endswith("|")) or len(s) < 2:
        raise BenchFormatError("expected a table row '| ... |' (truncated?)", source, n)
    return [c.strip() for c in s[1:-1].split("|")]


def markdown_runs(text: str, source: str) -> list[ParsedRun]:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _MD_HEADER.match(line)), None)
    if start is None:
        raise BenchFormatError("expected a llama-benchy table header '| model | test | ...'", source, 1)
    header = [" ".join(h.lower().split()) for h in _split_row(lines[start], source, start + 1)]
    if start + 1 >= len(lines) or not set(lines[start + 1].replace("|", "").strip()) <= set(":- "):
        raise BenchFormatError("expected the table's '| :--- | ---: |' separator row", source, start + 2)
    grouper = _Grouper(source)
    for i in range(start + 2, len(lines)):
        line = lines[i]
        if not line.strip():
            break
        cells = _split_row(line, source, i + 1)
        if len(cells) != len(header):
            raise BenchFormatError(f"expected {len(header)} cells, got {len(cells)} (truncated row?)", source, i + 1)
        row = dict(zip(header, cells, strict=True))
        grouper.add(row["model"], row["test"], row, i + 1)
    return grouper.parsed("markdown")


def csv_runs(text: str, source: str) -> list[ParsedRun]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise BenchFormatError("empty CSV", source, 1) from None
    grouper = _Grouper(source)
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise BenchFormatError(f"expected {len(header)} CSV fields, got {len(row)} (truncated row?)", source, line)
        d = dict(zip(header, row, strict=True))
        cells: dict[str, str] = {}
        for prefix, column in _CSV_COLUMNS.items():
            mean, std = d.get(f"{prefix}_mean", ""), d.get(f"{prefix}_std", "")
            if mean.strip():
                cells[column] = f"{mean} ± {std}" if std.strip() else mean
        grouper.add(d.get("model", ""), d.get("test_name", ""), cells, line)
    return grouper.parsed("csv")


def json_runs(text: str, source: str) -> list[ParsedRun]:
    runs: list[ParsedRun] = []
    for line, doc in json_documents(text, source):
        if not isinstance(doc, Mapping) or not isinstance(doc.get("benchmarks"), list):
            raise BenchFormatError("expected a llama-benchy result {'benchmarks': [...]}", source, line)
        end_utc = None
        if isinstance(doc.get("timestamp"), str):
            try:
                end_utc = datetime.strptime(doc["timestamp"].rstrip("Z"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                raise BenchFormatError(
                    f"timestamp: expected 'YYYY-mm-dd HH:MM:SSZ', got {doc['timestamp']!r}", source, line
                ) from None
        for k, b in enumerate(doc["benchmarks"]):
            if not isinstance(b, Mapping):
                raise BenchFormatError(f"benchmarks[{k}]: expected an object", source, line)
            summary: dict[str, float] = {}
            for key, name in _JSON_FIELDS.items():
                stat = b.get(key)
                if isinstance(stat, Mapping):
                    for s in ("mean", "std"):
                        v = number(stat.get(s), f"benchmarks[{k}].{key}.{s}", source, line)
                        if v is not None:
                            summary[f"{name}_{s}"] = v
            meta = {
                "model": doc.get("model"),
                "isl": integer(b.get("prompt_size"), f"benchmarks[{k}].prompt_size", source, line),
                "osl": integer(b.get("response_size"), f"benchmarks[{k}].response_size", source, line),
                "concurrency": integer(b.get("concurrency"), f"benchmarks[{k}].concurrency", source, line),
                "extra": {
                    "format": "json",
                    "depth": b.get("context_size"),
                    "is_context_prefill_phase": b.get("is_context_prefill_phase"),
                    "latency_mode": doc.get("latency_mode"),
                },
            }
            runs.append(
                ParsedRun(
                    tool="llama-benchy",
                    source=f"{source}:{line}:benchmarks[{k}]",
                    summary=summary,
                    meta=meta,
                    tool_version=doc.get("version"),
                    end_utc=end_utc,
                )
            )
    return runs


# ---------------------------------------------------------------------------------------------------------------
# --emit-progress event stream


def progress_runs(text: str, source: str) -> list[ParsedRun]:
    version = None
    reqs: dict[Any, dict[str, Any]] = {}
    complete = False
    for line, ev in json_documents(text, source):
        if not isinstance(ev, Mapping) or "type" not in ev:
            raise BenchFormatError("expected a progress event {'schema', 'type', 'ts', ...}", source, line)
        kind = ev["type"]
        ts = number(ev.get("ts"), "ts", source, line, allow_none=False)
        if kind == "header":
            version = ev.get("llama_benchy_version")
            continue
        if kind == "bench_complete":
            complete = True
            continue
        if kind not in ("request_start", "request_first_token", "tokens", "request_end"):
            continue
        rid = ev.get("request_id")
        if kind == "request_start":
            absent = [k for k in START_KEYS if k not in ev]
            if absent or rid is None:
                raise BenchFormatError(f"request_start: expected keys {absent or ['request_id']}", source, line)
            if rid in reqs:
                raise BenchFormatError(
                    f"request_id {rid!r} started twice: expected one request_start per request", source, line
                )
            reqs[rid] = {
                "line": line,
                "start": ts,
                "key": tuple(ev[k] for k in START_KEYS[1:]),
                "model": ev["model"],
                "ttft": None,
                "token_ts": [],
                "token_counts": [],
            }
            continue
        r = reqs.get(rid)
        if r is None:
            raise BenchFormatError(f"{kind} for request_id {rid!r}: expected its request_start first", source, line)
        if kind == "request_first_token":
            r["ttft"] = number(ev.get("ttft_s"), "ttft_s", source, line)
        elif kind == "tokens":
            r["token_ts"].append(ts)
            r["token_counts"].append(integer(ev.get("count"), "count", source, line) or 0)
        else:
            absent = [k for k in END_KEYS if k not in ev]
            if absent:  # a corrupt key must not read as "no prompt tokens"
                raise BenchFormatError(f"request_end: expected keys {absent}", source, line)
            r["end"] = ts
            r["total_tokens"] = integer(ev.get("total_tokens"), "total_tokens", source, line)
            r["prompt_tokens"] = integer(ev.get("prompt_tokens"), "prompt_tokens", source, line)
            r["error"] = ev.get("error") or None
    if not reqs:
        raise BenchFormatError("no request_start events: expected a llama-benchy progress stream with requests", source)
    unfinished = [r for r in reqs.values() if "end" not in r]
    if unfinished:
        raise BenchFormatError(
            "request started here has no request_end event: the progress stream is truncated",
            source,
            unfinished[0]["line"],
        )
    for r in reqs.values():
        if r["error"]:
            continue
        if r["ttft"] is None:
            raise BenchFormatError("request without an error: expected a request_first_token event", source, r["line"])
        if r["total_tokens"] is None or sum(r["token_counts"]) != r["total_tokens"]:
            raise BenchFormatError(
                f"tokens events of this request sum to {sum(r['token_counts'])} but its request_end says "
                f"{r['total_tokens']}: expected them to agree (missing or corrupt events?)",
                source,
                r["line"],
            )
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for rid, r in reqs.items():
        groups.setdefault(r["key"], []).append(rid)
    runs = []
    for key, rids in groups.items():
        prompt, response, depth, conc = key
        rows = [reqs[i] for i in rids]
        model = rows[0]["model"]
        itl, ttft, e2e, tg = [], [], [], []
        for r in rows:
            ts = np.asarray(r["token_ts"], dtype=np.float64)
            itl.append((np.diff(ts) * 1000.0).tolist())
            ttft.append(None if r["error"] or r["ttft"] is None else r["ttft"] * 1000.0)
            e2e.append(None if r["error"] else (r["end"] - r["start"]) * 1000.0)
            n_tok = r["total_tokens"] or 0
            tg.append((n_tok - 1) / (ts[-1] - ts[0]) if ts.size > 1 and ts[-1] > ts[0] and not r["error"] else np.nan)
        req = raw_requests(
            {
                "request_index": list(range(len(rows))),
                "start_s": [r["start"] for r in rows],
                "ttft_ms": ttft,
                "e2e_ms": e2e,
                "itl_ms": itl,
                "input_tokens": [r["prompt_tokens"] for r in rows],
                "output_tokens": [r["total_tokens"] for r in rows],
                "error": [None if not r["error"] else str(r["error"]) for r in rows],
            }
        )
        start = min(r["start"] for r in rows)
        end = max(r["end"] for r in rows)
        summary = summary_from_requests(req, end - start)
        tg_arr = np.asarray(tg)
        if np.isfinite(tg_arr).any():
            summary["decode_tok_s_mean"] = float(np.nanmean(tg_arr))
            summary["decode_tok_s_std"] = float(np.nanstd(tg_arr))
        runs.append(
            ParsedRun(
                tool="llama-benchy",
                source=f"{source}:{rows[0]['line']}",
                summary=summary,
                meta={
                    "model": model,
                    "isl": prompt,
                    "osl": response,
                    "concurrency": conc,
                    "extra": {"format": "progress", "depth": depth, "complete": complete},
                },
                tool_version=version,
                requests=req,
                clock="epoch",
                start_epoch_s=start,
                end_epoch_s=end,
            )
        )
    return runs
