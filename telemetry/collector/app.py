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

import gzip
import json
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
from telemetry.batch import BatchAck, BatchIn, ForeignNodeError, batch_frames
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


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` (413) and inflate gzip/deflate bodies,
    counting the inflated size against the same limit (no zip bombs)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "deflate", ""):
            await error_response(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported")(
                scope, receive, send
            )
            return
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        data = bytes(body)
        if encoding in ("gzip", "deflate"):
            try:
                wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
                inflater = zlib.decompressobj(wbits)
                data = inflater.decompress(data, self.max_bytes + 1)
                if len(data) > self.max_bytes or inflater.unconsumed_tail:
                    await self._too_large(scope, receive, send)
                    return
            except (zlib.error, gzip.BadGzipFile) as exc:
                await error_response(400, "bad_encoding", f"body is not valid {encoding}: {exc}")(scope, receive, send)
                return
            scope = dict(scope)
            scope["headers"] = [
                (k, v) for k, v in scope["headers"] if k.lower() not in (b"content-encoding", b"content-length")
            ] + [(b"content-length", str(len(data)).encode())]
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: dict, receive: Callable, send: Callable) -> None:
        await error_response(413, "too_large", f"body larger than {self.max_bytes} bytes")(scope, receive, send)


def _field_values(measurement_name: str, frame: pl.DataFrame) -> int:
    fields = MEASUREMENTS[measurement_name].field_names
    return int(sum(frame.height - frame[c].null_count() for c in fields))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    if request.url.path == "/write":  # InfluxDB 1.x clients send the password as the token
        return request.query_params.get("p") or None
    return None


def create_app(store: TelemetryStore, settings: CollectorSettings) -> FastAPI:
    """The collector app. ``app.state.settings`` may be replaced at run time (SIGHUP reload): tokens,
    limits and rate budgets are read from it on every request."""
    metrics = CollectorMetrics()
    app = FastAPI(
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

    async def authenticate(request: Request) -> str:
        token = _bearer(request)
        if token is None:
            metrics.rejects.labels("unauthenticated").inc()
            raise ApiError(401, "unauthenticated", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        node = app.state.settings.node_for_token(token)
        if node is None:
            metrics.rejects.labels("unauthenticated").inc()
            raise ApiError(401, "unauthenticated", "unknown token", headers={"WWW-Authenticate": "Bearer"})
        return node

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

    @app.post("/v1/batches", response_model=BatchAck, responses=ERRORS, tags=["ingest"])
    async def post_batch(batch: BatchIn, node: str = Depends(authenticate)) -> BatchAck:
        """Store one agent batch. A replay of a stored (node, boot_id, seq) is acknowledged as `duplicate`."""
        if batch.node != node:
            metrics.rejects.labels("forbidden").inc()
            raise ApiError(403, "forbidden", f"this token belongs to node {node!r}, not {batch.node!r}", "node")
        try:
            frames = batch_frames(batch)
        except ForeignNodeError as exc:
            metrics.rejects.labels("forbidden").inc()
            raise ApiError(403, "forbidden", str(exc), exc.where) from None
        except SchemaError as exc:
            metrics.rejects.labels("invalid").inc()
            raise ApiError(422, "invalid", str(exc), exc.where) from None
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
