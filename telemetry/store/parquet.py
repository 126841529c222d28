"""The embedded store: time-partitioned Parquet files, no server needed.

Layout under the root directory::

    LOCK                                                          the writer's lock (flock) and who holds it
    <measurement>/<YYYY-MM-DD>/g-<uuid>.parquet                   one group commit: the agent batches it holds
                                                                  are listed in its Parquet metadata
    <measurement>/<YYYY-MM-DD>/w-<uuid>.parquet                   one plain write
    <measurement>/<YYYY-MM-DD>/c-<uuid>.parquet                   compacted; its Parquet metadata lists
                                                                  the files it replaces ("covers")
    <measurement>/<YYYY-MM-DD>/b-<slug>.parquet                   one agent batch (older stores)
    _empty_batches/b-<slug>.parquet                               an agent batch without rows (its key only)
    quarantine/<measurement>/<YYYY-MM-DD>/<file>[.reason]         unreadable files, moved aside (never deleted)
    artifacts/<key>.parquet                                       large frames (per-token arrays)

Every file is written to a hidden temp file (``.tmp-<pid>-<uuid>``) in its directory, fsynced and renamed
into place, so a reader in another process never sees half a file, and an acknowledged write survives a
kill -9. One process at a time is the *writer* (`ParquetStore.acquire_writer`, taken by the first
`write_batch` or `compact` and by `start_compactor`): it holds an exclusive ``flock`` on ``LOCK``, which
names its PID and owner, and it alone commits agent batches, compacts, recovers and cleans up; a second
writer is refused with `StoreLockedError`. Readers and plain `write` / `write_artifact` calls (each one new
file under a unique name) need no lock.

A group commit is all-or-nothing across measurements: every file is written and fsynced under a temp name
(its Parquet metadata lists the whole group: temp and final names), then the files are renamed in and their
directories fsynced; the batch keys enter the duplicate index only then. When the writer opens the store, it
finishes every group that a stop interrupted between two renames, deletes temp files left by killed writers,
deletes files
that a compacted file covers (after the grace period), moves unreadable files to ``quarantine/`` and
rebuilds the duplicate index (one entry per batch key, whatever days its rows fall on) from the files on
disk. Compaction (a background thread of the writer) merges the small files of a day into one file ordered
by hour, series (node, device ...) and time (`compacted_order`: a one-node read skips the other nodes' row
groups) and renames it in; readers skip the files it covers and re-list when a file vanished under them.
File order is not time order: readers that need time order sort (`query` does).
Readers skip a file they cannot read and list it in `ParquetStore.unreadable_files`. Queries use
``pl.scan_parquet`` with the time range and tag filters pushed down. The guarantees: docs/durability.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import polars as pl

from telemetry.batch import Columns
from telemetry.errors import SchemaError, StoreError
from telemetry.schema import MEASUREMENTS, TIME, as_time, conform, measurement_name_problem
from telemetry.store.base import BatchKey, TagFilter, every_ns, parse_agg, reduce_expr
from telemetry.store.factory import register_scheme
from telemetry.store.parquet_writer import (
    ARTIFACTS_DIR,
    BATCHES_KEY,
    COVERS_KEY,
    EMPTY_DIR,
    QUARANTINE_DIR,
    READ_ERRORS,
    WRITERS,
    WRITERS_LOCK,
    Footer,
    Pending,
    Writer,
    atomic_write,
    batches_of,
    covers_of,
    damaged,
    default_owner,
    describe_holder,
    listdir,
    lock_store,
    mark_unreadable,
    parquet_files,
    read_footer,
    reserved_name,
    unreadable_reason,
    vanished,
)

_T = TypeVar("_T")
log = logging.getLogger(__name__)


_DAY_NS = 86_400 * 10**9
_EPOCH_DAY = date(1970, 1, 1)


def _day_of(value: datetime) -> date:
    return value.astimezone(UTC).date() if value.tzinfo else value.date()


class ParquetStore:
    """The embedded `TelemetryStore`: one writing process (the lock holder) and any number of readers."""

    accepts_columns = True  # write_batches(conformed=True) takes telemetry.batch.Columns
    lazy_scan = True  # scan() reads the files lazily, time range and tags pushed down

    def __init__(
        self,
        root: str | Path,
        *,
        compact_min_files: int = 32,
        compact_interval_s: float = 5.0,
        delete_grace_s: float = 30.0,
        create: bool = True,
    ) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store {self.root} is not a directory")
        if not create and not self.root.is_dir():
            raise StoreError(
                f"store {self.root} does not exist; check --store (or NEIGHBORSCOPE_STORE): a reading command "
                "never creates a store"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store {self.root}: {exc.strerror or exc}") from None
        self.compact_min_files = compact_min_files
        self.compact_interval_s = compact_interval_s
        self.delete_grace_s = delete_grace_s
        self._writer: Writer | None = None
        self._writer_guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreadable: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.root)!r})"

    # ---- the writer lock -----------------------------------------------------------------------

    def acquire_writer(self, owner: str | None = None) -> None:
        """Become the store's writer (idempotent): take the exclusive lock (`StoreLockedError` naming the holder
        when another process has it), then recover, clean up and load the duplicate index. ``owner`` is written
        into the lock file for the next one to read (default: this process's command line), e.g. the address a
        collector serves; calling again with an owner (once the address is known) rewrites it. Several handles
        in one process share one writer."""
        with self._writer_guard:
            if self._writer is not None:
                if owner:
                    describe_holder(self._writer.fd, owner)
                return
            key = os.path.realpath(self.root)
            with WRITERS_LOCK:
                writer = WRITERS.get(key)
                if writer is None:
                    writer = Writer(self.root, lock_store(self.root, owner or default_owner()))
                    try:
                        writer.open(self.delete_grace_s)
                    except BaseException as exc:
                        writer.release()
                        if isinstance(exc, OSError):
                            raise StoreError(f"store {self.root}: opening it for writing failed: {exc}") from exc
                        raise
                    WRITERS[key] = writer
                elif owner:
                    describe_holder(writer.fd, owner)
                writer.refs += 1
            self._writer = writer

    def _lease(self) -> Writer:
        if self._writer is None:
            self.acquire_writer()
        assert self._writer is not None
        return self._writer

    def _release_writer(self) -> None:
        with self._writer_guard:
            writer, self._writer = self._writer, None
        if writer is None:
            return
        with WRITERS_LOCK:
            writer.refs -= 1
            if writer.refs == 0:
                WRITERS.pop(os.path.realpath(writer.root), None)
                writer.release()

    # ---- writing -------------------------------------------------------------------------------

    def _prepare(self, measurement: str, frame: pl.DataFrame) -> pl.DataFrame:
        if measurement in MEASUREMENTS:
            return conform(frame, measurement)
        if (why := measurement_name_problem(measurement)) is not None:  # the collector's rule: one for every way in
            raise SchemaError(why)
        if TIME not in frame.columns:
            raise SchemaError("missing the 'time' column", measurement)
        return frame.with_columns(as_time(frame[TIME], f"{measurement}.time"))

    def _split(self, frame: pl.DataFrame | Columns) -> list[tuple[str, pl.DataFrame | Columns]]:
        """`_split_days` for a frame or validated columns (kept unbuilt when they fall on one day)."""
        if isinstance(frame, Columns):
            span = frame.time_range()
            if span is not None and span[0] // _DAY_NS == span[1] // _DAY_NS:
                return [(str(_EPOCH_DAY + timedelta(days=span[0] // _DAY_NS)), frame)]
            frame = frame.frame()
        return list(self._split_days(frame))

    def _split_days(self, frame: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
        t = frame[TIME]
        lo, hi = t.min(), t.max()
        if isinstance(lo, datetime) and isinstance(hi, datetime) and _day_of(lo) == _day_of(hi):
            return [(str(_day_of(lo)), frame)]
        days = t.dt.date().alias("_d")
        parts = frame.with_columns(days).partition_by("_d", as_dict=True, include_key=False)
        return [(str(k[0]), v) for k, v in parts.items()]

    def write(self, measurement: str, frame: pl.DataFrame) -> int:
        """Store rows durably (one new file per day; any process may call it, the writer lock is not needed)."""
        frame = self._prepare(measurement, frame)
        if frame.height == 0:
            return 0
        for day, part in self._split_days(frame):
            atomic_write(part, self.root / measurement / day / f"w-{uuid.uuid4().hex}.parquet")
        return frame.height

    def write_batch(self, key: BatchKey, frames: Mapping[str, pl.DataFrame]) -> bool:
        """Store a batch durably, once. Concurrent callers are committed together (group commit): one
        file per measurement/day for all the batches waiting, one fsync each, then every caller returns."""
        (result,) = self.write_batches([(key, frames)])
        if isinstance(result, BaseException):
            raise result
        return result

    def write_batches(
        self, items: Sequence[tuple[BatchKey, Mapping[str, pl.DataFrame | Columns]]], *, conformed: bool = False
    ) -> list[bool | BaseException]:
        """`write_batch` for many batches at once (the collector hands over the batches of concurrent
        requests together): they are committed as one group, all or nothing. Returns, per batch, True (stored),
        False (a replay: its key is stored already) or the exception that batch raised; every stored batch is
        durable on return. Takes the writer lock (`acquire_writer`) on first use.
        ``conformed=True`` says the frames are already in schema form (`conform`), which skips a check;
        they may then also be `telemetry.batch.Columns` (validated, not yet built): the rows of a group are
        built into one DataFrame per measurement/day."""
        writer = self._lease()
        results: list[bool | BaseException] = [False] * len(items)
        waiting: list[tuple[int, Pending]] = []
        for i, (key, frames) in enumerate(items):
            try:
                if conformed and all(m in MEASUREMENTS for m in frames):
                    prepared = {m: f for m, f in frames.items() if f.height}
                elif any(isinstance(f, Columns) for f in frames.values()):
                    raise TypeError("validated columns need conformed=True")
                else:
                    prepared = {m: f for m, f in ((m, self._prepare(m, f)) for m, f in frames.items()) if f.height}
                if not prepared:
                    results[i] = self._empty_batch(writer, key)
                    continue
            except Exception as exc:
                results[i] = exc
                continue
            waiting.append((i, Pending(key, prepared)))
        if waiting:
            self._group_commit(writer, [p for _, p in waiting])
        for i, p in waiting:
            if p.error is not None:
                err = StoreError(f"writing batch {p.key.slug()} failed: {p.error}")
                err.__cause__ = p.error
                results[i] = err
            else:
                results[i] = p.new
        return results

    def _group_commit(self, writer: Writer, mine: list[Pending]) -> None:
        """Queue ``mine`` and return once all of them are committed (by this thread or another one)."""
        cv = writer.commit_cv
        with cv:
            writer.queue.extend(mine)
            while not all(p.done for p in mine):
                if writer.committing:
                    cv.wait()
                    continue
                writer.committing = True
                group, writer.queue = writer.queue, []
                cv.release()
                try:
                    writer.commit(group, self._split)
                except BaseException as exc:
                    for p in group:
                        p.error = exc
                finally:
                    for p in group:
                        p.done = True
                    cv.acquire()
                    writer.committing = False
                    cv.notify_all()

    def _empty_batch(self, writer: Writer, key: BatchKey) -> bool:
        """An empty batch: remember its key so a replay is still recognised."""
        slug = key.slug()
        with writer.write_lock:
            if slug in writer.index:
                return False
            atomic_write(pl.DataFrame({TIME: [0]}), self.root / EMPTY_DIR / f"b-{slug}.parquet")
            writer.index.add(slug)
        return True

    # ---- reading -------------------------------------------------------------------------------

    def measurements(self) -> list[str]:
        return sorted(name for name in listdir(self.root) if not reserved_name(name) and (self.root / name).is_dir())

    def unreadable_files(self) -> list[tuple[str, str]]:
        """(path, reason) of the files this handle skipped while reading: unreadable ones (corrupt, empty) and
        quarantined ones of the days it read. Empty when every file it needed was read."""
        return sorted(self._unreadable.items())

    def _record_unreadable(self, path: Path, reason: str) -> None:
        """A file a kept listing left out as unreadable: recorded for this handle too."""
        if str(path) not in self._unreadable:
            self._unreadable[str(path)] = reason

    def _skip(self, path: Path, reason: str) -> None:
        """A file that cannot be read: left out of the result, recorded, and quarantined by the writer. Its
        directory's kept listing (`files_in_dir`) is dropped: the file may have been in it."""
        with _LISTINGS_LOCK:
            _LISTINGS.pop(str(path.parent), None)
        if str(path) not in self._unreadable:
            log.warning("skipping unreadable file %s (%s)", path, reason)
        self._unreadable[str(path)] = reason
        if self._writer is not None:
            dest = self._writer.quarantine(path, reason)
            if dest is not None:
                self._unreadable.pop(str(path), None)
                self._unreadable[str(dest)] = reason

    def _day_dirs(self, measurement: str, start: datetime | None, end: datetime | None) -> list[Path]:
        base = self.root / measurement
        if not base.is_dir():
            return []
        lo = _day_of(start) if start else None
        hi = _day_of(end) if end else None
        dirs = []
        for d in sorted(base.iterdir()):
            try:
                day = date.fromisoformat(d.name)
            except ValueError:
                continue
            if (lo and day < lo) or (hi and day > hi):
                continue
            dirs.append(d)
        return dirs

    def files(self, measurement: str, start: datetime | None = None, end: datetime | None = None) -> list[Path]:
        """The live, readable files of a measurement for a time range (covered files excluded; unreadable and
        quarantined ones recorded in `unreadable_files`)."""
        out = []
        for d in self._day_dirs(measurement, start, end):
            out += self.files_in_dir(d)
            self._note_quarantined(d)
        return out

    def _note_quarantined(self, d: Path) -> None:
        q = self.root / QUARANTINE_DIR / d.relative_to(self.root)
        for name in listdir(q):
            if name.endswith(".parquet"):
                reason_file = q / (name + ".reason")
                try:
                    reason = reason_file.read_text(encoding="utf-8").strip() or "quarantined"
                except OSError:
                    reason = "quarantined"
                self._unreadable[str(q / name)] = f"quarantined: {reason}"

    def scan(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.LazyFrame:
        """A lazy scan of one measurement with the filters applied (for analysis on large ranges)."""
        files = self.files(measurement, start, end)
        if tags and len(files) > 1:
            files = _may_match(files, tags)
        if not files:
            if measurement in MEASUREMENTS:
                return pl.LazyFrame(schema=MEASUREMENTS[measurement].polars_schema())
            return pl.LazyFrame(schema={TIME: pl.Datetime("ns", "UTC")})
        if measurement in MEASUREMENTS:
            lf = pl.scan_parquet(files)
        else:
            lf = pl.concat([pl.scan_parquet(f) for f in files], how="diagonal_relaxed")
        schema = lf.collect_schema()
        names = schema.names()
        if start is not None:
            lf = lf.filter(pl.col(TIME) >= _utc(start))
        if end is not None:
            lf = lf.filter(pl.col(TIME) < _utc(end))
        for tag, value in (tags or {}).items():
            if tag not in names:
                raise SchemaError(f"unknown tag {tag!r} for measurement {measurement!r}")
            values = [value] if isinstance(value, str) else list(value)
            lf = lf.filter(pl.col(tag).is_in(values))
        if fields is not None:
            unknown = [f for f in fields if f not in names]
            if unknown:
                raise SchemaError(f"unknown field(s) {unknown} for measurement {measurement!r}")
            keep = (
                [TIME] + [c for c in names if c in _tag_names(measurement, schema)] + [f for f in fields if f != TIME]
            )
            lf = lf.select(list(dict.fromkeys(keep)))
        return lf

    def query(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        return self._relisting(
            measurement,
            lambda: self.scan(measurement, start, end, tags, fields).collect().sort(TIME, maintain_order=True),
            start,
            end,
        )

    def time_bounds(self, measurement: str) -> tuple[datetime, datetime] | None:
        """(first, last) sample time, read from the first and the last day's files only."""

        def read() -> tuple[datetime, datetime] | None:
            files = self.files(measurement)
            if not files:
                return None
            first_day = [f for f in files if f.parent == files[0].parent]
            last_day = [f for f in files if f.parent == files[-1].parent]
            lo = pl.scan_parquet(first_day).select(pl.col(TIME).min()).collect().item()
            hi = pl.scan_parquet(last_day).select(pl.col(TIME).max()).collect().item()
            return (lo, hi) if lo is not None and hi is not None else None

        return self._relisting(measurement, read)

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
        """`TelemetryStore.downsample` on a lazy scan: epoch-aligned bins (integer division of the time, no
        sort), one polars ``group_by`` per (bin, series); ``first`` / ``last`` sort each group by time (rows come
        in file order, which is not time order)."""
        step = every_ns(every)
        name, pct = parse_agg(agg)
        if fields is None:
            if measurement not in MEASUREMENTS:
                raise SchemaError(f"name the fields to downsample for measurement {measurement!r}")
            fields = [f.name for f in MEASUREMENTS[measurement].fields if f.kind in ("float", "int")]
        fields = list(fields)

        def read() -> pl.DataFrame:
            lf = self.scan(measurement, start, end, tags)
            names = lf.collect_schema()
            by = list(_tag_names(measurement, names) if group_by is None else group_by)
            dtype = pl.Int64() if name == "count" else pl.Float64()
            missing = [pl.lit(None, pl.String).alias(t) for t in by if t not in names]
            missing += [pl.lit(None, dtype).alias(f) for f in fields if f not in names]
            bin_start = (pl.col(TIME).dt.epoch("ns") // step * step).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
            return (
                lf.with_columns(missing)
                .filter(pl.any_horizontal([pl.col(f).is_not_null() for f in fields]) if fields else pl.lit(False))
                .group_by(bin_start.alias(TIME), *by)
                .agg([reduce_expr(pl.col(f), name, pct).cast(dtype).alias(f) for f in fields])
                .select(TIME, *by, *fields)
                .sort([TIME, *by])
                .collect()
            )

        return self._relisting(measurement, read, start, end)

    def _relisting(
        self, measurement: str, read: Callable[[], _T], start: datetime | None = None, end: datetime | None = None
    ) -> _T:
        """``read()``, listed and read again when a file vanished between listing and reading (compaction), or
        when a file turned out unreadable past its footer (found by reading each file; then skipped)."""
        for attempt in range(8):
            try:
                return read()
            except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
                if vanished(exc):
                    time.sleep(0.02 * (attempt + 1))
                elif not (damaged(exc) and self._find_unreadable(measurement, start, end)):
                    raise
        raise StoreError(f"{measurement}: files kept changing while reading; try again")

    def _find_unreadable(self, measurement: str, start: datetime | None, end: datetime | None) -> bool:
        """Read each file of the range whole; mark and skip those that fail. True when one was found."""
        found = False
        for p in self.files(measurement, start, end):
            try:
                pl.read_parquet(p)
            except READ_ERRORS as exc:
                if vanished(exc):
                    continue
                if not damaged(exc):
                    raise StoreError(f"cannot read {p}: {exc}") from None
                mark_unreadable(p, unreadable_reason(exc))
                self._skip(p, unreadable_reason(exc))
                found = True
        return found

    def series(self, measurement: str | None = None) -> pl.DataFrame:
        frames = []
        for m in [measurement] if measurement else self.measurements():

            def read(m: str = m) -> pl.DataFrame | None:
                lf = self.scan(m)
                tags = _tag_names(m, lf.collect_schema())
                return lf.select(tags).unique().collect().with_columns(pl.lit(m).alias("measurement")) if tags else None

            found = self._relisting(m, read)
            if found is not None:
                frames.append(found)
        if not frames:
            return pl.DataFrame(schema={"measurement": pl.String})
        return pl.concat(frames, how="diagonal_relaxed").select("measurement", pl.exclude("measurement"))

    # ---- artifacts -----------------------------------------------------------------------------

    def _artifact_path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
            raise StoreError(f"invalid artifact key {key!r}")
        return self.root.joinpath(ARTIFACTS_DIR, *parts).with_suffix(".parquet")

    def write_artifact(self, key: str, frame: pl.DataFrame) -> Path:
        path = self._artifact_path(key)
        atomic_write(frame, path)
        return path

    def read_artifact(self, key: str) -> pl.DataFrame | None:
        """The artifact, None when there is none; `StoreError` naming the file when it cannot be read."""
        path = self._artifact_path(key)
        try:
            return pl.read_parquet(path)
        except READ_ERRORS as exc:
            if vanished(exc):
                return None
            if not damaged(exc):
                raise StoreError(f"cannot read artifact {key!r} ({path}): {exc}") from None
            self._unreadable[str(path)] = unreadable_reason(exc, path.stat().st_size if path.exists() else None)
            raise StoreError(f"artifact {key!r} ({path}) is unreadable: {self._unreadable[str(path)]}") from None

    def scan_artifact(self, key: str) -> pl.LazyFrame | None:
        """The artifact as a lazy scan of its file (only the footer is read now), None when there is none;
        `StoreError` naming the file when its footer cannot be read."""
        path = self._artifact_path(key)
        if not path.is_file():
            return None
        try:
            pl.read_parquet_schema(path)
        except READ_ERRORS as exc:
            if vanished(exc):
                return None
            self._unreadable[str(path)] = unreadable_reason(exc, path.stat().st_size if path.exists() else None)
            raise StoreError(f"artifact {key!r} ({path}) is unreadable: {self._unreadable[str(path)]}") from None
        return pl.scan_parquet(path)

    def prune_artifacts(self, prefix: str, keep_bytes: int) -> int:
        """Remove the oldest artifacts (by modification time) under ``prefix`` until those left take at most
        ``keep_bytes``; returns the bytes removed. For caches kept as artifacts (analysis' derived results), never
        for a run's own artifacts."""
        parts = [p for p in prefix.split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
            raise StoreError(f"invalid artifact prefix {prefix!r}")
        base = self.root.joinpath(ARTIFACTS_DIR, *parts)
        if not base.is_dir():
            return 0
        found = []
        for path in base.rglob("*.parquet"):
            try:
                st = path.stat()
            except OSError:  # removed meanwhile
                continue
            found.append((st.st_mtime_ns, st.st_size, path))
        total = sum(size for _, size, _ in found)
        removed = 0
        for _, size, path in sorted(found):
            if total - removed <= keep_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed += size
        return removed

    def list_artifacts(self, prefix: str = "") -> list[str]:
        base = self.root / ARTIFACTS_DIR
        if not base.is_dir():
            return []
        keys = [str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.parquet") if not p.name.startswith(".")]
        return sorted(k for k in keys if k.startswith(prefix))

    # ---- compaction ----------------------------------------------------------------------------

    def compact(self, min_files: int | None = None, max_bytes: int = 256 * 2**20, fanout: int = 8) -> int:
        """Merge small files, tiered so no row is rewritten more than a few times; returns files merged.

        Per measurement/day: once ``min_files`` batch / write files have gathered, they become one
        compacted file; once ``fanout`` compacted files under ``max_bytes`` have gathered, they are merged.
        (Merging everything every time would rewrite the whole day on each pass.) Only the writer compacts:
        this takes the writer lock (`acquire_writer`) on first use.
        """
        writer = self._lease()
        min_files = self.compact_min_files if min_files is None else min_files
        merged = 0
        for m in self.measurements():
            for d in self._day_dirs(m, None, None):
                live = self.files_in_dir(d)
                small = [p for p in live if not p.name.startswith("c-")]
                compacted = [p for p in live if p.name.startswith("c-") and _size(p) < max_bytes]
                for group, needed in ((small, max(min_files, 2)), (compacted, max(fanout, 2))):
                    if len(group) >= needed:
                        merged += self._merge(writer, m, d, group)
        writer.delete_due()
        return merged

    def _merge(self, writer: Writer, measurement: str, d: Path, files: list[Path]) -> int:
        """Merge ``files`` into one compacted file; a file that cannot be read is quarantined and left out."""
        frames = []
        readable = []
        for p in files:
            try:
                frames.append(pl.read_parquet(p))
                readable.append(p)
            except READ_ERRORS as exc:
                if vanished(exc):
                    continue
                if not damaged(exc):
                    raise
                mark_unreadable(p, unreadable_reason(exc))
                self._skip(p, unreadable_reason(exc))
        files = readable
        if len(files) < 2:
            return 0
        how = "vertical" if measurement in MEASUREMENTS else "diagonal_relaxed"
        frame = compacted_order(measurement, pl.concat(frames, how=how))
        covers: set[str] = set()
        batches: set[str] = set()
        for p in files:
            covers.add(p.name)
            if p.name.startswith("c-"):
                covers |= covers_of(p)
            if p.name.startswith("b-"):
                batches.add(p.name[2:-8])
            else:
                batches |= batches_of(p)
        meta = {COVERS_KEY: json.dumps(sorted(covers)), BATCHES_KEY: json.dumps(sorted(batches))}
        with writer.write_lock:
            atomic_write(
                frame, d / f"c-{uuid.uuid4().hex}.parquet", metadata=meta, row_group_size=COMPACT_ROW_GROUP_ROWS
            )
            due = time.monotonic() + self.delete_grace_s
            writer.pending_delete.extend((due, p) for p in files)
        return len(files)

    def files_in_dir(self, d: Path) -> list[Path]:
        """The live files of one measurement/day directory: files a compacted file covers are left out, and
        so are files whose footer cannot be read (recorded in `unreadable_files`).

        A directory that has not changed for `QUIET_NS` is listed once per process (a past day of a fleet: every
        node's scan would otherwise stat and sort all nodes' files): the listing is kept with the directory's
        mtime and inode, and used while both are the same. Every way a live file comes or goes (a rename in, a
        compaction, a deletion, a quarantine) changes the directory's mtime; a directory changed less than
        `QUIET_NS` ago is always listed (its mtime may not have ticked since: a coarse clock), and a file found
        unreadable drops its directory's listing (`_skip`)."""
        try:
            dst = os.stat(d)
        except OSError:
            dst = None
        if dst is not None:
            with _LISTINGS_LOCK:
                hit = _LISTINGS.get(str(d))
            # the writer quarantines what it cannot read: it lists a directory holding such a file itself
            if (
                hit is not None
                and hit[0] == (dst.st_mtime_ns, dst.st_ino)
                and not (hit[2] and self._writer is not None)
            ):
                for path, reason in hit[2]:
                    self._record_unreadable(path, reason)
                return list(hit[1])
        skipped: list[tuple[Path, str]] = []
        live = self._list_dir(d, skipped)
        if dst is not None and time.time_ns() - dst.st_mtime_ns > QUIET_NS:
            with _LISTINGS_LOCK:
                if len(_LISTINGS) > 100_000:
                    _LISTINGS.clear()
                _LISTINGS[str(d)] = ((dst.st_mtime_ns, dst.st_ino), tuple(live), tuple(skipped))
        return live

    def _list_dir(self, d: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
        names = parquet_files(d)
        footers: dict[Path, Footer | str | None] = {p: read_footer(p) for p in names if p.name.startswith("c-")}
        covered: set[str] = set()
        for found in footers.values():
            if isinstance(found, Footer):
                covered |= found.covers
        live = []
        for p in sorted(names):
            if p.name in covered:
                continue
            found = footers[p] if p in footers else read_footer(p)
            if isinstance(found, str):
                self._skip(p, found)
                skipped.append((p, found))
            elif found is not None:
                live.append(p)
        return live

    def start_compactor(self, owner: str | None = None) -> None:
        """Become the writer (`acquire_writer`, with ``owner`` for the lock file) and compact in a background
        thread until `close()`."""
        self.acquire_writer(owner)
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.compact_interval_s):
                try:
                    self.compact()
                except Exception as exc:
                    log.error("store %s: compaction failed: %s", self.root, exc)
                    print(f"neighborscope: compaction failed: {exc}", flush=True)

        self._thread = threading.Thread(target=loop, name="parquet-compactor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the compactor and give the writer lock back (when no other handle of this process uses it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._release_writer()


QUIET_NS = 2 * 10**9
"""A directory whose mtime is older than this is listed once per process (`ParquetStore.files_in_dir`)."""
_LISTINGS: dict[str, tuple[tuple[int, int], tuple[Path, ...], tuple[tuple[Path, str], ...]]] = {}
_LISTINGS_LOCK = threading.Lock()


def _may_match(files: list[Path], tags: TagFilter) -> list[Path]:
    """``files`` less those whose statistics show that no row matches ``tags`` (a tag's value outside the file's
    min..max: e.g. another node's file of a fleet's day). At least one file stays, so that the scan's schema and its
    errors (an unknown tag or field) are those of the unpruned scan; files without statistics always stay."""
    wanted = {t: [v] if isinstance(v, str) else list(v) for t, v in tags.items()}
    keep = []
    for f in files:
        ranges = tag_ranges(f)
        if ranges is None or all(
            t not in ranges or any(not isinstance(v, str) or ranges[t][0] <= v <= ranges[t][1] for v in vals)
            for t, vals in wanted.items()
        ):
            keep.append(f)
    return keep or files[:1]


_RANGES: dict[tuple[str, int, int], dict[str, tuple[str, str]] | None] = {}
_RANGES_LOCK = threading.Lock()


def tag_ranges(path: Path) -> dict[str, tuple[str, str]] | None:
    """(min, max) of each string column of a Parquet file over all its row groups, from the footer's statistics;
    a column left out where a row group has no statistics for it or holds only nulls (nothing can be said of it).
    None when the footer cannot be read here (the reader finds out and reports it). Cached by path, size and
    mtime: a file is written once, and a rewritten file is a new key."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _RANGES_LOCK:
        if key in _RANGES:
            return _RANGES[key]
    found = _read_ranges(path)
    with _RANGES_LOCK:
        if len(_RANGES) > 200_000:
            _RANGES.clear()
        _RANGES[key] = found
    return found


def _read_ranges(path: Path) -> dict[str, tuple[str, str]] | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except Exception:
        return None
    schema = meta.schema
    cols = [i for i in range(len(schema)) if schema.column(i).logical_type.type == "STRING"]
    out: dict[str, tuple[str, str]] = {}
    for i in cols:
        lo: str | None = None
        hi: str | None = None
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(i).statistics
            if stats is None or not stats.has_min_max:
                if stats is not None and stats.has_null_count and stats.null_count == meta.row_group(g).num_rows:
                    continue  # only nulls: matches no tag value
                lo = hi = None
                break
            a, b = stats.min, stats.max
            if not isinstance(a, str) or not isinstance(b, str):
                lo = hi = None
                break
            lo = a if lo is None or a < lo else lo
            hi = b if hi is None or b > hi else hi
        else:
            if lo is not None and hi is not None:
                out[schema.column(i).name] = (lo, hi)
    return out


def compacted_order(measurement: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of a compacted file in its storage order: by UTC hour (``COMPACT_SLAB_NS``), then by series (the
    node, then the second tag: device, core, group ...), then by time. Each row group then holds a few series of
    one hour, and its min/max statistics let a reader filtering on ``node`` (or ``node`` and ``device``) skip
    the others; a time-range read still skips the hours outside its range. File order is NOT time order: a
    reader that needs time order sorts (`query` does)."""
    tags = _tag_names(measurement, frame.schema)
    series = (["node"] if "node" in tags else []) + [t for t in tags if t != "node"]
    slab = (pl.col(TIME).dt.epoch("ns") // COMPACT_SLAB_NS).alias("_slab")
    return frame.sort([slab, *series[:2], TIME], nulls_last=True)  # not stable: the order of ties was never promised


COMPACT_SLAB_NS = 3600 * 10**9  # a compacted file is ordered by series within each UTC hour
COMPACT_ROW_GROUP_ROWS = 131_072  # rows per row group of a compacted file (measured: docs/schema.md)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tag_names(measurement: str, schema: Mapping[str, pl.DataType]) -> list[str]:
    """Tag columns: the schema's for a known measurement, else every String column."""
    if measurement in MEASUREMENTS:
        return [t for t in MEASUREMENTS[measurement].tags if t in schema]
    return [n for n, t in schema.items() if t == pl.String]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@register_scheme("file")
def _open(url: str, *, create: bool = True) -> ParquetStore:
    path = url[len("file://") :] if url.startswith("file://") else url
    return ParquetStore(path, create=create)
