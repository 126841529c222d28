"""VictoriaMetrics as a store, single node or cluster: line protocol in, export and ``query_range`` out.

URLs (``open_store`` picks this module by scheme; see docs/victoriametrics.md)::

    vm://HOST:8428[/DB]                          single-node VictoriaMetrics (``vms://`` over https)
    vmcluster://?insert=http://H:8480&select=http://H:8481&tenant=0[&db=DB]
                                                 a cluster: vminsert and vmselect, tenant ``accountID[:projectID]``

Query parameters: ``db`` (or the path; default ``neighborscope``: the ``db`` label every series carries, so one
server holds several stores), ``queue=DIR`` (the local durable queue, `telemetry.store.queued`), ``artifacts=DIR``
(large frames on local disk, as the InfluxDB store keeps them), ``batch_bytes=N``, ``timeout=SECONDS``,
``gzip=0|1`` (default on, off to a loopback host), ``retry_max_s=S``, ``token=T`` (``Authorization: Bearer``, e.g.
to vmauth), ``user:password@`` (basic auth), ``downsample=auto|server|raw`` (see below).

How the data is laid out in VictoriaMetrics (what Grafana users see):

- a field is a metric ``<measurement>_<field>`` (VictoriaMetrics' own line-protocol mapping), its tags are labels,
  plus ``db="<db>"`` (from ``?db=``) and ``measurement="<measurement>"`` (so a measurement whose name holds an
  ``_`` is never confused with another: ``host_core_util_pct`` is ``{measurement="host_core"}``); ``db``,
  ``measurement`` and ``text*`` are reserved label names: a tag of that name is refused;
- numbers are float64 (integers exact up to 2**53); booleans are 1 / 0; timestamps are milliseconds (finer times
  are truncated); VictoriaMetrics keeps about 12 significant digits of a float (decimal compression);
- a text field (``run_event.metadata_json``, ``tenant.pids``, ``bench_request.error`` / ``timing``,
  ``accel_event.message``) is a companion series ``<measurement>_<field>{<tags>, text="<value>"}`` with the sample
  1 (0 for an empty string, then without ``text``): VictoriaMetrics stores only numbers. The value is
  percent-encoded (``%``, ``\\``, control characters), and cut into labels ``text``, ``text_1``, ... of at most
  1,000 characters (VictoriaMetrics ignores a series with a label value over 4 KiB). Limits: each distinct text
  is a new series (fine for these fields: few distinct values per series; never put per-request unique text
  there), at most `MAX_TEXT_CHARS` characters;
- two events of one series in the same millisecond (64 requests dispatched at once) would be one sample: the
  k-th of them is moved k ms later (`_unique_ms`);
- run artifacts (token arrays) stay on local disk (``artifacts=DIR``), as with InfluxDB.

Replays. The queue records every batch key it sent (`QueuedStore`), so an acknowledged batch is sent once. The
one window left (a crash between VictoriaMetrics' answer and the ``sent.log`` append) sends a batch again, and
VictoriaMetrics keeps both copies of a sample unless it runs with ``-dedup.minScrapeInterval=1ms`` (one sample per
series and millisecond; our samples are unique per millisecond, so it drops only true duplicates). Reads stay exact
either way: raw reads (``export``) keep one sample per series and millisecond; ``downsample`` reduces on the server
(``query_range``) only when the server deduplicates (``/flags`` says ``-dedup.minScrapeInterval`` is 1ms), else
it reduces raw samples here (``downsample=server`` or ``raw`` forces one way).

``downsample`` on the server: ``mean`` (sum / count), ``max``, ``min``, ``sum``, ``count``, reduced over every
series of a group (``sum(sum_over_time(...)) by (...)``), evaluated at the last millisecond of each epoch-aligned
interval with a window of one interval, so the window is exactly [start, start + every); a partial first or last
interval (``start`` / ``end`` inside it) is its own query with a shorter window. ``median``, ``first``, ``last``
and percentiles (nearest rank) read raw samples (``/api/v1/export``) and reduce them here.
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import logging
import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import numpy as np
import orjson
import polars as pl

from telemetry.errors import ConfigError, RejectedLine, SchemaError, StoreError, StoreUnavailableError
from telemetry.errors import InfluxWriteRejectedError as WriteRejectedError
from telemetry.line_protocol import split_lines
from telemetry.retry import parse_retry_after
from telemetry.schema import (
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
from telemetry.store.base import BatchKey, TagFilter, every_ns, parse_agg, reduce_expr
from telemetry.store.factory import register_scheme
from telemetry.store.local_artifacts import LocalArtifacts
from telemetry.store.queued import QueuedStore

log = logging.getLogger("neighborscope.victoria")

DEFAULT_BATCH_BYTES = 4 * 2**20
DB_LABEL = "db"
MEASUREMENT_LABEL = "measurement"
TEXT_LABEL = "text"
RESERVED_LABELS = frozenset({DB_LABEL, MEASUREMENT_LABEL, "__name__"})
TEXT_CHUNK_CHARS = 1000  # at most 4 bytes per character after encoding: under VictoriaMetrics' 4 KiB label value
MAX_TEXT_CHARS = 30 * TEXT_CHUNK_CHARS  # 30 labels: with the tags, under its 40 labels per series
EVENT_MEASUREMENTS = ("bench_request", "accel_event", "run_event")
FUTURE_MS = 2 * 86_400_000  # VictoriaMetrics refuses samples more than 2 days ahead (-futureRetention)
SERIES_PER_REQUEST = 20_000  # /api/v1/series answers per request when /flags does not give -search.maxSeries
MAX_POINTS = 10_000  # query_range points per request (its -search.maxPointsPerTimeseries is 30,000)
SERVER_AGGS = ("mean", "max", "min", "sum", "count")
Downsample = Literal["auto", "server", "raw"]


# ---- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VictoriaConfig:
    """Where and how to talk to VictoriaMetrics (parsed from a store URL by `VictoriaConfig.from_url`)."""

    write_url: str  # line protocol POST
    read_url: str  # base of /api/v1/... (single node: the server; cluster: vmselect's /select/<tenant>/prometheus)
    admin_url: str | None  # /flags and /internal/force_flush: the single-node server (None for a cluster)
    db: str = "neighborscope"
    cluster: bool = False
    tenant: str = "0"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    batch_bytes: int = DEFAULT_BATCH_BYTES
    timeout_s: float = 30.0
    gzip: bool = True
    retry_max_s: float = 30.0
    downsample: Downsample = "auto"
    queue_dir: Path | None = None
    artifacts_dir: Path | None = None

    def redacted(self) -> str:
        """The store URL without password or token (for messages and logs)."""
        token = "&token=***" if self.token else ""
        if self.cluster:
            insert = self.write_url.split("/insert/", 1)[0]
            select = self.read_url.split("/select/", 1)[0]
            return f"vmcluster://?insert={insert}&select={select}&tenant={self.tenant}&db={self.db}{token}"
        http, hostport = self.read_url.split("://", 1)
        who = f"{quote(self.username, safe='')}:***@" if self.username else ""
        return f"vm{'s' if http == 'https' else ''}://{who}{hostport}/{quote(self.db, safe='')}" + (
            "?token=***" if self.token else ""
        )

    @classmethod
    def from_url(cls, url: str) -> VictoriaConfig:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("vm", "vms", "vmcluster"):
            raise ConfigError(f"{_redact(url)}: not a VictoriaMetrics URL (vm://, vms://, vmcluster://)")
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        known = {"db", "queue", "artifacts", "batch_bytes", "timeout", "gzip", "retry_max_s", "token", "downsample"}
        if scheme == "vmcluster":
            known |= {"insert", "select", "tenant"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"{_redact(url)}: unknown parameter(s) {unknown}; known: {sorted(known)}")
        db = params.get("db") or unquote(parts.path.strip("/")) or "neighborscope"
        if (why := text_problem(db, "db")) is not None or "/" in db:
            raise ConfigError(f"{_redact(url)}: bad db {db!r}: {why or 'holds a /'}")
        try:
            batch_bytes = int(params.get("batch_bytes", DEFAULT_BATCH_BYTES))
            timeout_s = float(params.get("timeout", 30.0))
            retry_max_s = float(params.get("retry_max_s", 30.0))
        except ValueError as exc:
            raise ConfigError(f"{_redact(url)}: {exc}") from None
        if batch_bytes < 1024:
            raise ConfigError(f"{_redact(url)}: batch_bytes must be >= 1024")
        mode = params.get("downsample", "auto")
        if mode not in ("auto", "server", "raw"):
            raise ConfigError(f"{_redact(url)}: downsample must be auto, server or raw, got {mode!r}")
        common: dict[str, Any] = {
            "db": db,
            "token": params.get("token") or None,
            "batch_bytes": batch_bytes,
            "timeout_s": timeout_s,
            "retry_max_s": retry_max_s,
            "downsample": mode,
            "queue_dir": Path(params["queue"]).expanduser() if params.get("queue") else None,
            "artifacts_dir": Path(params["artifacts"]).expanduser() if params.get("artifacts") else None,
        }
        if scheme == "vmcluster":
            insert, select = (
                _base_url(url, params.get("insert"), "insert"),
                _base_url(url, params.get("select"), "select"),
            )
            tenant = params.get("tenant", "0")
            if not re.fullmatch(r"\d+(:\d+)?", tenant):
                raise ConfigError(f"{_redact(url)}: tenant must be accountID or accountID:projectID, got {tenant!r}")
            host = urlsplit(insert).hostname or ""
            return cls(
                write_url=f"{insert}/insert/{tenant}/influx/write",
                read_url=f"{select}/select/{tenant}/prometheus",
                admin_url=None,
                cluster=True,
                tenant=tenant,
                gzip=_gzip_param(params.get("gzip"), host),
                **common,
            )
        if not parts.hostname:
            raise ConfigError(f"{_redact(url)}: no host")
        try:
            port = parts.port or (8428 if scheme == "vm" else 443)
        except ValueError:
            raise ConfigError(f"{_redact(url)}: bad port") from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        base = f"{'https' if scheme == 'vms' else 'http'}://{host}:{port}"
        return cls(
            write_url=f"{base}/write",
            read_url=base,
            admin_url=base,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            gzip=_gzip_param(params.get("gzip"), parts.hostname),
            **common,
        )


def _base_url(url: str, value: str | None, what: str) -> str:
    if not value:
        raise ConfigError(f"{_redact(url)}: name the {what} URL (?{what}=http://HOST:PORT)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{_redact(url)}: {what} must be an http(s)://HOST:PORT URL, got {value!r}")
    return value.rstrip("/")


def _gzip_param(value: str | None, hostname: str) -> bool:
    """``gzip=0|1``; by default on, except to a loopback host (compressing there only costs CPU)."""
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
    return re.sub(r"(token)=[^&]*", r"\1=***", url)


# ---- MetricsQL pieces ----------------------------------------------------------------------------


def quote_label(value: str) -> str:
    """A MetricsQL string literal (double-quoted, ``\\`` and ``"`` escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_RE_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def _regex_alternatives(values: Sequence[str]) -> str:
    return "|".join(_RE_SPECIAL.sub(r"\\\1", v) for v in values)


def _ms(value: datetime) -> float:
    """Epoch milliseconds of a datetime (naive = UTC), with its sub-millisecond part as a fraction."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) / timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seconds(ms: int) -> str:
    """Integer milliseconds as the seconds VictoriaMetrics' time parameters take (3 decimals)."""
    return f"{ms // 1000}.{ms % 1000:03d}"


# ---- text fields as labels -----------------------------------------------------------------------

_TEXT_ESCAPE = re.compile(r"[%\\\x00-\x1f\x7f]")


def encode_text(text: str) -> list[str]:
    """A text value as label values (percent-encoded ``%``, ``\\`` and control characters; cut in chunks)."""
    chunks = [text[i : i + TEXT_CHUNK_CHARS] for i in range(0, len(text), TEXT_CHUNK_CHARS)]
    return [_TEXT_ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", c) for c in chunks]


def decode_text(chunks: Sequence[str]) -> str:
    return "".join(unquote(c) for c in chunks)


def _text_label(i: int) -> str:
    return TEXT_LABEL if i == 0 else f"{TEXT_LABEL}_{i}"


# ---- the store -----------------------------------------------------------------------------------


class VictoriaStore(LocalArtifacts):
    """A synchronous `TelemetryStore` on VictoriaMetrics (no local queue: see `QueuedStore`)."""

    lazy_scan = False  # scan() fetches the rows first: reduce on the server with downsample()

    def __init__(self, config: VictoriaConfig) -> None:
        self.config = config
        headers = {"User-Agent": "neighborscope"}
        auth: tuple[str, str] | None = None
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        elif config.username is not None:
            auth = (config.username, config.password or "")
        self._http = httpx.Client(
            headers=headers, auth=auth, timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 5.0))
        )
        self._artifacts: Any = None
        self._flags: dict[str, str] | None = None
        self._flags_lock = threading.Lock()
        self._warned_raw = False
        self._retention_ms: int | None = None
        self._retention_checked_at: float | None = None

    def __repr__(self) -> str:
        return f"VictoriaStore({self.config.redacted()!r})"

    # ---- writing -------------------------------------------------------------------------------

    def prepare(self, measurement: str, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame checked against the schema and against what VictoriaMetrics drops or refuses (raises
        `SchemaError` naming the column and row): the queue calls it before a write is queued and acknowledged."""
        frame, tags = _prepare(measurement, frame)
        _check_values(measurement, frame, tags, self.retention_ms())
        return frame

    def retention_ms(self) -> int | None:
        """The single-node server's ``-retentionPeriod`` in ms (it drops older samples without a word), read from
        ``/flags`` once; None for a cluster (vminsert does not know it) or while the server does not answer (asked
        again a minute later)."""
        if self.config.admin_url is None:
            return None
        now = time.monotonic()
        if self._retention_checked_at is not None and (
            self._retention_ms is not None or now - self._retention_checked_at < 60
        ):
            return self._retention_ms
        self._retention_checked_at = now
        try:
            self._retention_ms = _retention_ms(self.flags().get("retentionPeriod", "1"))
        except StoreError:
            self._retention_ms = None
        return self._retention_ms

    def encode(self, measurement: str, frame: pl.DataFrame) -> bytes:
        """Line protocol for a frame: the numeric fields with a ``measurement`` tag, then one line per text value
        (a companion series, the text in its labels)."""
        frame, tags = _prepare(measurement, frame)
        if frame.height == 0:
            return b""
        if measurement in EVENT_MEASUREMENTS:
            frame = _unique_ms(frame, tags)
        known = MEASUREMENTS.get(measurement)
        texts = [f.name for f in known.fields if f.kind == "str" and f.name in frame.columns] if known else []
        label = pl.lit(measurement).alias(MEASUREMENT_LABEL)
        numbers = frame.drop(texts).with_columns(label)
        body = [lp_encode.encode(numbers, measurement, [*tags, MEASUREMENT_LABEL])]
        for name in texts:
            present = frame.select(TIME, *tags, name).filter(pl.col(name).is_not_null())
            if present.height == 0:
                continue
            chunks = [encode_text(v) for v in present[name].to_list()]
            width = max(len(c) for c in chunks)
            labels = [
                pl.Series(_text_label(i), [c[i] if i < len(c) else None for c in chunks], dtype=pl.String)
                for i in range(width)
            ]
            companion = present.with_columns(
                label, *labels, pl.when(pl.col(name) == "").then(0).otherwise(1).cast(pl.Int64).alias(name)
            )
            tag_cols = [*tags, MEASUREMENT_LABEL, *(s.name for s in labels)]
            body.append(lp_encode.encode(companion, measurement, tag_cols))
        return b"".join(body)

    def write(self, measurement: str, frame: pl.DataFrame) -> int:
        """Write a frame now (cut into ``batch_bytes`` bodies); returns its row count."""
        self.prepare(measurement, frame)
        for part in split_lines(self.encode(measurement, frame), self.config.batch_bytes):
            self.write_lines(part)
        return frame.height

    def write_batch(self, key: BatchKey, frames: Mapping[str, pl.DataFrame]) -> bool:
        """Write an agent batch now; without a local queue we cannot tell new from replayed: True."""
        for m, f in frames.items():
            self.prepare(m, f)
        body = b"".join(self.encode(m, f) for m, f in frames.items())
        for part in split_lines(body, self.config.batch_bytes):
            self.write_lines(part)
        return True

    def write_lines(self, body: bytes, *, gzipped: bool = False) -> int:
        """POST line protocol; returns the number of lines sent. Raises `StoreUnavailableError` (retry later),
        `InfluxWriteRejectedError` (VictoriaMetrics refused the body: the lines are set aside), `StoreError`."""
        raw = gzip.decompress(body) if gzipped else body
        if not raw or raw.isspace():
            return 0
        content, headers = raw, {"Content-Type": "text/plain; charset=utf-8"}
        if self.config.gzip:
            content = gzip.compress(raw, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        resp = self._request(
            "POST", self.config.write_url, params={"db": self.config.db}, content=content, headers=headers
        )
        if resp.status_code == 400:
            lines = [ln.decode("utf-8", "replace") for ln in raw.split(b"\n") if ln.strip()]
            reason = _error_text(resp.content)
            raise WriteRejectedError([RejectedLine(ln, reason) for ln in lines], 0)
        self._check(resp)
        return raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)

    def sync(self) -> None:
        """Make what was written searchable now (``/internal/force_flush``; the queue calls it after a flush).
        VictoriaMetrics does it by itself within a second or two; a cluster's vmstorage nodes are not reached."""
        if self.config.admin_url is None:
            return
        with contextlib.suppress(StoreError):
            self._check(self._request("GET", f"{self.config.admin_url}/internal/force_flush"))

    # ---- HTTP ----------------------------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise StoreUnavailableError(f"VictoriaMetrics at {url.split('?')[0]} timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(f"VictoriaMetrics at {url.split('?')[0]} unreachable: {exc}") from None

    def _check(self, resp: httpx.Response) -> None:
        status = resp.status_code
        if status < 300:
            return
        where = f"VictoriaMetrics at {str(resp.request.url).split('?')[0]}"
        text = _error_text(resp.content)[:500]
        if status in (401, 403):
            raise StoreError(f"{where} refused the credentials (HTTP {status}): {text}")
        if status in (408, 429) or status >= 500:
            raise StoreUnavailableError(
                f"{where} answered HTTP {status}: {text}", parse_retry_after(resp.headers.get("Retry-After"))
            )
        raise StoreError(f"{where} answered HTTP {status}: {text}")

    def _get_json(self, path: str, data: Mapping[str, Any] | list[tuple[str, str]]) -> Any:
        resp = self._request("POST", f"{self.config.read_url}{path}", data=_form(data))
        self._check(resp)
        doc = orjson.loads(resp.content)
        if doc.get("status") != "success":
            raise StoreError(f"VictoriaMetrics {path} failed: {doc.get('error') or doc}")
        return doc["data"]

    def flags(self) -> dict[str, str]:
        """The server's command-line flags (``/flags``; a cluster's vmselect answers its own), cached."""
        with self._flags_lock:
            if self._flags is None:
                base = self.config.admin_url or self.config.read_url.split("/select/", 1)[0]
                resp = self._request("GET", f"{base}/flags", timeout=min(self.config.timeout_s, 3.0))
                self._check(resp)
                flags: dict[str, str] = {}
                for line in resp.text.splitlines():
                    m = re.fullmatch(r'-([\w.]+)="?(.*?)"?', line.strip())
                    if m:
                        flags[m.group(1)] = m.group(2)
                self._flags = flags
            return self._flags

    def server_dedup(self) -> bool:
        """True when the server keeps one sample per series and millisecond (``-dedup.minScrapeInterval=1ms``)."""
        try:
            value = self.flags().get("dedup.minScrapeInterval", "")
        except StoreError:
            return False
        return value in ("1ms", "0.001s")

    def ping(self) -> None:
        """Raises `StoreUnavailableError` when the server does not answer ``/health``."""
        base = self.config.admin_url or self.config.read_url.split("/select/", 1)[0]
        self._check(self._request("GET", f"{base}/health"))

    # ---- selectors -----------------------------------------------------------------------------

    def _selector(
        self, measurement: str, tags: TagFilter | None = None, metrics: Sequence[str] | None = None
    ) -> str | None:
        """``{__name__=~"...", db="...", measurement="...", tag=~"..."}``; None when a filter matches nothing."""
        conds = [f"{DB_LABEL}={quote_label(self.config.db)}", f"{MEASUREMENT_LABEL}={quote_label(measurement)}"]
        if metrics is not None:
            conds.insert(0, f"__name__=~{quote_label(_regex_alternatives(metrics))}")
        for tag, value in (tags or {}).items():
            values = [value] if isinstance(value, str) else [str(v) for v in value]
            if not values:
                return None
            if len(values) == 1:
                conds.append(f"{tag}={quote_label(values[0])}")
            else:
                conds.append(f"{tag}=~{quote_label(_regex_alternatives(values))}")
        return "{" + ", ".join(conds) + "}"

    def tag_keys(self, measurement: str) -> list[str]:
        if measurement in MEASUREMENTS:
            return list(MEASUREMENTS[measurement].tags)
        names = self._get_json("/api/v1/labels", [("match[]", self._selector(measurement) or ""), ("start", "1")])
        return sorted(n for n in names if n not in RESERVED_LABELS and not n.startswith(TEXT_LABEL))

    def _check_filter(self, measurement: str, tags: TagFilter | None, fields: Sequence[str] | None) -> None:
        known = MEASUREMENTS.get(measurement)
        if known is None:
            return
        unknown = [t for t in tags or {} if t not in known.tags]
        if unknown:
            raise SchemaError(f"unknown tag(s) {unknown} for measurement {measurement!r}")
        if fields is not None:
            unknown = [f for f in fields if f not in known.field_index]
            if unknown:
                raise SchemaError(f"unknown field(s) {unknown} for measurement {measurement!r}")

    # ---- raw reads -----------------------------------------------------------------------------

    def export(self, selector: str, start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
        """Raw samples of the series ``selector`` matches in [start, end): one row per sample, columns
        ``__name__``, the labels, ``_ts_ms`` (Int64) and ``_value`` (Float64); a sample stored twice (a replay)
        comes once."""
        lo = 1 if start is None else max(1, math.ceil(_ms(start)))
        hi = None if end is None else math.ceil(_ms(end)) - 1
        if hi is not None and hi < lo:
            return _empty_long()
        data = [("match[]", selector), ("start", _seconds(lo))]
        data.append(("end", _seconds(hi if hi is not None else int(time.time() * 1000) + 2 * FUTURE_MS)))
        resp = self._request("POST", f"{self.config.read_url}/api/v1/export", data=_form(data))
        self._check(resp)
        labels: list[dict[str, str]] = []
        stamps: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for line in resp.content.splitlines():
            if not line.strip():
                continue
            doc = orjson.loads(line)
            labels.append(doc["metric"])
            stamps.append(np.asarray(doc["timestamps"], dtype=np.int64))
            values.append(np.asarray(doc["values"], dtype=np.float64))
        if not labels:
            return _empty_long()
        sid = np.repeat(np.arange(len(labels), dtype=np.int64), [len(s) for s in stamps])
        samples = pl.DataFrame({"_sid": sid, "_ts_ms": np.concatenate(stamps), "_value": np.concatenate(values)})
        series = pl.DataFrame(labels, infer_schema_length=None).with_row_index("_sid").cast({"_sid": pl.Int64})
        keys = [c for c in series.columns if c != "_sid"]
        long = samples.join(series, on="_sid").drop("_sid")
        long = long.filter(pl.col("_ts_ms") >= lo) if start is not None else long
        long = long.filter(pl.col("_ts_ms") <= hi) if hi is not None else long
        # a series may come in several lines (one per block): a sample is keyed by its labels, not by line
        return long.unique([*keys, "_ts_ms"], keep="last", maintain_order=True)

    def query(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Rows with start <= time < end whose tags match, sorted by time (rows of one time by their tags); schema
        measurements come back in their declared dtypes (time UTC ns, tags String, absent fields null); others as
        Float64 fields."""
        self._check_filter(measurement, tags, fields)
        if fields is not None and not fields:
            raise SchemaError("fields=[] selects nothing; leave it out for every field")
        known = MEASUREMENTS.get(measurement)
        metrics = None if fields is None else [f"{measurement}_{f}" for f in fields]
        selector = self._selector(measurement, tags, metrics)
        long = _empty_long() if selector is None else self.export(selector, start, end)
        frame = self._widen(measurement, long)
        if known is not None:
            frame = _typed(frame, measurement)
            if fields is not None:
                frame = frame.select(list(dict.fromkeys([TIME, *known.tags, *fields])))
        tags_present = [c for c in (known.tags if known is not None else []) if c in frame.columns]
        return frame.sort([TIME, *tags_present], nulls_last=True, maintain_order=True)  # ties: by tags, stable

    def _widen(self, measurement: str, long: pl.DataFrame) -> pl.DataFrame:
        """Samples (one per row) to rows (one per time and tag set, a column per field)."""
        known = MEASUREMENTS.get(measurement)
        prefix = len(measurement) + 1
        text_cols = sorted(
            (c for c in long.columns if c == TEXT_LABEL or c.startswith(TEXT_LABEL + "_")),
            key=lambda c: 0 if c == TEXT_LABEL else int(c.rsplit("_", 1)[1]),
        )
        skip = {"__name__", "_ts_ms", "_value", DB_LABEL, MEASUREMENT_LABEL, *text_cols}
        tags = list(known.tags) if known is not None else sorted(c for c in long.columns if c not in skip)
        if long.height == 0:
            return pl.DataFrame(schema={TIME: TIME_DTYPE, **dict.fromkeys(tags, pl.String)})
        long = long.with_columns([pl.lit(None, pl.String).alias(t) for t in tags if t not in long.columns])
        long = long.with_columns(pl.col("__name__").str.slice(prefix).alias("_field"))
        texts = {f.name for f in known.fields if f.kind == "str"} if known is not None else set()
        is_text = pl.col("_field").is_in(list(texts))
        index = ["_ts_ms", *tags]
        parts: list[pl.DataFrame] = []
        numbers = long.filter(~is_text) if texts else long
        if numbers.height:
            parts.append(numbers.pivot(on="_field", index=index, values="_value", aggregate_function="last"))
        words = long.filter(is_text) if texts else long.clear()
        if words.height:
            chunks = pl.concat_list([pl.col(c).fill_null("") for c in text_cols]) if text_cols else pl.lit([""])
            words = words.with_columns(
                pl.when(pl.col("_value") == 0)
                .then(pl.lit(""))
                .otherwise(chunks.map_elements(decode_text, return_dtype=pl.String))
                .alias("_text")
            )
            parts.append(words.pivot(on="_field", index=index, values="_text", aggregate_function="last"))
        frame = parts[0]
        for part in parts[1:]:
            frame = frame.join(part, on=index, how="full", coalesce=True, nulls_equal=True)
        frame = frame.with_columns(_ms_to_time(pl.col("_ts_ms")).alias(TIME)).drop("_ts_ms")
        return frame.select(TIME, *tags, *sorted(c for c in frame.columns if c != TIME and c not in tags))

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
        """(first, last) sample time of any series and field, found on the server with ``tlast_over_time`` over
        windows growing back from now (+2 days) and ``tfirst_over_time`` over windows growing forward from the
        oldest time the retention keeps (1970 when unknown), each 8x the last: the server reads only the samples
        of the windows it is asked, few when the data is live (last) or as old as the retention (first)."""
        selector = self._selector(measurement)
        top = int(time.time() * 1000) + FUTURE_MS
        retention = self.retention_ms()
        bottom = max(0, top - FUTURE_MS - retention - 86_400_000) if retention else 0
        last = self._grow(f"max(tlast_over_time({selector}[WINDOW]))", lambda w: top, top - bottom + 1)
        if last is None:
            return None
        first = self._grow(f"min(tfirst_over_time({selector}[WINDOW]))", lambda w: bottom - 1 + w, last - bottom + 2)
        first = last if first is None else first  # written between the two queries: one sample
        return _EPOCH + timedelta(milliseconds=first), _EPOCH + timedelta(milliseconds=last)

    def _grow(self, template: str, at: Any, widest: int) -> int | None:
        """The ms value of the instant query ``template`` (its window ``WINDOW``: ``w`` ms) evaluated at ``at(w)``, for
        windows of 1 hour, 8 hours, ... up to ``widest``: the first that finds anything; None when none does."""
        w = 3_600_000
        while True:
            w = min(w, widest)
            data = {"query": template.replace("WINDOW", f"{w}ms"), "time": _seconds(at(w)), "nocache": "1"}
            result = self._get_json("/api/v1/query", data)["result"]
            if result:
                return round(float(result[0]["value"][1]) * 1000)
            if w >= widest:
                return None
            w *= 8

    # ---- downsampling --------------------------------------------------------------------------

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
        """`TelemetryStore.downsample`: on the server (``query_range``) for mean, max, min, sum and count when the
        server deduplicates (or ``downsample=server``), else from raw samples reduced here."""
        step_ns = every_ns(every)
        name, pct = parse_agg(agg)
        known = MEASUREMENTS.get(measurement)
        if fields is None:
            if known is None:
                raise SchemaError(f"name the fields to downsample for measurement {measurement!r}")
            fields = [f.name for f in known.fields if f.kind in ("float", "int")]
        fields = list(fields)
        self._check_filter(measurement, tags, fields)
        by = list(self.tag_keys(measurement) if group_by is None else group_by)
        dtype = pl.Int64() if name == "count" else pl.Float64()
        schema: dict[str, pl.DataType] = {TIME: TIME_DTYPE, **{t: pl.String() for t in by}}
        schema.update({f: dtype for f in fields})
        selector = self._selector(measurement, tags, [f"{measurement}_{f}" for f in fields]) if fields else None
        if selector is None:
            return pl.DataFrame(schema=schema)
        if self._server_side(name) and step_ns % 1_000_000 == 0:
            frame = self._downsample_server(measurement, selector, step_ns // 1_000_000, start, end, name, by)
        else:
            frame = self._downsample_raw(measurement, selector, step_ns, start, end, name, pct, by, fields)
        frame = frame.with_columns([pl.lit(None, schema[c]).alias(c) for c in schema if c not in frame.columns]).select(
            [pl.col(c).cast(t) for c, t in schema.items()]
        )
        if fields:
            frame = frame.filter(pl.any_horizontal([pl.col(f).is_not_null() for f in fields]))
        return frame.sort([TIME, *by], maintain_order=True)

    def _server_side(self, agg: str) -> bool:
        if agg not in SERVER_AGGS or self.config.downsample == "raw":
            return False
        if self.config.downsample == "server" or self.server_dedup():
            return True
        if not self._warned_raw:
            self._warned_raw = True
            log.warning(
                "VictoriaMetrics %s runs without -dedup.minScrapeInterval=1ms: downsampling reads raw samples "
                "(exact, slower); start it with that flag to reduce on the server",
                self.config.redacted(),
            )
        return False

    def _downsample_raw(
        self,
        measurement: str,
        selector: str,
        step_ns: int,
        start: datetime | None,
        end: datetime | None,
        name: str,
        pct: float | None,
        by: list[str],
        fields: list[str],
    ) -> pl.DataFrame:
        rows = self._widen(measurement, self.export(selector, start, end))
        rows = rows.with_columns(
            [pl.lit(None, pl.String).alias(t) for t in by if t not in rows.columns]
            + [pl.lit(None, pl.Float64).alias(f) for f in fields if f not in rows.columns]
        )
        bin_start = (
            (pl.col(TIME).dt.epoch("ns") // step_ns * step_ns).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
        )
        return (
            rows.lazy()
            .group_by(bin_start.alias(TIME), *by)
            .agg([reduce_expr(pl.col(f), name, pct).alias(f) for f in fields])
            .collect()
        )

    def _downsample_server(
        self,
        measurement: str,
        selector: str,
        step_ms: int,
        start: datetime | None,
        end: datetime | None,
        name: str,
        by: list[str],
    ) -> pl.DataFrame:
        if start is None or end is None:
            bounds = self.time_bounds(measurement)
            if bounds is None:
                return pl.DataFrame()
            start = start if start is not None else bounds[0]
            end = end if end is not None else bounds[1] + timedelta(milliseconds=1)
        lo, hi = math.ceil(_ms(start)), math.ceil(_ms(end))  # samples lo <= t < hi (integer ms)
        if hi <= lo:
            return pl.DataFrame()
        first_full = -(-lo // step_ms) * step_ms
        last_full = hi // step_ms * step_ms  # full intervals [first_full, last_full)
        pieces: list[tuple[int, int, int, int]] = []  # (label of the first interval, n intervals, window, offset)
        if first_full >= last_full:  # start and end inside one interval (or two neighbours)
            cut = min(first_full, hi)
            pieces.append((lo // step_ms * step_ms, 1, cut - lo, cut - 1))
            if cut < hi:
                pieces.append((cut, 1, hi - cut, hi - 1))
        else:
            if lo < first_full:
                pieces.append((first_full - step_ms, 1, first_full - lo, first_full - 1))
            n = (last_full - first_full) // step_ms
            for at in range(0, n, MAX_POINTS):
                k = min(MAX_POINTS, n - at)
                label = first_full + at * step_ms
                pieces.append((label, k, step_ms, label + step_ms - 1))
            if last_full < hi:
                pieces.append((last_full, 1, hi - last_full, hi - 1))
        rollups = {"mean": ("sum", "count"), "count": ("count",), "sum": ("sum",), "max": ("max",), "min": ("min",)}
        outer = {"max": "max", "min": "min"}
        grouping = ", ".join(["__name__", *by])
        parts: list[pl.DataFrame] = []
        for label, k, window, first_eval in pieces:
            got: dict[str, pl.DataFrame] = {}
            for fn in rollups[name]:
                q = f"{outer.get(fn, 'sum')}({fn}_over_time({selector}[{window}ms]) keep_metric_names) by ({grouping})"
                data = {
                    "query": q,
                    "start": _seconds(first_eval),
                    "end": _seconds(first_eval + (k - 1) * step_ms),
                    "step": f"{step_ms}ms",
                    "nocache": "1",
                }
                got[fn] = _matrix(self._get_json("/api/v1/query_range", data)["result"], by, first_eval - label)
            if name == "mean":
                both = got["sum"].join(
                    got["count"].rename({"_value": "_count"}), on=["_ts_ms", "__name__", *by], nulls_equal=True
                )
                got = {"mean": both.with_columns((pl.col("_value") / pl.col("_count")).alias("_value")).drop("_count")}
            parts.append(next(iter(got.values())))
        long = pl.concat(parts, how="vertical_relaxed") if parts else _matrix([], by, 0)
        if long.height == 0:
            return pl.DataFrame()
        long = long.with_columns(pl.col("__name__").str.slice(len(measurement) + 1).alias("_field"))
        wide = long.pivot(on="_field", index=["_ts_ms", *by], values="_value", aggregate_function="first")
        return wide.with_columns(_ms_to_time(pl.col("_ts_ms")).alias(TIME)).drop("_ts_ms")

    # ---- listing -------------------------------------------------------------------------------

    def series(self, measurement: str | None = None) -> pl.DataFrame:
        """Distinct tag sets: ``measurement`` plus the tag columns (``/api/v1/series``). A schema measurement is
        asked field by field, in groups small enough for the server's ``-search.maxSeries`` (30,000 by default;
        every field of every tag set is a series): the first field tells how many tag sets there are."""
        if measurement is None:
            parts = [p for m in self.measurements() if (p := self.series(m)).height]
            if not parts:
                return pl.DataFrame(schema={MEASUREMENT_LABEL: pl.String})
            frame = pl.concat(parts, how="diagonal_relaxed")
            return frame.select(MEASUREMENT_LABEL, pl.exclude(MEASUREMENT_LABEL))
        known = MEASUREMENTS.get(measurement)
        found: dict[tuple[tuple[str, str], ...], None] = {}

        def ask(metrics: Sequence[str] | None) -> None:
            match = self._selector(measurement, metrics=metrics) or ""
            for s in self._get_json("/api/v1/series", [("match[]", match), ("start", "1")]):
                labels = {
                    k: v for k, v in s.items() if k not in ("__name__", DB_LABEL) and not k.startswith(TEXT_LABEL)
                }
                found[tuple(sorted(labels.items()))] = None

        if known is None:
            ask(None)
        else:
            names = [f"{measurement}_{f.name}" for f in known.fields]
            ask(names[:1])
            per = max(1, self._series_per_request() // max(1, len(found)))
            for i in range(1, len(names), per):
                ask(names[i : i + per])
        if not found:
            return pl.DataFrame(schema={MEASUREMENT_LABEL: pl.String})
        frame = pl.DataFrame([dict(k) for k in found], infer_schema_length=None)
        if known is not None:
            tags = known.tags
            frame = frame.with_columns([pl.lit(None, pl.String).alias(t) for t in tags if t not in frame.columns])
            frame = frame.select(MEASUREMENT_LABEL, *tags)
        frame = frame.select(MEASUREMENT_LABEL, pl.exclude(MEASUREMENT_LABEL))
        return frame.unique(maintain_order=True).sort(pl.all(), nulls_last=True)

    def _series_per_request(self) -> int:
        """Two thirds of the server's ``-search.maxSeries`` (`SERIES_PER_REQUEST` when ``/flags`` does not say)."""
        try:
            limit = int(self.flags().get("search.maxSeries", "") or 0)
        except (StoreError, ValueError):
            limit = 0
        return limit * 2 // 3 if limit > 0 else SERIES_PER_REQUEST

    def measurements(self) -> list[str]:
        match = f"{{{DB_LABEL}={quote_label(self.config.db)}}}"
        return sorted(self._get_json(f"/api/v1/label/{MEASUREMENT_LABEL}/values", [("match[]", match), ("start", "1")]))

    # ---- artifacts: kept on local disk ---------------------------------------------------------

    def _artifacts_root(self) -> Path:
        return self.config.artifacts_dir or default_state_dir(self.config) / "artifacts"

    def unreadable_files(self) -> list[tuple[str, str]]:
        """Store files that could not be read: none (VictoriaMetrics keeps its own files)."""
        return []

    def close(self) -> None:
        self._http.close()
        self._close_artifacts()


# ---- helpers -------------------------------------------------------------------------------------


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError, AttributeError):
        doc = orjson.loads(text)
        return str(doc.get("error") or doc.get("message") or text)
    return text.strip()


def _form(data: Mapping[str, Any] | list[tuple[str, str]]) -> dict[str, Any]:
    """Form fields for httpx: pairs (a key may repeat, as ``match[]``) or a mapping."""
    if isinstance(data, Mapping):
        return dict(data)
    out: dict[str, list[str]] = {}
    for key, value in data:
        out.setdefault(key, []).append(value)
    return out


def _ms_to_time(col: pl.Expr) -> pl.Expr:
    return (col * 1_000_000).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")


def _empty_long() -> pl.DataFrame:
    return pl.DataFrame(schema={"__name__": pl.String, "_ts_ms": pl.Int64, "_value": pl.Float64})


def _matrix(result: list[dict], by: list[str], shift_ms: int) -> pl.DataFrame:
    """A ``query_range`` matrix as rows (``__name__``, the ``by`` labels, ``_ts_ms`` moved back by ``shift_ms`` to
    the interval start, ``_value``)."""
    rows: dict[str, list[Any]] = {"__name__": [], **{t: [] for t in by}, "_ts_ms": [], "_value": []}
    for s in result:
        metric = s["metric"]
        for ts, value in s["values"]:
            rows["__name__"].append(metric.get("__name__"))
            for t in by:
                rows[t].append(metric.get(t) or None)
            rows["_ts_ms"].append(round(float(ts) * 1000) - shift_ms)
            rows["_value"].append(float(value))
    schema = {"__name__": pl.String, **dict.fromkeys(by, pl.String), "_ts_ms": pl.Int64, "_value": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def _typed(frame: pl.DataFrame, measurement: str) -> pl.DataFrame:
    """Float samples back to the schema's kinds (bool from 1 / 0, int rounded), then `conform`."""
    known = MEASUREMENTS[measurement]
    casts = []
    for f in known.fields:
        if f.name not in frame.columns:
            continue
        if f.kind == "bool":
            casts.append((pl.col(f.name) != 0).alias(f.name))
        elif f.kind == "int":
            casts.append(pl.col(f.name).round().cast(pl.Int64).alias(f.name))
    return conform(frame.with_columns(casts) if casts else frame, measurement, where=measurement)


def _unique_ms(frame: pl.DataFrame, tags: list[str]) -> pl.DataFrame:
    """Events of one series in one millisecond would be one sample: within each tag set, in time order, a row
    not later than the row before it (at millisecond precision) moves to the millisecond after it."""
    ms = pl.col(TIME).dt.epoch("ns") // 1_000_000
    ordered = frame.with_row_index("_row").sort([*tags, TIME, "_row"], nulls_last=True, maintain_order=True)
    rank = pl.int_range(pl.len()).over(tags) if tags else pl.int_range(pl.len())
    ordered = ordered.with_columns(ms.alias("_ms"), rank.alias("_rank"))
    bumped = (
        (pl.col("_ms") - pl.col("_rank")).cum_max().over(tags) if tags else (pl.col("_ms") - pl.col("_rank")).cum_max()
    )
    ordered = ordered.with_columns((bumped + pl.col("_rank")).alias("_new"))
    moved = (
        pl.when(pl.col("_new") != pl.col("_ms"))
        .then((pl.col("_new") * 1_000_000).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))
        .otherwise(pl.col(TIME))
    )
    return ordered.with_columns(moved.alias(TIME)).sort("_row").drop("_row", "_ms", "_rank", "_new")


def _prepare(measurement: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """The frame in the form it is written (conformed for a schema measurement) and its tag columns."""
    known = MEASUREMENTS.get(measurement)
    if known is not None:
        if dict(frame.schema) != dict(known.polars_schema()):
            frame = conform(frame, measurement)
        return frame, [t for t in known.tags if t in frame.columns]
    if not measurement:
        raise SchemaError("empty measurement name")
    if TIME not in frame.columns:
        raise SchemaError("missing the 'time' column", measurement)
    frame = frame.with_columns(as_time(frame[TIME], f"{measurement}.time"))
    return frame, [c for c, t in frame.schema.items() if t == pl.String and c != TIME]


def _retention_ms(text: str) -> int | None:
    """``-retentionPeriod``: a number of months without a unit, else ``h``, ``d``, ``w``, ``y`` (None if unparsable)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([hdwmy]?)", text.strip())
    if not m:
        return None
    days = {"h": 1 / 24, "d": 1, "w": 7, "m": 31, "y": 365, "": 31}[m.group(2)]
    return int(float(m.group(1)) * days * 86_400_000)


def _check_values(measurement: str, frame: pl.DataFrame, tags: list[str], retention_ms: int | None = None) -> None:
    """What VictoriaMetrics would refuse or drop without a word, refused before a write is acknowledged:
    `SchemaError` naming the column and row."""
    known = MEASUREMENTS.get(measurement)
    if known is None:
        if (why := measurement_name_problem(measurement)) is not None:
            raise SchemaError(why)
        for key in frame.columns:
            if key != TIME and (why := text_problem(key, "key")) is not None:
                raise SchemaError(why, f"{measurement}.{key}")
            if key in RESERVED_LABELS or key.startswith(TEXT_LABEL):
                raise SchemaError(
                    f"{key!r} is a label name the VictoriaMetrics store keeps for itself (db, measurement, text*)",
                    f"{measurement}.{key}",
                )
    if frame.height == 0:
        return
    for tag in tags:
        values = frame[tag].unique().drop_nulls().to_list()
        bad = tag_values_problem(values)
        if bad is not None:
            row = int(frame[tag].eq_missing(values[bad[0]]).arg_true()[0])
            raise SchemaError(bad[1], f"{measurement}.{tag}[{row}]")
    if known is not None:
        for f in known.fields:
            if f.kind == "str" and f.name in frame.columns:
                lengths = frame[f.name].str.len_chars()
                if (lengths.max() or 0) > MAX_TEXT_CHARS:  # type: ignore[operator]
                    row = int((lengths > MAX_TEXT_CHARS).arg_true()[0])
                    raise SchemaError(
                        f"text of {lengths[row]:,} characters; the VictoriaMetrics store keeps at most "
                        f"{MAX_TEXT_CHARS:,}",
                        f"{measurement}.{f.name}[{row}]",
                    )
    t = frame[TIME].dt.epoch("ms")
    lo, hi = t.min(), t.max()
    now = int(time.time() * 1000)
    limit, oldest = now + FUTURE_MS, 0 if retention_ms is None else max(0, now - retention_ms + 3_600_000)
    if lo is not None and (lo < oldest or hi > limit):  # type: ignore[operator]
        row = int(((t < oldest) | (t > limit)).arg_true()[0])
        why = "more than 2 days ahead" if t[row] > limit else "older than the server's -retentionPeriod"
        if t[row] < 0:
            why = "before 1970"
        raise SchemaError(f"time {why}, which VictoriaMetrics drops", f"{measurement}.{TIME}[{row}]")


def default_state_dir(config: VictoriaConfig) -> Path:
    """``$NEIGHBORSCOPE_STATE_DIR`` or ``$XDG_STATE_HOME/neighborscope`` (``~/.local/state``), per target."""
    base = os.environ.get("NEIGHBORSCOPE_STATE_DIR")
    root = (
        Path(base)
        if base
        else Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "neighborscope"
    )
    target = config.write_url.split("://", 1)[1].split("/", 1)[0]
    if config.cluster:
        target += f"_{config.tenant}"
    return root / "victoria" / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{target}_{config.db}")


@register_scheme("vm", "vms", "vmcluster")
def open_victoria(url: str) -> QueuedStore:
    """``open_store`` for VictoriaMetrics URLs: a `VictoriaStore` behind a durable local `QueuedStore`."""
    config = VictoriaConfig.from_url(url)
    queue_dir = config.queue_dir or default_state_dir(config) / "queue"
    return QueuedStore(VictoriaStore(config), queue_dir)
