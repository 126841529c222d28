"""GuideLLM (vllm-project/guidellm, tested with 0.8.1): the benchmarks report ``benchmarks.json`` / ``.yaml``
(``--output kind=json`` / ``kind=yaml``) and ``benchmarks.csv`` (``--output kind=csv``).

* JSON / YAML: ``benchmarks[]``, one per strategy of the profile (a sweep or ``streams: [1, 2]`` gives several):
  one run each, with its load level (``concurrent@2`` -> concurrency 2, ``constant@4.5`` -> request rate 4.5,
  ``synchronous`` -> concurrency 1). Per request (``requests.successful / errored / incomplete``):
  ``request_start_time`` / ``request_end_time`` are ``time.time()`` (wall clock), ``time_to_first_token_ms``,
  ``request_latency`` (s), ``prompt_tokens``, ``output_tokens``, ``info.error``. GuideLLM keeps no per-chunk
  times (only the first and last token's), so ``itl_ms`` stays empty. Requests are kept as GuideLLM counts them:
  those overlapping the measured window (``start_time`` .. ``end_time``, warm-up / cool-down cut off).
* CSV: one row per benchmark, statistics only (summary only); times are local, 1 s resolution.

Names (GuideLLM -> ours): ``time_to_first_token_ms`` -> ``ttft``; GuideLLM's ``inter_token_latency_ms`` (last token
- first token) / (output tokens - 1) is our **TPOT** (``tpot_ms_*``); GuideLLM's ``time_per_output_token_ms``
(last token - request start) / output tokens includes the TTFT: ``tpot_incl_ttft_ms_*``; ``request_latency`` ->
``e2e``. GuideLLM weights the ITL / TPOT distributions by tokens (a request counts output tokens - 1 times).
The summary is GuideLLM's own numbers, as its console prints them: latencies of successful requests, throughput
(``requests_per_s``, ``input_tok_s``, ``output_tok_s``, ``total_tok_s``, ``concurrency_mean``) of all requests
(GuideLLM's ``total``: successful + incomplete + errored) over the measured ``duration_s``; also ``incomplete``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from analysis.ingest.base import json_documents, looks_like_json, number, register
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun, raw_requests

_JSON_MARK = re.compile(r'"guidellm_version"\s*:|"type_"\s*:\s*"generative_benchmark"')
_YAML_MARK = re.compile(
    r"^\s*(guidellm_version|scheduler_state|time_to_first_token_ms|prefer_response_metrics):|guidellm\.scheduler\."
    r"|type_: generative_benchmark",
    re.M,
)
_CSV_GROUPS = ("Run Info", "Benchmark", "Timings")

# GuideLLM percentile keys -> ours
PERCENTILES = {
    "p001": "p0_1", "p01": "p1", "p05": "p5", "p10": "p10", "p25": "p25", "p50": "p50",
    "p75": "p75", "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99_9",
}  # fmt: skip
# (GuideLLM metric, our name, factor to ms)
LATENCIES = (
    ("time_to_first_token_ms", "ttft", 1.0),
    ("inter_token_latency_ms", "tpot", 1.0),
    ("time_per_output_token_ms", "tpot_incl_ttft", 1.0),
    ("request_latency", "e2e", 1000.0),
)
# GuideLLM rate / concurrency distributions -> ours (the mean of the ``total`` status, as the console prints it)
RATES = (
    ("requests_per_second", "requests_per_s"),
    ("prompt_tokens_per_second", "input_tok_s"),
    ("output_tokens_per_second", "output_tok_s"),
    ("tokens_per_second", "total_tok_s"),
    ("request_concurrency", "concurrency_mean"),
)
STATUSES = ("successful", "incomplete", "errored")
RATE_KINDS = {"constant", "poisson", "async"}


@register("guidellm")
class GuidellmParser:
    name = "guidellm"
    describes = "GuideLLM (benchmarks.json, benchmarks.yaml, benchmarks.csv)"
    markers = (
        "guidellm_version", "benchmarks", "scheduler_metrics", "scheduler_state", "time_to_first_token_ms",
        "inter_token_latency_ms", "time_per_output_token_ms", "request_start_time", "Run Info", "Timings",
    )  # fmt: skip

    def sniff(self, head: str) -> bool:
        if looks_like_json(head):
            return bool(_JSON_MARK.search(head))
        stripped = head.lstrip()
        if stripped.startswith("benchmarks:"):
            return bool(_YAML_MARK.search(head))
        first = stripped.split("\n", 1)[0]
        return all(f"{g}," in first for g in _CSV_GROUPS)

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        stripped = text.lstrip()
        if looks_like_json(stripped[:1]):
            docs = list(json_documents(text, source))
            if len(docs) != 1:
                raise BenchFormatError("expected one GuideLLM report object {'benchmarks': [...]}", source, docs[1][0])
            return report_runs(docs[0][1], source, "benchmarks.json", docs[0][0])
        if stripped.startswith("benchmarks:"):
            return report_runs(_yaml(text, source), source, "benchmarks.yaml", 1)
        return csv_runs(text, source)


def _yaml(text: str, source: str) -> Any:
    if not text.endswith("\n"):  # GuideLLM ends its YAML with a newline; a cut file could end inside a number
        raise BenchFormatError("truncated YAML: expected the newline GuideLLM ends its report with", source,
                               text.count("\n") + 1)  # fmt: skip
    try:  # PyYAML's C loader (libyaml) when built: 10x faster on a 300 kB report
        from yaml import CSafeLoader as SafeLoader
    except ImportError:  # pragma: no cover - depends on the build
        from yaml import SafeLoader
    import yaml

    try:
        return yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise BenchFormatError(f"invalid or truncated YAML ({getattr(exc, 'problem', exc)})", source, line) from None


def _get(obj: Any, path: str, source: str, line: int) -> Any:
    """``obj['a']['b']`` for ``path`` 'a.b'; `BenchFormatError` naming the missing key."""
    cur = obj
    for key in path.split("."):
        if not isinstance(cur, Mapping) or key not in cur:
            raise BenchFormatError(f"{path}: missing (expected a GuideLLM benchmark with it)", source, line)
        cur = cur[key]
    return cur


def report_runs(report: Any, source: str, fmt: str, line: int) -> list[ParsedRun]:
    if not isinstance(report, Mapping) or not isinstance(report.get("benchmarks"), list):
        raise BenchFormatError("expected a GuideLLM report {'benchmarks': [...], 'metadata': ...}", source, line)
    if not report["benchmarks"]:
        raise BenchFormatError(
            "no benchmark in 'benchmarks': GuideLLM stopped before a strategy finished (expected at least one)",
            source,
            line,
        )
    meta = report.get("metadata") if isinstance(report.get("metadata"), Mapping) else {}
    version = meta.get("guidellm_version")
    return [
        benchmark_run(b, k, len(report["benchmarks"]), source, fmt, line, version)
        for k, b in enumerate(report["benchmarks"])
    ]


def _stats(
    summary: dict[str, float], name: str, dist: Mapping[str, Any], factor: float, where: str, src: str, line: int
):
    """mean / std / min / max / percentiles of one GuideLLM distribution, in ms, under ``{name}_ms_*``."""
    for ours, theirs in (("mean", "mean"), ("std", "std_dev"), ("min", "min"), ("max", "max")):
        v = number(dist.get(theirs), f"{where}.{theirs}", src, line)
        if v is not None:
            summary[f"{name}_ms_{ours}"] = v * factor
    pct = dist.get("percentiles") or {}
    if not isinstance(pct, Mapping):
        raise BenchFormatError(f"{where}.percentiles: expected an object", src, line)
    for theirs, ours in PERCENTILES.items():
        v = number(pct.get(theirs), f"{where}.percentiles.{theirs}", src, line)
        if v is not None:
            summary[f"{name}_ms_{ours}"] = v * factor


def benchmark_summary(metrics: Mapping[str, Any], where: str, source: str, line: int) -> dict[str, float]:
    totals = _get(metrics, "request_totals", source, line)
    summary: dict[str, float] = {}
    for theirs, ours in (("successful", "completed"), ("errored", "failed"), ("incomplete", "incomplete")):
        v = number(totals.get(theirs), f"{where}.metrics.request_totals.{theirs}", source, line)
        if v is not None:
            summary[ours] = v
    for theirs, ours, factor in LATENCIES:
        dist = metrics.get(theirs)
        if not isinstance(dist, Mapping) or not isinstance(dist.get("successful"), Mapping):
            continue
        if not dist["successful"].get("count"):
            continue  # GuideLLM writes 0.0 for an empty distribution: not a measurement
        _stats(summary, ours, dist["successful"], factor, f"{where}.metrics.{theirs}.successful", source, line)
    for theirs, ours in RATES:
        dist = metrics.get(theirs)
        if isinstance(dist, Mapping) and isinstance(dist.get("total"), Mapping):
            v = number(dist["total"].get("mean"), f"{where}.metrics.{theirs}.total.mean", source, line)
            if v is not None:
                summary[ours] = v
    for theirs, ours in (("prompt_token_count", "total_input_tokens"), ("output_token_count", "total_output_tokens")):
        dist = metrics.get(theirs)
        if isinstance(dist, Mapping) and isinstance(dist.get("successful"), Mapping):
            v = number(
                dist["successful"].get("total_sum"), f"{where}.metrics.{theirs}.successful.total_sum", source, line
            )
            if v is not None:
                summary[ours] = v
    return summary


def load_level(strategy: Mapping[str, Any]) -> tuple[str, int | None, float | None]:
    """(GuideLLM's label such as 'concurrent@2', concurrency, request rate) of a benchmark's strategy."""
    kind = str(strategy.get("type_") or strategy.get("type") or "unknown")
    rate = strategy.get("rate")
    streams = strategy.get("streams")
    if kind == "synchronous":
        return kind, 1, None
    if kind == "concurrent" and isinstance(streams, int | float):
        return f"{kind}@{int(streams)}", int(streams), None
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        return f"{kind}@{rate:.2f}", None, float(rate)
    conc = strategy.get("max_concurrency")
    return kind, int(conc) if isinstance(conc, int | float) and not isinstance(conc, bool) else None, None


def benchmark_run(b: Any, k: int, n: int, source: str, fmt: str, line: int, version: str | None) -> ParsedRun:
    where = f"benchmarks[{k}]"
    if not isinstance(b, Mapping):
        raise BenchFormatError(f"{where}: expected a GuideLLM benchmark object", source, line)
    metrics = _get(b, "metrics", source, line)
    summary = benchmark_summary(metrics, where, source, line)
    sm = b.get("scheduler_metrics") if isinstance(b.get("scheduler_metrics"), Mapping) else {}
    start = number(b.get("start_time", sm.get("measure_start_time")), f"{where}.start_time", source, line)
    end = number(b.get("end_time", sm.get("measure_end_time")), f"{where}.end_time", source, line)
    if start is None or end is None:
        raise BenchFormatError(f"{where}: expected start_time and end_time (Unix s)", source, line)
    summary["duration_s"] = end - start
    config = b.get("config") if isinstance(b.get("config"), Mapping) else {}
    strategy = config.get("strategy") if isinstance(config.get("strategy"), Mapping) else {}
    label, concurrency, rate = load_level(strategy)
    backend = config.get("backend") if isinstance(config.get("backend"), Mapping) else {}
    extra: dict[str, Any] = {"format": fmt, "strategy": label, "benchmark": f"{k + 1} of {n}"}
    for key in ("id_", "run_id", "run_index"):
        if config.get(key) is not None:
            extra[f"guidellm_{key.rstrip('_')}"] = config[key]
    requests = _requests(b.get("requests"), start, end, summary, extra, where, source, line)
    meta: dict[str, Any] = {
        "model": backend.get("model"),
        "backend": backend.get("kind"),
        "concurrency": concurrency,
        "request_rate": rate,
        "extra": extra,
    }
    return ParsedRun(
        tool="guidellm",
        source=f"{source}:{where}" if n > 1 else source,
        summary=summary,
        meta=meta,
        tool_version=version,
        requests=requests,
        clock="epoch" if requests is not None else "none",
        start_epoch_s=start,
        end_epoch_s=end,
    )


def _requests(
    groups: Any, start: float, end: float, summary: Mapping[str, float], extra: dict[str, Any], where: str,
    source: str, line: int,
):  # fmt: skip
    """The per-request rows GuideLLM counts (overlapping the measured window), or None when it kept none."""
    if groups is None:
        return None
    if not isinstance(groups, Mapping):
        raise BenchFormatError(f"{where}.requests: expected {{'successful': [...], ...}}", source, line)
    rows: list[tuple[float, float | None, float | None, int | None, int | None, str | None]] = []
    outside = 0
    for status in STATUSES:
        items = groups.get(status) or []
        if not isinstance(items, list):
            raise BenchFormatError(f"{where}.requests.{status}: expected a list", source, line)
        for j, r in enumerate(items):
            at = f"{where}.requests.{status}[{j}]"
            if not isinstance(r, Mapping):
                raise BenchFormatError(f"{at}: expected a GuideLLM request object", source, line)
            t0 = number(r.get("request_start_time"), f"{at}.request_start_time", source, line)
            t1 = number(r.get("request_end_time"), f"{at}.request_end_time", source, line)
            if status == "successful":
                _required(at, {"request_start_time": t0, "request_end_time": t1}, source, line)
            if t1 is None:
                outside += 1  # GuideLLM skips a request whose end it does not know
                continue
            t0 = t1 if t0 is None else t0
            if t1 < start or t0 > end:
                outside += 1
                continue
            info = r.get("info") if isinstance(r.get("info"), Mapping) else {}
            error = None
            if status != "successful":
                error = str(info.get("error") or status)
                error = error if status == "errored" else f"incomplete: {error}"
            ttft = number(r.get("time_to_first_token_ms"), f"{at}.time_to_first_token_ms", source, line)
            latency = number(r.get("request_latency"), f"{at}.request_latency", source, line)
            if status == "successful":
                _required(at, {"time_to_first_token_ms": ttft, "request_latency": latency}, source, line)
            rows.append(
                (
                    t0,
                    None if error else ttft,
                    None if error or latency is None else latency * 1000.0,
                    _count(r.get("prompt_tokens"), f"{at}.prompt_tokens", source, line),
                    _count(r.get("output_tokens"), f"{at}.output_tokens", source, line),
                    error,
                )
            )
    if outside:
        extra["requests_outside_measured_window"] = outside
    counted = int(summary.get("completed", 0) + summary.get("failed", 0) + summary.get("incomplete", 0))
    if not rows:
        if counted:
            extra["per_request"] = "none kept (metrics sample_size=0): summary only"
        return None
    if len(rows) < counted:
        extra["per_request"] = f"a sample: {len(rows)} of {counted} requests (metrics sample_size)"
    rows.sort(key=lambda r: r[0])
    cols = list(zip(*rows, strict=True))
    return raw_requests(
        {
            "request_index": np.arange(len(rows)),
            "start_s": list(cols[0]),
            "ttft_ms": list(cols[1]),
            "e2e_ms": list(cols[2]),
            "input_tokens": list(cols[3]),
            "output_tokens": list(cols[4]),
            "error": list(cols[5]),
        }
    )


def _required(at: str, values: Mapping[str, float | None], source: str, line: int) -> None:
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise BenchFormatError(
            f"{at}: a successful request without {' / '.join(missing)} (expected them)", source, line
        )


def _count(value: Any, what: str, source: str, line: int) -> int | None:
    v = number(value, what, source, line)
    return None if v is None or not math.isfinite(v) else int(v)


# ---------------------------------------------------------------------------------------------------------------
# CSV: three header rows (group, name, unit / statistic), then one row per benchmark

CSV_LATENCIES = {
    ("Time to First Token", "Successful ms"): ("ttft", 1.0),
    ("Inter Token Latency", "Successful ms"): ("tpot", 1.0),
    ("Time per Output Token", "Successful ms"): ("tpot_incl_ttft", 1.0),
    ("Request Latency", "Successful Sec"): ("e2e", 1000.0),
}
CSV_STATS = {"Mean": "mean", "Median": "p50", "Std Dev": "std"}
# the Percentiles cell: [min, p0.1, p1, p5, p10, p25, p75, p90, p95, p99, max] (the median has its own column)
CSV_PERCENTILES = ("min", "p0_1", "p1", "p5", "p10", "p25", "p75", "p90", "p95", "p99", "max")
# (group, name suffix) summed over the statuses present -> ours (GuideLLM's total = the sum of its statuses)
CSV_RATES = {
    ("Server Throughput", "Requests/Sec"): "requests_per_s",
    ("Server Throughput", "Concurrency"): "concurrency_mean",
    ("Token Throughput", "Input Tokens/Sec"): "input_tok_s",
    ("Token Throughput", "Output Tokens/Sec"): "output_tok_s",
    ("Token Throughput", "Total Tokens/Sec"): "total_tok_s",
}


def csv_runs(text: str, source: str) -> list[ParsedRun]:
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 3 or not rows[0] or rows[0][0] != "Run Info":
        raise BenchFormatError("expected GuideLLM CSV: three header rows ('Run Info,...'), then one row per benchmark",
                               source, 1)  # fmt: skip
    headers = list(zip(rows[0], rows[1], rows[2], strict=False))
    data = [(i + 4, r) for i, r in enumerate(rows[3:]) if any(c.strip() for c in r)]
    if not data:
        raise BenchFormatError(
            "GuideLLM CSV without a benchmark row: expected one after the three header rows", source, 3
        )
    runs = []
    for k, (line, row) in enumerate(data):
        if len(row) != len(headers):
            raise BenchFormatError(
                f"row has {len(row)} cells, the header {len(headers)}: expected one cell per column", source, line
            )
        runs.append(_csv_run(dict(zip(headers, row, strict=True)), k, len(data), source, line))
    return runs


def _csv_number(cells: Mapping[tuple[str, str, str], str], key: tuple[str, str, str], source: str, line: int):
    value = cells.get(key)
    if value is None or value.strip() == "":
        return None
    return number(value, " / ".join(p for p in key if p), source, line)


def _csv_run(cells: Mapping[tuple[str, str, str], str], k: int, n: int, source: str, line: int) -> ParsedRun:
    summary: dict[str, float] = {}
    for (group, name), (ours, factor) in CSV_LATENCIES.items():
        for stat, canon in CSV_STATS.items():
            v = _csv_number(cells, (group, name, stat), source, line)
            if v is not None:
                summary[f"{ours}_ms_{canon}"] = v * factor
        raw = cells.get((group, name, "Percentiles"))
        if raw:
            try:
                values = json.loads(raw)
            except ValueError:
                values = None
            if not isinstance(values, list) or len(values) != len(CSV_PERCENTILES):
                raise BenchFormatError(
                    f"{group} / {name} / Percentiles: expected a list of {len(CSV_PERCENTILES)} numbers", source, line
                )
            for p, v in zip(CSV_PERCENTILES, values, strict=True):
                summary[f"{ours}_ms_{p}"] = number(v, f"{group} / {name} / Percentiles", source, line) * factor
    for status, ours in (("Successful", "completed"), ("Errored", "failed"), ("Incomplete", "incomplete")):
        v = _csv_number(cells, ("Request Counts", status, ""), source, line)
        if v is not None:
            summary[ours] = v
    for (group, suffix), ours in CSV_RATES.items():
        parts = [
            _csv_number(cells, key, source, line)
            for key in cells
            if key[0] == group and key[2] == "Mean" and key[1] in {f"{s} {suffix}" for s in ("Successful", "Incomplete", "Errored")}
        ]  # fmt: skip
        if parts:
            summary[ours] = float(sum(p for p in parts if p is not None))
    for ours, name in (
        ("total_input_tokens", "Successful Input Tokens"),
        ("total_output_tokens", "Successful Output Tokens"),
    ):
        mean = _csv_number(cells, ("Token Metrics", name, "Mean"), source, line)
        if mean is not None and "completed" in summary:
            summary[ours] = mean * summary["completed"]
    duration = _csv_number(cells, ("Timings", "Duration", "Sec"), source, line)
    if duration is not None:
        summary["duration_s"] = duration
    end_local = None
    if cells.get(("Timings", "End Time", "")):
        try:
            end_local = datetime.strptime(cells[("Timings", "End Time", "")], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise BenchFormatError(
                f"Timings / End Time: expected YYYY-mm-dd HH:MM:SS, got {cells[('Timings', 'End Time', '')]!r}",
                source,
                line,
            ) from None
    label = cells.get(("Benchmark", "Strategy", "")) or ""
    kind, _, level = label.partition("@")
    concurrency = rate = None
    if kind == "synchronous":
        concurrency = 1
    elif level and kind in RATE_KINDS | {"concurrent"}:
        value = number(level, "Benchmark / Strategy", source, line)
        if kind == "concurrent":
            concurrency = int(value)
        else:
            rate = value
    backend = _csv_json(cells.get(("Run Info", "Backend", "")))
    runtime = _csv_json(cells.get(("Runtime Info", "Metadata", "")))
    extra = {"format": "benchmarks.csv", "strategy": label, "benchmark": f"{k + 1} of {n}"}
    return ParsedRun(
        tool="guidellm",
        source=f"{source}:{line}",
        summary=summary,
        meta={
            "model": backend.get("model"),
            "backend": backend.get("kind"),
            "concurrency": concurrency,
            "request_rate": rate,
            "extra": extra,
        },
        tool_version=runtime.get("guidellm_version"),
        end_local=end_local,
    )


def _csv_json(value: str | None) -> Mapping[str, Any]:
    try:
        obj = json.loads(value) if value else {}
    except ValueError:
        return {}
    return obj if isinstance(obj, Mapping) else {}
