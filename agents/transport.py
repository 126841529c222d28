"""Batches to the collector: encode, spool, send with retries and backoff.

`telemetry.batch.encode_batch` turns rows into the gzip JSON body of ``POST /v1/batches`` (pure).
`Transport.post` sends one body and classifies the answer:

- 200 -> ``ok`` (stored, or a duplicate the collector already had: replays are safe);
- 5xx, 408, 429, connection errors, timeouts -> ``retry`` (the batch stays first in the spool); the wait
  before the next try is `telemetry.retry.Backoff`'s, or the collector's ``Retry-After`` (429, 503);
- 401, 403, 404 -> ``retry`` a few times (``auth_attempts``; a token fixed in time loses nothing), then
  ``rejected``;
- any other 4xx -> ``rejected`` at once: logged with the collector's message and moved out of the way.

`Sender` owns the spool: every batch is appended before it is sent and removed when acked, so batches
are replayed in order after an outage; sequence numbers let the collector drop duplicates.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agents.samplers.base import Row
from agents.spool import Spool
from telemetry.batch import encode_batch
from telemetry.errors import ConfigError
from telemetry.retry import Backoff, parse_retry_after

log = logging.getLogger(__name__)

Outcome = Literal["ok", "retry", "rejected"]
BATCH_PATH = "/v1/batches"


#: answers whose ``Retry-After`` the sender honours
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass
class PostResult:
    outcome: Outcome
    status: int | None
    message: str
    retry_after_s: float | None = None  # the collector's Retry-After (429, 503), in seconds


class Transport:
    """A kept-alive HTTP(S) connection to the collector (stdlib `http.client`: a POST costs a fraction of
    what a general-purpose client costs, which matters at one batch per second, forever)."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 10.0, ca_file: str | Path | None = None) -> None:
        """``ca_file``: a PEM CA bundle the collector's TLS certificate must chain to (https URLs); without it
        the system's CAs are used. The certificate and host name are always verified."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"collector url must be http(s)://HOST[:PORT], got {url!r}", "collector.url")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path.rstrip("/") + BATCH_PATH
        self.url = f"{parts.scheme}://{parts.netloc}{self.path}"
        self.timeout_s = timeout_s
        self.ca_file = str(ca_file) if ca_file else None
        self.headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.https:
                self._conn = http.client.HTTPSConnection(
                    self.host,
                    self.port,
                    timeout=self.timeout_s,
                    context=ssl.create_default_context(cafile=self.ca_file),
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return self._conn

    def post(self, body: bytes) -> PostResult:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", self.path, body=body, headers=self.headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                retry_after = resp.getheader("Retry-After") if status in RETRY_AFTER_STATUSES else None
                if resp.will_close:
                    self.close()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                stale = isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError)
                if attempt == 1 and stale:
                    continue  # the kept-alive connection was closed by the server: once more on a fresh one
                return PostResult("retry", None, f"{type(exc).__name__}: {exc}")
        if status == 200:
            return PostResult("ok", 200, "")
        message = _error_message(data)
        if status >= 500 or status in (408, 429):
            return PostResult("retry", status, message, parse_retry_after(retry_after))
        if status in (401, 403, 404):
            return PostResult("retry", status, message)
        return PostResult("rejected", status, message)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _error_message(data: bytes) -> str:
    """The collector's one error shape ``{"error": {"code", "message", "where"}}`` as one line."""
    try:
        err = json.loads(data)["error"]
        where = f" (at {err['where']})" if err.get("where") else ""
        return f"{err.get('code', '')}: {err.get('message', '')}{where}"
    except (ValueError, KeyError, TypeError):
        return data[:300].decode(errors="replace")


class Sender:
    """Encodes batches into the spool and delivers the spool, oldest first, on its own thread."""

    def __init__(
        self,
        node: str,
        spool: Spool,
        transport: Transport | None,
        boot_id: str | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 10.0,
        auth_attempts: int = 5,
    ) -> None:
        self.node = node
        self.spool = spool
        self.transport = transport
        self.boot_id = boot_id or uuid.uuid4().hex
        self.seq = 0
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.auth_attempts = auth_attempts
        self.sent_total = 0
        self.rejected_total = 0
        self.rows_total: dict[str, int] = {}
        self.last_error = ""
        self._wake = threading.Event()
        self._hurry = threading.Event()  # shutdown: stop backing off
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, rows: Mapping[str, list[Row]]) -> int | None:
        """Encode rows as the next batch and spool it; returns its seq (None if there was nothing)."""
        rows = {k: v for k, v in rows.items() if v}
        if not rows:
            return None
        with self._lock:
            seq = self.seq
            self.seq += 1
            body = encode_batch(self.node, self.boot_id, seq, rows, sent_at_ns=time.time_ns())
            try:
                self.spool.append(body)  # a full disk drops the oldest batches there; never stop sampling here
            except Exception:
                self.spool.dropped_total += 1
                log.exception("could not spool batch %d: dropped", seq)
            for name, items in rows.items():
                self.rows_total[name] = self.rows_total.get(name, 0) + len(items)
        self._wake.set()
        return seq

    def start(self) -> None:
        if self.transport is None:
            return
        self._thread = threading.Thread(target=self._loop, name="sender", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._deliver()
            except Exception:  # the spool's disk failed under us: never let the sender thread die silently
                log.exception("sender: unexpected error; retrying in 1 s")
                self._hurry.wait(1.0)

    def _deliver(self) -> None:
        backoff = Backoff(min_s=self.backoff_min_s, max_s=self.backoff_max_s)
        auth_failures = 0
        while not self._stop.is_set():
            entry = self.spool.peek()
            if entry is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            key, body = entry
            result = self.transport.post(body)  # type: ignore[union-attr]
            if result.outcome == "ok":
                self.spool.remove(key)
                self.sent_total += 1
                if self.last_error:
                    log.info("collector reachable again; %d batch(es) waiting in the spool", len(self.spool))
                self.last_error = ""
                backoff.reset()
                auth_failures = 0
                continue
            if result.outcome == "retry" and result.status in (401, 403, 404):
                auth_failures += 1
                if auth_failures >= self.auth_attempts:
                    result = PostResult("rejected", result.status, result.message)
            if result.outcome == "rejected":
                self.spool.remove(key)
                self.rejected_total += 1
                auth_failures = 0
                log.error("collector rejected batch %s (HTTP %s): %s", key, result.status, result.message)
                continue
            if result.message != self.last_error:
                log.warning("collector unavailable (%s); spooling and retrying", result.message or result.status)
                self.last_error = result.message
            self._hurry.wait(backoff.next_wait(result.retry_after_s))
            if self._hurry.is_set():  # shutting down: no more backing off
                backoff.reset()

    def drain(self, timeout_s: float) -> bool:
        """Try to deliver the spool for up to ``timeout_s`` (shutdown); True when it is empty."""
        if self.transport is None:
            return len(self.spool) == 0
        deadline = time.monotonic() + timeout_s
        self._hurry.set()
        self._wake.set()
        while len(self.spool) and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.spool) == 0

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._hurry.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.transport is not None:
            self.transport.close()
