"""InfluxDB as a store: line protocol in, InfluxQL out, portable across InfluxDB 1.x, 2.x and 3.x.

URLs (``open_store`` hands every non-file scheme to this module)::

    influx://[user:password@]HOST:PORT/DATABASE?rp=autogen         v1 API: POST /write, InfluxQL on /query
    influxs://...                                                  the same over https
    influx://HOST:8181/DATABASE?token=T                            v1 API with a token (InfluxDB 3.x)
    influx2://HOST:PORT/?org=ORG&bucket=BUCKET&token=T             v2 API: /api/v2/write via influxdb-client
    influx2s://...                                                 the same over https

Query parameters common to both: ``queue=DIR`` (the local durable queue, see `telemetry.store.queued`),
``batch_bytes=N`` (largest write body before gzip, default 4 MiB), ``timeout=SECONDS``, ``gzip=0|1`` (default
1, but 0 to a loopback host),
``artifacts=DIR`` (large frames are kept on local disk: InfluxDB is no place for per-token arrays),
``api=v1|v2`` to override the scheme, ``chunk_size=N`` for query streaming, ``retry_max_s=S`` (longest
wait between retries of the queue, default 30).

``open_store`` returns a `QueuedStore` in front of an `InfluxStore`: writes are made durable on local
disk and acknowledged, a background thread drains them to InfluxDB in order. `InfluxStore` itself is
synchronous: a write returns once InfluxDB answered, and raises `StoreUnavailableError` (with
``retry_after_s``) when InfluxDB is down, slow or busy, `InfluxWriteRejectedError` (with the offending lines)
when InfluxDB refused points, `StoreError` for configuration errors (auth, unknown database).

Queries always go through InfluxQL on ``/query`` (every generation answers it; Flux is absent from 1.x
before 1.8 and from 3.x). Time ranges and tag filters are pushed into the ``WHERE``; identifiers are
double-quoted and values single-quoted with escapes, so a hostile tag value cannot change the query.
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import line_protocol_parser
import polars as pl

from telemetry.errors import (
    ConfigError,
    InfluxUnavailableError,
    InfluxWriteRejectedError,
    RejectedLine,
    SchemaError,
    StoreError,
)
from telemetry.line_protocol import split_lines
from telemetry.retry import parse_retry_after
from telemetry.schema import (
    INFLUX_MAX_NS,
    INFLUX_MIN_NS,
    MEASUREMENTS,
    TIME,
    TIME_DTYPE,
    as_time,
    conform,
    measurement_name_problem,
    tag_values_problem,
    text_problem,
)
from telemetry.store import lp_encode
from telemetry.store.base import BatchKey, TagFilter, parse_agg, parse_every
from telemetry.store.factory import register_scheme
from telemetry.store.local_artifacts import LocalArtifacts
from telemetry.store.queued import QueuedStore

log = logging.getLogger("neighborscope.influx")

Api = Literal["v1", "v2"]
DEFAULT_BATCH_BYTES = 4 * 2**20


# ---- errors --------------------------------------------------------------------------------------


class _TooLargeError(Exception):
    """HTTP 413: the body is above the server's limit."""


class _BadRequestError(Exception):
    """A 400 from InfluxDB before we know which lines were at fault."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


# ---- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InfluxConfig:
    """Where and how to talk to InfluxDB (parsed from a store URL by `InfluxConfig.from_url`)."""

    url: str  # http(s)://host:port
    api: Api = "v1"
    database: str = "neighborscope"  # v1: database; v2: the bucket (queried through its DBRP mapping)
    retention_policy: str | None = None
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    org: str = "-"
    batch_bytes: int = DEFAULT_BATCH_BYTES
    timeout_s: float = 10.0
    gzip: bool = True
    chunk_size: int = 20_000
    retry_max_s: float = 30.0
    queue_dir: Path | None = None
    artifacts_dir: Path | None = None

    @property
    def bucket(self) -> str:
        return (
            f"{self.database}/{self.retention_policy}" if self.retention_policy and self.api == "v2" else self.database
        )

    def redacted(self) -> str:
        """The store URL without password or token (for messages and logs)."""
        http, hostport = self.url.split("://", 1)
        scheme = ("influx2" if self.api == "v2" else "influx") + ("s" if http == "https" else "")
        who = f"{quote(self.username, safe='')}:***@" if self.username else ""
        if self.api == "v2":
            token = "&token=***" if self.token else ""
            return f"{scheme}://{who}{hostport}/?org={self.org}&bucket={self.bucket}{token}"
        rp = f"?rp={self.retention_policy}" if self.retention_policy else ""
        return f"{scheme}://{who}{hostport}/{quote(self.database, safe='')}{rp}"

    @classmethod
    def from_url(cls, url: str) -> InfluxConfig:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("influx", "influxs", "influx2", "influx2s"):
            raise ConfigError(f"{url!r}: not an InfluxDB URL (influx://, influxs://, influx2://, influx2s://)")
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        known = {"rp", "token", "org", "bucket", "queue", "batch_bytes", "timeout", "gzip", "artifacts", "api"}
        known |= {"chunk_size", "db", "u", "p", "retry_max_s"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"{_redact(url)}: unknown parameter(s) {unknown}; known: {sorted(known)}")
        api: str = params.get("api") or ("v2" if scheme.startswith("influx2") else "v1")
        if api not in ("v1", "v2"):
            raise ConfigError(f"{_redact(url)}: api must be v1 or v2, got {api!r}")
        if not parts.hostname:
            raise ConfigError(f"{_redact(url)}: no host")
        try:
            port = parts.port or (8086 if not scheme.endswith("s") else 443)
        except ValueError:
            raise ConfigError(f"{_redact(url)}: bad port") from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        http = "https" if scheme.endswith("s") else "http"
        path_db = unquote(parts.path.strip("/"))
        database = params.get("bucket") or params.get("db") or path_db
        rp = params.get("rp") or None
        if api == "v2" and "/" in database and rp is None:  # 1.8 convention: bucket = "db/rp"
            database, rp = database.split("/", 1)
        if not database:
            raise ConfigError(f"{_redact(url)}: name the database (influx://host:port/DB) or bucket (?bucket=B)")
        try:
            batch_bytes = int(params.get("batch_bytes", DEFAULT_BATCH_BYTES))
            timeout_s = float(params.get("timeout", 10.0))
            chunk_size = int(params.get("chunk_size", 20_000))
            retry_max_s = float(params.get("retry_max_s", 30.0))
        except ValueError as exc:
            raise ConfigError(f"{_redact(url)}: {exc}") from None
        if batch_bytes < 1024:
            raise ConfigError(f"{_redact(url)}: batch_bytes must be >= 1024")
        return cls(
            url=f"{http}://{host}:{port}",
            api=api,  # type: ignore[arg-type]
            database=database,
            retention_policy=rp,
            username=unquote(parts.username) if parts.username else params.get("u"),
            password=unquote(parts.password) if parts.password else params.get("p"),
            token=params.get("token") or None,
            org=params.get("org") or "-",
            batch_bytes=batch_bytes,
            timeout_s=timeout_s,
            gzip=_gzip_param(params.get("gzip"), parts.hostname),
            chunk_size=chunk_size,
            retry_max_s=retry_max_s,
            queue_dir=Path(params["queue"]).expanduser() if params.get("queue") else None,
            artifacts_dir=Path(params["artifacts"]).expanduser() if params.get("artifacts") else None,
        )


def _gzip_param(value: str | None, hostname: str) -> bool:
    """``gzip=0|1``; by default on, except to a loopback host, where compressing costs CPU (both ours and
    InfluxDB's, on the same machine) and saves no network."""
    if value is not None:
        return value.lower() not in ("0", "false", "no", "off")
    if hostname == "localhost":
        return False
    try:
        return not ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return True


def _redact(url: str) -> str:
    url = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
    return re.sub(r"(token|p)=[^&]*", r"\1=***", url)


# ---- InfluxQL quoting ----------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted (``"`` and ``\\`` escaped)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal, single-quoted (``'`` and ``\\`` escaped, newlines as ``\\n``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(value: datetime) -> int:
    """Epoch nanoseconds of a datetime (naive = UTC), exact (datetime has microseconds)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


def where_clause(start: datetime | None = None, end: datetime | None = None, tags: TagFilter | None = None) -> str:
    """``WHERE`` for start <= time < end and tag filters (a value, or any of a list); "" when none."""
    conds: list[str] = []
    if start is not None:
        conds.append(f"time >= {_ns(start)}")
    if end is not None:
        conds.append(f"time < {_ns(end)}")
    for tag, value in (tags or {}).items():
        values = [value] if isinstance(value, str) else list(value)
        if not values:
            conds.append("false")  # matches nothing
            continue
        ors = " OR ".join(f"{quote_ident(tag)} = {quote_string(str(v))}" for v in values)
        conds.append(f"({ors})" if len(values) > 1 else ors)
    return (" WHERE " + " AND ".join(conds)) if conds else ""


def _aggregate(agg: str, ident: str) -> str:
    name, pct = parse_agg(agg)
    return f"percentile({ident}, {pct:g})" if name == "percentile" else f"{name}({ident})"


# ---- HTTP details --------------------------------------------------------------------------------


def _error_text(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    with contextlib.suppress(ValueError, AttributeError):
        doc = json.loads(text)
        return str(doc.get("error") or doc.get("message") or text)
    return text.strip()


_CONFLICT = re.compile(
    r'field type conflict: input field \\?"(?P<field>.+?)\\?" on measurement \\?"(?P<m>.+?)\\?" is type (?P<type>\w+)'
)
_PY_TYPES: dict[str, tuple[type, ...]] = {"float": (float,), "integer": (int,), "unsigned": (int,), "string": (str,)}
_UNPARSABLE = re.compile(r"unable to parse '(?P<line>.*?)': ")


def _offending_lines(lines: list[bytes], message: str) -> list[RejectedLine]:
    """Find the lines a 1.x "partial write" message is about (it names the line or the field)."""
    out: list[RejectedLine] = []
    for m in _UNPARSABLE.finditer(message):
        out.append(RejectedLine(m.group("line"), "unable to parse"))
    for m in _CONFLICT.finditer(message):
        fld, meas = m.group("field"), m.group("m")
        reason = message[m.start() :].split(" dropped=", 1)[0]
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            try:
                parsed = line_protocol_parser.parse_line(line)
            except line_protocol_parser.LineFormatError:
                continue
            if parsed["measurement"] != meas or fld not in parsed["fields"]:
                continue
            value = parsed["fields"][fld]
            kind = m.group("type")
            if kind == "boolean":
                match = isinstance(value, bool)
            else:
                match = isinstance(value, _PY_TYPES.get(kind, (object,))) and not isinstance(value, bool)
            if match:
                out.append(RejectedLine(line, reason))
    # the message names a field but every line of that measurement carries it: we report them all; when
    # the message names nothing we can match, report the message once
    return out or [RejectedLine("", message)]


# ---- the store -----------------------------------------------------------------------------------


EVENT_MEASUREMENTS = ("bench_request", "accel_event")


def _unique_times(frame: pl.DataFrame, measurement: str) -> pl.DataFrame:
    """InfluxDB keeps one point per (series, timestamp): distinct events of one series at the same instant
    (64 benchmark requests dispatched in the same nanosecond) would overwrite each other. The k-th of them
    is moved k nanoseconds later, which keeps every one and changes no time at a visible precision."""
    tags = [t for t in MEASUREMENTS[measurement].tags if t in frame.columns]
    rank = pl.int_range(pl.len()).over([*tags, TIME])
    shifted = (pl.col(TIME).dt.epoch("ns") + rank).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    return frame.with_columns(shifted.alias(TIME))


class InfluxStore(LocalArtifacts):
    """A synchronous `TelemetryStore` on InfluxDB (no local queue: see `QueuedStore`)."""

    lazy_scan = False  # scan() fetches the rows first: reduce on the server with downsample()

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        headers = {"User-Agent": "neighborscope"}
        auth: tuple[str, str] | None = None
        if config.token:
            headers["Authorization"] = f"Token {config.token}"
        elif config.username is not None:
            auth = (config.username, config.password or "")
        self._http = httpx.Client(
            base_url=config.url,
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 5.0)),
        )
        self._v2: Any = None
        self._v2_write: Any = None
        self._artifacts: Any = None

    def __repr__(self) -> str:
        return f"InfluxStore({self.config.redacted()!r})"

    # ---- writing -------------------------------------------------------------------------------

    def prepare(self, measurement: str, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame checked against the schema and against what InfluxDB refuses (raises `SchemaError` naming
        the column and row): the queue calls it before a write is queued and acknowledged."""
        frame, tags = _prepare(measurement, frame)
        _check_influx_values(measurement, frame, tags)
        return frame

    def encode(self, measurement: str, frame: pl.DataFrame) -> bytes:
        """Line protocol for a frame (conformed to the schema for a schema measurement)."""
        frame, _tags = _prepare(measurement, frame)
        if frame.height == 0:
            return b""
        if measurement in EVENT_MEASUREMENTS:
            frame = _unique_times(frame, measurement)
        return lp_encode.encode(frame, measurement)

    def write(self, measurement: str, frame: pl.DataFrame) -> int:
        """Write a frame now (cut into ``batch_bytes`` bodies); returns its row count."""
        body = self.encode(measurement, frame)
        for part in split_lines(body, self.config.batch_bytes):
            self.write_lines(part)
        return frame.height

    def write_batch(self, key: BatchKey, frames: Mapping[str, pl.DataFrame]) -> bool:
        """Write an agent batch now. InfluxDB overwrites identical points (same series and time), so a
        replay stores nothing twice; without a local queue we cannot tell new from replayed: True."""
        body = b"".join(self.encode(m, f) for m, f in frames.items())
        for part in split_lines(body, self.config.batch_bytes):
            self.write_lines(part)
        return True

    def write_lines(self, body: bytes, *, gzipped: bool = False) -> int:
        """POST line protocol; returns the number of lines sent.

        Raises `InfluxUnavailableError` (retry later, ``retry_after_s`` from ``Retry-After``),
        `InfluxWriteRejectedError` (some lines refused: every other line is stored), `StoreError` (auth,
        missing database: retrying will not help until someone fixes it).
        """
        raw = gzip.decompress(body) if gzipped else body
        if not raw or raw.isspace():
            return 0
        try:
            self._post(body if gzipped else raw, gzipped)
        except _BadRequestError as exc:
            self._resolve_bad_request(raw, exc.message)
        except _TooLargeError:
            self._write_halves(raw)
        return raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)

    def _write_halves(self, raw: bytes) -> None:
        """The server's body limit is below batch_bytes (HTTP 413): send the body in halves."""
        lines = [ln for ln in raw.split(b"\n") if ln.strip()]
        if len(lines) == 1:
            reason = "line larger than the server's largest write body (HTTP 413)"
            raise InfluxWriteRejectedError([RejectedLine(lines[0].decode("utf-8", "replace"), reason)], 0)
        log.warning("InfluxDB at %s refused %d bytes as too large (413): lower batch_bytes", self.config.url, len(raw))
        rejected: list[RejectedLine] = []
        mid = len(lines) // 2
        for half in (lines[:mid], lines[mid:]):
            try:
                self.write_lines(b"\n".join(half) + b"\n")
            except InfluxWriteRejectedError as exc:
                rejected += exc.rejected
        if rejected:
            raise InfluxWriteRejectedError(rejected, len(lines) - len(rejected))

    def _resolve_bad_request(self, raw: bytes, message: str) -> None:
        lines = [ln for ln in raw.split(b"\n") if ln.strip()]
        if "partial write" in message:
            # InfluxDB 1.x stored every other line; the message names the bad one(s)
            rejected = _offending_lines(lines, message)
            raise InfluxWriteRejectedError(rejected, len(lines) - len(rejected))
        # the whole body was refused: find the bad lines by halving, so the good ones still get in
        rejected = self._bisect(lines, message)
        raise InfluxWriteRejectedError(rejected, len(lines) - len(rejected))

    def _bisect(self, lines: list[bytes], message: str) -> list[RejectedLine]:
        if len(lines) == 1:
            return [RejectedLine(lines[0].decode("utf-8", "replace"), message)]
        mid = len(lines) // 2
        rejected: list[RejectedLine] = []
        for half in (lines[:mid], lines[mid:]):
            try:
                self._post(b"\n".join(half) + b"\n", False)
            except _BadRequestError as exc:
                if "partial write" in exc.message:
                    rejected += _offending_lines(half, exc.message)
                else:
                    rejected += self._bisect(half, exc.message)
        return rejected

    def _post(self, body: bytes, gzipped: bool) -> None:
        if self.config.api == "v2":
            self._post_v2(gzip.decompress(body) if gzipped else body)
            return
        if self.config.gzip and not gzipped:
            body = gzip.compress(body, compresslevel=1)
            gzipped = True
        params = {"db": self.config.database, "precision": "ns"}
        if self.config.retention_policy:
            params["rp"] = self.config.retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        try:
            resp = self._http.post("/write", params=params, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.config.url} timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.config.url} unreachable: {exc}") from None
        self._check(resp.status_code, resp.headers.get("Retry-After"), resp.content)

    def _check(self, status: int, retry_after: str | None, body: bytes | str) -> None:
        if status < 300:
            return
        text = _error_text(body)
        where = f"InfluxDB at {self.config.url}"
        if status == 400:
            raise _BadRequestError(text)
        if status in (401, 403):
            raise StoreError(f"{where} refused the credentials (HTTP {status}): {text}")
        if status == 404:
            hint = ""
            if "database not found" in text or "bucket" in text:
                hint = f"; create it with: neighborscope influx init '{self.config.redacted()}'"
            raise StoreError(f"{where}: {text or 'not found (HTTP 404)'}{hint}")
        if status == 413:
            raise _TooLargeError(f"{where}: write body too large (HTTP 413); lower batch_bytes")
        if status in (408, 429) or status >= 500:
            raise InfluxUnavailableError(f"{where} answered HTTP {status}: {text}", parse_retry_after(retry_after))
        raise StoreError(f"{where} answered HTTP {status}: {text}")

    def _post_v2(self, body: bytes) -> None:
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        write_api = self._v2_api()
        try:
            write_api.write(bucket=self.config.bucket, org=self.config.org, record=body, write_precision="ns")
        except ApiException as exc:
            headers = exc.headers or {}
            self._check(int(exc.status or 0), headers.get("Retry-After"), exc.body or exc.reason or "")
        except (Urllib3Error, OSError) as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.config.url} unreachable: {exc}") from None

    def _v2_api(self) -> Any:
        if self._v2_write is None:
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            token = self.config.token
            if token is None and self.config.username is not None:
                token = f"{self.config.username}:{self.config.password or ''}"  # InfluxDB 1.8 convention
            self._v2 = InfluxDBClient(
                url=self.config.url,
                token=token or "",
                org=self.config.org,
                timeout=int(self.config.timeout_s * 1000),
                enable_gzip=self.config.gzip,
                retries=False,  # we own the retrying (the queue), never the client
            )
            self._v2_write = self._v2.write_api(write_options=SYNCHRONOUS)
        return self._v2_write

    # ---- InfluxQL ------------------------------------------------------------------------------

    def influxql(self, q: str, *, database: bool = True, write: bool = False) -> Iterator[dict]:
        """Run InfluxQL on ``/query``; yields each statement result (chunks of one statement in order)."""
        params: dict[str, str] = {"epoch": "ns", "chunked": "true", "chunk_size": str(self.config.chunk_size)}
        if database:
            params["db"] = self.config.database
            if self.config.retention_policy:
                params["rp"] = self.config.retention_policy
        try:
            with self._http.stream("POST", "/query", params=params, data={"q": q}) as resp:
                if resp.status_code >= 300:
                    body = resp.read()
                    try:
                        self._check(resp.status_code, resp.headers.get("Retry-After"), body)
                    except _BadRequestError as exc:
                        raise StoreError(f"InfluxQL refused: {exc.message} (query: {q[:300]})") from None
                for line in resp.iter_lines():
                    if not line.strip():
                        continue
                    doc = json.loads(line)
                    if doc.get("error"):
                        raise StoreError(f"InfluxQL failed: {doc['error']} (query: {q[:300]})")
                    for result in doc.get("results", []):
                        if result.get("error"):
                            err = result["error"]
                            hint = ""
                            if "database not found" in err:
                                hint = f"; create it with: neighborscope influx init '{self.config.redacted()}'"
                            raise StoreError(f"InfluxQL failed: {err}{hint} (query: {q[:300]})")
                        yield result
        except httpx.TimeoutException as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.config.url} timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.config.url} unreachable: {exc}") from None

    def _rows(self, q: str) -> Iterator[tuple[dict[str, str], list[str], list[list]]]:
        for result in self.influxql(q):
            for s in result.get("series", []) or []:
                yield s.get("tags") or {}, s["columns"], s.get("values") or []

    def measurements(self) -> list[str]:
        names: list[str] = []
        for _tags, _cols, values in self._rows("SHOW MEASUREMENTS"):
            names += [v[0] for v in values]
        return sorted(set(names))

    def tag_keys(self, measurement: str) -> list[str]:
        if measurement in MEASUREMENTS:
            return list(MEASUREMENTS[measurement].tags)
        keys: list[str] = []
        for _tags, _cols, values in self._rows(f"SHOW TAG KEYS FROM {quote_ident(measurement)}"):
            keys += [v[0] for v in values]
        return keys

    def query(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Rows with start <= time < end whose tags match, sorted by time; schema measurements come back
        in their declared dtypes (time UTC ns, tags String, absent fields null)."""
        known = MEASUREMENTS.get(measurement)
        tag_keys = self.tag_keys(measurement)
        if tags:
            unknown = [t for t in tags if t not in tag_keys]
            if unknown and known is not None:
                raise SchemaError(f"unknown tag(s) {unknown} for measurement {measurement!r}")
        if fields is not None:
            if known is not None:
                unknown = [f for f in fields if f not in known.field_index]
                if unknown:
                    raise SchemaError(f"unknown field(s) {unknown} for measurement {measurement!r}")
            if not fields:
                raise SchemaError("fields=[] selects nothing; leave it out for every field")
            select = ", ".join(
                [quote_ident(f) + "::field" for f in fields] + [quote_ident(t) + "::tag" for t in tag_keys]
            )
        else:
            select = "*"
        q = f"SELECT {select} FROM {quote_ident(measurement)}{where_clause(start, end, tags)}"  # noqa: S608 - quoted
        cols: list[str] | None = None
        rows: list[list] = []
        for _tags, columns, values in self._rows(q):
            if cols is None:
                cols = columns
            elif columns != cols:  # a later chunk with other columns: align by name
                idx = [columns.index(c) if c in columns else None for c in cols]
                values = [[v[i] if i is not None else None for i in idx] for v in values]
            rows += values
        frame = _to_frame(cols or [TIME], rows)
        if known is not None:
            frame = conform(frame, measurement, where=measurement)
            if fields is not None:
                keep = [TIME, *[t for t in known.tags], *[f for f in fields if f != TIME]]
                frame = frame.select(list(dict.fromkeys(keep)))
        elif TIME in frame.columns:
            frame = frame.with_columns(as_time(frame[TIME]))
        return frame.sort(TIME, maintain_order=True)

    def scan(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.LazyFrame:
        """`query` as a lazy frame: the rows cross the network first (prefer `downsample` for long ranges)."""
        return self.query(measurement, start, end, tags, fields).lazy()

    def time_bounds(self, measurement: str) -> tuple[datetime, datetime] | None:
        """(first, last) sample time: the oldest and the newest point of any series and field."""
        bounds = []
        for order in ("ASC", "DESC"):
            q = f"SELECT * FROM {quote_ident(measurement)} ORDER BY time {order} LIMIT 1"  # noqa: S608 - quoted
            rows = [values[0][0] for _tags, _cols, values in self._rows(q) if values]
            if not rows:
                return None
            bounds.append(datetime.fromtimestamp(0, tz=UTC) + timedelta(microseconds=rows[0] // 1000))
        return bounds[0], bounds[1]

    def downsample(
        self,
        measurement: str,
        every: str | float,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
        agg: str = "mean",
        group_by: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """One row per ``every`` interval and series (``group_by`` tags, default all the measurement's
        tags): ``agg`` (mean, max, min, median, p95, p99, ...) of each numeric field, computed by
        InfluxDB (``GROUP BY time(...)``). ``time`` is the interval start; empty intervals are left out."""
        interval = parse_every(every)
        known = MEASUREMENTS.get(measurement)
        if fields is None:
            if known is None:
                raise SchemaError(f"name the fields to downsample for measurement {measurement!r}")
            fields = [f.name for f in known.fields if f.kind in ("float", "int")]
        group_by = list(self.tag_keys(measurement) if group_by is None else group_by)
        select = ", ".join(f"{_aggregate(agg, quote_ident(f))} AS {quote_ident(f)}" for f in fields)
        by = ", ".join([f"time({interval})", *[quote_ident(t) for t in group_by]])
        q = f"SELECT {select} FROM {quote_ident(measurement)}{where_clause(start, end, tags)} GROUP BY {by} fill(none)"  # noqa: S608
        parts: list[pl.DataFrame] = []
        for series_tags, columns, values in self._rows(q):
            part = _to_frame(columns, values)
            part = part.with_columns([pl.lit(series_tags.get(t) or None, dtype=pl.String).alias(t) for t in group_by])
            parts.append(part)
        schema: dict[str, pl.DataType] = {TIME: TIME_DTYPE, **{t: pl.String() for t in group_by}}
        if agg == "count":
            schema.update({f: pl.Int64() for f in fields})
        else:
            schema.update({f: pl.Float64() for f in fields})
        if not parts:
            return pl.DataFrame(schema=schema)
        frame = pl.concat(parts, how="diagonal_relaxed")
        frame = frame.with_columns(
            as_time(frame[TIME]),
            *[
                pl.col(f).cast(schema[f], strict=False) if f in frame.columns else pl.lit(None, schema[f]).alias(f)
                for f in fields
            ],
        )
        return frame.select(list(schema)).sort([TIME, *group_by], maintain_order=True)

    def series(self, measurement: str | None = None) -> pl.DataFrame:
        """Distinct tag sets: ``measurement`` plus the tag columns (``SHOW SERIES``)."""
        q = "SHOW SERIES" + (f" FROM {quote_ident(measurement)}" if measurement else "")
        rows: list[dict[str, Any]] = []
        for _tags, _cols, values in self._rows(q):
            for (key,) in values:
                parsed = line_protocol_parser.parse_line(f"{key} _=1 0")
                rows.append({"measurement": parsed["measurement"], **parsed["tags"]})
        if not rows:
            return pl.DataFrame(schema={"measurement": pl.String})
        frame = pl.DataFrame(rows, infer_schema_length=None)
        if measurement in MEASUREMENTS:
            for t in MEASUREMENTS[measurement].tags:
                if t not in frame.columns:
                    frame = frame.with_columns(pl.lit(None, pl.String).alias(t))
            frame = frame.select("measurement", *MEASUREMENTS[measurement].tags)
        return frame.select("measurement", pl.exclude("measurement")).unique(maintain_order=True)

    # ---- server --------------------------------------------------------------------------------

    def ping(self) -> str:
        """The server's version (``/ping``); raises `InfluxUnavailableError` when it does not answer."""
        try:
            resp = self._http.get("/ping")
        except httpx.HTTPError as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.config.url} unreachable: {exc}") from None
        if resp.status_code >= 300:
            self._check(resp.status_code, resp.headers.get("Retry-After"), resp.content)
        return resp.headers.get("X-Influxdb-Version", "unknown")

    def init(self, retention: str | None = None, default: bool = True) -> list[str]:
        """Create the database (and retention policy) on a v1 server; returns the statements run.

        Idempotent. On the v2 API the bucket is created by the server's own tools (``influx bucket
        create``) or `init_bucket`."""
        if self.config.api != "v1":
            return self.init_bucket(retention)
        done = [f"CREATE DATABASE {quote_ident(self.config.database)}"]
        list(self.influxql(done[0], database=False))
        rp = self.config.retention_policy
        if rp and rp != "autogen":
            duration = retention or "INF"
            stmt = (
                f"CREATE RETENTION POLICY {quote_ident(rp)} ON {quote_ident(self.config.database)} "
                f"DURATION {duration} REPLICATION 1" + (" DEFAULT" if default else "")
            )
            existing = [
                v[0]
                for _t, _c, vals in self._rows(f"SHOW RETENTION POLICIES ON {quote_ident(self.config.database)}")
                for v in vals
            ]
            if rp in existing:
                stmt = stmt.replace("CREATE", "ALTER", 1).replace(" REPLICATION 1", "")
            list(self.influxql(stmt, database=False))
            done.append(stmt)
        elif retention:
            stmt = f'ALTER RETENTION POLICY "autogen" ON {quote_ident(self.config.database)} DURATION {retention}'
            list(self.influxql(stmt, database=False))
            done.append(stmt)
        return done

    def init_bucket(self, retention: str | None = None) -> list[str]:
        """Create the bucket through ``/api/v2/buckets`` (InfluxDB 2.x) when it is missing."""
        from influxdb_client.client.bucket_api import BucketsApi
        from influxdb_client.domain.bucket_retention_rules import BucketRetentionRules

        self._v2_api()
        buckets = BucketsApi(self._v2)
        if buckets.find_bucket_by_name(self.config.bucket) is not None:
            return []
        rules = None
        if retention:
            seconds = _duration_s(retention)
            rules = BucketRetentionRules(type="expire", every_seconds=seconds)
        buckets.create_bucket(bucket_name=self.config.bucket, retention_rules=rules, org=self.config.org)
        return [f"create bucket {self.config.bucket} (org {self.config.org}, retention {retention or 'infinite'})"]

    # ---- artifacts: kept on local disk ---------------------------------------------------------

    def _artifacts_root(self) -> Path:
        return self.config.artifacts_dir or default_state_dir(self.config) / "artifacts"

    def unreadable_files(self) -> list[tuple[str, str]]:
        """Store files that could not be read: none (InfluxDB keeps its own files)."""
        return []

    def close(self) -> None:
        self._http.close()
        if self._v2 is not None:
            with contextlib.suppress(Exception):
                self._v2.close()
            self._v2 = self._v2_write = None


def _duration_s(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    total = 0
    for num, unit in re.findall(r"(\d+)([smhdw])", text):
        total += int(num) * units[unit]
    if not total:
        raise ConfigError(f"bad retention {text!r}; use e.g. 30d, 12w, 720h")
    return total


def _prepare(measurement: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """The frame in the form it is written (conformed for a schema measurement) and its tag columns."""
    known = MEASUREMENTS.get(measurement)
    if known is not None:
        if dict(frame.schema) != dict(known.polars_schema()):  # else: in schema form (the collector conforms)
            frame = conform(frame, measurement)
        return frame, [t for t in known.tags if t in frame.columns]
    if not measurement:
        raise SchemaError("empty measurement name")
    if TIME not in frame.columns:
        raise SchemaError("missing the 'time' column", measurement)
    frame = frame.with_columns(as_time(frame[TIME], f"{measurement}.time"))
    return frame, [c for c, t in frame.schema.items() if t == pl.String and c != TIME]


def _check_influx_values(measurement: str, frame: pl.DataFrame, tags: list[str]) -> None:
    """What InfluxDB would refuse, refused before a write is queued and acknowledged (never found later in
    ``rejected.lp``): a measurement name, key or tag value no store keeps (`telemetry.schema`), a time outside
    InfluxDB's range. `SchemaError` naming the column and row."""
    if measurement not in MEASUREMENTS:
        why = measurement_name_problem(measurement)
        if why is not None:
            raise SchemaError(why)
        for key in frame.columns:
            if key != TIME and (why := text_problem(key, "key")) is not None:
                raise SchemaError(why, f"{measurement}.{key}")
    if frame.height == 0:
        return
    for tag in tags:
        values = frame[tag].unique().drop_nulls().to_list()
        bad = tag_values_problem(values)
        if bad is not None:
            row = int(frame[tag].eq_missing(values[bad[0]]).arg_true()[0])
            raise SchemaError(bad[1], f"{measurement}.{tag}[{row}]")
    t = frame[TIME].dt.epoch("ns")
    lo, hi = t.min(), t.max()
    if lo is not None and (lo < INFLUX_MIN_NS or hi > INFLUX_MAX_NS):  # type: ignore[operator]
        row = int(((t < INFLUX_MIN_NS) | (t > INFLUX_MAX_NS)).arg_true()[0])
        raise SchemaError("time outside InfluxDB's range 1677-09-21 .. 2262-04-11", f"{measurement}.{TIME}[{row}]")


def _to_frame(columns: list[str], rows: list[list]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame({c: pl.Series(c, [], dtype=pl.Int64 if c == TIME else pl.Null) for c in columns})
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    series = []
    for c, values in data.items():
        if c == TIME:
            series.append(pl.Series(c, values, dtype=pl.Int64))
            continue
        try:
            series.append(pl.Series(c, values, strict=False))
        except (TypeError, ValueError, pl.exceptions.PolarsError):
            series.append(pl.Series(c, [None if v is None else str(v) for v in values], dtype=pl.String))
    return pl.DataFrame(series)


def default_state_dir(config: InfluxConfig) -> Path:
    """``$NEIGHBORSCOPE_STATE_DIR`` or ``$XDG_STATE_HOME/neighborscope`` (``~/.local/state``), per target."""
    base = os.environ.get("NEIGHBORSCOPE_STATE_DIR")
    root = (
        Path(base)
        if base
        else Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "neighborscope"
    )
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", config.url.split("://", 1)[1])
    return root / "influx" / f"{host}_{re.sub(r'[^A-Za-z0-9_.-]', '_', config.bucket)}"


@register_scheme("influx", "influxs", "influx2", "influx2s")
def open_influx(url: str) -> QueuedStore:
    """``open_store`` for InfluxDB URLs: an `InfluxStore` behind a durable local `QueuedStore`."""
    config = InfluxConfig.from_url(url)
    queue_dir = config.queue_dir or default_state_dir(config) / "queue"
    return QueuedStore(InfluxStore(config), queue_dir)
