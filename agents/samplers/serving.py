"""A serving engine's own Prometheus metrics (measurement `serving`): vLLM, SGLang, TGI, llama.cpp's server.

```toml
[[serving]]
group = "hive0"                              # the co-tenant group this engine serves (the victim's group)
url = "http://127.0.0.1:30000/metrics"
engine = "sglang"                            # vllm | sglang | tgi | llamacpp | auto (from the metric prefixes)
model = "meta-llama/Llama-3.1-8B-Instruct"   # optional: only this model_name (or: name the model of an engine
                                             # whose metrics carry no model label, TGI and llama.cpp)
bearer_token_file = "/etc/neighborscope/engine-token"   # or bearer_token = "..."
ca_file = "/etc/neighborscope/engine-ca.pem"            # https with a private CA; insecure_skip_verify = true
timeout_s = 2.0                              # per scrape; an endpoint that does not answer in time is down
```

Every tick each endpoint is scraped (in parallel, each with its own bounded timeout, so one slow endpoint cannot
stall the tick) and parsed with ``prometheus_client``'s text parser (`agents.promhist`). One row per
endpoint and model label per tick: rates from counter deltas over the interval between two scrapes, gauges as
read, and TTFT / ITL / TPOT / e2e / queue-time quantiles (p50, p90, p99) from the histogram *bucket deltas* over
the interval (PromQL's ``histogram_quantile``), with the interval's observation count and the bounds of the
bucket holding the p99 (the resolution: the p99 is only known to lie in that bucket).

A counter lower than at the last scrape (or a changed ``process_start_time_seconds``) means the engine
restarted: that interval's rates and quantiles are null and ``counter_reset`` is true. An endpoint that does not
answer, refuses the token or does not serve a Prometheus exposition gives a row with ``up`` false (the reason is
logged once and kept in `ServingSampler.last_error`), counts an error in the sampler's health, and the health
row's ``staleness_s`` shows the age of the stalest endpoint's last good scrape.

Metric names differ per engine and change between versions; `ENGINES` lists, per engine and per quantity, the
candidate names in order of preference (the first one present is used), with the source each was read from.
"""

from __future__ import annotations

import logging
import math
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.promhist import (
    Buckets,
    Exposition,
    ExpositionError,
    Labels,
    Sample,
    bucket_deltas,
    gauge_total,
    histogram_quantile,
    histogram_series,
    label,
    parse_exposition,
    summed,
)
from agents.samplers.base import Row, Rows, SamplerBase, SamplerContext, config_error, register
from telemetry.config import describe_validation_error
from telemetry.errors import ConfigError

log = logging.getLogger(__name__)

ENGINE_NAMES = ("vllm", "sglang", "tgi", "llamacpp")
LATENCIES = ("ttft", "itl", "tpot", "e2e", "queue")
QUANTILES = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"))
USER_AGENT = "neighborscope-serving-sampler"


@dataclass(frozen=True)
class EngineMetrics:
    """Where one engine keeps each quantity: candidate metric names, the first present wins.

    Counters are named without ``_total`` (the parser indexes them both ways; TGI's have none); a histogram's
    ``_sum`` or ``_count`` can stand in for a counter (TGI has no prompt-token counter, only the per-request
    input-length histogram). Histograms are named by family (without ``_bucket``), in seconds."""

    prefix: str
    model_label: str | None
    replica_labels: tuple[str, ...] = ()
    """Labels of data-parallel replicas (each its own batch): running / waiting gauges are summed over them and
    maxed over every other label (tensor-parallel ranks report the same batch)."""
    requests: tuple[str, ...] = ()
    prompt_tokens: tuple[str, ...] = ()
    generation_tokens: tuple[str, ...] = ()
    running: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    kv_usage: tuple[str, ...] = ()
    """Gauges of the KV-cache fraction in use (0..1)."""
    latency: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """ttft / itl / tpot / e2e / queue -> histogram families (seconds)."""
    prompt_len: tuple[str, ...] = ()
    """Histograms of each request's prompt length (tokens): the interval's mean prompt length."""
    hints: Mapping[str, str] = field(default_factory=dict)
    """metric name -> what its presence says about the engine's version (for ``neighborscope scrape``)."""


ENGINES: dict[str, EngineMetrics] = {
    # vLLM: vllm/v1/metrics/loggers.py (PrometheusStatLogger) in vllm-project/vllm, the 0.12 line (it reads
    # "Deprecated in 0.11 - Renamed as vllm:inter_token_latency_seconds / With 0.12.x you can enable with
    # --show-hidden-metrics-for-version=0.11" above vllm:time_per_output_token_seconds);
    # vllm:request_time_per_output_token_seconds is the per-request TPOT next to it; vllm:kv_cache_usage_perc
    # replaced vllm:gpu_cache_usage_perc (the V0 engine's name: vllm-project/aibrix docs/source/features/runtime.rst
    # records it from vLLM 0.6). The V1 engine adds an `engine` label (data-parallel rank): summed over.
    "vllm": EngineMetrics(
        prefix="vllm:",
        model_label="model_name",
        replica_labels=("engine",),
        requests=("vllm:request_success", "vllm:e2e_request_latency_seconds_count"),
        prompt_tokens=("vllm:prompt_tokens",),
        generation_tokens=("vllm:generation_tokens",),
        running=("vllm:num_requests_running",),
        waiting=("vllm:num_requests_waiting",),
        kv_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        latency={
            "ttft": ("vllm:time_to_first_token_seconds",),
            "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
            "tpot": ("vllm:request_time_per_output_token_seconds",),
            "e2e": ("vllm:e2e_request_latency_seconds",),
            "queue": ("vllm:request_queue_time_seconds",),
        },
        prompt_len=("vllm:request_prompt_tokens",),
        hints={
            "vllm:inter_token_latency_seconds": "vLLM >= 0.11 (inter_token_latency_seconds)",
            "vllm:time_per_output_token_seconds": "vLLM <= 0.11 (time_per_output_token_seconds, renamed in 0.11)",
            "vllm:kv_cache_usage_perc": "V1 engine (kv_cache_usage_perc)",
            "vllm:gpu_cache_usage_perc": "V0 engine or an older V1 (gpu_cache_usage_perc)",
            "vllm:num_requests_swapped": "V0 engine (num_requests_swapped)",
        },
    ),
    # SGLang: python/sglang/srt/metrics/collector.py (TokenizerMetricsCollector, SchedulerMetricsCollector) at
    # sgl-project/sglang main, Dec 2025; docs/references/production_metrics.md (an older release's exposition:
    # time_per_output_token_seconds only, no inter_token_latency_seconds, no queue_time_seconds). Later releases
    # add tp_rank / dp_rank / ... labels: summed over.
    "sglang": EngineMetrics(
        prefix="sglang:",
        model_label="model_name",
        replica_labels=("dp_rank",),
        requests=("sglang:num_requests", "sglang:e2e_request_latency_seconds_count"),
        prompt_tokens=("sglang:prompt_tokens",),
        generation_tokens=("sglang:generation_tokens",),
        running=("sglang:num_running_reqs",),
        waiting=("sglang:num_queue_reqs",),
        kv_usage=("sglang:token_usage",),
        latency={
            "ttft": ("sglang:time_to_first_token_seconds",),
            "itl": ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
            "tpot": ("sglang:time_per_output_token_seconds",),
            "e2e": ("sglang:e2e_request_latency_seconds",),
            "queue": ("sglang:queue_time_seconds",),
        },
        prompt_len=("sglang:prompt_tokens_histogram",),
        hints={
            "sglang:inter_token_latency_seconds": "a release with inter_token_latency_seconds (ITL apart from TPOT)",
            "sglang:queue_time_seconds": "a release with queue_time_seconds",
            "sglang:func_latency_seconds": "an older release (func_latency_seconds, as in the production_metrics docs)",
        },
    ),
    # TGI: router/src/server.rs at huggingface/text-generation-inference v3.3.7 (metrics::counter! /
    # histogram! / gauge! names; the exporter writes counters without _total). No TTFT or ITL histogram.
    "tgi": EngineMetrics(
        prefix="tgi_",
        model_label=None,
        requests=("tgi_request_success",),
        prompt_tokens=("tgi_request_input_length_sum",),
        generation_tokens=("tgi_request_generated_tokens_sum",),
        running=("tgi_batch_current_size",),
        waiting=("tgi_queue_size",),
        latency={
            "tpot": ("tgi_request_mean_time_per_token_duration",),
            "e2e": ("tgi_request_duration",),
            "queue": ("tgi_request_queue_duration",),
        },
        prompt_len=("tgi_request_input_length",),
    ),
    # llama.cpp server: tools/server/README.md "GET /metrics" at ggml-org/llama.cpp (llamacpp:prompt_tokens_total,
    # tokens_predicted_total, requests_processing, requests_deferred, kv_cache_usage_ratio in older builds).
    # No histograms and no request counter: rates of tokens, running / waiting and KV use only.
    "llamacpp": EngineMetrics(
        prefix="llamacpp:",
        model_label=None,
        prompt_tokens=("llamacpp:prompt_tokens",),
        generation_tokens=("llamacpp:tokens_predicted",),
        running=("llamacpp:requests_processing",),
        waiting=("llamacpp:requests_deferred",),
        kv_usage=("llamacpp:kv_cache_usage_ratio",),
        hints={"llamacpp:kv_cache_usage_ratio": "an older llama.cpp build (kv_cache_usage_ratio, since removed)"},
    ),
}


def engine_lines(text: str) -> dict[str, int]:
    """engine -> how many lines of a raw exposition start with its prefix (cheap: no parsing)."""
    return {e: text.count("\n" + m.prefix) + text.startswith(m.prefix) for e, m in ENGINES.items()}


def family_prefixes(engine: str) -> tuple[str, ...]:
    """The metric-name prefixes the sampler reads for ``engine`` (every candidate, its version hints, and
    ``process_start_time_seconds``): what `agents.promhist.select_families` keeps."""
    m = ENGINES[engine]
    names = [*m.requests, *m.prompt_tokens, *m.generation_tokens, *m.running, *m.waiting, *m.kv_usage, *m.prompt_len]
    names += [n for ns in m.latency.values() for n in ns] + list(m.hints)
    bases = {n.removesuffix("_count").removesuffix("_sum") for n in names}
    return (*sorted(bases), "process_start_time_seconds")


def detect_engine(expo: Exposition) -> str | None:
    """The engine whose metric prefix has the most samples (``vllm:``, ``sglang:``, ``tgi_``, ``llamacpp:``)."""
    hits = {e: sum(1 for n in expo.samples if n.startswith(m.prefix)) for e, m in ENGINES.items()}
    best = max(hits, key=lambda e: hits[e])
    return best if hits[best] else None


def _has_counter(expo: Exposition, name: str) -> bool:
    return name in expo.samples


def _has_histogram(expo: Exposition, name: str) -> bool:
    return f"{name}_bucket" in expo.samples


def found_metrics(expo: Exposition, engine: str) -> dict[str, str | None]:
    """quantity -> the metric name used for it in this exposition (None: none of the candidates is there)."""
    m = ENGINES[engine]
    out: dict[str, str | None] = {}
    for role in ("requests", "prompt_tokens", "generation_tokens", "running", "waiting", "kv_usage"):
        out[role] = next((n for n in getattr(m, role) if _has_counter(expo, n)), None)
    for role in LATENCIES:
        out[role] = next((n for n in m.latency.get(role, ()) if _has_histogram(expo, n)), None)
    out["prompt_len"] = next((n for n in m.prompt_len if _has_histogram(expo, n)), None)
    return out


def version_hints(expo: Exposition, engine: str) -> list[str]:
    """What the metric names present say about the engine's version."""
    hints = ENGINES[engine].hints
    return [text for name, text in hints.items() if _has_counter(expo, name) or _has_histogram(expo, name)]


# --- one scrape, reduced to what a row needs --------------------------------------------------------------


@dataclass
class ModelReading:
    """One model's quantities in one scrape (cumulative counters as read)."""

    counters: dict[str, float] = field(default_factory=dict)
    """requests / prompt_tokens / generation_tokens -> cumulative value."""
    gauges: dict[str, float] = field(default_factory=dict)
    """running / waiting (summed over series) and kv_usage (mean over series, fraction)."""
    histograms: dict[str, tuple[Buckets, float]] = field(default_factory=dict)
    """ttft / itl / tpot / e2e / queue / prompt_len -> (cumulative buckets, _sum)."""
    raw: dict[str, float] = field(default_factory=dict)
    """Every cumulative value read (counter, bucket, _count, _sum), keyed by metric name: the reset check."""
    names: dict[str, str] = field(default_factory=dict)
    """quantity -> the metric it was read from: two scrapes are compared only where the names agree (an engine
    upgraded between them may have renamed it, or a preferred metric may have appeared)."""


@dataclass
class Reading:
    """One scrape of one endpoint."""

    at: float
    """Monotonic time the answer arrived."""
    engine: str
    models: dict[str | None, ModelReading]
    found: dict[str, str | None]
    start_time_s: float | None
    """``process_start_time_seconds`` when exposed (a restart changes it)."""
    exposition: Exposition | None = None
    """The parsed scrape (kept for ``neighborscope scrape``'s report, only the last one per endpoint)."""
    engines_seen: dict[str, int] = field(default_factory=dict)
    """engine -> lines with its prefix in the raw answer (before the families the sampler reads were selected)."""


def _keyed(values: Mapping[Labels, float], model_label: str | None) -> dict[str | None, float]:
    return {(label(k, model_label) if model_label else None): v for k, v in values.items()}


def read_exposition(expo: Exposition, engine: str, at: float, model_filter: str | None = None) -> Reading:
    """Reduce a parsed exposition to per-model readings for ``engine`` (series summed over every label but the
    engine's model label)."""
    m = ENGINES[engine]
    keep = (m.model_label,) if m.model_label else ()
    found = found_metrics(expo, engine)
    per_role: dict[str, dict[str | None, Any]] = {}
    for role in ("requests", "prompt_tokens", "generation_tokens"):
        name = found[role]
        if name is not None:
            per_role[role] = _keyed(summed(expo.values(name), keep), m.model_label)
    for role in ("running", "waiting"):
        name = found[role]
        if name is not None:
            per_role[role] = _keyed(gauge_total(expo.values(name), keep, m.replica_labels), m.model_label)
    if found["kv_usage"] is not None:
        sums = _keyed(summed(expo.values(found["kv_usage"]), keep), m.model_label)
        ones = _keyed(summed(_ones(expo.values(found["kv_usage"])), keep), m.model_label)
        per_role["kv_usage"] = {k: sums[k] / ones[k] for k in sums if ones.get(k)}
    for role in (*LATENCIES, "prompt_len"):
        name = found[role]
        if name is not None:
            per_role[role] = {
                (label(k, m.model_label) if m.model_label else None): v
                for k, v in histogram_series(expo, name, keep).items()
            }
    names = {k for values in per_role.values() for k in values if k is not None}
    if model_filter is not None and m.model_label:
        names = {n for n in names if n == model_filter}
    models: list[str | None] = sorted(names) if names else [None]
    if model_filter is not None and m.model_label and not names:
        models = []
    readings: dict[str | None, ModelReading] = {}
    for model in models:
        r = ModelReading()
        for role, values in per_role.items():
            value = values.get(model)
            if value is None and len(models) == 1:
                value = values.get(None)  # a series without the model label, and only one model: it is that model's
            if value is None:
                continue
            name = found[role] or role
            r.names[role] = name
            if role in ("requests", "prompt_tokens", "generation_tokens"):
                r.counters[role] = value
                r.raw[name] = value
            elif role in ("running", "waiting", "kv_usage"):
                r.gauges[role] = value
            else:
                buckets, total = value
                r.histograms[role] = value
                r.raw.update({f"{name}:{le}": c for le, c in buckets})
                if not math.isnan(total):
                    r.raw[f"{name}:sum"] = total
        readings[model if m.model_label else (model_filter if model_filter is not None else None)] = r
    start = expo.values("process_start_time_seconds")
    return Reading(at, engine, readings, found, start[0].value if start else None, expo)


def _ones(samples: Sequence[Sample]) -> list[Sample]:
    return [Sample(s.name, s.labels, 1.0) for s in samples]


# --- the row of one interval -----------------------------------------------------------------------------


def _ms(v: float | None) -> float | None:
    return None if v is None or math.isinf(v) else v * 1e3


def interval_row(now: ModelReading, before: ModelReading | None, dt: float | None, reset: bool) -> Row:
    """The `serving` fields of one model over the interval between two readings (``before`` None: first scrape).

    Rates and quantiles are null on the first scrape and when a counter went down (``reset``)."""
    row: Row = {
        "requests_running": now.gauges.get("running"),
        "requests_waiting": now.gauges.get("waiting"),
        "kv_cache_usage_pct": None if now.gauges.get("kv_usage") is None else 100.0 * now.gauges["kv_usage"],
        "interval_s": dt,
        "up": True,
        "counter_reset": reset,
    }
    usable = before is not None and not reset and dt is not None and dt > 0

    def same(role: str) -> bool:
        return usable and role in now.names and now.names[role] == before.names.get(role)  # type: ignore[union-attr]

    for role, fname in (
        ("requests", "requests_per_s"),
        ("prompt_tokens", "prompt_tokens_per_s"),
        ("generation_tokens", "generation_tokens_per_s"),
    ):
        row[fname] = None
        if same(role) and role in now.counters and role in before.counters:  # type: ignore[union-attr]
            row[fname] = (now.counters[role] - before.counters[role]) / dt  # type: ignore[union-attr,operator]
    for role in LATENCIES:
        for _, qname in QUANTILES:
            row[f"{role}_ms_{qname}"] = None
        row[f"{role}_count"] = None
        row[f"{role}_ms_p99_bucket_lo"] = row[f"{role}_ms_p99_bucket_hi"] = None
        if not same(role) or role not in now.histograms or role not in before.histograms:  # type: ignore[union-attr]
            continue
        deltas = bucket_deltas(now.histograms[role][0], before.histograms[role][0])  # type: ignore[union-attr]
        if deltas is None or not math.isinf(deltas[-1][0]):
            continue
        row[f"{role}_count"] = round(deltas[-1][1])
        for q, qname in QUANTILES:
            got = histogram_quantile(q, deltas)
            if got is None:
                continue
            row[f"{role}_ms_{qname}"] = _ms(got.value)
            if qname == "p99":
                row[f"{role}_ms_p99_bucket_lo"] = _ms(got.bucket_lo)
                row[f"{role}_ms_p99_bucket_hi"] = _ms(got.bucket_hi)
    row["prompt_tokens_mean"] = None
    if usable:
        row["prompt_tokens_mean"] = _prompt_mean(now, before)  # type: ignore[arg-type]
    return row


def _prompt_mean(now: ModelReading, before: ModelReading) -> float | None:
    """Mean prompt length of the interval: the per-request prompt histogram's Δsum / Δcount; without that
    histogram, Δprompt tokens / Δrequests (approximate: prompt tokens count at prefill, requests at the end)."""
    if "prompt_len" in now.histograms and now.names.get("prompt_len") == before.names.get("prompt_len"):
        (b1, s1), (b0, s0) = now.histograms["prompt_len"], before.histograms["prompt_len"]
        n = (b1[-1][1] - b0[-1][1]) if b1 and b0 and math.isinf(b1[-1][0]) and math.isinf(b0[-1][0]) else 0
        if n > 0 and not math.isnan(s1 - s0):
            return (s1 - s0) / n
        return None
    if any(now.names.get(k) != before.names.get(k) for k in ("prompt_tokens", "requests")):
        return None
    dp = _delta(now.counters, before.counters, "prompt_tokens")
    dr = _delta(now.counters, before.counters, "requests")
    return dp / dr if dp is not None and dr else None


def _delta(now: Mapping[str, float], before: Mapping[str, float], key: str) -> float | None:
    return now[key] - before[key] if key in now and key in before else None


def went_down(now: Reading, before: Reading, model: str | None) -> bool:
    """A counter, bucket or histogram sum of ``model`` is lower than at the last scrape, or the process restarted."""
    if now.start_time_s is not None and before.start_time_s is not None and now.start_time_s != before.start_time_s:
        return True
    a, b = now.models.get(model), before.models.get(model)
    if a is None or b is None:
        return False
    return any(k in b.raw and v < b.raw[k] for k, v in a.raw.items())


# --- the config of one endpoint ----------------------------------------------------------------------------

EngineName = Literal["auto", "vllm", "sglang", "tgi", "llamacpp"]


class ServingEndpoint(BaseModel):
    """One ``[[serving]]`` entry of the node config."""

    model_config = ConfigDict(strict=True, extra="forbid")

    group: Annotated[str, Field(min_length=1)]
    url: str
    engine: EngineName = "auto"
    model: str | None = None
    bearer_token: str | None = None
    bearer_token_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        return v

    @property
    def endpoint(self) -> str:
        """The ``endpoint`` tag: host:port of the URL (no credentials, no path), the port the scheme's when absent."""
        parts = urllib.parse.urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must look like http(s)://HOST[:PORT]/metrics, not {v!r}")
        return v

    @model_validator(mode="after")
    def _one_token(self) -> ServingEndpoint:
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("give bearer_token or bearer_token_file, not both")
        if self.ca_file and self.insecure_skip_verify:
            raise ValueError("give ca_file or insecure_skip_verify = true, not both")
        return self


class _ServingList(BaseModel):
    model_config = ConfigDict(strict=True)
    serving: list[ServingEndpoint]


def endpoints_from_options(raw: Any, source: str = "agent.toml") -> list[ServingEndpoint]:
    """``[[serving]]`` entries (dicts) -> validated endpoints; `ConfigError` with one line per problem, e.g.
    ``agent.toml: serving[1].engine: Input should be 'auto', 'vllm', 'sglang', 'tgi' or 'llamacpp' (got 'x')``."""
    try:
        endpoints = _ServingList.model_validate({"serving": raw}).serving
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None
    seen: dict[str, int] = {}
    problems = []
    for i, ep in enumerate(endpoints):
        if ep.url in seen:
            problems.append(f"{source}: serving[{i}].url: {ep.url} is already scraped by serving[{seen[ep.url]}]")
        seen.setdefault(ep.url, i)
    if problems:
        raise ConfigError("\n".join(problems))
    return endpoints


# --- HTTP ---------------------------------------------------------------------------------------------------


class Scraper:
    """GETs one endpoint's ``/metrics`` (TLS with a CA file or unverified, a bearer token) with a bounded timeout."""

    def __init__(self, ep: ServingEndpoint, base_dir: Path | None = None) -> None:
        self.ep = ep
        self.base_dir = base_dir
        verify: bool | ssl.SSLContext = True
        if ep.insecure_skip_verify:
            verify = False
        elif ep.ca_file:
            verify = ssl.create_default_context(cafile=str(self._path(ep.ca_file)))
        t = ep.timeout_s
        self.client = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(t, connect=min(t, 2.0)),
            headers={"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1", "User-Agent": USER_AGENT},
            follow_redirects=True,
        )

    def _path(self, p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    def token(self) -> str | None:
        if self.ep.bearer_token is not None:
            return self.ep.bearer_token
        if self.ep.bearer_token_file:
            path = self._path(self.ep.bearer_token_file)
            try:
                return path.read_text().strip()  # read each scrape: rotated tokens (Kubernetes) are picked up
            except OSError as exc:
                raise ScrapeError(f"cannot read the bearer token file {path}: {exc.strerror}") from None
        return None

    def get(self) -> str:
        """The body of one scrape; `ScrapeError` with a one-line reason otherwise."""
        headers = {}
        token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = self.client.get(self.ep.url, headers=headers)
        except httpx.TimeoutException:
            raise ScrapeError(f"no answer within {self.ep.timeout_s:g} s") from None
        except httpx.ConnectError as exc:
            raise ScrapeError(f"cannot connect: {_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise ScrapeError(f"{type(exc).__name__}: {_reason(exc)}") from None
        if resp.status_code in (401, 403):
            why = "no bearer token given" if not token else "the bearer token was refused"
            raise ScrapeError(f"HTTP {resp.status_code}: {why}")
        if resp.status_code != 200:
            raise ScrapeError(f"HTTP {resp.status_code} {resp.reason_phrase}")
        return resp.text

    def close(self) -> None:
        self.client.close()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


class ScrapeError(Exception):
    """One endpoint could not be read this tick (one line: why)."""


def scrape_once(scraper: Scraper, model_filter: str | None, engine: str, clock: Callable[[], float]) -> Reading:
    """Scrape, parse and reduce one endpoint; `ScrapeError` when it is down or not a serving engine."""
    body = scraper.get()
    at = clock()
    seen = engine_lines(body)
    eng = engine if engine != "auto" else max(seen, key=lambda e: seen[e])
    try:
        if not seen[eng]:
            parse_exposition(body)  # not an exposition at all (an HTML page)? say so; else: no engine metrics
            raise ScrapeError(
                f"no {ENGINES[eng].prefix} metric in the exposition"
                if engine != "auto"
                else "no vllm:, sglang:, "
                "tgi_ or llamacpp: metric in the exposition (is this a serving engine's /metrics? SGLang needs "
                "--enable-metrics)"
            )
        expo = parse_exposition(body, family_prefixes(eng))
    except ExpositionError as exc:
        raise ScrapeError(str(exc)) from None
    reading = read_exposition(expo, eng, at, model_filter)
    reading.engines_seen = {e: n for e, n in seen.items() if n}
    return reading


# --- the sampler ---------------------------------------------------------------------------------------------


@dataclass
class _State:
    last: Reading | None = None
    last_ok_wall: float | None = None
    engine: str | None = None
    error: str | None = None
    models: list[str | None] = field(default_factory=list)


@register("serving")
class ServingSampler(SamplerBase):
    """Serving engines' request rates, queue, KV cache and latency quantiles, per endpoint and model."""

    fields: ClassVar = {
        "serving": (
            "requests_per_s",
            "prompt_tokens_per_s",
            "generation_tokens_per_s",
            "requests_running",
            "requests_waiting",
            "kv_cache_usage_pct",
            "prompt_tokens_mean",
            *(f"{r}_ms_{q}" for r in LATENCIES for _, q in QUANTILES),
            *(f"{r}_count" for r in LATENCIES),
            *(f"{r}_ms_p99_bucket_{b}" for r in LATENCIES for b in ("lo", "hi")),
            "interval_s",
            "up",
            "counter_reset",
        )
    }
    enabled_by_default: ClassVar = "auto"  # the config turns "auto" on when [[serving]] entries exist
    order: ClassVar = 80  # feeds nothing and reads nothing of the others

    def __init__(
        self,
        endpoints: Sequence[ServingEndpoint],
        base_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        quiet: bool = False,
    ) -> None:
        super().__init__()
        self.quiet = quiet  # True: no log lines (`neighborscope scrape` prints the reasons itself)
        if not endpoints:
            raise LookupError("no [[serving]] endpoint configured")
        self.endpoints = list(endpoints)
        self.scrapers = [Scraper(ep, base_dir) for ep in self.endpoints]
        self.clock = clock
        self.wall = wall
        self.errors = 0
        self._state = [_State(engine=None if ep.engine == "auto" else ep.engine) for ep in self.endpoints]
        self._pool = ThreadPoolExecutor(max_workers=min(16, len(self.endpoints)), thread_name_prefix="serving-scrape")
        self._inflight: list[Future[Reading | ScrapeError] | None] = [None] * len(self.endpoints)
        self.deadline_s = max(ep.timeout_s for ep in self.endpoints) + 1.0
        """The longest a read waits for its scrapes (httpx's timeout is per phase: a server that trickles bytes
        could take longer); a scrape still running then is down this tick and is not started again until done."""
        self._started_wall = wall()
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> ServingSampler:
        opts = dict(ctx.options)
        raw = opts.pop("endpoints", [])
        base_dir = opts.pop("base_dir", None)
        source = opts.pop("source", "agent.toml")
        if opts:
            raise config_error(
                f"unknown option(s) {sorted(opts)} (the endpoints are [[serving]] entries)", "samplers.serving"
            )
        endpoints = endpoints_from_options(raw, str(source))
        return cls(endpoints, Path(base_dir) if base_dir else None)

    @property
    def last_reading(self) -> dict[str, Reading | None]:
        """url -> its last good scrape (None: none yet)."""
        return {ep.url: st.last for ep, st in zip(self.endpoints, self._state, strict=True)}

    @property
    def last_error(self) -> dict[str, str | None]:
        """url -> why its last scrape failed (None: it answered)."""
        return {ep.url: st.error for ep, st in zip(self.endpoints, self._state, strict=True)}

    def _scrape(self, i: int) -> Reading | ScrapeError:
        ep = self.endpoints[i]
        try:
            return scrape_once(self.scrapers[i], ep.model, ep.engine, self.clock)
        except ScrapeError as exc:
            return exc
        except Exception as exc:  # a bug or an unexpected library error: this endpoint is down, the tick goes on
            return ScrapeError(f"{type(exc).__name__}: {_reason(exc)}")

    def read(self, ts: float) -> Rows:
        results = self._scrape_all()
        rows: list[Row] = []
        claimed: dict[tuple[str, str | None, str | None, str | None], str] = {}
        for ep, st, got in zip(self.endpoints, self._state, results, strict=True):
            for row in self._rows(ep, st, got):
                key = (row["group"], row.get("engine"), row.get("model"), row.get("endpoint"))
                if key in claimed and claimed[key] != ep.url:
                    self.errors += 1
                    if (claimed[key], ep.url) in self._warned or self.quiet:
                        continue
                    self._warned.add((claimed[key], ep.url))
                    log.warning(
                        "serving endpoints %s and %s both report group %r, engine %r, model %r at %r: keeping the "
                        "first; give them different groups",
                        claimed[key],
                        ep.url,
                        *key,
                    )
                    continue
                claimed[key] = ep.url
                rows.append(row)
        for row in rows:
            self.mark_row(f"{row['group']}/{row.get('model') or ''}", self.fields["serving"], row)
        return {"serving": rows}

    def _scrape_all(self) -> list[Reading | ScrapeError]:
        out: list[Reading | ScrapeError | None] = [None] * len(self.endpoints)
        for i, fut in enumerate(self._inflight):
            if fut is not None and not fut.done():
                out[i] = ScrapeError("the previous scrape is still running (the endpoint is too slow)")
            else:
                self._inflight[i] = self._pool.submit(self._scrape, i)
        pending = [f for i, f in enumerate(self._inflight) if out[i] is None and f is not None]
        wait(pending, timeout=self.deadline_s)
        for i, fut in enumerate(self._inflight):
            if out[i] is not None or fut is None:
                continue
            if fut.done():
                out[i] = fut.result()
                self._inflight[i] = None
            else:
                out[i] = ScrapeError(f"no answer within {self.deadline_s:g} s")
        return [r if r is not None else ScrapeError("not scraped") for r in out]

    def _rows(self, ep: ServingEndpoint, st: _State, got: Reading | ScrapeError) -> list[Row]:
        if isinstance(got, ScrapeError):
            self.errors += 1
            if str(got) != st.error and not self.quiet:
                log.warning("serving endpoint %s is down: %s", ep.url, got)
            st.error = str(got)
            return [
                {"group": ep.group, "engine": st.engine, "model": model, "endpoint": ep.endpoint, "up": False}
                for model in (st.models or [ep.model])
            ]
        if st.error is not None and not self.quiet:
            log.info("serving endpoint %s answers again", ep.url)
        st.error = None
        st.engine = got.engine
        before = st.last
        if before is not None and before.engine != got.engine:
            before = None  # another engine now answers at this URL: start afresh
        rows = []
        for model, reading in got.models.items():
            prev = before.models.get(model) if before is not None else None
            dt = got.at - before.at if before is not None else None
            reset = before is not None and prev is not None and went_down(got, before, model)
            row = interval_row(reading, prev, dt, reset)
            row.update({"group": ep.group, "engine": got.engine, "model": model, "endpoint": ep.endpoint})
            rows.append(row)
        st.last = got
        st.last_ok_wall = self.wall()
        st.models = list(got.models)
        return rows

    def staleness_s(self, now: float) -> float | None:
        """Age of the stalest endpoint's last good scrape, when an endpoint failed this tick (None: all answered)."""
        ages = [
            now - (st.last_ok_wall if st.last_ok_wall is not None else self._started_wall)
            for st in self._state
            if st.error is not None
        ]
        return max(0.0, max(ages)) if ages else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for s in self.scrapers:
            s.close()
