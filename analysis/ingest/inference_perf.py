"""inference-perf (kubernetes-sigs/inference-perf, tested with 0.7.0): the request-lifecycle reports it writes to its
``storage.local_storage.path``.

* ``per_request_lifecycle_metrics.json`` (``report.request_lifecycle.per_request: true``): one entry per request,
  ``start_time`` / ``end_time`` and ``info.response_metrics.output_token_times`` are ``time.perf_counter()``
  seconds (monotonic: timing ``reconstructed``, exact with the ``neighborscope run`` wall/monotonic pair).
  Per request: TTFT = first token time - start, ITL = gaps between token times, e2e = end - start, input tokens
  ``info.request_metrics.text.input_tokens``, output tokens ``info.response_metrics.output_tokens`` (the
  server's ``completion_tokens`` with ``use_server_output_tokens``), ``error``. The entries carry no stage: read
  through the file (``neighborscope import bench DIR/per_request_lifecycle_metrics.json``), the
  ``stage_N_lifecycle_metrics.json`` beside it split the requests into one run per stage (stages run one after the
  other, so the first ``count`` requests by start time are stage 0, ...), ``config.yaml`` gives each stage's
  concurrency / rate, and ``inference-perf.partial.stage_N.yaml`` its wall-clock start. Alone (text), it is one run.
* ``summary_lifecycle_metrics.json`` (the whole run) and ``stage_N_lifecycle_metrics.json`` (one stage): summary
  only.
* ``inference-perf.partial.stage_N.yaml`` (a stage in the benchmark-report schema 0.2): summary only, with the
  stage's wall-clock start and end (the scheduler's window, ``stage_window_s``; ``duration_s`` is the rates'
  denominator, completed / request rate = ``benchmark_time_seconds``).
* ``config.yaml`` (the run's configuration) holds no results: an error names the files to import instead.

Names (inference-perf -> ours): ``time_to_first_token`` -> ``ttft``; ``time_per_output_token`` (last token - first
token) / (output tokens - 1) -> ``tpot``; ``inter_token_latency`` (every gap between token times, pooled) ->
``itl``; ``request_latency`` -> ``e2e``; ``normalized_time_per_output_token`` (request latency / output tokens)
-> ``ntpot``; all seconds -> ms. Statistics as inference-perf computes them: mean / min / max and numpy
percentiles (linear) at its ``percentiles`` (default 0.1 ... 99.9), successful requests only; throughput over
``benchmark_time_seconds`` = last end - first start of all the requests of the report (``duration_s``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from analysis.ingest.base import json_documents, looks_like_json, number, read_head, read_text, register
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun, raw_requests, summary_from_requests

_PER_REQUEST = re.compile(r'"(output_token_times|response_metrics|request_metrics)"\s*:')
_SUMMARY = re.compile(r'"benchmark_time_seconds"\s*:')
_CONFIG_KEYS = ("load:", "server:", "report:")
DEFAULT_PERCENTILES = (0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)
LATENCIES = (
    ("time_to_first_token", "ttft"),
    ("time_per_output_token", "tpot"),
    ("inter_token_latency", "itl"),
    ("request_latency", "e2e"),
    ("normalized_time_per_output_token", "ntpot"),
)
THROUGHPUT = (
    ("requests_per_sec", "requests_per_s"),
    ("input_tokens_per_sec", "input_tok_s"),
    ("output_tokens_per_sec", "output_tok_s"),
    ("total_tokens_per_sec", "total_tok_s"),
)
RESULT_FILES = "per_request_lifecycle_metrics.json (per request) or summary_lifecycle_metrics.json / stage_N_lifecycle_metrics.json"


@register("inference_perf")
class InferencePerfParser:
    name = "inference_perf"
    describes = (
        "inference-perf (per_request_lifecycle_metrics.json, summary_lifecycle_metrics.json, "
        "stage_N_lifecycle_metrics.json, inference-perf.partial.stage_N.yaml)"
    )
    markers = (
        "benchmark_time_seconds", "load_summary", "successes", "failures", "start_time", "end_time", "info",
        "error", "output_token_times", "request_metrics", "response_metrics",
    )  # fmt: skip

    def sniff(self, head: str) -> bool:
        if looks_like_json(head):
            return bool(_SUMMARY.search(head)) or (head.lstrip().startswith("[") and bool(_PER_REQUEST.search(head)))
        return _is_config(head) or _is_report_v02(head)

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        return _parse(text, source, None)

    def parse_path(self, path: Path, source: str) -> list[ParsedRun]:
        return _parse(read_text(path), source, Siblings(path.parent))


def _is_config(head: str) -> bool:
    starts = {line.split(":", 1)[0] + ":" for line in head.splitlines() if line[:1].isalpha()}
    return all(k in starts for k in _CONFIG_KEYS) and "api:" in starts


def _is_report_v02(head: str) -> bool:
    return bool(re.match(r"version:\s*'?0\.2", head.lstrip())) and "request_performance:" in head


def _parse(text: str, source: str, siblings: Siblings | None) -> list[ParsedRun]:
    if not looks_like_json(text[:4096]) and _is_report_v02(text[:4096]):
        stage = re.search(r"stage_(\d+)\.yaml$", source)
        level = siblings.load_level(int(stage.group(1))) if siblings and stage else {}
        return [report_v02_run(text, source, level)]
    if not looks_like_json(text[:4096]):
        raise BenchFormatError(
            f"an inference-perf config.yaml (the run's configuration) holds no results: expected (import) {RESULT_FILES} "
            "from the same report folder",
            source,
        )
    docs = list(json_documents(text, source))
    if len(docs) != 1:
        raise BenchFormatError("expected one inference-perf report (a JSON object or a list)", source, docs[1][0])
    line, doc = docs[0]
    if isinstance(doc, list):
        return per_request_runs(doc, source, line, siblings)
    if isinstance(doc, Mapping) and "benchmark_time_seconds" in doc:
        stage = _stage_of(source)
        level = siblings.load_level(stage) if siblings else {}
        window = siblings.wall_window(stage) if siblings else (None, None)
        return [summary_run(doc, source, line, level, window)]
    raise BenchFormatError(
        "expected an inference-perf lifecycle report: a list of requests or {'benchmark_time_seconds': ...}",
        source,
        line,
    )


def _stage_of(source: str) -> int | None:
    m = re.search(r"stage_(\d+)_lifecycle_metrics", Path(source).name)
    return int(m.group(1)) if m else None


class Siblings:
    """The other files of an inference-perf report folder (stage reports, config.yaml, benchmark reports)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._config: Mapping[str, Any] | None = None

    def config(self) -> Mapping[str, Any]:
        if self._config is None:
            path = self.folder / "config.yaml"
            self._config = {}
            if path.is_file() and _is_config(read_head(path).decode("utf-8", "ignore")):
                try:
                    loaded = _yaml(read_text(path), str(path))
                except BenchFormatError:
                    loaded = None
                self._config = loaded if isinstance(loaded, Mapping) else {}
        return self._config

    def stages(self) -> list[Mapping[str, Any]]:
        load = self.config().get("load")
        stages = load.get("stages") if isinstance(load, Mapping) else None
        return [s for s in stages if isinstance(s, Mapping)] if isinstance(stages, list) else []

    def load_level(self, stage: int | None) -> dict[str, Any]:
        """concurrency / request_rate of ``stage`` (the only stage when None and there is one), from config.yaml."""
        stages = self.stages()
        if stage is None:
            if len(stages) != 1:
                return {"extra": {"stages": len(stages)}} if stages else {}
            stage = 0
        if stage >= len(stages):
            return {}
        s = stages[stage]
        load = self.config().get("load")
        out: dict[str, Any] = {"extra": {"stage": stage, "load_type": (load or {}).get("type")}}
        if isinstance(s.get("concurrency_level"), int):
            out["concurrency"] = s["concurrency_level"]
        # a concurrent stage's rate is set at run time: not a load level
        concurrent = isinstance(load, Mapping) and load.get("type") == "concurrent"
        if not concurrent and isinstance(s.get("rate"), int | float) and not isinstance(s.get("rate"), bool):
            out["request_rate"] = float(s["rate"])
        return out

    def percentiles(self) -> Sequence[float]:
        report = self.config().get("report")
        lifecycle = report.get("request_lifecycle") if isinstance(report, Mapping) else None
        pct = lifecycle.get("percentiles") if isinstance(lifecycle, Mapping) else None
        return tuple(pct) if isinstance(pct, list) and pct else DEFAULT_PERCENTILES

    def server_output_tokens(self) -> bool:
        report = self.config().get("report")
        lifecycle = report.get("request_lifecycle") if isinstance(report, Mapping) else None
        return bool(isinstance(lifecycle, Mapping) and lifecycle.get("use_server_output_tokens"))

    def stage_counts(self) -> list[int] | None:
        """Requests per stage from ``stage_N_lifecycle_metrics.json`` (N = 0, 1, ... without a gap), or None."""
        counts = []
        while (path := self.folder / f"stage_{len(counts)}_lifecycle_metrics.json").is_file():
            docs = list(json_documents(read_text(path), str(path)))
            doc = docs[0][1] if len(docs) == 1 else None
            load = doc.get("load_summary") if isinstance(doc, Mapping) else None
            if not isinstance(load, Mapping) or not isinstance(load.get("count"), int):
                return None
            counts.append(load["count"])
        return counts or None

    def wall_window(self, stage: int | None) -> tuple[float | None, float | None]:
        """(start, end) Unix s of ``stage`` from ``inference-perf.partial.stage_N.yaml`` (its benchmark report)."""
        if stage is None:
            n = len(self.stages())
            first, last = self.wall_window(0), self.wall_window(n - 1) if n else (None, None)
            return first[0], last[1]
        path = self.folder / f"inference-perf.partial.stage_{stage}.yaml"
        if not path.is_file():
            return None, None
        text = read_text(path)
        times = []
        for key in ("start", "end"):
            m = re.search(rf"^\s+{key}:\s*'?([0-9T:.+\-Z]+)'?\s*$", text, re.M)
            try:
                times.append(datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp() if m else None)
            except ValueError:
                times.append(None)
        return times[0], times[1]


def _yaml(text: str, source: str) -> Any:
    if not text.endswith("\n"):  # inference-perf ends its YAML with a newline; a cut file could end inside a number
        raise BenchFormatError("truncated YAML: expected the newline inference-perf ends its files with", source,
                               text.count("\n") + 1)  # fmt: skip
    try:  # PyYAML's C loader (libyaml) when built
        from yaml import CSafeLoader as SafeLoader
    except ImportError:  # pragma: no cover - depends on the build
        from yaml import SafeLoader
    from yaml import YAMLError, load

    try:
        return load(text, Loader=SafeLoader)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BenchFormatError(
            f"invalid YAML ({getattr(exc, 'problem', exc)})", source, mark.line + 1 if mark else 0
        ) from None


def _dig(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...``, None where a level is missing or not an object."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def _meta(level: Mapping[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A run's load level (from config.yaml) and what else we know of it."""
    return {"concurrency": level.get("concurrency"), "request_rate": level.get("request_rate"), "extra": extra}


def _stats(name: str, values: Sequence[float], percentiles: Sequence[float]) -> dict[str, float]:
    """inference-perf's ``summarize``: mean / min / max and numpy (linear) percentiles, seconds -> ms."""
    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64) * 1000.0
    out = {
        f"{name}_ms_mean": float(np.mean(arr)),
        f"{name}_ms_min": float(np.min(arr)),
        f"{name}_ms_max": float(np.max(arr)),
    }
    for p, q in zip(percentiles, np.percentile(arr, list(percentiles)), strict=True):
        out[f"{name}_ms_p{f'{p:g}'.replace('.', '_')}"] = float(q)
    return out


def per_request_runs(entries: list[Any], source: str, line: int, siblings: Siblings | None) -> list[ParsedRun]:
    if not entries:
        raise BenchFormatError("no request in the per-request report: expected at least one", source, line)
    rows = [_entry(e, k, source, line, siblings) for k, e in enumerate(entries)]
    streamed = [r["streamed"] for r in rows if r["error"] is None]
    if any(streamed) and not all(streamed):
        k = next(i for i, r in enumerate(rows) if r["error"] is None and not r["streamed"])
        raise BenchFormatError(
            f"[{k}]: a successful request without info.response_metrics.output_token_times: expected them like the "
            "other requests of this streamed run",
            source,
            line,
        )
    rows.sort(key=lambda r: r["start"])
    counts = siblings.stage_counts() if siblings else None
    if counts and sum(counts) == len(rows) and len(counts) > 1:
        bounds = np.cumsum([0, *counts])
        return [
            _run(rows[bounds[i] : bounds[i + 1]], f"{source}:stage_{i}", siblings, i, len(counts))
            for i in range(len(counts))
        ]
    run = _run(rows, source, siblings, 0 if counts and len(counts) == 1 else None, len(counts or []))
    if siblings is None or counts is None:
        run.meta["extra"]["stages"] = "unknown (the file alone: all its requests as one run)"
    elif sum(counts) != len(rows):
        run.meta["extra"]["stages"] = f"the stage reports count {sum(counts)} requests, this file {len(rows)}: one run"
    return [run]


def _entry(e: Any, k: int, source: str, line: int, siblings: Siblings | None) -> dict[str, Any]:
    at = f"[{k}]"
    if not isinstance(e, Mapping):
        raise BenchFormatError(
            f"{at}: expected an inference-perf request {{'start_time', 'end_time', ...}}", source, line
        )
    start = number(e.get("start_time"), f"{at}.start_time", source, line, allow_none=False)
    end = number(e.get("end_time"), f"{at}.end_time", source, line, allow_none=False)
    error = e.get("error")
    err = None
    if error:
        err = (
            ": ".join(str(error.get(k)) for k in ("error_type", "error_msg") if error.get(k)) or "error"
            if isinstance(error, Mapping)
            else str(error)
        )
    info = e.get("info") if isinstance(e.get("info"), Mapping) else {}
    request_metrics = info.get("request_metrics") if isinstance(info.get("request_metrics"), Mapping) else {}
    text = request_metrics.get("text") if isinstance(request_metrics.get("text"), Mapping) else {}
    response = info.get("response_metrics") if isinstance(info.get("response_metrics"), Mapping) else {}
    input_tokens = number(text.get("input_tokens", info.get("input_tokens")), f"{at}.info.input_tokens", source, line)
    out = number(response.get("output_tokens"), f"{at}.info.response_metrics.output_tokens", source, line)
    if siblings is not None and siblings.server_output_tokens():
        usage = response.get("server_usage") if isinstance(response.get("server_usage"), Mapping) else {}
        server = usage.get("completion_tokens", usage.get("output_tokens"))
        if server is not None:
            out = number(server, f"{at}.info.response_metrics.server_usage", source, line)
    times = response.get("output_token_times")
    if times is not None and not isinstance(times, list):
        raise BenchFormatError(f"{at}.info.response_metrics.output_token_times: expected a list", source, line)
    tokens = [number(t, f"{at}.output_token_times", source, line, allow_none=False) for t in times or []]
    if err is None and (not response or out is None or input_tokens is None):
        raise BenchFormatError(
            f"{at}: a successful request without info.response_metrics.output_tokens / info.request_metrics.text."
            "input_tokens (expected both)",
            source,
            line,
        )
    return {"start": start, "end": end, "error": err, "in": input_tokens, "out": out, "times": tokens,
            "streamed": times is not None}  # fmt: skip


def _run(
    rows: list[dict[str, Any]], source: str, siblings: Siblings | None, stage: int | None, n_stages: int
) -> ParsedRun:
    percentiles = siblings.percentiles() if siblings else DEFAULT_PERCENTILES
    ok = [r for r in rows if r["error"] is None]
    total_time = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    ttft, tpot, itl, e2e, ntpot = [], [], [], [], []
    for r in ok:
        latency = r["end"] - r["start"]
        out = int(r["out"] or 0)
        e2e.append(latency)
        ntpot.append(latency / out if out > 0 else 0.0)
        times = r["times"]
        if len(times) > 1:
            ttft.append(times[0] - r["start"])
            if out > 1:
                tpot.append((times[-1] - times[0]) / (out - 1))
            itl.extend(np.diff(times).tolist())
    requests = raw_requests(
        {
            "request_index": np.arange(len(rows)),
            "start_s": [r["start"] for r in rows],
            "ttft_ms": [
                None if r["error"] or len(r["times"]) < 1 else (r["times"][0] - r["start"]) * 1000 for r in rows
            ],
            "e2e_ms": [None if r["error"] else (r["end"] - r["start"]) * 1000 for r in rows],
            "itl_ms": [(np.diff(r["times"]) * 1000).tolist() if not r["error"] else [] for r in rows],
            "input_tokens": [None if r["in"] is None else int(r["in"]) for r in rows],
            "output_tokens": [None if r["out"] is None else int(r["out"]) for r in rows],
            "error": [r["error"] for r in rows],
        }
    )
    # counts and throughput over inference-perf's window (the shared definition), then its latency statistics
    summary = {k: v for k, v in summary_from_requests(requests, total_time).items() if "_ms_" not in k}
    summary["duration_s"] = total_time
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e), ("ntpot", ntpot)):
        summary.update(_stats(name, values, percentiles))
    level = siblings.load_level(stage if n_stages else None) if siblings else {}
    extra = {"format": "per_request_lifecycle_metrics.json", **(level.get("extra") or {})}
    if n_stages > 1:
        extra["stage_of"] = f"{stage} of {n_stages} (0-based)"
    wall_start = siblings.wall_window(stage)[0] if siblings and n_stages else None
    return ParsedRun(
        tool="inference-perf",
        source=source,
        summary=summary,
        meta=_meta(level, extra),
        requests=requests,
        clock="monotonic",
        start_epoch_s=wall_start,
    )


def summary_run(
    doc: Mapping[str, Any], source: str, line: int, level: Mapping[str, Any], window: tuple[float | None, float | None]
) -> ParsedRun:
    summary: dict[str, float] = {}
    duration = number(doc.get("benchmark_time_seconds"), "benchmark_time_seconds", source, line)
    if duration is not None:
        summary["duration_s"] = duration
    successes = doc.get("successes") if isinstance(doc.get("successes"), Mapping) else {}
    failures = doc.get("failures") if isinstance(doc.get("failures"), Mapping) else {}
    for ours, part, where in (("completed", successes, "successes"), ("failed", failures, "failures")):
        v = number(part.get("count"), f"{where}.count", source, line)
        if v is not None:
            summary[ours] = v
    latency = successes.get("latency") if isinstance(successes.get("latency"), Mapping) else {}
    for theirs, ours in LATENCIES:
        stats = latency.get(theirs)
        if not isinstance(stats, Mapping):
            continue
        for key, value in stats.items():
            stat = "p50" if key == "median" else key.replace(".", "_")
            if stat in ("mean", "min", "max") or re.fullmatch(r"p\d+(_\d+)?", stat):
                v = number(value, f"successes.latency.{theirs}.{key}", source, line)
                if v is not None:
                    summary[f"{ours}_ms_{stat}"] = v * 1000.0
    throughput = successes.get("throughput") if isinstance(successes.get("throughput"), Mapping) else {}
    for theirs, ours in THROUGHPUT:
        v = number(throughput.get(theirs), f"successes.throughput.{theirs}", source, line)
        if v is not None:
            summary[ours] = v
    stage = _stage_of(source)
    extra = {"format": Path(source).name if stage is not None or "summary" in Path(source).name else "lifecycle report",
             **(level.get("extra") or {})}  # fmt: skip
    start, end = window
    return ParsedRun(
        tool="inference-perf",
        source=source,
        summary=summary,
        meta=_meta(level, extra),
        start_epoch_s=start,
        end_epoch_s=end,
    )


_V02_STAT = re.compile(r"^(mean|min|max|p\d+(p\d+)?)$")
_V02_RATES = (("request_rate", "requests_per_s"), ("input_token_rate", "input_tok_s"),
              ("output_token_rate", "output_tok_s"), ("total_token_rate", "total_tok_s"))  # fmt: skip


def report_v02_run(text: str, source: str, level: Mapping[str, Any]) -> ParsedRun:
    """``inference-perf.partial.stage_N.yaml``: the stage in the benchmark-report schema 0.2 (wall-clock start / end,
    latency statistics in s, rates): summary only; ``p0p1`` is our ``p0_1``."""
    doc = _yaml(text, source)
    times = _dig(doc, "run", "time")
    agg = _dig(doc, "results", "request_performance", "aggregate")
    if not isinstance(times, Mapping) or not isinstance(agg, Mapping):
        raise BenchFormatError(
            "expected run.time and results.request_performance.aggregate (benchmark report 0.2)", source
        )
    wall = []
    for key in ("start", "end"):
        try:
            wall.append(datetime.fromisoformat(str(times.get(key)).replace("Z", "+00:00")).timestamp())
        except ValueError:
            raise BenchFormatError(f"run.time.{key}: expected an ISO time, got {times.get(key)!r}", source) from None
    total = number(_dig(agg, "requests", "total"), "requests.total", source, 0)
    failed = number(_dig(agg, "requests", "failures"), "requests.failures", source, 0)
    if total is None or failed is None:
        raise BenchFormatError("expected results.request_performance.aggregate.requests.total and failures", source)
    summary: dict[str, float] = {"completed": total - failed, "failed": failed}
    latency = agg.get("latency") if isinstance(agg.get("latency"), Mapping) else {}
    for theirs, ours in LATENCIES:
        stats = latency.get(theirs)
        if not isinstance(stats, Mapping):
            continue
        for key, value in stats.items():
            if key == "stddev":
                key = "std"
            elif not _V02_STAT.match(str(key)):
                continue
            v = number(value, f"latency.{theirs}.{key}", source, 0)
            if v is not None:
                summary[f"{ours}_ms_{str(key).replace('p0p1', 'p0_1').replace('p99p9', 'p99_9')}"] = v * 1000.0
    throughput = agg.get("throughput") if isinstance(agg.get("throughput"), Mapping) else {}
    for theirs, ours in _V02_RATES:
        stats = throughput.get(theirs)
        if isinstance(stats, Mapping):
            v = number(stats.get("mean"), f"throughput.{theirs}.mean", source, 0)
            if v is not None:
                summary[ours] = v
    if summary.get("requests_per_s"):  # the rates are over benchmark_time_seconds (first start - last end)
        summary["duration_s"] = summary["completed"] / summary["requests_per_s"]
    extra = {
        "format": "benchmark report 0.2 (inference-perf.partial.stage_N.yaml)",
        "stage_window_s": wall[1] - wall[0],
        **(level.get("extra") or {}),
    }
    return ParsedRun(
        tool="inference-perf",
        source=source,
        summary=summary,
        meta=_meta(level, extra),
        start_epoch_s=wall[0],
        end_epoch_s=wall[1],
    )
