"""NVIDIA AIPerf and genai-perf.

* AIPerf ``profile_export.jsonl``: one record per request, ``metadata.request_start_ns`` is ``time.time_ns()``
  (wall clock, timing ``wall_clock``). Beware the names: AIPerf's ``inter_token_latency`` is the per-request TPOT,
  its ``inter_chunk_latency`` list is our ITL. Warm-up records (``benchmark_phase`` other than ``profiling``) are
  dropped, as AIPerf's own summary does. Read line by line (bounded memory: a 500 MB file needs well under 1 GiB).
* AIPerf ``profile_export_raw.jsonl`` (``--export-level raw``): one record per request with the HTTP responses
  (``start_perf_ns``, ``responses[].perf_ns``, SSE ``packets``) and no ``metrics``: TTFT is the first response that
  carries content, ITL the gaps between content responses, the latency the last content response (AIPerf's own
  definitions); token counts from the server's ``usage`` chunk (AIPerf counts with its tokenizer: equal when the
  server reports usage), else the number of content responses.
* Durations and throughputs as AIPerf defines them: AIPerf divides token and request counts by its **profiling
  phase** (``start_time`` -> ``end_time`` of ``profile_export_aiperf.json``, which AIPerf writes beside the
  records), while its printed "Benchmark Duration" is first request start -> last response. With the phase file
  beside the records: ``duration_s`` / ``output_tok_s`` / ``requests_per_s`` / ``input_tok_s`` are AIPerf's
  (phase window), ``benchmark_duration_s`` and ``output_tok_s_request_span`` the request span. Without it both
  use the request span (``extra['throughput_window']`` says which; the phase adds the time to issue the first
  request and to close the phase: 0.1 % at fixed concurrency, ~6 % at a low request rate).
* AIPerf ``profile_export_aiperf.json`` (summary): summary only, ``{metric: {unit, avg, p50, p99, ...}}``.
* AIPerf multi-run aggregate (``--num-profile-runs N``, ``aggregate/profile_export_aiperf_aggregate.json``):
  statistics across runs, no run of its own. Imported as the N runs it names (``profile_runs/<label>/
  profile_export.jsonl`` beside it), each labelled ``extra['profile_run']``; refused, naming those files, when
  they are not there.
* genai-perf ``profile_export.json``: ``experiments[].requests[]`` with ``timestamp`` and ``response_timestamps``
  (ns); one run per experiment. Epoch-sized timestamps (> 1e17 ns) are taken as wall clock.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from analysis.ingest._serving import list_from_flat
from analysis.ingest.base import (
    integer,
    json_documents,
    loads_json,
    looks_like_json,
    number,
    read_head,
    read_text,
    register,
)
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun, raw_requests, summary_from_requests

_RECORD = re.compile(r'"(request_start_ns|benchmark_phase|x_request_id)"\s*:')
_AGGREGATE = re.compile(r'"aiperf_version"\s*:')
_MULTI = re.compile(r'"(num_profile_runs|aggregation_type)"\s*:')
_GENAI = re.compile(r'"(response_timestamps|service_kind)"\s*:')
_TO_MS = {"ms": 1.0, "ns": 1e-6, "us": 1e-3, "µs": 1e-3, "s": 1000.0, "sec": 1000.0, "seconds": 1000.0}
EPOCH_NS = 1e17
PHASES = {"warmup", "profiling"}
PHASE_FILE = "profile_export_aiperf.json"
# the summary beside the records is the same run's when its times agree with the records' to this much (s; its
# ISO times have microseconds)
SAME_RUN_S = 0.001

_AGG_METRICS = {
    "time_to_first_token": "ttft",
    "inter_token_latency": "tpot",
    "inter_chunk_latency": "itl",
    "request_latency": "e2e",
    "time_to_second_token": "ttst",
}
_AGG_STATS = {"avg": "mean", "std": "std", "min": "min", "max": "max"}
_AGG_SCALARS = {
    "output_token_throughput": "output_tok_s",
    "input_token_throughput": "input_tok_s",
    "total_token_throughput": "total_tok_s",
    "request_throughput": "requests_per_s",
    "request_count": "completed",
    "total_osl": "total_output_tokens",
    "total_isl": "total_input_tokens",
}


@register("aiperf")
class AiperfParser:
    name = "aiperf"
    markers = (
        "metadata",
        "metrics",
        "request_start_ns",
        "benchmark_phase",
        "x_request_id",
        "time_to_first_token",
        "inter_chunk_latency",
        "request_latency",
        "aiperf_version",
        "schema_version",
        "start_perf_ns",
        "responses",
        "experiments",
        "response_timestamps",
    )

    def sniff(self, head: str) -> bool:
        if not looks_like_json(head):
            return False
        return bool(_RECORD.search(head) or _AGGREGATE.search(head) or (_GENAI.search(head) and "experiments" in head))

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        if _RECORD.search(text[:65536]):
            lines = (line.encode() for line in text.split("\n"))
            return [records_run(lines, source)]
        return self._document(text, source, None)

    def parse_path(self, path: Path, source: str) -> list[ParsedRun]:
        """Records are streamed line by line; the phase file beside them gives AIPerf's throughput window."""
        head = read_head(path).decode("utf-8", "ignore")
        if _RECORD.search(head):
            return [records_file_run(path, source)]
        return self._document(read_text(path), source, path)

    def _document(self, text: str, source: str, path: Path | None) -> list[ParsedRun]:
        docs = list(json_documents(text, source))
        if len(docs) != 1 or not isinstance(docs[0][1], Mapping):
            raise BenchFormatError("expected one JSON object (AIPerf summary or genai-perf export)", source, 1)
        line, obj = docs[0]
        if "aiperf_version" in obj and isinstance(obj.get("metadata"), Mapping) and _MULTI.search(text[:4096]):
            return multi_runs(obj, source, path)
        if "aiperf_version" in obj or "schema_version" in obj:
            return [aggregate_run(obj, source, line)]
        return genai_perf_runs(obj, source, line)


# ---------------------------------------------------------------------------------------------------------------
# Per-request records (processed and raw exports), streamed


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


class _Columns:
    """What a run keeps per request, in compact arrays (ITLs flat with per-request lengths)."""

    def __init__(self) -> None:
        self.start_ns: list[int] = []
        self.ttft_ms = array("d")
        self.e2e_ms = array("d")
        self.in_tokens: list[int | None] = []
        self.out_tokens: list[int | None] = []
        self.errors: list[str | None] = []
        self.itl_flat = array("d")
        self.itl_lens = array("q")

    def add(
        self,
        start_ns: int,
        ttft: float | None,
        e2e: float | None,
        itl: Iterable[float],
        in_tokens: int | None,
        out_tokens: int | None,
        error: str | None,
    ) -> None:
        n = len(self.itl_flat)
        self.itl_flat.extend(itl)
        self.itl_lens.append(len(self.itl_flat) - n)
        self.start_ns.append(start_ns)
        self.ttft_ms.append(math.nan if ttft is None else ttft)
        self.e2e_ms.append(math.nan if e2e is None else e2e)
        self.in_tokens.append(in_tokens)
        self.out_tokens.append(out_tokens)
        self.errors.append(error)


def _records(lines: Iterable[bytes], source: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            rec = loads_json(raw)
        except (ValueError, RecursionError) as exc:
            raise BenchFormatError(f"invalid or truncated JSON record ({exc})", source, i + 1) from None
        if not isinstance(rec, Mapping) or not isinstance(rec.get("metadata"), Mapping):
            raise BenchFormatError(
                "expected an AIPerf record {'metadata': {...}, 'metrics': {...}} (profile_export.jsonl) or "
                "{'metadata': {...}, 'responses': [...]} (profile_export_raw.jsonl)",
                source,
                i + 1,
            )
        yield i + 1, rec


def _error_text(rec: Mapping[str, Any]) -> str | None:
    error = rec.get("error")
    if error:
        if isinstance(error, Mapping):
            return str(error.get("message") or error.get("type") or error)
        return str(error)
    if rec["metadata"].get("was_cancelled"):
        return "cancelled"
    status = rec.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
        return f"HTTP {status}"
    return None


def _processed(rec: Mapping[str, Any], cols: _Columns, start_ns: int, err: str | None, source: str, line: int):
    metrics = rec.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        raise BenchFormatError("metrics: expected an object", source, line)
    icl = metrics.get("inter_chunk_latency")
    itl: list[float] = []
    if icl is not None:
        if not isinstance(icl, Mapping) or not isinstance(icl.get("value"), list):
            raise BenchFormatError("metrics.inter_chunk_latency: expected {'value': [...]}", source, line)
        scale = _TO_MS.get(str(icl.get("unit", "ms")))
        if scale is None:
            raise BenchFormatError("metrics.inter_chunk_latency: expected a time unit", source, line)
        values = icl["value"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            bad = next(v for v in values if not isinstance(v, int | float) or isinstance(v, bool))
            raise BenchFormatError(f"metrics.inter_chunk_latency: expected numbers, found {bad!r}", source, line)
        itl = [v * scale for v in values] if scale != 1.0 else values
    out = _count(metrics, "output_sequence_length", source, line)
    if out is None:
        out = _count(metrics, "output_token_count", source, line)
    if not err:
        missing = [m for m in ("time_to_first_token", "request_latency", "input_sequence_length") if m not in metrics]
        if out is None:
            missing.append("output_sequence_length")
        elif out > 1 and icl is None:
            missing.append("inter_chunk_latency")
        if missing:
            raise BenchFormatError(
                f"AIPerf record without an error lacks metrics {missing}: expected a profile_export.jsonl record "
                "with its metrics (or a profile_export_raw.jsonl record with 'responses')",
                source,
                line,
            )
    cols.add(
        start_ns,
        None if err else _ms(metrics, "time_to_first_token", source, line),
        None if err else _ms(metrics, "request_latency", source, line),
        itl,
        _count(metrics, "input_sequence_length", source, line),
        out,
        err,
    )


def _chunk_content(obj: Any) -> tuple[bool, Mapping[str, Any] | None]:
    """(whether an OpenAI-style chunk / body carries generated content, its usage object)."""
    if not isinstance(obj, Mapping):
        return False, None
    usage = obj.get("usage") if isinstance(obj.get("usage"), Mapping) else None
    for choice in obj.get("choices") or ():
        if not isinstance(choice, Mapping):
            continue
        for part in (choice.get("delta"), choice.get("message"), choice):
            if isinstance(part, Mapping) and any(
                isinstance(part.get(k), str) and part.get(k) for k in ("content", "reasoning_content", "text")
            ):
                return True, usage
    return False, usage


def _raw(rec: Mapping[str, Any], cols: _Columns, start_ns: int, err: str | None, source: str, line: int) -> None:
    start_perf = integer(rec.get("start_perf_ns"), "start_perf_ns", source, line)
    responses = rec.get("responses")
    if start_perf is None or not isinstance(responses, list):
        raise BenchFormatError(
            "expected 'start_perf_ns' and 'responses': [...] (profile_export_raw.jsonl)", source, line
        )
    times: list[int] = []
    usage: Mapping[str, Any] | None = None
    for k, resp in enumerate(responses):
        if not isinstance(resp, Mapping):
            raise BenchFormatError(f"responses[{k}]: expected an object", source, line)
        perf = integer(resp.get("perf_ns"), f"responses[{k}].perf_ns", source, line)
        bodies: list[str] = []
        if isinstance(resp.get("packets"), list):
            bodies = [p.get("value") for p in resp["packets"] if isinstance(p, Mapping) and p.get("name") == "data"]
        elif isinstance(resp.get("text"), str):
            bodies = [resp["text"]]
        content = False
        for body in bodies:
            if not isinstance(body, str) or body.strip() == "[DONE]":
                continue
            try:
                obj = loads_json(body.encode())
            except (ValueError, RecursionError):
                raise BenchFormatError(
                    f"responses[{k}]: a data packet that is not JSON ({body[:40]!r}): expected an OpenAI-style "
                    "chunk or [DONE]",
                    source,
                    line,
                ) from None
            has, use = _chunk_content(obj)
            content = content or has
            usage = use or usage
        if content and perf is not None:
            times.append(perf)
    if not err and not times:
        err = "no response with content"
    ttft = e2e = None
    itl: list[float] = []
    if times and not err:
        ttft = (times[0] - start_perf) / 1e6
        e2e = (times[-1] - start_perf) / 1e6
        itl = [(b - a) / 1e6 for a, b in itertools.pairwise(times)]
    in_tokens = out_tokens = None
    if usage is not None:
        in_tokens = integer(usage.get("prompt_tokens"), "usage.prompt_tokens", source, line)
        out_tokens = integer(usage.get("completion_tokens"), "usage.completion_tokens", source, line)
    if out_tokens is None and not err:
        out_tokens = len(times)
    cols.add(start_ns, ttft, e2e, itl, in_tokens, out_tokens, err)


def records_run(lines: Iterable[bytes], source: str) -> ParsedRun:
    """One run from AIPerf records (processed or raw), read one line at a time; durations over the request span
    (`records_file_run` puts AIPerf's phase window in when its summary file is beside the records)."""
    cols = _Columns()
    phases: dict[str, int] = {}
    kind = ""
    for line, rec in _records(lines, source):
        meta = rec["metadata"]
        ph = meta.get("benchmark_phase")
        if ph not in PHASES:
            raise BenchFormatError(
                f"metadata.benchmark_phase: expected one of {sorted(PHASES)}, got {ph!r}", source, line
            )
        phases[ph] = phases.get(ph, 0) + 1
        if ph != "profiling":
            continue
        start_ns = integer(meta.get("request_start_ns"), "metadata.request_start_ns", source, line)
        if start_ns is None:
            raise BenchFormatError("metadata.request_start_ns: expected the request's start (ns)", source, line)
        err = _error_text(rec)
        this = "raw" if "responses" in rec or "start_perf_ns" in rec else "records"
        if kind and this != kind:
            raise BenchFormatError(
                f"a {this} record among {kind} records: expected one kind of AIPerf export per file", source, line
            )
        kind = this
        (_raw if this == "raw" else _processed)(rec, cols, start_ns, err, source, line)
    if not cols.start_ns:
        raise BenchFormatError(
            f"no profiling records (phases seen: {phases or 'none'}): expected AIPerf records of the profiling phase",
            source,
        )
    return _records_parsed(cols, phases, kind, source)


def _records_parsed(cols: _Columns, phases: dict[str, int], kind: str, source: str) -> ParsedRun:
    start_ns = np.asarray(cols.start_ns, dtype=np.int64)
    order = np.argsort(start_ns, kind="stable")
    ttft = np.frombuffer(cols.ttft_ms, dtype=np.float64)[order]
    e2e = np.frombuffer(cols.e2e_ms, dtype=np.float64)[order]
    lens = np.frombuffer(cols.itl_lens, dtype=np.int64)
    flat = np.frombuffer(cols.itl_flat, dtype=np.float64)
    if np.isnan(flat).any():
        raise BenchFormatError("metrics.inter_chunk_latency: expected numbers, found NaN", source)
    itl = list_from_flat(flat, lens, "itl_ms")
    if not np.array_equal(order, np.arange(order.size)):
        itl = itl.gather(order)
    errors = [cols.errors[i] for i in order]
    req = raw_requests(
        {
            "request_index": np.arange(order.size),
            "start_s": start_ns[order] / 1e9,
            "ttft_ms": ttft,
            "e2e_ms": e2e,
            "itl_ms": itl,
            "input_tokens": [cols.in_tokens[i] for i in order],
            "output_tokens": [cols.out_tokens[i] for i in order],
            "error": errors,
        }
    ).with_columns(pl.col("ttft_ms").fill_nan(None), pl.col("e2e_ms").fill_nan(None))
    ok = np.array([e is None for e in errors]) & ~np.isnan(e2e)
    first_s = float(start_ns.min()) / 1e9
    # AIPerf's "Benchmark Duration": first request start -> last response (start + request latency)
    span_end = float(np.max(start_ns[order][ok] / 1e9 + e2e[ok] / 1000.0)) if ok.any() else None
    span = (span_end - first_s) if span_end is not None else None
    extra: dict[str, Any] = {
        "format": "profile_export_raw.jsonl" if kind == "raw" else "profile_export.jsonl",
        "records_by_phase": phases,
    }
    extra["throughput_window"] = (
        f"first request start -> last response (no {PHASE_FILE} beside the records: AIPerf's own throughput "
        "divides by its profiling phase, slightly longer)"
    )
    summary = summary_from_requests(req, span)
    if span:
        summary["benchmark_duration_s"] = span
        summary["output_tok_s_request_span"] = summary["total_output_tokens"] / span
    return ParsedRun(
        tool="aiperf",
        source=source,
        summary=summary,
        meta={"extra": extra},
        requests=req,
        clock="epoch",
        start_epoch_s=first_s,
        end_epoch_s=span_end,
    )


def records_file_run(path: Path, source: str) -> ParsedRun:
    """`records_run` over the file at ``path``, read line by line, with the phase of the summary beside it."""
    try:
        with path.open("rb") as fh:
            run = records_run(fh, source)
    except OSError as exc:
        raise BenchFormatError(f"cannot read: {exc.strerror or exc}", source) from None
    phase = phase_beside(path, run)
    return run if phase is None else _with_phase(run, phase)


def _with_phase(run: ParsedRun, phase: tuple[float, float, Mapping[str, Any]]) -> ParsedRun:
    """The run with AIPerf's phase window as its duration (the records are not read again)."""
    p_start, p_end, doc = phase
    req = run.requests
    assert req is not None
    summary = summary_from_requests(req, p_end - p_start)
    for key in ("benchmark_duration_s", "output_tok_s_request_span"):
        if key in run.summary:
            summary[key] = run.summary[key]
    extra = dict(run.meta.get("extra") or {})
    extra["throughput_window"] = f"AIPerf profiling phase ({PHASE_FILE} start_time -> end_time)"
    extra["phase_file"] = str(doc.get("_path", PHASE_FILE))
    meta = {**_input_config(doc), "extra": extra}
    return ParsedRun(
        tool="aiperf",
        source=run.source,
        summary=summary,
        meta=meta,
        tool_version=doc.get("aiperf_version"),
        requests=req,
        clock="epoch",
        start_epoch_s=p_start,
        end_epoch_s=p_end,
    )


def _phase_candidates(path: Path) -> list[Path]:
    stem = path.stem[:-4] if path.stem.endswith("_raw") else path.stem
    return [path.with_name(f"{stem}_aiperf.json"), path.with_name(PHASE_FILE)]


def phase_beside(path: Path, run: ParsedRun) -> tuple[float, float, Mapping[str, Any]] | None:
    """AIPerf's profiling phase (start, end in Unix s, the summary document) from the summary file AIPerf wrote
    beside ``path``, when it is the same run's: its naive local ``start_time`` / ``end_time`` are put on the
    records' clock (the zone offset is the whole quarter hour that brings them next to the first request); it is
    the same run's when its "Benchmark Duration" is the records' request span and its phase brackets them; None
    otherwise."""
    req = run.requests
    if req is None or run.start_epoch_s is None:
        return None
    for cand in _phase_candidates(path):
        try:
            doc = json.loads(cand.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(doc, Mapping) or "aiperf_version" not in doc:
            continue
        try:
            t0 = datetime.fromisoformat(str(doc.get("start_time")))
            t1 = datetime.fromisoformat(str(doc.get("end_time")))
        except ValueError:
            continue
        first = float(req["start_s"].min())
        if t0.tzinfo is None:
            naive0 = t0.replace(tzinfo=UTC).timestamp()
            offset = round((naive0 - first) / 900.0) * 900.0
            start, end = naive0 - offset, t1.replace(tzinfo=UTC).timestamp() - offset
        else:
            start, end = t0.timestamp(), t1.timestamp()
        span = run.summary.get("benchmark_duration_s")
        theirs = doc.get("benchmark_duration")
        theirs_s = theirs.get("avg") if isinstance(theirs, Mapping) else None
        # the same run: AIPerf's own "Benchmark Duration" is our request span, and its phase brackets the requests
        same = (
            isinstance(theirs_s, int | float)
            and span is not None
            and abs(theirs_s * _TO_MS.get(str(theirs.get("unit", "sec")), 1000.0) / 1000.0 - span) < SAME_RUN_S
            and start <= first + SAME_RUN_S
            and end >= first + span - SAME_RUN_S
        )
        if same:
            return start, end, {**doc, "_path": cand.name}
    return None


def _input_config(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Model, load (concurrency / request rate) and ISL / OSL from the summary's ``input_config``."""
    cfg = doc.get("input_config")
    out: dict[str, Any] = {}
    if not isinstance(cfg, Mapping):
        return out
    models = (cfg.get("models") or {}).get("items") if isinstance(cfg.get("models"), Mapping) else None
    if isinstance(models, list) and models and isinstance(models[0], Mapping):
        out["model"] = models[0].get("name")
    for phase in cfg.get("phases") or ():
        if isinstance(phase, Mapping) and phase.get("kind", phase.get("name")) == "profiling":
            if isinstance(phase.get("concurrency"), int):
                out["concurrency"] = phase["concurrency"]
            if isinstance(phase.get("rate"), int | float):
                out["request_rate"] = float(phase["rate"])
            if isinstance(phase.get("requests"), int):
                out["num_prompts"] = phase["requests"]
    for ds in cfg.get("datasets") or ():
        prompts = ds.get("prompts") if isinstance(ds, Mapping) else None
        if isinstance(prompts, Mapping):
            for key in ("isl", "osl"):
                mean = (prompts.get(key) or {}).get("mean") if isinstance(prompts.get(key), Mapping) else None
                if isinstance(mean, int | float):
                    out[key] = int(mean)
            break
    return out


# ---------------------------------------------------------------------------------------------------------------
# Summaries: one run's profile_export_aiperf.json, and the multi-run aggregate


def aggregate_run(obj: Mapping[str, Any], source: str, line: int) -> ParsedRun:
    summary: dict[str, float] = {}
    for name, stats in obj.items():
        if not isinstance(stats, Mapping) or "unit" not in stats:
            continue
        unit = str(stats["unit"])
        canon = _AGG_METRICS.get(name)
        for stat, value in stats.items():
            if stat == "unit" or value is None or isinstance(value, list | dict):
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
                if name in _AGG_SCALARS:
                    summary[_AGG_SCALARS[name]] = v
                elif name == "benchmark_duration":
                    summary["benchmark_duration_s"] = v * _TO_MS.get(unit, 1000.0) / 1000.0
                elif name in ("total_output_tokens", "output_sequence_length"):
                    summary[f"{name}_mean"] = v
    times = []
    for key in ("start_time", "end_time"):
        t = None
        if isinstance(obj.get(key), str):
            try:
                t = datetime.fromisoformat(obj[key])
            except ValueError:
                raise BenchFormatError(f"{key}: expected an ISO time, got {obj[key]!r}", source, line) from None
        times.append(t)
    t0, t1 = times
    if t0 is not None and t1 is not None:  # AIPerf's throughput window: its profiling phase
        summary["duration_s"] = (t1 - t0).total_seconds()
    elif "benchmark_duration_s" in summary:
        summary["duration_s"] = summary["benchmark_duration_s"]
    end_local = end_utc = None
    if t1 is not None and t1.tzinfo is not None:
        end_utc = t1
    else:
        end_local = t1
    meta = {**_input_config(obj), "extra": {"format": PHASE_FILE}}
    return ParsedRun(
        tool="aiperf",
        source=source,
        summary=summary,
        meta=meta,
        tool_version=obj.get("aiperf_version"),
        end_local=end_local,
        end_utc=end_utc,
    )


def multi_runs(obj: Mapping[str, Any], source: str, path: Path | None) -> list[ParsedRun]:
    """The runs an AIPerf multi-run aggregate names, from their own records; an error naming them otherwise."""
    meta = obj["metadata"]
    labels = [str(x) for x in meta.get("run_labels") or []]
    failed = {str(x.get("label", x)) if isinstance(x, Mapping) else str(x) for x in meta.get("failed_runs") or []}
    root = path.parent.parent / "profile_runs" if path is not None else Path("profile_runs")
    wanted = [root / label / "profile_export.jsonl" for label in labels if label not in failed]
    n = meta.get("num_profile_runs", len(labels))
    what = (
        f"an AIPerf multi-run aggregate (--num-profile-runs {n}, {meta.get('aggregation_type', 'aggregate')} "
        "statistics across runs, no run of its own)"
    )
    if not wanted:
        raise BenchFormatError(f"{what} that names no successful run: import each run's profile_export.jsonl", source)
    missing = [p for p in wanted if not p.is_file()]
    if path is None or missing:
        names = ", ".join(str(p) for p in (missing or wanted))
        raise BenchFormatError(
            f"{what}: import the per-run records instead ({names}"
            + (", not found beside it" if path is not None else "")
            + ")",
            source,
        )
    runs = []
    for label, run_path in zip([x for x in labels if x not in failed], wanted, strict=True):
        run = records_file_run(run_path, str(run_path))
        extra = {**dict(run.meta.get("extra") or {}), "profile_run": label, "aggregate": source}
        runs.append(
            ParsedRun(
                tool=run.tool,
                source=run.source,
                summary=run.summary,
                meta={**run.meta, "extra": extra},
                tool_version=run.tool_version or obj.get("aiperf_version"),
                requests=run.requests,
                clock=run.clock,
                start_epoch_s=run.start_epoch_s,
                end_epoch_s=run.end_epoch_s,
            )
        )
    return runs


# ---------------------------------------------------------------------------------------------------------------
# genai-perf


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
                requests=req,
                clock="epoch" if epoch else "monotonic",
            )
        )
    return runs
