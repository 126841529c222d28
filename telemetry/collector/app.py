"""The collector: a FastAPI app built by `create_app(store, settings)`.

Endpoints
- ``POST /v1/batches``   JSON batches from agents (`telemetry.batch.BatchIn`), idempotent per
  (node, boot_id, seq); acknowledged only once durable in the store.
- ``POST /api/v2/write`` and ``POST /write``  InfluxDB line protocol (Telegraf, influx clients).
- ``GET /healthz``, ``GET /metrics`` (Prometheus text format).

Every error has one JSON shape, built in `error_response`:
``{"error": {"code": "...", "message": "...", "where": "..."}}``.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import polars as pl
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from telemetry import __version__
from telemetry.batch import (
    NODE_PATTERN,
    BatchAck,
    BatchIn,
    Columns,
    ForeignNodeError,
    batch_frames,
    validate_columns,
)
from telemetry.collector.metrics import CollectorMetrics
from telemetry.collector.ratelimit import TokenBuckets, retry_after_header
from telemetry.collector.settings import CollectorSettings
from telemetry.errors import LineProtocolError, SchemaError, StoreError, StoreUnavailableError
from telemetry.line_protocol import decode
from telemetry.schema import MEASUREMENTS
from telemetry.store.base import BatchKey, TelemetryStore

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class _FastJsonRequest(Request):
    """Parses JSON bodies with orjson (3-4x faster than the standard library); falls back to `json` for the
    non-standard NaN / Infinity literals Python's own encoder writes."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
        return self._json


class _FastJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_FastJsonRequest(request.scope, request.receive))

        return route


class _CollectorApp(FastAPI):
    """FastAPI with one fast lane: ``POST /v1/batches`` goes to ``batch_lane`` (a plain ASGI handler: no
    dependency injection, no pydantic model per batch, no response model), which hands anything unusual
    back to the FastAPI route."""

    batch_lane: ASGIApp | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        lane = self.batch_lane
        if (
            lane is not None
            and scope["type"] == "http"
            and scope["path"] == "/v1/batches"
            and scope["method"] == "POST"
        ):
            await lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class ErrorDetail(BaseModel):
    code: str
    message: str
    where: str = ""


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, where: str = "", headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.where, self.headers = status, code, message, where, headers


def error_response(status: int, code: str, message: str, where: str = "", headers: dict | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "where": where}}
    return JSONResponse(body, status_code=status, headers=headers)


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d}
    for s, d in {
        400: "Malformed body (bad JSON, bad line protocol, unknown field)",
        401: "Missing or wrong token",
        403: "The token belongs to another node",
        413: "Body larger than max_body_bytes, or more rows than max_batch_rows",
        429: "The node is over its rate budget; retry after Retry-After seconds",
        415: "Unsupported Content-Encoding",
        422: "A value does not fit the schema (the field and sample index are named)",
        503: "The store is unavailable; retry later",
    }.items()
}


async def read_body(scope: dict, receive: Callable, send: Callable, max_bytes: int) -> tuple[dict, bytes] | None:
    """The request body, inflated (gzip / deflate), and the scope to pass on (encoding headers dropped once
    inflated); None when the request was answered here: 415 for an unknown Content-Encoding, 413 above
    ``max_bytes`` (compressed or inflated: no zip bombs), 400 for a body that does not inflate."""
    encoding = "identity"
    length = None
    for k, v in scope["headers"]:
        k = k.lower()
        if k == b"content-encoding":
            encoding = v.decode("latin-1").strip().lower()
        elif k == b"content-length":
            length = v.decode("latin-1")
    if encoding not in ("identity", "gzip", "deflate", ""):
        await error_response(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported")(
            scope, receive, send
        )
        return None
    if length and length.isdigit() and int(length) > max_bytes:
        await _too_large(max_bytes, scope, receive, send)
        return None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
        more = message.get("more_body", False)
        if size > max_bytes:
            await _too_large(max_bytes, scope, receive, send)
            return None
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if encoding in ("gzip", "deflate"):
        try:
            wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
            inflater = zlib.decompressobj(wbits)
            data = inflater.decompress(data, max_bytes + 1)
            if len(data) > max_bytes or inflater.unconsumed_tail:
                await _too_large(max_bytes, scope, receive, send)
                return None
        except (zlib.error, gzip.BadGzipFile) as exc:
            await error_response(400, "bad_encoding", f"body is not valid {encoding}: {exc}")(scope, receive, send)
            return None
        scope = dict(scope)
        scope["headers"] = [
            (k, v) for k, v in scope["headers"] if k.lower() not in (b"content-encoding", b"content-length")
        ] + [(b"content-length", str(len(data)).encode())]
    return scope, data


async def _too_large(max_bytes: int, scope: dict, receive: Callable, send: Callable) -> None:
    await error_response(413, "too_large", f"body larger than {max_bytes} bytes")(scope, receive, send)


def _replay(data: bytes, receive: Callable) -> Callable[[], Awaitable[dict]]:
    """A ``receive`` that hands out ``data`` as the whole body once, then defers to the real one."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return replay


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` (413) and inflate gzip/deflate bodies,
    counting the inflated size against the same limit (no zip bombs)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT") or scope.get("neighborscope.body"):
            await self.app(scope, receive, send)
            return
        got = await read_body(scope, receive, send, self.max_bytes)
        if got is not None:
            scope, data = got
            await self.app(scope, _replay(data, receive), send)


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


class GroupCommitter:
    """Hands the batches of concurrent requests to the store together: one ``write_batches`` call (one file
    per measurement and one fsync each, for the whole group) on one worker thread, instead of a thread
    per request contending for the GIL and the commit lock. A group is committed as soon as the previous
    one is done and no other request is on its way in (its body being read or validated: ``arriving``);
    while some are, it waits for them, up to ``min_interval_s`` after the previous group started. So a
    lone request is committed at once, a few clients sending back to back are not held up, and a busy
    collector commits fewer, larger groups. Every caller gets its own batch's answer once the group is
    durable."""

    def __init__(self, store: Any, min_interval_s: float = 0.05) -> None:
        self.store = store
        self.min_interval_s = min_interval_s
        write_many = getattr(store, "write_batches", None)
        columns = bool(getattr(store, "accepts_columns", False))

        def built(items: list) -> list:  # a store that wants DataFrames: build each batch's frames
            return [(k, {m: c.frame() if isinstance(c, Columns) else c for m, c in f.items()}) for k, f in items]

        if write_many is not None and "conformed" in inspect.signature(write_many).parameters:
            self._write_many: Callable | None = lambda items: write_many(
                items if columns else built(items), conformed=True
            )
        elif write_many is not None:
            self._write_many = lambda items: write_many(built(items))
        else:
            self._write_many = None
        self._pending: list[tuple[BatchKey, dict, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self._last_start = 0.0
        self.arriving = 0  # requests received and not yet handed to write() (the fast lane counts them)

    async def write(self, key: BatchKey, frames: dict[str, Columns]) -> bool:
        """Store one batch (validated columns); True when new, False for a replay."""
        if self._write_many is None:
            built = await run_in_threadpool(lambda: {m: c.frame() for m, c in frames.items()})
            return await run_in_threadpool(self.store.write_batch, key, built)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((key, frames, fut))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await fut

    async def _run(self) -> None:
        while self._pending:
            deadline = self._last_start + self.min_interval_s
            while self.arriving > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            group, self._pending = self._pending, []
            self._last_start = time.monotonic()
            try:
                results = await run_in_threadpool(self._write_many, [(k, f) for k, f, _ in group])
            except asyncio.CancelledError:  # shutting down: nobody is acknowledged
                for _k, _f, fut in group:
                    fut.cancel()
                raise
            except Exception as exc:  # every waiting request gets the error
                results = [exc] * len(group)
            for (_k, _f, fut), result in zip(group, results, strict=True):
                if fut.done():  # the request went away; its batch is stored all the same
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)


def _field_values(measurement_name: str, frame: pl.DataFrame) -> int:
    fields = MEASUREMENTS[measurement_name].field_names
    return int(sum(frame.height - frame[c].null_count() for c in fields))


def _bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <t>`` (or ``Token <t>``) header, else None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return None


def _bearer(request: Request) -> str | None:
    token = _bearer_token(request.headers.get("authorization", ""))
    if token is not None:
        return token
    if request.url.path == "/write":  # InfluxDB 1.x clients send the password as the token
        return request.query_params.get("p") or None
    return None


def create_app(store: TelemetryStore, settings: CollectorSettings) -> FastAPI:
    """The collector app. ``app.state.settings`` may be replaced at run time (SIGHUP reload): tokens,
    limits and rate budgets are read from it on every request."""
    metrics = CollectorMetrics()
    app = _CollectorApp(
        title="neighborscope collector",
        version=__version__,
        description="Receives agents' telemetry batches and InfluxDB line protocol; stores them durably.",
    )
    app.state.store = store
    app.state.metrics = metrics
    app.state.settings = settings
    buckets: dict[tuple[float, float], TokenBuckets] = {}

    def _limit(node: str, rows: int) -> None:
        opts = app.state.settings.collector
        if rows > opts.max_batch_rows:
            metrics.rejects.labels("too_large").inc()
            raise ApiError(413, "too_large", f"{rows} rows in one batch; the limit is {opts.max_batch_rows}")
        if opts.rate_limit_rows_per_s <= 0:
            return
        burst = opts.rate_limit_burst_rows or 10 * opts.rate_limit_rows_per_s
        bucket = buckets.setdefault(
            (opts.rate_limit_rows_per_s, burst), TokenBuckets(opts.rate_limit_rows_per_s, burst)
        )
        wait = bucket.take(node, rows)
        if wait > 0:
            metrics.rejects.labels("rate_limited").inc()
            raise ApiError(
                429,
                "rate_limited",
                f"node {node!r} is over its budget of {opts.rate_limit_rows_per_s:g} rows/s; retry later",
                headers={"Retry-After": retry_after_header(wait)},
            )

    app.add_middleware(BodyLimit, max_bytes=settings.collector.max_body_bytes)
    app.router.route_class = _FastJsonRoute

    def _node_for(token: str | None) -> str:
        """The node a token belongs to; 401 for a missing or unknown token."""
        if token is None:
            metrics.rejects.labels("unauthenticated").inc()
            raise ApiError(401, "unauthenticated", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        node = app.state.settings.node_for_token(token)
        if node is None:
            metrics.rejects.labels("unauthenticated").inc()
            raise ApiError(401, "unauthenticated", "unknown token", headers={"WWW-Authenticate": "Bearer"})
        return node

    async def authenticate(request: Request) -> str:
        return _node_for(_bearer(request))

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.where, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = [x for x in err.get("loc", ()) if x != "body"]
        where = ""
        for part in loc:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        bad_json = err.get("type") == "json_invalid"
        metrics.rejects.labels("malformed" if bad_json else "invalid").inc()
        return error_response(400 if bad_json else 422, "malformed" if bad_json else "invalid", err["msg"], where)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        metrics.rejects.labels("internal").inc()
        return error_response(500, "internal", f"{type(exc).__name__}: {exc}")

    async def _store(fn: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return await run_in_threadpool(fn, *args)
        except StoreUnavailableError as exc:
            metrics.rejects.labels("store_unavailable").inc()
            raise ApiError(503, "store_unavailable", str(exc), headers={"Retry-After": "5"}) from None
        except StoreError as exc:
            metrics.rejects.labels("store_error").inc()
            raise ApiError(503, "store_error", str(exc), headers={"Retry-After": "5"}) from None
        finally:
            metrics.store_seconds.observe(time.perf_counter() - started)

    def _checked(node: str, batch_node: str, build: Callable[..., Any], *args: Any) -> Any:
        """``build(*args)`` (the batch's validated frames or columns), once the token's node is the batch's;
        403 for another node's data, 422 naming the field and sample for invalid data."""
        if batch_node != node:
            metrics.rejects.labels("forbidden").inc()
            raise ApiError(403, "forbidden", f"this token belongs to node {node!r}, not {batch_node!r}", "node")
        try:
            return build(*args)
        except ForeignNodeError as exc:
            metrics.rejects.labels("forbidden").inc()
            raise ApiError(403, "forbidden", str(exc), exc.where) from None
        except SchemaError as exc:
            metrics.rejects.labels("invalid").inc()
            raise ApiError(422, "invalid", str(exc), exc.where) from None

    @app.post("/v1/batches", response_model=BatchAck, responses=ERRORS, tags=["ingest"])
    async def post_batch(batch: BatchIn, node: str = Depends(authenticate)) -> BatchAck:
        """Store one agent batch. A replay of a stored (node, boot_id, seq) is acknowledged as `duplicate`."""
        frames = _checked(node, batch.node, batch_frames, batch)
        rows = sum(f.height for f in frames.values())
        _limit(node, rows)
        new = await _store(store.write_batch, BatchKey(batch.node, batch.boot_id, batch.seq), frames)
        metrics.batches.labels("stored" if new else "duplicate").inc()
        if new:
            for m, f in frames.items():
                metrics.rows.labels(m).inc(f.height)
                metrics.values.inc(_field_values(m, f))
        return BatchAck(
            status="stored" if new else "duplicate", node=batch.node, boot_id=batch.boot_id, seq=batch.seq, rows=rows
        )

    committer = GroupCommitter(store, min_interval_s=0.1)
    max_body = settings.collector.max_body_bytes

    def _store_error(exc: BaseException) -> ApiError | None:
        if isinstance(exc, StoreUnavailableError):
            metrics.rejects.labels("store_unavailable").inc()
            return ApiError(503, "store_unavailable", str(exc), headers={"Retry-After": "5"})
        if isinstance(exc, StoreError):
            metrics.rejects.labels("store_error").inc()
            return ApiError(503, "store_error", str(exc), headers={"Retry-After": "5"})
        return None

    async def _lane_batch(
        headers: dict[bytes, bytes], doc: tuple[str, str, int, list], arriving: list[bool]
    ) -> Response:
        node = _node_for(_bearer_token(headers.get(b"authorization", b"").decode("latin-1")))
        batch_node, boot_id, seq, raw_frames = doc
        frames = _checked(node, batch_node, validate_columns, batch_node, raw_frames)
        rows = sum(f.height for f in frames.values())
        _limit(node, rows)
        started = time.perf_counter()
        arriving[0] = False
        committer.arriving -= 1
        try:
            new = await committer.write(BatchKey(batch_node, boot_id, seq), frames)
        except StoreError as exc:  # StoreUnavailableError is a StoreError
            api_error = _store_error(exc)
            assert api_error is not None
            raise api_error from None
        finally:
            metrics.store_seconds.observe(time.perf_counter() - started)
        metrics.batches.labels("stored" if new else "duplicate").inc()
        if new:
            for m, c in frames.items():
                metrics.rows.labels(m).inc(c.height)
                metrics.values.inc(c.field_values)
        ack = {"status": "stored" if new else "duplicate", "node": batch_node, "boot_id": boot_id, "seq": seq}
        return Response(orjson.dumps({**ack, "rows": rows}), media_type="application/json")

    async def batch_lane(scope: dict, receive: Callable, send: Callable) -> None:
        committer.arriving += 1
        arriving = [True]  # until this request hands its batch to the committer (or gives up)
        try:
            await _batch_lane(scope, receive, send, arriving)
        finally:
            if arriving[0]:
                committer.arriving -= 1

    async def _batch_lane(scope: dict, receive: Callable, send: Callable, arriving: list[bool]) -> None:
        got = await read_body(scope, receive, send, max_body)
        if got is None:
            return
        scope, data = got
        headers = dict(scope["headers"])
        ctype = headers.get(b"content-type", b"application/json").split(b";", 1)[0].strip().lower()
        doc = None
        if ctype == b"application/json" or ctype.endswith(b"+json"):
            try:
                doc = plain_batch(orjson.loads(data))
            except orjson.JSONDecodeError:
                doc = None
        if doc is None:  # NaN literals, a non-JSON content type, anything pydantic has to judge: the route
            arriving[0] = False
            committer.arriving -= 1
            scope = {**scope, "neighborscope.body": True}
            await FastAPI.__call__(app, scope, _replay(data, receive), send)
            return
        try:
            response: Response = await _lane_batch(headers, doc, arriving)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.where, exc.headers)
        except Exception as exc:
            metrics.rejects.labels("internal").inc()
            response = error_response(500, "internal", f"{type(exc).__name__}: {exc}")
        await response(scope, receive, send)

    app.batch_lane = batch_lane

    async def _write_lp(request: Request, node: str, precision: str) -> Response:
        factor = {"ns": 1, "n": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}.get(precision)
        if factor is None:
            raise ApiError(400, "invalid", f"precision must be one of ns, us, ms, s; got {precision!r}", "precision")
        body = await request.body()
        try:
            frames = decode(body, default_time_ns=time.time_ns() // factor, precision_factor=factor)
        except LineProtocolError as exc:
            metrics.rejects.labels("malformed").inc()
            raise ApiError(400, "malformed", str(exc), f"line {exc.line_no}") from None
        except SchemaError as exc:
            metrics.rejects.labels("invalid").inc()
            raise ApiError(400, "invalid", str(exc), exc.where) from None
        for m, f in list(frames.items()):
            if "node" in f.columns:
                other = f.filter(pl.col("node").is_not_null() & (pl.col("node") != node))
                if other.height:
                    metrics.rejects.labels("forbidden").inc()
                    raise ApiError(403, "forbidden", f"{m}: line tagged node={other['node'][0]!r}; token is {node!r}")
                frames[m] = f.with_columns(pl.col("node").fill_null(node))
            else:
                frames[m] = f.with_columns(pl.lit(node).alias("node"))
        _limit(node, sum(f.height for f in frames.values()))
        lines = 0
        for m, f in frames.items():
            await _store(store.write, m, f)
            lines += f.height
            metrics.rows.labels(m).inc(f.height)
        metrics.lines.inc(lines)
        return Response(status_code=204)

    lp_body = {
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string", "description": "InfluxDB line protocol"}}},
        }
    }

    @app.post("/api/v2/write", status_code=204, responses=ERRORS, tags=["ingest"], openapi_extra=lp_body)
    async def write_v2(
        request: Request,
        node: str = Depends(authenticate),
        org: str | None = Query(default=None, description="ignored (InfluxDB 2.x compatibility)"),
        bucket: str | None = Query(default=None, description="ignored (InfluxDB 2.x compatibility)"),
        precision: str = Query(default="ns", description="timestamp precision: ns, us, ms or s"),
    ) -> Response:
        """InfluxDB 2.x-compatible line-protocol write (`Authorization: Token <node token>`)."""
        return await _write_lp(request, node, precision)

    @app.post("/write", status_code=204, responses=ERRORS, tags=["ingest"], openapi_extra=lp_body)
    async def write_v1(
        request: Request,
        node: str = Depends(authenticate),
        db: str | None = Query(default=None, description="ignored (InfluxDB 1.x compatibility)"),
        precision: str = Query(default="ns", description="timestamp precision: ns, u, ms or s"),
    ) -> Response:
        """InfluxDB 1.x-compatible line-protocol write (token as bearer, or as the `p` parameter)."""
        return await _write_lp(request, node, precision)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        """Liveness: the collector answers and knows its store."""
        return {"status": "ok", "store": repr(store), "version": __version__}

    status = getattr(store, "status", None)
    if callable(status):  # a store with a local queue (InfluxDB): its depth and rejects as gauges
        for key in ("queued_batches", "queued_bytes", "rejected_lines"):
            gauge = Gauge(
                f"neighborscope_store_{key}", f"store queue: {key.replace('_', ' ')}", registry=metrics.registry
            )
            gauge.set_function(lambda k=key: float(status().get(k) or 0))

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """The collector's own counters in Prometheus text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
