"""What a write does, whichever route it came by: `ingest_batch` (an agent batch: the fast lane and the
FastAPI route both call it; `typed_batch` + `ingest_columns` for a plainly valid one, the fast lane's first
try) and `ingest_lines` (InfluxDB line protocol). Each checks the node against the
token's, validates the whole write against the schema and the rules every store shares (tag text, the time
window: `telemetry.schema`), applies the row limits, then stores, and counts. Nothing is stored of a write
that is refused."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from telemetry.batch import NODE_PATTERN, Columns, ForeignNodeError, decode_batch, validate_columns, validate_typed
from telemetry.collector.auth import node_for
from telemetry.collector.commit import Arrival, GroupCommitter, call_store, os_error, store_error
from telemetry.collector.errors import ApiError
from telemetry.collector.limits import RowLimits
from telemetry.collector.metrics import CollectorMetrics
from telemetry.collector.settings import CollectorSettings
from telemetry.errors import LineProtocolError, SchemaError, StoreError
from telemetry.line_protocol import decode
from telemetry.schema import time_window_ns
from telemetry.store.base import BatchKey, TelemetryStore

#: line-protocol ``precision`` -> nanoseconds per unit (InfluxDB 1.x also takes minutes and hours)
PRECISIONS = {
    "ns": 1,
    "n": 1,
    "us": 1_000,
    "u": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


@dataclass
class Ingest:
    """Everything a write needs. ``settings`` is called on every request: a reload (SIGHUP) replaces them."""

    store: TelemetryStore
    settings: Callable[[], CollectorSettings]
    metrics: CollectorMetrics
    committer: GroupCommitter
    limits: RowLimits

    def node_for(self, tokens: list[str]) -> str:
        return node_for(self.settings(), tokens, self.metrics)

    def time_window(self) -> tuple[int, int]:
        """The times a write may carry now (epoch ns): 2000-01-01 to ``max_future_s`` ahead."""
        return time_window_ns(time.time_ns(), self.settings().collector.max_future_s)


async def ingest_batch(
    ing: Ingest,
    node: str,
    batch_node: str,
    boot_id: str,
    seq: int,
    frames: Sequence[tuple[str, Any]],
    arrival: Arrival | None = None,
) -> dict[str, Any]:
    """Store one agent batch sent with ``node``'s token; its acknowledgement (``status`` stored | duplicate,
    node, boot_id, seq, rows). ``frames`` are ``(measurement, columns)`` pairs. 403 for another node's data,
    422 naming the field and sample for invalid data (or with the store's message when the store refuses
    it), 413 / 429 over the limits, 503 when the store fails."""
    columns = _validated(ing.metrics, node, batch_node, frames, ing.time_window())
    return await ingest_columns(ing, node, batch_node, boot_id, seq, columns, arrival)


def typed_batch(ing: Ingest, node: str, data: bytes) -> tuple[str, str, int, dict[str, Columns]] | None:
    """``(node, boot_id, seq, validated columns)`` of the JSON batch body ``data`` sent with ``node``'s token,
    decoded straight into typed columns and checked without a Python step per value
    (`telemetry.batch.decode_batch`, `validate_typed`); None when it is not plainly a valid batch of this
    node (anything to refuse, convert or name): the caller then judges the body the generic way
    (`ingest_batch`, or pydantic), whose answers and errors are the collector's. Refuses and counts nothing."""
    typed = decode_batch(data)
    if typed is None or typed.node != node:
        return None
    columns = validate_typed(node, typed.frames, ing.time_window())
    if columns is None:
        return None
    return typed.node, typed.boot_id, typed.seq, columns


async def ingest_columns(
    ing: Ingest,
    node: str,
    batch_node: str,
    boot_id: str,
    seq: int,
    columns: dict[str, Columns],
    arrival: Arrival | None = None,
) -> dict[str, Any]:
    """`ingest_batch` for a batch already validated (``columns``: `validate_columns` or `typed_batch`): the
    row limits, the store write, the counters and the acknowledgement."""
    rows = sum(c.height for c in columns.values())
    ing.limits.check(ing.settings().collector, node, rows)
    started = time.perf_counter()
    try:
        new = await ing.committer.write(BatchKey(batch_node, boot_id, seq), columns, arrival)
    except StoreError as exc:  # StoreUnavailableError is a StoreError
        raise store_error(exc, ing.metrics) from None
    except SchemaError as exc:  # the store refuses a value the collector's own rules let through
        raise _store_refused(exc, ing.metrics) from None
    except OSError as exc:
        raise os_error(exc, ing.metrics) from None
    finally:
        ing.metrics.store_seconds.observe(time.perf_counter() - started)
    status = "stored" if new else "duplicate"
    metrics = ing.metrics
    metrics.child("batches", status).inc()
    if new:
        for m, c in columns.items():
            metrics.child("rows", m).inc(c.height)
        metrics.values.inc(sum(c.field_values for c in columns.values()))
    return {"status": status, "node": batch_node, "boot_id": boot_id, "seq": seq, "rows": rows}


def _store_refused(exc: SchemaError, metrics: CollectorMetrics) -> ApiError:
    """A `SchemaError` of the store (a value it cannot keep: text too long for VictoriaMetrics, ...): the 422
    the sender must not retry as it is, with the store's message; nothing of the write was stored."""
    metrics.rejects.labels("invalid").inc()
    return ApiError(422, "invalid", str(exc), exc.where)


def _validated(
    metrics: CollectorMetrics, node: str, batch_node: str, frames: Sequence[tuple[str, Any]], window: tuple[int, int]
) -> dict:
    if batch_node != node:
        metrics.rejects.labels("forbidden").inc()
        raise ApiError(403, "forbidden", f"this token belongs to node {node!r}, not {batch_node!r}", "node")
    try:
        return validate_columns(batch_node, frames, window)
    except ForeignNodeError as exc:
        metrics.rejects.labels("forbidden").inc()
        raise ApiError(403, "forbidden", str(exc), exc.where) from None
    except SchemaError as exc:
        metrics.rejects.labels("invalid").inc()
        raise ApiError(422, "invalid", str(exc), exc.where) from None


async def ingest_lines(ing: Ingest, node: str, body: bytes, precision: str) -> None:
    """Store InfluxDB line protocol sent with ``node``'s token: rows without a ``node`` tag get it, a line
    tagged with another node is 403; 400 for a bad precision or a line that does not parse, 422 for a value
    the schema or a store refuses (a reserved name, a tag or field named ``time``, a time outside the
    window, ...), each naming the line. The body is judged whole before anything is stored: a refused
    body stores nothing, so a client can fix and resend it without storing a line twice (see
    docs/influxdb.md: unlike InfluxDB's partial writes)."""
    factor = PRECISIONS.get(precision)
    if factor is None:
        raise ApiError(
            400, "invalid", f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}", "precision"
        )
    metrics = ing.metrics
    try:
        frames = decode(body, time.time_ns() // factor, precision_factor=factor, time_window=ing.time_window())
    except LineProtocolError as exc:
        metrics.rejects.labels("malformed").inc()
        raise ApiError(400, "malformed", str(exc), f"line {exc.line_no}") from None
    except SchemaError as exc:
        metrics.rejects.labels("invalid").inc()
        raise ApiError(422, "invalid", str(exc), exc.where) from None
    for m, f in list(frames.items()):
        if "node" in f.columns:
            other = f.filter(pl.col("node").is_not_null() & (pl.col("node") != node))
            if other.height:
                metrics.rejects.labels("forbidden").inc()
                raise ApiError(403, "forbidden", f"{m}: line tagged node={other['node'][0]!r}; token is {node!r}")
            frames[m] = f.with_columns(pl.col("node").fill_null(node))
        else:
            frames[m] = f.with_columns(pl.lit(node).alias("node"))
    ing.limits.check(ing.settings().collector, node, sum(f.height for f in frames.values()))
    lines = 0
    for m, f in frames.items():
        try:
            await call_store(metrics, ing.store.write, m, f)
        except SchemaError as exc:
            raise _store_refused(exc, metrics) from None
        lines += f.height
        metrics.rows.labels(m).inc(f.height)
    metrics.lines.inc(lines)


_BATCH_MEMBERS = frozenset({"node", "boot_id", "seq", "sent_at_ns", "frames"})
_FRAME_MEMBERS = frozenset({"measurement", "columns"})
_NODE_RE = re.compile(NODE_PATTERN)


def plain_batch(doc: Any) -> tuple[str, str, int, list[tuple[str, dict]]] | None:
    """``(node, boot_id, seq, [(measurement, columns), ...])`` when ``doc`` is plainly a valid `BatchIn`
    (JSON types exactly as an agent sends them), else None: the FastAPI route then validates it with
    pydantic (lax conversions, its error messages and locations). Stricter than pydantic, never looser."""
    if type(doc) is not dict or not doc.keys() <= _BATCH_MEMBERS:
        return None
    node, boot_id, seq, frames = doc.get("node"), doc.get("boot_id"), doc.get("seq"), doc.get("frames")
    if type(node) is not str or _NODE_RE.fullmatch(node) is None:
        return None
    if type(boot_id) is not str or not 1 <= len(boot_id) <= 64:
        return None
    if type(seq) is not int or not 0 <= seq <= 2**63 - 1:
        return None
    sent = doc.get("sent_at_ns")
    if sent is not None and type(sent) is not int:
        return None
    if type(frames) is not list or len(frames) > 64:
        return None
    out = []
    for fr in frames:
        if type(fr) is not dict or fr.keys() != _FRAME_MEMBERS:
            return None
        name, columns = fr["measurement"], fr["columns"]
        if type(name) is not str or type(columns) is not dict:
            return None
        for values in columns.values():
            if type(values) is not list:
                return None
        out.append((name, columns))
    return node, boot_id, seq, out
