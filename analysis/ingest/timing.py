"""Put parsed runs on the telemetry (wall) clock.

Run start, best first: the tool's own epoch clock (AIPerf / llama-benchy per-request times, InferenceX
``benchmark_start_time_unix``); vLLM ``start_times`` mapped through the wrapper's wall/monotonic pair; the tool's
end time (vLLM ``date``, local, 1 s; llama-benchy ``timestamp``, UTC) minus the duration; the file's mtime minus the
duration (the tools write their file at the end; earlier runs appended to the same file end where the next one
starts); the wrapper's wall start. ``Run.time_source`` says which one was used.

The file's modification time is a guess (a summary pasted into a file has the paste time): it places only runs
with per-request rows, which need a place on the clock, and they get ``Run.timed = False``. A summary-only run
without a tool or wrapper time gets no start at all (``start = None``, ``time_source = "unknown"``,
``timed = False``); analysis orders such runs by ``Run.import_seq``.

Per-request starts: ``wall_clock`` when the tool logged them on the wall clock; ``reconstructed`` for monotonic
``start_times`` (exact with the wrapper's pair) or a replay of the client's dispatch for ``--request-rate inf``
(requests go in index order into ``max_concurrency`` slots, each held for its latency); otherwise ``unaligned``.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from analysis.ingest.model import META_KEYS, REQUESTS_SCHEMA, ParsedRun, Run, Timing


@dataclass(frozen=True)
class ImportOptions:
    """What the caller knows that the file does not.

    ``wall_start_s`` / ``monotonic_start_s``: ``time.time()`` and ``time.monotonic()`` read together on the
    benchmark host (the ``neighborscope run`` wrapper logs them); ``tz``: the zone of naive local times in the
    files (default: this machine's); ``file_mtime_s``: set per file by the importer.
    """

    run_id: str | None = None
    group: str = ""
    phase: str = ""
    node: str = ""
    wall_start_s: float | None = None
    monotonic_start_s: float | None = None
    tz: str | None = None


_SAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


def safe_run_id(text: str) -> str:
    out = _SAFE.sub("-", text).strip("-.") or "run"
    return out[:128]


def _local_to_epoch(t: datetime, tz: str | None) -> float:
    if tz:
        return t.replace(tzinfo=ZoneInfo(tz)).timestamp()
    return t.timestamp()  # naive: this machine's local zone


def resolve(
    parsed: Sequence[ParsedRun],
    options: ImportOptions,
    run_ids: Sequence[str],
    file_mtime_s: float | None = None,
) -> list[Run]:
    """Runs of one file on the wall clock (``parsed`` in file order; ``run_ids`` one per run)."""
    out: list[Run | None] = [None] * len(parsed)
    next_start: float | None = file_mtime_s
    next_source = "file_mtime"
    for i in range(len(parsed) - 1, -1, -1):
        run = _resolve_one(parsed[i], options, run_ids[i], next_start, next_source)
        out[i] = run
        if run.start is not None:
            next_start = run.start.timestamp()
            next_source = "file_mtime_chain" if run.time_source.startswith("file_mtime") else "next_run_start"
    return [r for r in out if r is not None]


def _resolve_one(p: ParsedRun, o: ImportOptions, run_id: str, next_start: float | None, next_source: str) -> Run:
    duration = p.summary.get("duration_s")
    duration = duration if duration is not None and math.isfinite(duration) else None
    req = p.requests
    start_s: float | None = None
    end_s: float | None = None
    source = ""
    timing: Timing = "summary_only"
    starts: np.ndarray | None = None

    if req is not None and req.height and p.clock == "epoch":
        starts = req["start_s"].to_numpy().astype(np.float64)
        start_s = float(np.nanmin(starts)) if p.start_epoch_s is None else p.start_epoch_s
        source, timing = "tool_wall_clock", "wall_clock"
    elif (
        req is not None
        and req.height
        and p.clock == "monotonic"
        and o.wall_start_s is not None
        and (o.monotonic_start_s is not None)
    ):
        mono = req["start_s"].to_numpy().astype(np.float64)
        starts = o.wall_start_s + (mono - o.monotonic_start_s)
        start_s = float(np.nanmin(starts))
        source, timing = "wrapper_wall_monotonic_pair", "reconstructed"

    has_requests = req is not None and req.height > 0
    if start_s is None:
        start_s, end_s, source = _anchor(p, o, duration, next_start if has_requests else None, next_source)

    if req is not None and req.height and starts is None:
        if p.clock == "monotonic":
            mono = req["start_s"].to_numpy().astype(np.float64)
            starts = start_s + (mono - np.nanmin(mono))
            timing = "reconstructed"
        else:
            rel = replay_dispatch(req, p.meta.get("concurrency"), p.meta.get("request_rate"))
            if rel is None:
                starts = np.full(req.height, start_s)
                timing = "unaligned"
            else:
                starts = start_s + rel
                timing = "reconstructed"

    if end_s is None:
        if p.end_epoch_s is not None:
            end_s = p.end_epoch_s
        elif duration is not None and start_s is not None:
            end_s = start_s + duration
        elif req is not None and starts is not None:
            ends = starts + req["e2e_ms"].fill_null(0.0).to_numpy() / 1000.0
            end_s = float(np.nanmax(ends))

    requests = None
    summary = dict(p.summary)
    if req is not None and starts is not None:
        requests = _requests(req, starts, run_id, timing)

    meta = {k: p.meta.get(k) for k in META_KEYS}
    rate = meta.get("request_rate")
    if isinstance(rate, str):
        meta["request_rate"] = None
    extra = dict(p.meta.get("extra") or {})
    if isinstance(rate, str):
        extra["request_rate"] = rate
    return Run(
        run_id=run_id,
        tool=p.tool,
        source=p.source,
        summary=summary,
        start=_dt(start_s),
        end=_dt(end_s),
        timing=timing,
        time_source=source,
        timed=source in TIMED_SOURCES and start_s is not None,
        tool_version=p.tool_version,
        node=o.node,
        group=o.group,
        phase=o.phase,
        extra=extra,
        requests=requests,
        **{k: _typed(k, v) for k, v in meta.items()},
    )


TIMED_SOURCES = frozenset(
    {
        "tool_wall_clock",
        "wrapper_wall_monotonic_pair",
        "tool_start_time",
        "tool_end_time",
        "tool_end_time_utc",
        "tool_end_time_local",
        "wrapper_wall_start",
    }
)
"""``Run.time_source`` values that are wall-clock times a tool or the wrapper recorded (the others are guesses:
``file_mtime``, ``file_mtime_chain``, ``next_run_start``, or ``unknown``)."""


def _typed(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in ("model", "backend"):
        return str(value)
    if key == "request_rate":
        return float(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _anchor(
    p: ParsedRun, o: ImportOptions, duration: float | None, next_start: float | None, next_source: str
) -> tuple[float | None, float | None, str]:
    """(start, end, source) of a run without wall-clock request times."""
    if p.start_epoch_s is not None:
        return p.start_epoch_s, p.end_epoch_s, "tool_start_time"
    end: float | None = None
    source = ""
    if p.end_epoch_s is not None:
        end, source = p.end_epoch_s, "tool_end_time"
    elif p.end_utc is not None:
        end, source = p.end_utc.timestamp(), "tool_end_time_utc"
    elif p.end_local is not None:
        end, source = _local_to_epoch(p.end_local, o.tz), "tool_end_time_local"
    elif next_start is not None:
        end, source = next_start, next_source
    if end is not None:
        return (end - duration if duration is not None else end), end, source
    if o.wall_start_s is not None:
        return o.wall_start_s, None, "wrapper_wall_start"
    return None, None, "unknown"


def replay_dispatch(req: pl.DataFrame, concurrency: Any, request_rate: Any) -> np.ndarray | None:
    """Relative start times (s) of a ``--request-rate inf`` run: requests dispatched in index order into
    ``concurrency`` slots (all at once without a limit), each slot held for the request's latency.
    None when the rate was finite (Poisson gaps from an unknown seed cannot be replayed)."""
    if request_rate is not None and not (isinstance(request_rate, float) and math.isinf(request_rate)):
        return None
    n = req.height
    slots = int(concurrency) if isinstance(concurrency, int | float) and concurrency and concurrency > 0 else n
    durations = req["e2e_ms"].fill_null(0.0).fill_nan(0.0).to_numpy() / 1000.0
    free = [0.0] * min(slots, n)
    heapq.heapify(free)
    out = np.empty(n)
    for i in range(n):
        t = heapq.heappop(free)
        out[i] = t
        heapq.heappush(free, t + max(float(durations[i]), 0.0))
    return out


def _requests(raw: pl.DataFrame, starts: np.ndarray, run_id: str, timing: str) -> pl.DataFrame:
    ns = np.round(starts * 1e9).astype(np.int64)
    frame = raw.with_columns(
        pl.lit(run_id).alias("run_id"),
        pl.Series("time", ns).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
        pl.when(pl.col("output_tokens") > 1)
        .then((pl.col("e2e_ms") - pl.col("ttft_ms")) / (pl.col("output_tokens") - 1))
        .alias("tpot_ms"),
        pl.lit(timing).alias("timing"),
    )
    return frame.select([pl.col(c).cast(t) for c, t in REQUESTS_SCHEMA.items()])


def _dt(epoch_s: float | None) -> datetime | None:
    if epoch_s is None or not math.isfinite(epoch_s):
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(epoch_s * 1e6))
