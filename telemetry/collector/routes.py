"""The collector's HTTP surface: the FastAPI routes (`ingest_router`, `ops_router`) and the fast lane for
``POST /v1/batches`` (`BatchLane`). Both batch paths end in `ingest.ingest_batch`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from telemetry import __version__
from telemetry.batch import BatchAck, BatchIn
from telemetry.collector.auth import scope_tokens
from telemetry.collector.body import BODY_READ, ASGIApp, read_body, replay
from telemetry.collector.errors import ERRORS, ApiError, internal_error
from telemetry.collector.ingest import Ingest, ingest_batch, ingest_columns, ingest_lines, plain_batch, typed_batch
from telemetry.collector.metrics import CollectorMetrics
from telemetry.store.base import TelemetryStore

BATCH_PATH = "/v1/batches"
#: the routes that write: their token is checked from the headers before the body is read
INGEST_PATHS = frozenset({BATCH_PATH, "/api/v2/write", "/write"})
#: set in an ASGI scope whose token was checked: the node it belongs to
NODE = "neighborscope.node"


class FastJsonRequest(Request):
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


class FastJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(FastJsonRequest(request.scope, request.receive))

        return route


_LP_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/plain": {"schema": {"type": "string", "description": "InfluxDB line protocol"}}},
    }
}


def ingest_router(ing: Ingest) -> APIRouter:
    """``POST /v1/batches`` (what the fast lane hands back: anything pydantic has to judge), ``POST
    /api/v2/write`` and ``POST /write`` (line protocol)."""
    router = APIRouter(route_class=FastJsonRoute, tags=["ingest"], responses=ERRORS)

    async def authenticate(request: Request) -> str:
        node = request.scope.get(NODE)
        return node if node is not None else ing.node_for(scope_tokens(request.scope))

    @router.post(BATCH_PATH, response_model=BatchAck)
    async def post_batch(batch: BatchIn, node: str = Depends(authenticate)) -> BatchAck:
        """Store one agent batch. A replay of a stored (node, boot_id, seq) is acknowledged as `duplicate`."""
        frames = [(fr.measurement, fr.columns) for fr in batch.frames]
        return BatchAck(**await ingest_batch(ing, node, batch.node, batch.boot_id, batch.seq, frames))

    @router.post("/api/v2/write", status_code=204, openapi_extra=_LP_BODY)
    async def write_v2(
        request: Request,
        node: str = Depends(authenticate),
        org: str | None = Query(default=None, description="ignored (InfluxDB 2.x compatibility)"),
        bucket: str | None = Query(default=None, description="ignored (InfluxDB 2.x compatibility)"),
        precision: str = Query(default="ns", description="timestamp precision: ns, us, ms, s"),
    ) -> Response:
        """InfluxDB 2.x-compatible line-protocol write (`Authorization: Token <node token>`, or any form `/write`
        takes). The body is judged whole: one bad line refuses it all (400 / 422 naming the line)."""
        await ingest_lines(ing, node, await request.body(), precision)
        return Response(status_code=204)

    @router.post("/write", status_code=204, openapi_extra=_LP_BODY)
    async def write_v1(
        request: Request,
        node: str = Depends(authenticate),
        db: str | None = Query(default=None, description="ignored (InfluxDB 1.x compatibility)"),
        precision: str = Query(default="ns", description="timestamp precision: ns (n), u, ms, s, m or h"),
    ) -> Response:
        """InfluxDB 1.x-compatible line-protocol write: the node token as HTTP Basic password, as the `p`
        parameter, or as `Authorization: Token` / `Bearer`. The body is judged whole: one bad line refuses it
        all (400 / 422 naming the line)."""
        await ingest_lines(ing, node, await request.body(), precision)
        return Response(status_code=204)

    return router


def ops_router(store: TelemetryStore, metrics: CollectorMetrics) -> APIRouter:
    """``GET /healthz`` and ``GET /metrics``."""
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the collector answers and knows its store."""
        return {"status": "ok", "store": repr(store), "version": __version__}

    @router.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """The collector's own counters in Prometheus text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


class BatchLane:
    """``POST /v1/batches`` as a plain ASGI handler: no dependency injection, no pydantic model per batch,
    no response model. It reads the body (limits, inflation) and decodes a plainly valid batch straight into
    typed columns (`ingest.typed_batch`: no generic JSON objects, no Python step per value); anything else
    is judged on the generic JSON, column by column, naming the sample (`ingest.ingest_batch`), and a batch
    that is not plainly JSON of the agents' types (NaN literals, another content type, ...) goes to
    ``fallback``, the FastAPI app, whose route validates it with pydantic and answers its way."""

    def __init__(
        self, ing: Ingest, max_body_bytes: int, fallback: ASGIApp, body_timeout_s: float | None = None
    ) -> None:
        self.ing = ing
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.fallback = fallback

    def handles(self, scope: dict) -> bool:
        return scope["type"] == "http" and scope["path"] == BATCH_PATH and scope["method"] == "POST"

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        try:  # the token first, from the headers: 401 before a byte of the body is read
            node = self.ing.node_for(scope_tokens(scope))
        except ApiError as exc:
            await exc.response()(scope, receive, send)
            return
        got = await read_body(scope, receive, send, self.max_body_bytes, self.body_timeout_s)
        if got is None:
            return
        # from here until its batch is handed over (or it gives up) the group committer waits for this request;
        # never while its body is still on the way, so a slow client cannot hold up every other agent
        arrival = self.ing.committer.arrival()
        try:
            await self._handle({**got[0], NODE: node}, got[1], receive, send, node, arrival)
        finally:
            arrival.done()

    async def _handle(
        self, scope: dict, data: bytes, receive: Callable, send: Callable, node: str, arrival: Any
    ) -> None:
        headers = dict(scope["headers"])
        ctype = headers.get(b"content-type", b"application/json").split(b";", 1)[0].strip().lower()
        doc = typed = None
        if ctype == b"application/json" or ctype.endswith(b"+json"):
            typed = typed_batch(self.ing, node, data)  # plainly valid: typed columns, checked in C
            if typed is None:  # something to refuse or convert: the generic JSON, judged column by column
                try:
                    doc = plain_batch(orjson.loads(data))
                except orjson.JSONDecodeError:
                    doc = None
        if doc is None and typed is None:
            arrival.done()
            await self.fallback({**scope, BODY_READ: True}, replay(data, receive), send)
            return
        try:
            if typed is not None:
                ack = await ingest_columns(self.ing, node, typed[0], typed[1], typed[2], typed[3], arrival)
            else:
                ack = await ingest_batch(self.ing, node, *doc, arrival=arrival)  # type: ignore[misc]
            response: Response = Response(orjson.dumps(ack), media_type="application/json")
        except ApiError as exc:
            response = exc.response()
        except Exception as exc:
            response = internal_error(exc, self.ing.metrics)
        await response(scope, receive, send)


def mount(app: FastAPI, ing: Ingest) -> None:
    """The routes on ``app``."""
    app.include_router(ingest_router(ing))
    app.include_router(ops_router(ing.store, ing.metrics))
