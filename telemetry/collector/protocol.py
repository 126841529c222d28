"""The HTTP protocol the collector serves: uvicorn's (httptools, else h11) plus what uvicorn lacks against slow
and idle clients.

- a header deadline: a connection whose request line and headers are not in ``header_timeout_s`` after it
  opened (or after the first byte of its next request) gets a 408 and is closed. uvicorn arms no timer until
  a first request is complete, so without this an idle or trickling connection holds a file descriptor for
  ever;
- a hard cap on open connections: past ``hard_limit`` a new connection gets a 503 at once and is closed, so
  connections can never take the file descriptors the store needs. Below it, uvicorn's own
  ``limit_concurrency`` answers 503 to requests over the soft limit;
- one write per response (`_OneWriteResponses`): status line, headers and body in one ``send()``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


def _raw_response(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"code": code, "message": message, "where": ""}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n{extra}"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _OneWriteResponses:
    """A connection's transport as its request cycles see it: a response's status line and headers (uvicorn
    writes them on ``http.response.start``) are held until its body is written, then both go out in one write:
    one ``send()`` system call per response instead of two (a tenth of the collector's CPU per batch went to
    the two, docs/collector-performance.md). Held headers are written at the latest on the event loop's next
    turn (a response whose body comes later), and before anything else written or a close; order is kept."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n"):  # a response's head: wait for its body
            self._held = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's
        return getattr(self._transport, name)


def base_protocol() -> type:
    """The protocol class uvicorn's ``http="auto"`` would pick."""
    try:
        import httptools  # noqa: F401 - uvicorn's choice when it is installed
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def guarded_protocol(header_timeout_s: float, hard_limit: int, base: type | None = None) -> type:
    """A uvicorn HTTP protocol class with the header deadline and the connection cap (see the module)."""
    parent: Any = base or base_protocol()
    too_slow = _raw_response(
        408,
        "Request Timeout",
        "header_timeout",
        f"request headers not received within {header_timeout_s:g} s (header_timeout_s in collector.toml)",
    )
    too_many = _raw_response(
        503,
        "Service Unavailable",
        "too_many_connections",
        f"more than {hard_limit} connections are open; retry later",
        "retry-after: 1\r\n",
    )

    class GuardedProtocol(parent):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None
        _awaited: Any = None  # the request cycle current when the deadline was armed

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > hard_limit:
                transport.write(too_many)
                transport.close()
                return
            self.transport = _OneWriteResponses(transport, self.loop)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # the first bytes of the next request on a kept-alive connection
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._awaited = self.cycle
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_deadline)

        def _header_deadline(self) -> None:
            self._header_timer = None
            waiting = self.cycle is self._awaited and (self.cycle is None or self.cycle.response_complete)
            if waiting and not self.transport.is_closing():
                self.transport.write(too_slow)
                self.transport.close()

    GuardedProtocol.__name__ = f"Guarded{parent.__name__}"
    return GuardedProtocol
