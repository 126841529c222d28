"""The collector: a FastAPI app built by `create_app(store, settings)`.

Endpoints
- ``POST /v1/batches``   JSON batches from agents (`telemetry.batch.BatchIn`), idempotent per
  (node, boot_id, seq); acknowledged only once durable in the store.
- ``POST /api/v2/write`` and ``POST /write``  InfluxDB line protocol (Telegraf, influx clients).
- ``GET /healthz``, ``GET /metrics`` (Prometheus text format).

Every error has one JSON shape, built in `errors.error_response`:
``{"error": {"code": "...", "message": "...", "where": "..."}}``.

The parts, one concern each: `body` (size limit, read deadline, gzip / deflate), `auth` (token -> node, checked
before a body is read), `limits` (rows per batch, rate budget), `commit` (group commit to the store), `ingest`
(what a write does), `routes` (the FastAPI routes and the batch fast lane), `errors` (the error shape),
`protocol` (uvicorn's HTTP protocol with a header deadline and a connection cap, used by `cli`). This module
composes them.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from telemetry import __version__
from telemetry.collector.auth import scope_tokens
from telemetry.collector.body import BodyLimit
from telemetry.collector.commit import GroupCommitter
from telemetry.collector.errors import install_error_handlers
from telemetry.collector.ingest import Ingest
from telemetry.collector.limits import RowLimits
from telemetry.collector.metrics import CollectorMetrics
from telemetry.collector.routes import INGEST_PATHS, NODE, BatchLane, mount
from telemetry.collector.settings import CollectorSettings
from telemetry.store.base import TelemetryStore


class CollectorApp(FastAPI):
    """FastAPI with one fast lane: ``POST /v1/batches`` goes to ``batch_lane`` (`routes.BatchLane`), which
    hands anything unusual back to the FastAPI route."""

    batch_lane: BatchLane | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        lane = self.batch_lane
        if lane is not None and lane.handles(scope):
            await lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    store: TelemetryStore,
    settings: CollectorSettings,
    *,
    metrics: CollectorMetrics | None = None,
    committer: GroupCommitter | None = None,
) -> FastAPI:
    """The collector app. ``app.state.settings`` may be replaced at run time (SIGHUP reload): tokens,
    limits and rate budgets are read from it on every request (the body size limit and timeout are fixed at
    start). A worker of a collector with several (`telemetry.collector.workers`) passes its ``metrics`` (summed
    over the processes) and its ``committer`` (`telemetry.collector.writer.RemoteCommitter`: the store writer
    process groups the batches of every worker); by default a `GroupCommitter` paced by ``commit_pace_s``."""
    metrics = metrics or CollectorMetrics()
    metrics.watch_store(store)
    app = CollectorApp(
        title="neighborscope collector",
        version=__version__,
        description="Receives agents' telemetry batches and InfluxDB line protocol; stores them durably.",
    )
    app.state.store = store
    app.state.metrics = metrics
    app.state.settings = settings
    ing = Ingest(
        store=store,
        settings=lambda: app.state.settings,
        metrics=metrics,
        committer=committer or GroupCommitter(store, min_interval_s=0.1, pace_s=settings.collector.commit_pace_s),
        limits=RowLimits(metrics),
    )
    metrics.watch_committer(ing.committer)

    def admit(scope: dict) -> dict:
        """A write's token, checked from its headers before its body is read (401 at once)."""
        if scope["path"] not in INGEST_PATHS:
            return scope
        return {**scope, NODE: ing.node_for(scope_tokens(scope))}

    max_body = settings.collector.max_body_bytes
    body_timeout_s = settings.collector.body_timeout_s
    app.add_middleware(BodyLimit, max_bytes=max_body, timeout_s=body_timeout_s, admit=admit)
    install_error_handlers(app, metrics)
    mount(app, ing)
    app.batch_lane = BatchLane(
        ing, max_body, fallback=lambda s, r, se: FastAPI.__call__(app, s, r, se), body_timeout_s=body_timeout_s
    )
    return app
