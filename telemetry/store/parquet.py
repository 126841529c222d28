"""The embedded store: time-partitioned Parquet files, no server needed.

Layout under the root directory::

    <measurement>/<YYYY-MM-DD>/b-<node>.<boot_id>.<seq>.parquet   one agent batch (name = batch key)
    <measurement>/<YYYY-MM-DD>/w-<uuid>.parquet                   one plain write
    <measurement>/<YYYY-MM-DD>/c-<uuid>.parquet                   compacted; its Parquet metadata lists
                                                                  the files it replaces ("covers")
    artifacts/<key>.parquet                                       large frames (per-token arrays)

Every file is written to a hidden temp file in the same directory, fsynced and renamed into place, so
a reader in another process never sees half a file, and an acknowledged write survives a kill -9.
A batch is idempotent because its file name is its key: a replay finds the file (or a compacted file
covering it) and writes nothing. Compaction (a background thread of the writing process) merges the
small files of a day into one time-sorted file, renames it in, and deletes the covered files after a
grace period; readers skip files that a compacted file covers, and re-list when a file vanished under
them. Queries use ``pl.scan_parquet`` with the time range and tag filters pushed down.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import polars as pl

from telemetry.batch import Columns, group_frame
from telemetry.errors import SchemaError, StoreError
from telemetry.schema import MEASUREMENTS, TIME, as_time, conform
from telemetry.store.base import BatchKey, TagFilter, every_ns, parse_agg
from telemetry.store.factory import register_scheme

_T = TypeVar("_T")
COVERS_KEY = "neighborscope.covers"
BATCHES_KEY = "neighborscope.batches"
_META_CACHE: dict[tuple[str, float, str], frozenset[str]] = {}
_META_LOCK = threading.Lock()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(
    frame: pl.DataFrame,
    target: Path,
    metadata: dict[str, str] | None = None,
    sync_dir: bool = True,
    compression: str = "zstd",
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}.parquet"
    try:
        frame.write_parquet(tmp, compression=compression, statistics=True, metadata=metadata)  # type: ignore[arg-type]
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        if sync_dir:
            _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _meta_names(path: Path, key: str) -> frozenset[str]:
    """A JSON list kept in a Parquet file's key-value metadata, as a set (cached by path, mtime and key)."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return frozenset()
    cache_key = (str(path), mtime, key)
    with _META_LOCK:
        hit = _META_CACHE.get(cache_key)
    if hit is not None:
        return hit
    try:
        meta = pl.read_parquet_metadata(path)
    except FileNotFoundError:
        return frozenset()
    names = frozenset(json.loads(meta.get(key, "[]")))
    with _META_LOCK:
        _META_CACHE[cache_key] = names
    return names


def _covers(path: Path) -> frozenset[str]:
    """Names of the files a compacted file replaces."""
    return _meta_names(path, COVERS_KEY)


def _batches(path: Path) -> frozenset[str]:
    """Slugs of the agent batches a group-commit or compacted file holds."""
    return _meta_names(path, BATCHES_KEY)


@dataclass
class _Pending:
    key: BatchKey
    frames: dict[str, pl.DataFrame]
    new: bool = False
    done: bool = False
    error: BaseException | None = None


_DAY_NS = 86_400 * 10**9
_EPOCH_DAY = date(1970, 1, 1)


def _day_of(value: datetime) -> date:
    return value.astimezone(UTC).date() if value.tzinfo else value.date()


class ParquetStore:
    """The embedded `TelemetryStore`. Safe for one writing process and any number of readers."""

    accepts_columns = True  # write_batches(conformed=True) takes telemetry.batch.Columns
    lazy_scan = True  # scan() reads the files lazily, time range and tags pushed down

    def __init__(
        self,
        root: str | Path,
        *,
        compact_min_files: int = 32,
        compact_interval_s: float = 5.0,
        delete_grace_s: float = 30.0,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.compact_min_files = compact_min_files
        self.compact_interval_s = compact_interval_s
        self.delete_grace_s = delete_grace_s
        self._write_lock = threading.Lock()
        self._pending_delete: list[tuple[float, Path]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._commit_cv = threading.Condition()
        self._commit_queue: list[_Pending] = []
        self._committing = False
        self._batch_index: dict[tuple[str, str], set[str]] = {}

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.root)!r})"

    # ---- writing -------------------------------------------------------------------------------

    def _prepare(self, measurement: str, frame: pl.DataFrame) -> pl.DataFrame:
        if measurement in MEASUREMENTS:
            return conform(frame, measurement)
        if not measurement or "/" in measurement or measurement.startswith((".", "_")) or measurement == "artifacts":
            raise SchemaError(f"invalid measurement name {measurement!r}")
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
        frame = self._prepare(measurement, frame)
        if frame.height == 0:
            return 0
        with self._write_lock:
            for day, part in self._split_days(frame):
                _atomic_write(part, self.root / measurement / day / f"w-{uuid.uuid4().hex}.parquet")
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
        requests together): they are committed as one group. Returns, per batch, True (stored), False
        (a replay) or the exception that batch raised; every stored batch is durable on return.
        ``conformed=True`` says the frames are already in schema form (`conform`), which skips a check;
        they may then also be `telemetry.batch.Columns` (validated, not yet built): the rows of a group are
        built into one DataFrame per measurement/day."""
        results: list[bool | BaseException] = [False] * len(items)
        waiting: list[tuple[int, _Pending]] = []
        for i, (key, frames) in enumerate(items):
            try:
                if conformed and all(m in MEASUREMENTS for m in frames):
                    prepared = {m: f for m, f in frames.items() if f.height}
                elif any(isinstance(f, Columns) for f in frames.values()):
                    raise TypeError("validated columns need conformed=True")
                else:
                    prepared = {m: f for m, f in ((m, self._prepare(m, f)) for m, f in frames.items()) if f.height}
                if not prepared:
                    results[i] = self._empty_batch(key)
                    continue
            except Exception as exc:
                results[i] = exc
                continue
            waiting.append((i, _Pending(key, prepared)))
        if waiting:
            self._group_commit([p for _, p in waiting])
        for i, p in waiting:
            if p.error is not None:
                err = StoreError(f"writing batch {p.key.slug()} failed: {p.error}")
                err.__cause__ = p.error
                results[i] = err
            else:
                results[i] = p.new
        return results

    def _group_commit(self, mine: list[_Pending]) -> None:
        """Queue ``mine`` and return once all of them are committed (by this thread or another one)."""
        with self._commit_cv:
            self._commit_queue.extend(mine)
            while not all(p.done for p in mine):
                if self._committing:
                    self._commit_cv.wait()
                    continue
                self._committing = True
                group, self._commit_queue = self._commit_queue, []
                self._commit_cv.release()
                try:
                    self._commit(group)
                except BaseException as exc:
                    for p in group:
                        p.error, p.done = exc, True
                finally:
                    self._commit_cv.acquire()
                    self._committing = False
                    self._commit_cv.notify_all()

    def _commit(self, group: list[_Pending]) -> None:
        parts: dict[tuple[str, str], list[tuple[str, pl.DataFrame]]] = {}
        owners: dict[tuple[str, str, str], _Pending] = {}
        for p in group:
            slug = p.key.slug()
            for measurement, frame in p.frames.items():
                for day, part in self._split(frame):
                    where = (measurement, day)
                    if slug in self._stored_batches(where) or (measurement, day, slug) in owners:
                        continue  # a replay: already stored (or twice in this group)
                    owners[(measurement, day, slug)] = p
                    parts.setdefault(where, []).append((slug, part))
        with self._write_lock:
            dirs = set()
            for (measurement, day), items in parts.items():
                d = self.root / measurement / day
                frame = group_frame(measurement, [f for _, f in items])
                slugs = [slug for slug, _ in items]
                _atomic_write(
                    frame,
                    d / f"g-{uuid.uuid4().hex}.parquet",
                    metadata={BATCHES_KEY: json.dumps(slugs)},
                    sync_dir=False,
                    compression="lz4",  # cheaper to write; compaction rewrites the rows with zstd
                )
                dirs.add(d)
            for d in dirs:
                _fsync_dir(d)
            for (measurement, day), items in parts.items():
                self._stored_batches((measurement, day)).update(slug for slug, _ in items)
        for (_m, _d, _slug), p in owners.items():
            p.new = True
        for p in group:
            p.done = True

    def _stored_batches(self, where: tuple[str, str]) -> set[str]:
        """Slugs of the batches stored in one measurement/day directory (loaded from disk once)."""
        index = self._batch_index.get(where)
        if index is None:
            index = set()
            d = self.root / where[0] / where[1]
            if d.is_dir():
                for p in d.iterdir():
                    if p.name.startswith(".") or p.suffix != ".parquet":
                        continue
                    if p.name.startswith("b-"):
                        index.add(p.name[2:-8])
                    else:
                        index |= _batches(p)
            self._batch_index[where] = index
        return index

    def _empty_batch(self, key: BatchKey) -> bool:
        """An empty batch: remember it so a replay is still recognised."""
        marker = self.root / "_empty_batches" / f"b-{key.slug()}.parquet"
        with self._write_lock:
            if marker.exists():
                return False
            _atomic_write(pl.DataFrame({TIME: [0]}), marker)
        return True

    # ---- reading -------------------------------------------------------------------------------

    def measurements(self) -> list[str]:
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(("_", ".")) and p.name != "artifacts"
        )

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
        """The live files of a measurement for a time range (covered files excluded)."""
        return [p for d in self._day_dirs(measurement, start, end) for p in self.files_in_dir(d)]

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
        return _relisting(
            measurement,
            lambda: self.scan(measurement, start, end, tags, fields).collect().sort(TIME, maintain_order=True),
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

        return _relisting(measurement, read)

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
        sort), one polars ``group_by`` per (bin, series)."""
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
                .agg([_reduce(pl.col(f), name, pct).cast(dtype).alias(f) for f in fields])
                .select(TIME, *by, *fields)
                .sort([TIME, *by])
                .collect()
            )

        return _relisting(measurement, read)

    def series(self, measurement: str | None = None) -> pl.DataFrame:
        frames = []
        for m in [measurement] if measurement else self.measurements():
            lf = self.scan(m)
            tags = _tag_names(m, lf.collect_schema())
            if not tags:
                continue
            frames.append(lf.select(tags).unique().collect().with_columns(pl.lit(m).alias("measurement")))
        if not frames:
            return pl.DataFrame(schema={"measurement": pl.String})
        return pl.concat(frames, how="diagonal_relaxed").select("measurement", pl.exclude("measurement"))

    # ---- artifacts -----------------------------------------------------------------------------

    def _artifact_path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
            raise StoreError(f"invalid artifact key {key!r}")
        return self.root.joinpath("artifacts", *parts).with_suffix(".parquet")

    def write_artifact(self, key: str, frame: pl.DataFrame) -> Path:
        path = self._artifact_path(key)
        _atomic_write(frame, path)
        return path

    def read_artifact(self, key: str) -> pl.DataFrame | None:
        path = self._artifact_path(key)
        return pl.read_parquet(path) if path.exists() else None

    def list_artifacts(self, prefix: str = "") -> list[str]:
        base = self.root / "artifacts"
        if not base.is_dir():
            return []
        keys = [str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.parquet") if not p.name.startswith(".")]
        return sorted(k for k in keys if k.startswith(prefix))

    # ---- compaction ----------------------------------------------------------------------------

    def compact(self, min_files: int | None = None, max_bytes: int = 256 * 2**20, fanout: int = 8) -> int:
        """Merge small files, tiered so no row is rewritten more than a few times; returns files merged.

        Per measurement/day: once ``min_files`` batch / write files have gathered, they become one
        compacted file; once ``fanout`` compacted files under ``max_bytes`` have gathered, they are merged.
        (Merging everything every time would rewrite the whole day on each pass.)
        """
        min_files = self.compact_min_files if min_files is None else min_files
        merged = 0
        for m in self.measurements():
            for d in self._day_dirs(m, None, None):
                live = self.files_in_dir(d)
                small = [p for p in live if not p.name.startswith("c-")]
                compacted = [p for p in live if p.name.startswith("c-") and p.stat().st_size < max_bytes]
                for group, needed in ((small, max(min_files, 2)), (compacted, max(fanout, 2))):
                    if len(group) >= needed:
                        self._merge(m, d, group)
                        merged += len(group)
        self._delete_due()
        return merged

    def _merge(self, measurement: str, d: Path, files: list[Path]) -> None:
        frames = [pl.read_parquet(p) for p in files]
        how = "vertical" if measurement in MEASUREMENTS else "diagonal_relaxed"
        frame = pl.concat(frames, how=how).sort(TIME)
        covers: set[str] = set()
        batches: set[str] = set()
        for p in files:
            covers.add(p.name)
            if p.name.startswith("c-"):
                covers |= _covers(p)
            if p.name.startswith("b-"):
                batches.add(p.name[2:-8])
            else:
                batches |= _batches(p)
        meta = {COVERS_KEY: json.dumps(sorted(covers)), BATCHES_KEY: json.dumps(sorted(batches))}
        with self._write_lock:
            _atomic_write(frame, d / f"c-{uuid.uuid4().hex}.parquet", metadata=meta)
        due = time.monotonic() + self.delete_grace_s
        self._pending_delete.extend((due, p) for p in files)

    def files_in_dir(self, d: Path) -> list[Path]:
        """The live files of one measurement/day directory: files a compacted file covers are left out."""
        names = [p for p in d.iterdir() if p.suffix == ".parquet" and not p.name.startswith(".")]
        covered: set[str] = set()
        for p in names:
            if p.name.startswith("c-"):
                covered |= _covers(p)
        return sorted(p for p in names if p.name not in covered)

    def _delete_due(self, force: bool = False) -> None:
        now = time.monotonic()
        keep = []
        for due, p in self._pending_delete:
            if force or due <= now:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            else:
                keep.append((due, p))
        self._pending_delete = keep

    def start_compactor(self) -> None:
        """Compact in a background thread until `close()`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.compact_interval_s):
                try:
                    self.compact()
                except Exception as exc:
                    print(f"neighborscope: compaction failed: {exc}", flush=True)

        self._thread = threading.Thread(target=loop, name="parquet-compactor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def _relisting(measurement: str, read: Callable[[], _T]) -> _T:
    """``read()``, listed and read again when a file vanished between listing and reading (compaction)."""
    for attempt in range(8):
        try:
            return read()
        except (FileNotFoundError, pl.exceptions.ComputeError) as exc:
            if isinstance(exc, pl.exceptions.ComputeError) and "No such file" not in str(exc):
                raise
            time.sleep(0.02 * (attempt + 1))
    raise StoreError(f"{measurement}: files kept changing while reading; try again")


def _reduce(col: pl.Expr, name: str, pct: float | None) -> pl.Expr:
    """One field's ``downsample`` aggregate over its present values (null when there are none)."""
    values = col.cast(pl.Float64).drop_nulls()
    if name == "count":
        return values.count()
    if name in ("first", "last"):
        out = getattr(values, name)()
    elif name == "percentile":  # nearest rank, as InfluxQL's percentile()
        rank = (values.len() * (pct or 0.0) / 100 + 0.5).floor().cast(pl.Int64) - 1
        out = values.sort().get(rank, null_on_oob=True)
    else:
        out = getattr(values, name)()
    return pl.when(values.len() > 0).then(out)


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
def _open(url: str) -> ParquetStore:
    path = url[len("file://") :] if url.startswith("file://") else url
    return ParquetStore(path)
