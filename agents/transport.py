"""Batches to the collector: encode, spool, send with retries and backoff.

`encode_batch` turns rows into the gzip JSON body of ``POST /v1/batches`` (pure). `Transport.post`
sends one body and classifies the answer:

- 200 -> ``ok`` (stored, or a duplicate the collector already had: replays are safe);
- 5xx, 408, 429, connection errors, timeouts -> ``retry`` (the batch stays first in the spool);
- 401, 403, 404 -> ``retry`` a few times (``auth_attempts``; a token fixed in time loses nothing), then
  ``rejected``;
- any other 4xx -> ``rejected`` at once: logged with the collector's message and moved out of the way.

`Sender` owns the spool: every batch is appended before it is sent and removed when acked, so batches
are replayed in order after an outage; sequence numbers let the collector drop duplicates.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import random
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from agents.samplers.base import Row
from agents.spool import Spool
from telemetry.errors import ConfigError, SchemaError
from telemetry.schema import TIME, measurement

log = logging.getLogger(__name__)

Outcome = Literal["ok", "retry", "rejected"]
BATCH_PATH = "/v1/batches"


def rows_frame(name: str, rows: list[Row]) -> pl.DataFrame:
    """Rows of one measurement -> a schema frame (columns no row has are left out: absent)."""
    cols = rows_columns(name, rows)
    schema = measurement(name).polars_schema()
    series = [pl.Series(TIME, cols.pop(TIME), dtype=pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")]
    series += [pl.Series(c, v, dtype=schema[c], strict=False) for c, v in cols.items()]
    return pl.DataFrame(series)


def _float(v: Any) -> float | None:
    return None if v is None or v != v else float(v)  # NaN -> absent


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


_KIND_TYPE = {"float": float, "int": int, "bool": bool, "str": str}
_KIND_CONV = {"float": _float, "int": _int, "bool": _bool, "str": _str}
_COLUMNS: dict[str, dict[str, tuple[type, Any]]] = {}


def _columns_of(name: str) -> dict[str, tuple[type, Any]]:
    cols = _COLUMNS.get(name)
    if cols is None:
        m = measurement(name)
        cols = {TIME: (int, int)}
        cols.update({t: (str, _str) for t in m.tags})
        cols.update({f.name: (_KIND_TYPE[f.kind], _KIND_CONV[f.kind]) for f in m.fields})
        _COLUMNS[name] = cols
    return cols


def rows_columns(name: str, rows: list[Row]) -> dict[str, list[Any]]:
    """Rows of one measurement -> the batch's columns (what `telemetry.batch.frame_to_columns` gives
    for the same frame), built without a DataFrame: the agent's hot path. Columns no row has a value
    for are left out; values are converted to their field's kind; NaN becomes null."""
    spec = _columns_of(name)
    present: set[str] = set()
    for r in rows:
        present.update(r)
    unknown = present - spec.keys()
    if unknown:
        raise SchemaError(f"unknown column(s) {sorted(unknown)}", name)
    out: dict[str, list[Any]] = {}
    n = len(rows)
    for c, (typ, conv) in spec.items():
        if c not in present:
            continue
        values = [r.get(c) for r in rows]
        if values.count(None) == n:
            continue
        if typ is float:
            # floats pass as they are unless NaN (v != v) or of another type
            values = [v if v.__class__ is float and v == v else conv(v) for v in values]
        elif not all(v.__class__ is typ or v is None for v in values):
            values = [conv(v) for v in values]
        out[c] = values
    return out


def batch_document(
    node: str, boot_id: str, seq: int, rows: Mapping[str, list[Row]], sent_at_ns: int | None = None
) -> dict[str, Any]:
    """The batch as `telemetry.batch.make_batch` builds it, from rows."""
    return {
        "node": node,
        "boot_id": boot_id,
        "seq": seq,
        "sent_at_ns": sent_at_ns,
        "frames": [
            {"measurement": name, "columns": rows_columns(name, items)} for name, items in rows.items() if items
        ],
    }


def encode_batch(node: str, boot_id: str, seq: int, rows: Mapping[str, list[Row]]) -> bytes:
    """Rows by measurement -> the gzip-compressed JSON body of one batch."""
    doc = batch_document(node, boot_id, seq, rows, sent_at_ns=time.time_ns())
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=5)


@dataclass
class PostResult:
    outcome: Outcome
    status: int | None
    message: str


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
            return PostResult("retry", status, message)
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
            body = encode_batch(self.node, self.boot_id, seq, rows)
            self.spool.append(body)
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
        delay = self.backoff_min_s
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
                delay = self.backoff_min_s
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
            self._hurry.wait(delay * random.uniform(0.8, 1.2))
            delay = self.backoff_min_s if self._hurry.is_set() else min(self.backoff_max_s, delay * 2)

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
