"""Who is writing: the token of a request and the node it belongs to (401 when there is none).

Every form InfluxDB 1.x and 2.x clients send is accepted, with the node token where they put a token or a
password: ``Authorization: Bearer <t>``, ``Authorization: Token <t>`` (and InfluxDB 1.8's ``Token user:<t>``),
HTTP Basic with the token as the password (Telegraf's ``outputs.influxdb``, the 1.x client libraries), and
the ``p`` query parameter (``?u=user&p=<t>``). The user name is not checked: the token names the node.

The token is read from the request line and headers alone (`scope_tokens`), so a request without a valid one
is answered 401 before its body is read.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl

from telemetry.collector.errors import ApiError
from telemetry.collector.metrics import CollectorMetrics
from telemetry.collector.settings import CollectorSettings

#: what a 401 offers (both schemes: a 1.x client answers a Basic challenge with its user and password)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="neighborscope", Basic realm="neighborscope"', "Connection": "close"}


def header_tokens(header: str) -> list[str]:
    """The candidate tokens of an ``Authorization`` header, most likely first (empty when it has none)."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not value:
        return []
    scheme = scheme.lower()
    if scheme == "bearer":
        return [value]
    if scheme == "token":  # InfluxDB 2.x; 1.8's v2 API takes "user:password" as the token
        return [value, value.partition(":")[2]] if ":" in value else [value]
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return []
        _user, sep, password = decoded.partition(":")
        return [password] if sep and password else []
    return []


def scope_tokens(scope: dict) -> list[str]:
    """The candidate tokens of an ASGI request: its ``Authorization`` header, then a ``p`` query parameter."""
    tokens: list[str] = []
    for key, value in scope["headers"]:
        if key.lower() == b"authorization":
            tokens += header_tokens(value.decode("latin-1"))
    query = scope.get("query_string", b"")
    if b"p=" in query:
        tokens += [v for k, v in parse_qsl(query.decode("latin-1")) if k == "p" and v]
    return tokens


def node_for(settings: CollectorSettings, tokens: list[str] | str | None, metrics: CollectorMetrics) -> str:
    """The node the first known token belongs to; 401 for no token or none known."""
    if isinstance(tokens, str):
        tokens = [tokens]
    if not tokens:
        metrics.rejects.labels("unauthenticated").inc()
        raise ApiError(
            401,
            "unauthenticated",
            "missing token: send Authorization: Bearer <token> (or Token <token>, or HTTP Basic with the token "
            "as the password, or ?p=<token>)",
            headers=CHALLENGE,
        )
    for token in tokens:
        node = settings.node_for_token(token)
        if node is not None:
            return node
    metrics.rejects.labels("unauthenticated").inc()
    raise ApiError(401, "unauthenticated", "unknown token", headers=CHALLENGE)
