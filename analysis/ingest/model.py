"""The normalised benchmark model: one `Run` per benchmark run, its requests and its tokens, on the telemetry clock.

Every parser (`analysis/ingest/<tool>.py`) turns a tool's file into `ParsedRun` values (the tool's own clock);
`analysis.ingest.timing.resolve` puts them on the wall clock and gives `Run` values; `write_run` stores them.

Frame layouts (what analysis reads back)
========================================

**requests** (``Run.requests``; artifact ``bench/<run_id>/requests``), one row per request in dispatch order:

=================  ======================  =====================================================================
column             dtype                   meaning
=================  ======================  =====================================================================
run_id             String
request_index      Int64                   position in the run (0-based, the tool's order)
time               Datetime(ns, UTC)       request start on the wall clock (see ``timing``)
ttft_ms            Float64                 time to first token (null if failed)
e2e_ms             Float64                 request latency (tool's value, else ttft + sum(itl))
tpot_ms            Float64                 (e2e - ttft) / (output_tokens - 1), null when output_tokens < 2
itl_ms             List(Float64)           gaps between streamed chunks after the first (ms); a chunk may
                                           hold several tokens (spec decoding, stream intervals)
input_tokens       Int64
output_tokens      Int64
error              String                  null when the request succeeded
timing             String                  wall_clock | reconstructed | unaligned (see below)
=================  ======================  =====================================================================

**bench_request** measurement (the store rows, `telemetry.schema.BENCH_REQUEST`): the requests frame minus the
ITL list, plus ``itl_ms_mean`` / ``itl_ms_max`` / ``success`` and the tags node, run_id, group, phase, tool.

**tokens** (artifact ``bench/<run_id>/tokens``; `tokens_frame(run)`), one row per streamed chunk of a
successful request: the per-token emission times, so analysis can compute windowed p99 ITL and tokens/s on the
telemetry clock.

=================  ======================  =====================================================================
run_id             String
request_index      Int64
token_index        Int64                   0 = the first chunk (emitted at start + TTFT), then one per ITL
time               Datetime(ns, UTC)       emission = start + ttft + cumsum(itl)
itl_ms             Float64                 gap to the previous chunk (null for token_index 0)
tokens             Int64                   tokens in this chunk (1 normally; spread evenly over the chunks
                                           when output_tokens differs from the number of chunks)
=================  ======================  =====================================================================

**run_event** measurement (`telemetry.schema.RUN_EVENT`), per run: ``event=start`` at the run start,
``event=end`` at the run end, ``event=summary`` at the run start with ``metadata_json`` = `Run.to_json()`
(metadata + summary metrics in canonical names). `load_run(store, run_id)` rebuilds the `Run`.

When a run happened (``Run.start`` / ``end`` / ``time_source`` / ``timed`` / ``import_seq``): nothing is made up; a
summary without a tool or wrapper time has no start, and analysis orders it by ``import_seq`` (docs/benchmarks.md).

Timing quality (``timing``): ``wall_clock`` = the tool logged wall-clock starts (AIPerf, llama-benchy progress);
``reconstructed`` = monotonic ``start_times`` mapped through a wall/monotonic pair, or a replay of a
fixed-concurrency dispatch, anchored at the run start; ``unaligned`` = per-request values are known but their start
times are not (finite request rate without start times): ``time`` is the run start; ``summary_only`` (runs only):
no per-request data.

Summary metric names (``Run.summary``, all floats): ``completed``, ``failed``, ``duration_s``,
``total_input_tokens``, ``total_output_tokens``, ``requests_per_s``, ``goodput_requests_per_s``, ``input_tok_s``,
``output_tok_s``, ``total_tok_s``, ``peak_output_tok_s``, ``peak_concurrent_requests``, ``concurrency_mean``,
``{ttft,tpot,itl,e2e}_ms_{mean,std,min,max,p50,p90,p95,p99,...}`` (``p99.9`` is ``p99_9``), plus tool-specific
names documented in each parser (``prefill_tok_s``, ``ttfr_ms_mean``, ...).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import polars as pl

from telemetry.errors import StoreError
from telemetry.schema import conform

Clock = Literal["epoch", "monotonic", "none"]
Timing = Literal["wall_clock", "reconstructed", "unaligned", "summary_only"]

TIME_DTYPE = pl.Datetime("ns", "UTC")

# What a parser hands over: requests on the tool's own clock (``start_s`` means what ``ParsedRun.clock`` says).
RAW_REQUESTS_SCHEMA: dict[str, pl.DataType] = {
    "request_index": pl.Int64(),
    "start_s": pl.Float64(),
    "ttft_ms": pl.Float64(),
    "e2e_ms": pl.Float64(),
    "itl_ms": pl.List(pl.Float64()),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "error": pl.String(),
}

REQUESTS_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "request_index": pl.Int64(),
    "time": TIME_DTYPE,
    "ttft_ms": pl.Float64(),
    "e2e_ms": pl.Float64(),
    "tpot_ms": pl.Float64(),
    "itl_ms": pl.List(pl.Float64()),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "error": pl.String(),
    "timing": pl.String(),
}

TOKENS_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "request_index": pl.Int64(),
    "token_index": pl.Int64(),
    "time": TIME_DTYPE,
    "itl_ms": pl.Float64(),
    "tokens": pl.Int64(),
}

LATENCY_METRICS = ("ttft", "tpot", "itl", "e2e")


def raw_requests(columns: Mapping[str, Any]) -> pl.DataFrame:
    """Build a raw requests frame (parser output) from columns; missing columns become nulls."""
    n = max((len(v) for v in columns.values() if v is not None), default=0)
    data = {}
    for name, dtype in RAW_REQUESTS_SCHEMA.items():
        values = columns.get(name)
        data[name] = pl.Series(name, [None] * n if values is None else values, dtype=dtype, strict=False)
    return pl.DataFrame(data)


@dataclass(frozen=True)
class ParsedRun:
    """One run as a parser read it, before it is put on the wall clock.

    ``clock`` says what ``requests.start_s`` means: ``epoch`` (Unix seconds), ``monotonic`` (the benchmark host's
    ``time.perf_counter()``), ``none`` (no start times). ``start_epoch_s`` / ``end_epoch_s`` are run-level wall
    clock the tool wrote (exact); ``end_local`` a naive local end time (e.g. vLLM's ``date``, 1 s resolution).
    """

    tool: str
    source: str
    summary: Mapping[str, float]
    meta: Mapping[str, Any] = field(default_factory=dict)
    tool_version: str | None = None
    requests: pl.DataFrame | None = None
    clock: Clock = "none"
    start_epoch_s: float | None = None
    end_epoch_s: float | None = None
    end_local: datetime | None = None
    end_utc: datetime | None = None


META_KEYS = (
    "model",
    "backend",
    "isl",
    "osl",
    "concurrency",
    "request_rate",
    "num_prompts",
    "tp",
    "ep",
    "pp",
)


@dataclass(frozen=True)
class Run:
    """A normalised benchmark run on the telemetry clock.

    ``requests`` follows the requests layout above (None for summary-only runs). ``extra`` holds whatever else the
    tool wrote that has no canonical name (labels, metadata keys, the printed block's title, ...).

    When the run happened: ``start`` / ``end`` (None when unknown: no time is made up), ``time_source`` (where
    ``start`` came from, `analysis.ingest.timing`), ``timed`` (True: ``start`` is a wall-clock time the tool or the
    wrapper recorded; False: unknown, or only guessed from the file's modification time for per-request rows that
    need a place on the clock). ``import_seq``: the import order (`time.time_ns()` when stored, strictly increasing
    within a process), set by `write_run`; analysis orders runs without ``timed`` starts by it.
    """

    run_id: str
    tool: str
    source: str
    summary: Mapping[str, float]
    start: datetime | None = None
    end: datetime | None = None
    timing: Timing = "summary_only"
    time_source: str = ""
    timed: bool | None = None
    import_seq: int | None = None
    tool_version: str | None = None
    node: str = ""
    group: str = ""
    phase: str = ""
    model: str | None = None
    backend: str | None = None
    isl: int | None = None
    osl: int | None = None
    concurrency: int | None = None
    request_rate: float | None = None
    num_prompts: int | None = None
    tp: int | None = None
    ep: int | None = None
    pp: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    requests: pl.DataFrame | None = field(default=None, compare=False, repr=False)

    @property
    def duration_s(self) -> float | None:
        return self.summary.get("duration_s")

    def to_json(self) -> str:
        """Metadata + summary as JSON (no per-request data); `from_json` reads it back."""
        d = asdict(self) if self.requests is None else asdict(_without_requests(self))
        d.pop("requests", None)
        d["start"] = _iso(self.start)
        d["end"] = _iso(self.end)
        d["summary"] = {k: _json_float(v) for k, v in self.summary.items()}
        return json.dumps(d, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str, requests: pl.DataFrame | None = None) -> Run:
        d = json.loads(text)
        d["start"] = _from_iso(d.get("start"))
        d["end"] = _from_iso(d.get("end"))
        d["summary"] = {k: (math.nan if v is None else float(v)) for k, v in d.get("summary", {}).items()}
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known}, requests=requests)


def _without_requests(run: Run) -> Run:
    from dataclasses import replace

    return replace(run, requests=None)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


def _json_float(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


# ---------------------------------------------------------------------------------------------------------------
# Percentiles and summaries, the tools' way (numpy linear interpolation, as vLLM, SGLang and AIPerf use)


def percentile_key(p: float) -> str:
    """99 -> 'p99', 99.9 -> 'p99_9', 50 -> 'p50'."""
    text = f"{p:g}".replace(".", "_")
    return f"p{text}"


def latency_stats(name: str, values: np.ndarray, percentiles: Sequence[float] = (50, 90, 95, 99)) -> dict[str, float]:
    """mean / std / min / max / percentiles of ``values`` (ms) under canonical names ``{name}_ms_*``."""
    if values.size == 0:
        return {}
    out = {
        f"{name}_ms_mean": float(np.mean(values)),
        f"{name}_ms_std": float(np.std(values)),
        f"{name}_ms_min": float(np.min(values)),
        f"{name}_ms_max": float(np.max(values)),
    }
    qs = np.percentile(values, list(percentiles))
    for p, q in zip(percentiles, qs, strict=True):
        out[f"{name}_ms_{percentile_key(p)}"] = float(q)
    return out


def summary_from_requests(
    requests: pl.DataFrame, duration_s: float | None = None, percentiles: Sequence[float] = (50, 90, 95, 99)
) -> dict[str, float]:
    """Recompute the summary from per-request data, the way vLLM / SGLang do.

    Successful requests only; TPOT per request = (e2e - ttft) / (output_tokens - 1) for output_tokens > 1; ITL
    pooled over all chunk gaps; throughputs over ``duration_s`` when given.
    """
    ok = requests.filter(pl.col("error").is_null())
    out: dict[str, float] = {"completed": float(ok.height), "failed": float(requests.height - ok.height)}
    out["total_input_tokens"] = float(ok["input_tokens"].fill_null(0).sum())
    out["total_output_tokens"] = float(ok["output_tokens"].fill_null(0).sum())
    ttft = ok["ttft_ms"].drop_nulls().to_numpy()
    e2e = ok["e2e_ms"].drop_nulls().to_numpy()
    tp = ok.filter(pl.col("output_tokens") > 1).select(
        ((pl.col("e2e_ms") - pl.col("ttft_ms")) / (pl.col("output_tokens") - 1)).alias("tpot")
    )
    tpot = tp["tpot"].drop_nulls().to_numpy()
    itl = ok["itl_ms"].explode().drop_nulls().to_numpy()
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e)):
        out.update(latency_stats(name, values, percentiles))
    if duration_s:
        duration_s = float(duration_s)
        out["duration_s"] = duration_s
        out["requests_per_s"] = ok.height / duration_s
        out["input_tok_s"] = out["total_input_tokens"] / duration_s
        out["output_tok_s"] = out["total_output_tokens"] / duration_s
        out["total_tok_s"] = (out["total_input_tokens"] + out["total_output_tokens"]) / duration_s
    return out


# ---------------------------------------------------------------------------------------------------------------
# Frames


def requests_frame(run: Run) -> pl.DataFrame:
    """The run's requests layout (empty frame for a summary-only run)."""
    if run.requests is None:
        return pl.DataFrame(schema=REQUESTS_SCHEMA)
    return run.requests.select(list(REQUESTS_SCHEMA))


def bench_request_frame(run: Run) -> pl.DataFrame:
    """Rows of the ``bench_request`` measurement for this run (conformed to the schema)."""
    req = requests_frame(run)
    frame = req.select(
        pl.col("time"),
        pl.lit(run.node).alias("node"),
        pl.col("run_id"),
        pl.lit(run.group).alias("group"),
        pl.lit(run.phase).alias("phase"),
        pl.lit(run.tool).alias("tool"),
        pl.col("request_index"),
        pl.col("ttft_ms"),
        pl.col("tpot_ms"),
        pl.col("e2e_ms"),
        pl.col("itl_ms").list.mean().alias("itl_ms_mean"),
        pl.col("itl_ms").list.max().alias("itl_ms_max"),
        pl.col("input_tokens"),
        pl.col("output_tokens"),
        pl.col("error").is_null().alias("success"),
        pl.col("error"),
        pl.col("timing"),
    )
    return conform(frame, "bench_request")


def tokens_frame(run: Run | pl.DataFrame) -> pl.DataFrame:
    """Per-chunk emission times of the successful requests (tokens layout), from start + TTFT + cumsum(ITL)."""
    req = run if isinstance(run, pl.DataFrame) else requests_frame(run)
    ok = req.filter(pl.col("error").is_null() & pl.col("ttft_ms").is_not_null())
    if ok.height == 0:
        return pl.DataFrame(schema=TOKENS_SCHEMA)
    itl = pl.col("itl_ms").fill_null(pl.lit([], dtype=pl.List(pl.Float64)))
    df = ok.select(
        "run_id",
        "request_index",
        "time",
        "output_tokens",
        pl.concat_list([pl.col("ttft_ms"), itl]).list.eval(pl.element().cum_sum()).alias("_off"),
        pl.concat_list([pl.lit(None, dtype=pl.Float64), itl]).alias("itl_ms"),
    ).with_columns(
        pl.col("_off").list.len().alias("_n"),
        pl.int_ranges(0, pl.col("_off").list.len()).alias("token_index"),
    )
    ex = df.explode(["_off", "itl_ms", "token_index"])
    n = pl.col("_n").cast(pl.Int64)
    total = pl.col("output_tokens").fill_null(pl.col("_n")).cast(pl.Int64)
    k = pl.col("token_index").cast(pl.Int64)
    spread = ((k + 1) * total).floordiv(n) - (k * total).floordiv(n)
    return ex.select(
        "run_id",
        "request_index",
        pl.col("token_index").cast(pl.Int64),
        (pl.col("time") + pl.duration(nanoseconds=(pl.col("_off") * 1e6).round().cast(pl.Int64), time_unit="ns")).alias(
            "time"
        ),
        pl.col("itl_ms").cast(pl.Float64),
        pl.when(total == n).then(pl.lit(1, dtype=pl.Int64)).otherwise(spread).alias("tokens"),
    )


def run_event_frame(run: Run) -> pl.DataFrame:
    """Rows of the ``run_event`` measurement for this run: start and end where known (``timed``), and the summary
    (metadata_json) at the start, else at the import time (a run without a known start gets no made-up one)."""
    rows: list[dict[str, Any]] = []
    if run.start is not None and run.timed is not False:
        rows.append({"time": run.start, "event": "summary", "metadata_json": run.to_json()})
        rows.append({"time": run.start, "event": "start"})
        if run.end is not None:
            rows.append({"time": run.end, "event": "end"})
    else:
        at = datetime.fromtimestamp((run.import_seq or time.time_ns()) / 1e9, UTC)
        rows.append({"time": at, "event": "summary", "metadata_json": run.to_json()})
    frame = pl.DataFrame(
        {
            "time": pl.Series([r["time"] for r in rows], dtype=pl.Datetime("us", "UTC")),
            "node": [run.node] * len(rows),
            "run_id": [run.run_id] * len(rows),
            "group": [run.group] * len(rows),
            "phase": [run.phase] * len(rows),
            "event": [r["event"] for r in rows],
            "tool": [run.tool] * len(rows),
            "metadata_json": pl.Series([r.get("metadata_json") for r in rows], dtype=pl.String),
        }
    )
    return conform(frame, "run_event")


# ---------------------------------------------------------------------------------------------------------------
# Store I/O


def artifact_key(run_id: str, what: str) -> str:
    return f"bench/{run_id}/{what}"


_last_seq = 0


def next_import_seq() -> int:
    """`time.time_ns()`, strictly increasing within this process: the import order of runs."""
    global _last_seq
    _last_seq = max(time.time_ns(), _last_seq + 1)
    return _last_seq


def write_run(store: Any, run: Run, *, tokens: bool = False) -> dict[str, int]:
    """Store a run: run_event rows, bench_request rows and the requests artifact (Parquet, with the per-request
    ITL lists: every token's time follows from it). ``tokens=True`` also materialises the tokens artifact (the
    tokens layout, ~10 bytes per token); `load_tokens` derives it from the requests artifact otherwise. A run
    without ``import_seq`` gets one (`stamped` gives the caller the stamped run first)."""
    run = stamped(run)
    existing = store.query("run_event", tags={"run_id": run.run_id})
    events = set(existing["event"].to_list()) if existing.height else set()
    if "summary" in events:
        raise StoreError(f"benchmark run {run.run_id!r} is already in the store: import it under another --run id")
    # the `neighborscope run` wrapper records start / end itself (with monotonic time, command, exit code)
    events_frame = run_event_frame(run).filter(~pl.col("event").is_in(list(events)))
    counts = {"run_event": store.write("run_event", events_frame)}
    if run.requests is not None and run.requests.height:
        counts["bench_request"] = store.write("bench_request", bench_request_frame(run))
        store.write_artifact(artifact_key(run.run_id, "requests"), requests_frame(run))
        if tokens:
            tok = tokens_frame(run)
            store.write_artifact(artifact_key(run.run_id, "tokens"), tok)
            counts["tokens"] = tok.height
    return counts


def stamped(run: Run) -> Run:
    """``run`` with its ``import_seq`` set (kept when it has one)."""
    from dataclasses import replace

    return run if run.import_seq is not None else replace(run, import_seq=next_import_seq())


def list_runs(store: Any, tags: Mapping[str, str | Sequence[str]] | None = None) -> list[Run]:
    """Every stored run (optionally filtered by run_event tags such as group / phase / node): by start time, runs
    without a known start last; ties (and runs without a start) in import order."""
    flt = {"event": "summary", **(tags or {})}
    rows = store.query("run_event", tags=flt)
    runs = [Run.from_json(text) for text in rows["metadata_json"].to_list() if text]
    far = datetime.max.replace(tzinfo=UTC)
    order = sorted(
        range(len(runs)),
        key=lambda i: (
            runs[i].start is None,
            runs[i].start or far,
            runs[i].import_seq is None,
            runs[i].import_seq or 0,
            i,
        ),
    )
    return [runs[i] for i in order]


def load_run(store: Any, run_id: str, *, with_requests: bool = True) -> Run:
    """The stored run ``run_id`` (its requests too when stored). Raises `KeyError` when unknown."""
    rows = store.query("run_event", tags={"run_id": run_id, "event": "summary"})
    if rows.height == 0:
        raise KeyError(f"no benchmark run {run_id!r} in the store")
    requests = load_requests(store, run_id) if with_requests else None
    return Run.from_json(rows["metadata_json"][-1], requests=requests)


def load_requests(store: Any, run_id: str) -> pl.DataFrame | None:
    """The requests layout of a stored run (with ITL lists), or None for a summary-only run."""
    return store.read_artifact(artifact_key(run_id, "requests"))


def load_tokens(store: Any, run_id: str) -> pl.DataFrame:
    """The tokens layout of a stored run (empty for a summary-only run)."""
    frame = store.read_artifact(artifact_key(run_id, "tokens"))
    if frame is None:
        requests = load_requests(store, run_id)
        return pl.DataFrame(schema=TOKENS_SCHEMA) if requests is None else tokens_frame(requests)
    return frame
