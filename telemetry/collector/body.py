"""Request bodies: the size limit (413, compressed or inflated: no zip bombs), the read deadline (408 for a
body not in within ``body_timeout_s``), gzip / deflate inflation (415 for another ``Content-Encoding``, 400
for a body that does not inflate, or whose stream or gzip trailer is cut off), and the check that runs
before a body is read at all (`BodyLimit`'s ``admit``: the token, 401 at once)."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Awaitable, Callable

from telemetry.collector.errors import ApiError, error_response

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

#: set in an ASGI scope whose body was already read, limited and inflated (by the batch lane)
BODY_READ = "neighborscope.body"


async def read_body(
    scope: dict, receive: Callable, send: Callable, max_bytes: int, timeout_s: float | None = None
) -> tuple[dict, bytes] | None:
    """The request body, inflated (gzip / deflate), and the scope to pass on (encoding headers dropped once
    inflated); None when the request was answered here: 415 for an unknown Content-Encoding, 413 above
    ``max_bytes`` (compressed or inflated: no zip bombs), 408 when the whole body is not in within
    ``timeout_s``, 400 for a body that does not inflate or is cut off."""
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
    try:
        async with asyncio.timeout(timeout_s):
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
    except TimeoutError:
        message = f"body not received within {timeout_s:g} s (body_timeout_s in collector.toml)"
        await error_response(408, "body_timeout", message, headers=CLOSE)(scope, receive, send)
        return None
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if encoding in ("gzip", "deflate"):
        try:
            data = _inflate(data, encoding, max_bytes)
        except _TooLargeError:
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


#: headers of an answer given before the body was read (in full): the connection cannot be reused
CLOSE = {"Connection": "close"}


class _TooLargeError(Exception):
    pass


def _inflate(data: bytes, encoding: str, max_bytes: int) -> bytes:
    """``data`` inflated; `_TooLargeError` above ``max_bytes``; `zlib.error` for a stream that is corrupt, cut
    off (no end of stream, or a gzip member without its CRC / length trailer) or followed by garbage.
    Concatenated gzip members (RFC 1952) are inflated one after the other."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    out: list[bytes] = []
    size = 0
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits)
        part = inflater.decompress(rest, max_bytes + 1 - size)
        size += len(part)
        if size > max_bytes or inflater.unconsumed_tail:
            raise _TooLargeError
        if not inflater.eof:
            raise zlib.error("the compressed stream is cut off (no end of stream or trailer)")
        out.append(part)
        rest = inflater.unused_data
        if not rest:
            return out[0] if len(out) == 1 else b"".join(out)
        if encoding != "gzip" or not rest.startswith(b"\x1f\x8b"):
            raise zlib.error("data after the end of the compressed stream")


async def _too_large(max_bytes: int, scope: dict, receive: Callable, send: Callable) -> None:
    await error_response(413, "too_large", f"body larger than {max_bytes} bytes", headers=CLOSE)(scope, receive, send)


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
    """ASGI middleware in front of every POST / PUT: first ``admit(scope)`` (the scope to go on with, or an
    `ApiError` to answer at once, before any byte of the body is read: the token check), then the body read
    within ``timeout_s``, limited to ``max_bytes`` and inflated (`read_body`)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float | None = None,
        admit: Callable[[dict], dict] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.admit = admit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT") or scope.get(BODY_READ):
            await self.app(scope, receive, send)
            return
        if self.admit is not None:
            try:
                scope = self.admit(scope)
            except ApiError as exc:
                await exc.response()(scope, receive, send)
                return
        got = await read_body(scope, receive, send, self.max_bytes, self.timeout_s)
        if got is not None:
            scope, data = got
            await self.app(scope, replay(data, receive), send)
