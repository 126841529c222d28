"""Request bodies: the size limit (413, compressed or inflated: no zip bombs) and gzip / deflate inflation
(415 for another ``Content-Encoding``, 400 for a body that does not inflate)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable

from telemetry.collector.errors import error_response

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

#: set in an ASGI scope whose body was already read, limited and inflated (by the batch lane)
BODY_READ = "neighborscope.body"


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


def replay(data: bytes, receive: Callable) -> Callable[[], Awaitable[dict]]:
    """A ``receive`` that hands out ``data`` as the whole body once, then defers to the real one."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return replayed


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` (413) and inflate gzip/deflate bodies,
    counting the inflated size against the same limit (no zip bombs)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT") or scope.get(BODY_READ):
            await self.app(scope, receive, send)
            return
        got = await read_body(scope, receive, send, self.max_bytes)
        if got is not None:
            scope, data = got
            await self.app(scope, replay(data, receive), send)
