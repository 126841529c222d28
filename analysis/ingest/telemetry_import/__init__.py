"""Telemetry recorded without our agent -> schema frames -> the store (`neighborscope import telemetry`).

Formats (one module each, registered under the module name): ``line_protocol`` (Telegraf file output, ``influx``
exports; Telegraf's ``nvidia_smi`` / ``cpu`` / ``mem`` / ``system`` measurements are mapped onto ``accel`` /
``host``), ``long_format`` (CSV / Parquet: time, node, device, metric, value[, unit][, tags]), ``nvidia_smi``
(``nvidia-smi --query-gpu=... --format=csv``, InferenceX's ``gpu_metrics.csv``), ``amd_smi``
(``amd-smi metric --csv``).

An import streams: line protocol is read in chunks of whole lines (`base.CHUNK_BYTES`), each stored while the next
one is parsed on a second thread (`line_protocol.PARSE_AHEAD`), so memory stays bounded whatever the file's size.
Importing is idempotent, the way the collector's batches are:

- every chunk is written with `TelemetryStore.write_batch` under a key that is a hash of its rows (`rows_key`),
  so rows stored before are recognised as a replay: an import cut short (a bad line, a store error) and run
  again stores only the rest, and the same file under other options that give the same rows stores nothing;
- a completed import leaves a marker artifact (``imports/telemetry/<sha256 of file and options>``): importing
  the same file again stores nothing, reads nothing but the file's hash, and says when it was imported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import.base import CHUNK_BYTES, Frames, iter_file, line_chunks, parse_file
from telemetry.errors import StoreLockedError
from telemetry.store.base import BatchKey

IMPORT_NODE = "telemetry-import"
"""The ``node`` of the batch keys an import writes under (its ``boot_id`` is a content hash)."""
MARKER_PREFIX = "imports/telemetry/"


def parse_telemetry_files(
    paths: Sequence[str | Path], *, node: str | None = None, tz: str | None = None, fmt: str | None = None
) -> Frames:
    """Parse telemetry files into one conformed frame per measurement (whole, in memory: for small files)."""
    parts: dict[str, list[pl.DataFrame]] = {}
    for p in paths:
        for m, frame in parse_file(p, node=node, tz=tz, fmt=fmt).items():
            parts.setdefault(m, []).append(frame)
    return {m: pl.concat(fs, how="diagonal_relaxed") if len(fs) > 1 else fs[0] for m, fs in parts.items()}


@dataclass
class FileImport:
    """What importing one file did."""

    path: Path
    sha256: str  # of the file's content and the options that shape its rows
    rows: dict[str, int] = field(default_factory=dict)  # measurement -> rows parsed
    columns: dict[str, list[str]] = field(default_factory=dict)
    chunks_stored: int = 0
    chunks_replayed: int = 0  # chunks the store already held (an earlier, interrupted import)
    imported_before: str | None = None  # when the whole file was imported before (then nothing was stored)
    writer_busy: str = ""  # the store's writer (e.g. a running collector) held its lock: chunks stored unkeyed


def file_digest(path: str | Path, options: bytes = b"") -> str:
    """sha256 of ``options`` and the file's bytes (read in blocks)."""
    h = hashlib.sha256(options)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(2**20):
                h.update(block)
    except OSError as exc:
        raise TelemetryFormatError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    return h.hexdigest()


def _options(node: str | None, tz: str | None, fmt: str | None) -> bytes:
    return json.dumps({"node": node, "tz": tz, "format": fmt}, sort_keys=True).encode() + b"\0"


class _Chunks:
    """`line_chunks`, remembering the first line of the chunk being parsed (for messages)."""

    def __init__(self, path: Path, chunk_bytes: int) -> None:
        self._chunks = line_chunks(path, chunk_bytes)
        self.first_line = 1

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for first_line, data in self._chunks:
            self.first_line = first_line
            yield first_line, data


def rows_key(frames: Frames) -> str:
    """A key for a chunk's rows: equal rows (whatever file or options they came from) give equal keys."""
    h = hashlib.sha256()
    for m in sorted(frames):
        f = frames[m]
        h.update(f"{m}\0{','.join(f.columns)}\0{f.height}\0".encode())
        h.update(f.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()[:32]


def import_telemetry_file(
    store: Any,
    path: str | Path,
    *,
    node: str | None = None,
    tz: str | None = None,
    fmt: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> FileImport:
    """Parse one file chunk by chunk and store each chunk (``store=None``: parse only, a dry run)."""
    path = Path(path)
    options = _options(node, tz, fmt)
    digest = file_digest(path, options)
    result = FileImport(path, digest)
    marker = MARKER_PREFIX + digest
    if store is not None:
        previous = store.read_artifact(marker)
        if previous is not None and previous.height:
            result.imported_before = str(previous["imported_at"][0])
            result.rows = json.loads(previous["rows"][0])
            return result
    chunks = _Chunks(path, chunk_bytes)
    try:
        _store_chunks(store, path, chunks, result, node=node, tz=tz, fmt=fmt, chunk_bytes=chunk_bytes)
    except TelemetryFormatError as exc:
        if not result.chunks_stored:
            raise
        raise TelemetryFormatError(
            f"{str(exc).removeprefix(f'{exc.source}:{exc.line}: ').removeprefix(f'{exc.source}: ')} (the rows of "
            f"lines 1-{chunks.first_line - 1} are stored: fix the file and import it again, they are not stored "
            "twice)",
            exc.source,
            exc.line,
        ) from None
    if store is not None:
        store.write_artifact(marker, pl.DataFrame({
            "file": [str(path.resolve())], "bytes": [path.stat().st_size], "sha256": [digest],
            "imported_at": [datetime.now(UTC).isoformat(timespec="seconds")], "rows": [json.dumps(result.rows)],
        }))  # fmt: skip
    return result


def _store_chunks(store: Any, path: Path, chunks: _Chunks, result: FileImport, **kwargs: Any) -> None:
    for frames in iter_file(path, chunks=iter(chunks), **kwargs):
        frames = {m: f for m, f in frames.items() if f.height}
        for m, f in frames.items():
            result.rows[m] = result.rows.get(m, 0) + f.height
            cols = result.columns.setdefault(m, [])
            cols += [c for c in f.columns if c not in cols]
        if store is None or not frames:
            continue
        if result.writer_busy:
            _write_unkeyed(store, frames)
            result.chunks_stored += 1
            continue
        key = BatchKey(IMPORT_NODE, rows_key(frames), 0)
        try:
            new = store.write_batch(key, frames)
        except StoreLockedError as exc:
            # Another process (a collector) is the store's writer: keyed batches are its to commit. Plain
            # writes are safe beside it; the file's marker still keeps a second import of this file out.
            result.writer_busy = exc.owner or (f"PID {exc.pid}" if exc.pid else "another process")
            _write_unkeyed(store, frames)
            result.chunks_stored += 1
            continue
        if new:
            result.chunks_stored += 1
        else:
            result.chunks_replayed += 1


def _write_unkeyed(store: Any, frames: dict[str, pl.DataFrame]) -> None:
    for m, f in frames.items():
        store.write(m, f)


def import_telemetry_files(
    store: Any,
    paths: Sequence[str | Path],
    *,
    node: str | None = None,
    tz: str | None = None,
    fmt: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> list[FileImport]:
    """`import_telemetry_file` for each file, in order (``store=None``: a dry run)."""
    return [import_telemetry_file(store, p, node=node, tz=tz, fmt=fmt, chunk_bytes=chunk_bytes) for p in paths]


__all__ = ["FileImport", "import_telemetry_file", "import_telemetry_files", "parse_telemetry_files"]
