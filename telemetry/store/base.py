"""The store protocol every backend implements (embedded Parquet, InfluxDB).

Frames follow `telemetry.schema`: a ``time`` column (UTC, ns), tag columns, field columns.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import polars as pl

from telemetry.errors import SchemaError

TagFilter = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True, order=True)
class BatchKey:
    """Identity of one agent batch: a replay of the same key is stored once."""

    node: str
    boot_id: str
    seq: int

    def slug(self) -> str:
        """The key as one file-name-safe string, injective (two keys never share a slug) and never containing
        ``.`` inside a part, so ``slug.rpartition(".")`` splits off the seq."""
        return f"{_safe(self.node)}.{_safe(self.boot_id)}.{self.seq:012d}"


def _safe(text: str) -> str:
    """Letters, digits, ``-`` and ``_`` as they are; any other character as ``%xx`` (code points below 256, two hex
    digits, as before) or ``%uxxxxxx`` (above, six hex digits). The two escapes are prefix-free (``u`` is not a
    hex digit), so the encoding is injective: ``"\\x1f600"`` is ``%1f600`` and ``"😀"`` is ``%u01f600``."""
    return "".join(c if c.isalnum() or c in "-_" else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"%{code:02x}" if code < 0x100 else f"%u{code:06x}"


@runtime_checkable
class TelemetryStore(Protocol):
    """Write frames, read them back by time range and tags (whole, lazily or downsampled), list series."""

    lazy_scan: ClassVar[bool]
    """True when `scan` reads lazily with the filters pushed down to local files (cheap for any range); False
    when it fetches the rows from a server first (reduce there with `downsample`)."""

    def write(self, measurement: str, frame: pl.DataFrame) -> int:
        """Store rows durably; returns the number of rows written."""
        ...

    def write_batch(self, key: BatchKey, frames: Mapping[str, pl.DataFrame]) -> bool:
        """Store an agent batch durably and idempotently.

        Returns True when the batch was new, False when (node, boot_id, seq) was already stored
        (nothing is written twice).
        """
        ...

    def query(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Rows with start <= time < end whose tags match (a value or any of a list), sorted by time."""
        ...

    def scan(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.LazyFrame:
        """The rows `query` returns, as a lazy frame (in no particular order): an empty frame when the
        measurement holds nothing."""
        ...

    def time_bounds(self, measurement: str) -> tuple[datetime, datetime] | None:
        """(first, last) sample time of a measurement, or None when it holds no row."""
        ...

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
        """One row per ``every`` interval (seconds, or a duration such as ``10s``, ``5m``, ``1h``; intervals
        are aligned on the epoch) and series (``group_by`` tags, default every tag of the measurement).

        Each field (default: the schema's numeric fields) is reduced by ``agg`` (one of `AGGREGATES`, or
        ``pNN`` for a percentile, nearest rank) over its values in the interval: absent values are left out, a
        Float64 (Int64 for ``count``). ``time`` is the interval start; intervals without any value are left out.
        Columns: ``time``, the ``group_by`` tags, the fields; sorted by time, then tags.
        """
        ...

    def series(self, measurement: str | None = None) -> pl.DataFrame:
        """Distinct tag sets: columns ``measurement`` plus the tag columns."""
        ...

    def measurements(self) -> list[str]: ...

    def unreadable_files(self) -> list[tuple[str, str]]:
        """(path, reason) of every stored file this store skipped while reading (corrupt, empty, quarantined), so
        a caller can say its result is incomplete instead of giving an all-clear; empty when nothing was
        skipped (and always for a store without local files)."""
        ...

    def write_artifact(self, key: str, frame: pl.DataFrame) -> Path:
        """Keep a large frame (e.g. per-token arrays) beside the store, under a slash-separated key."""
        ...

    def read_artifact(self, key: str) -> pl.DataFrame | None: ...

    def scan_artifact(self, key: str) -> pl.LazyFrame | None:
        """The artifact as a lazy frame that reads its file only when collected (None: no such artifact), so a
        consumer can read a few columns or runs at a time; `StoreError` when its file cannot be read."""
        ...

    def list_artifacts(self, prefix: str = "") -> list[str]: ...

    def prune_artifacts(self, prefix: str, keep_bytes: int) -> int:
        """Remove the oldest artifacts under ``prefix`` until at most ``keep_bytes`` are left (a cache kept as
        artifacts stays bounded); returns the bytes removed."""
        ...

    def close(self) -> None: ...


# ---- the downsampling vocabulary (what `TelemetryStore.downsample` accepts) ---------------------------

AGGREGATES = ("mean", "max", "min", "median", "sum", "count", "first", "last")
_UNIT_NS = {"ns": 1, "u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_UNIT_NS |= {"d": 86_400 * 10**9, "w": 7 * 86_400 * 10**9}


def parse_every(every: str | float) -> str:
    """A ``downsample`` interval as a duration (``10s``, ``5m``, ``1h``, ...; InfluxQL's syntax): seconds (a
    number) become milliseconds; raises `SchemaError` for anything else."""
    if isinstance(every, int | float):
        if every <= 0 or round(every * 1000) == 0:
            raise SchemaError(f"downsampling interval must be at least 1 ms, got {every}")
        return f"{round(every * 1000)}ms"
    if not re.fullmatch(_DURATION, every) or not _duration_ns(every):
        raise SchemaError(f"bad downsampling interval {every!r}; use e.g. 10s, 5m, 1h")
    return every


def every_ns(every: str | float) -> int:
    """A ``downsample`` interval in nanoseconds."""
    return _duration_ns(parse_every(every))


_DURATION = r"(\d+(ns|u|µ|ms|s|m|h|d|w))+"


def _duration_ns(text: str) -> int:
    return sum(int(n) * _UNIT_NS[unit] for n, unit in re.findall(r"(\d+)(ns|u|µ|ms|s|m|h|d|w)", text))


def parse_agg(agg: str) -> tuple[str, float | None]:
    """``(name, None)`` for one of `AGGREGATES`, ``("percentile", p)`` for ``pNN`` / ``percentile:NN``."""
    if agg in AGGREGATES:
        return agg, None
    m = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?)|percentile:(\d{1,2}(?:\.\d+)?)", agg)
    if m:
        return "percentile", float(m.group(1) or m.group(2))
    raise SchemaError(f"unknown aggregate {agg!r}; use one of {', '.join(AGGREGATES)}, p50, p95, p99")


def reduce_expr(col: pl.Expr, name: str, pct: float | None) -> pl.Expr:
    """One field's ``downsample`` aggregate over its present values (null when there are none), for a store that
    reduces raw samples itself (embedded, or VictoriaMetrics without server-side dedup): ``first`` / ``last`` by
    time (file order is not time order after compaction), percentiles by nearest rank, as InfluxQL's
    ``percentile()``."""
    if name in ("first", "last"):
        col = col.sort_by("time", maintain_order=True)
    values = col.cast(pl.Float64).drop_nulls()
    if name == "count":
        return values.count()
    if name == "percentile":
        rank = (values.len() * (pct or 0.0) / 100 + 0.5).floor().cast(pl.Int64) - 1
        out = values.sort().get(rank, null_on_oob=True)
    else:
        out = getattr(values, name)()
    return pl.when(values.len() > 0).then(out)


__all__ = [
    "AGGREGATES",
    "BatchKey",
    "TagFilter",
    "TelemetryStore",
    "every_ns",
    "parse_agg",
    "parse_every",
    "reduce_expr",
]


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename or a new file in it survives a power loss (both durable stores use it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
