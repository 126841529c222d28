"""Who is writing: the token of a request (``Authorization: Bearer <t>`` / ``Token <t>``, or InfluxDB 1.x's
``p`` parameter on ``/write``) and the node it belongs to (401 when there is none)."""

from __future__ import annotations

from fastapi import Request

from telemetry.collector.errors import ApiError
from telemetry.collector.metrics import CollectorMetrics
from telemetry.collector.settings import CollectorSettings


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <t>`` (or ``Token <t>``) header, else None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return None


def request_token(request: Request) -> str | None:
    """A request's token: the Authorization header, or on ``/write`` the ``p`` parameter."""
    token = bearer_token(request.headers.get("authorization", ""))
    if token is not None:
        return token
    if request.url.path == "/write":  # InfluxDB 1.x clients send the password as the token
        return request.query_params.get("p") or None
    return None


def node_for(settings: CollectorSettings, token: str | None, metrics: CollectorMetrics) -> str:
    """The node a token belongs to; 401 for a missing or unknown token."""
    if token is None:
        metrics.rejects.labels("unauthenticated").inc()
        raise ApiError(401, "unauthenticated", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    node = settings.node_for_token(token)
    if node is None:
        metrics.rejects.labels("unauthenticated").inc()
        raise ApiError(401, "unauthenticated", "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return node
