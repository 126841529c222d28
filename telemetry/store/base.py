"""The store protocol every backend implements (embedded Parquet, InfluxDB).

Frames follow `telemetry.schema`: a ``time`` column (UTC, ns), tag columns, field columns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl

from telemetry.errors import StoreError

TagFilter = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True, order=True)
class BatchKey:
    """Identity of one agent batch: a replay of the same key is stored once."""

    node: str
    boot_id: str
    seq: int

    def slug(self) -> str:
        return f"{_safe(self.node)}.{_safe(self.boot_id)}.{self.seq:012d}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else f"%{ord(c):02x}" for c in text)


@runtime_checkable
class TelemetryStore(Protocol):
    """Write frames, read them back by time range and tags, list series."""

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

    def series(self, measurement: str | None = None) -> pl.DataFrame:
        """Distinct tag sets: columns ``measurement`` plus the tag columns."""
        ...

    def measurements(self) -> list[str]: ...

    def write_artifact(self, key: str, frame: pl.DataFrame) -> Path:
        """Keep a large frame (e.g. per-token arrays) beside the store, under a slash-separated key."""
        ...

    def read_artifact(self, key: str) -> pl.DataFrame | None: ...

    def list_artifacts(self, prefix: str = "") -> list[str]: ...

    def close(self) -> None: ...


StoreFactory = Callable[[str], TelemetryStore]
_FACTORIES: dict[str, StoreFactory] = {}


def register_scheme(*schemes: str) -> Callable[[StoreFactory], StoreFactory]:
    """Register a store factory for URL schemes (``file``, ``influx``, ...)."""

    def deco(factory: StoreFactory) -> StoreFactory:
        for scheme in schemes:
            _FACTORIES[scheme] = factory
        return factory

    return deco


def open_store(url: str | Path) -> TelemetryStore:
    """Open a store from a URL: a plain path or ``file://PATH`` is the embedded Parquet store;
    ``influx://`` / ``influxs://`` / ``influx2://`` is InfluxDB (see `telemetry.store.influx`)."""
    text = str(url)
    scheme = text.split("://", 1)[0] if "://" in text else "file"
    if scheme not in _FACTORIES:
        _load_builtin(scheme)
    try:
        factory = _FACTORIES[scheme]
    except KeyError:
        raise StoreError(
            f"unknown store URL scheme {scheme!r} in {text!r}; use a path, file://PATH or influx://HOST:PORT/DB"
        ) from None
    return factory(text)


def _load_builtin(scheme: str) -> None:
    import importlib

    module = {"file": "telemetry.store.parquet"}.get(scheme, "telemetry.store.influx")
    with contextlib.suppress(ModuleNotFoundError):
        importlib.import_module(module)
