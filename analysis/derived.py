"""Derived artifacts: what analysis computes from the store and keeps in it, so a second analysis reads the result
instead of the inputs. Two kinds, each exact by construction of its key:

**Token aggregates of a run** (`stored_token_aggregates`): per (run, window) the ITL quantiles and token counts
(`analysis.align.token_windows`) and the run's own ITL count and quantiles (`analysis.align.RUN_TOKEN_COLUMNS`),
a pure function of the run's tokens artifact (write-once: a run id cannot be imported twice) and the window.
Kept under ``derived/token_windows/<version>/<run_id>/<window_ms>ms``, computed the first time a run is analysed
at that window (one read of its tokens, a few runs at a time). The file also records the tokens' row count, and a
file whose count differs from the tokens artifact's footer is recomputed.

**Telemetry windows of an analysis** (`TelemetryWindowCache`): per measurement, the window aggregates of the
victim's windows (`analysis.align.grid_from_victim`). Telemetry is not write-once (a late batch adds a file,
compaction replaces files), so the key holds the identity of every store file the scan reads (path, size,
modification time), the node, the time range and the windows: any new, changed or compacted file is another key.
Only stores that list their files (the embedded store's ``files``) get this cache; the others recompute.

``<version>`` changes with the code that computes them (a hash of `analysis.align`, `analysis.resources` and this
module, and the polars version), so a code change never reads an old result. Reading or writing a derived artifact never
fails an analysis: an unreadable one is recomputed (and rewritten), an unwritable store just does not keep it.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import itertools
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from analysis import align, resources
from analysis.align import (
    MIN_ITL_SAMPLES,
    RUN_TOKEN_COLUMNS,
    TOKEN_CHUNK_ROWS,
    TokenAggregates,
    token_aggregates,
    window_for_itl_count,
)
from telemetry.errors import StoreError

log = logging.getLogger(__name__)

DERIVED_PREFIX = "derived"
TOKEN_WINDOWS = f"{DERIVED_PREFIX}/token_windows"
TELEMETRY_WINDOWS = f"{DERIVED_PREFIX}/telemetry_windows"
FORMAT = 1
"""Bump when the layout of a derived artifact changes (the code hash covers what computes them)."""

_RUN_PREFIX = "run_"
"""Columns of a run's token-windows artifact that hold the run's own statistics (`RUN_TOKEN_COLUMNS` but run_id),
the same on every row."""

EAGER_READ_ROWS = 20_000_000
"""Up to this many tokens to compute (about a day of a busy victim, ~600 MB read) `stored_token_aggregates` reads
them all at once (every file in parallel: on a day, reading chunk after chunk left the cores waiting on the files)
and then aggregates them a chunk at a time; beyond, it reads one chunk at a time (a week: bounded memory)."""

_READ_ERRORS = (StoreError, OSError, pl.exceptions.PolarsError)


@cache
def version() -> str:
    """Short hash of the code that computes derived artifacts (`analysis.align`, `analysis.resources`, this module),
    the polars version and `FORMAT`."""
    h = hashlib.sha256(f"{FORMAT}/{pl.__version__}".encode())
    for module in (align, resources, sys.modules[__name__]):
        try:
            h.update(inspect.getsource(module).encode())
        except (OSError, TypeError):  # no source (a frozen build): the module's identity instead
            h.update(repr(getattr(module, "__file__", module.__name__)).encode())
    return h.hexdigest()[:16]


def token_key(run_id: str, window_s: float) -> str:
    """Where a run's token aggregates at ``window_s`` are kept (the run id is a directory: it may hold dots)."""
    return f"{TOKEN_WINDOWS}/{version()}/{run_id}/{round(window_s * 1000)}ms"


# ------------------------------------------------------------------------------------------------ tokens


def stored_token_aggregates(
    store: Any,
    scans: Mapping[str, pl.LazyFrame],
    seconds: float,
    window_s: float | None = None,
    *,
    min_itl_samples: int = MIN_ITL_SAMPLES,
    max_rows: int = TOKEN_CHUNK_ROWS,
) -> TokenAggregates:
    """`TokenAggregates` of the runs whose tokens are ``scans`` (run id -> its tokens, lazy: read only where the
    store keeps no aggregates of it yet), at ``window_s``, or (None) at the window `analysis.align.align` chooses
    for them (``seconds``: the seconds the runs cover, `analysis.align.run_seconds`). Aggregates kept in the store
    are read; the others are computed (each run's tokens read once) and kept."""
    rows = {rid: int(lf.select(pl.len()).collect().item()) for rid, lf in scans.items()}  # footers only
    # a run's ITL count is at most its rows (the first token of a request has none): a guess the counts confirm
    w = window_s or window_for_itl_count(sum(rows.values()), seconds, min_itl_samples)
    agg = _aggregates_at(store, scans, rows, w, max_rows)
    if window_s is None:
        exact = window_for_itl_count(agg.itl_n, seconds, min_itl_samples)
        if exact != w:
            agg = _aggregates_at(store, scans, rows, exact, max_rows)
    return agg


def _aggregates_at(
    store: Any, scans: Mapping[str, pl.LazyFrame], rows: Mapping[str, int], window_s: float, max_rows: int
) -> TokenAggregates:
    want = [rid for rid in scans if rows[rid]]
    kept = _read_kept(store, want, rows, window_s)
    missing = [rid for rid in want if rid not in kept]
    parts, chunk, n = [], [], 0
    for rid in missing:
        if chunk and n + rows[rid] > max_rows:
            parts.append(chunk)
            chunk, n = [], 0
        chunk.append(rid)
        n += rows[rid]
    if chunk:
        parts.append(chunk)
    if parts:
        chunks = [pl.concat([_tokens_of(scans[rid], rid) for rid in ids], how="diagonal_relaxed") for ids in parts]
        if sum(rows[rid] for rid in missing) <= EAGER_READ_ROWS:  # a day: every file read at once, in parallel
            chunks = [df.lazy() for df in pl.collect_all(chunks)]
        computed = token_aggregates(chunks, window_s)
        for rid, frame in _run_frames(computed).items():
            _keep(store, token_key(rid, window_s), frame)
            kept[rid] = frame
    return _from_run_frames([kept[rid] for rid in want if rid in kept], window_s)


def _tokens_of(scan: pl.LazyFrame, run_id: str) -> pl.LazyFrame:
    """A run's tokens with its run id as a constant (no run_id column read: the artifact is the run's)."""
    names = scan.collect_schema().names()
    keep = [c for c in ("time", "itl_ms", "tokens") if c in names]
    return scan.select(keep).with_columns(pl.lit(run_id, dtype=pl.String).alias("run_id"))


def _run_frames(agg: TokenAggregates) -> dict[str, pl.DataFrame]:
    """Per run, its artifact: its windows, with the run's statistics as constant ``run_*`` columns."""
    stats = {r["run_id"]: r for r in agg.runs.iter_rows(named=True)}
    schema = agg.runs.schema
    out = {}
    for (rid,), wins in agg.windows.partition_by("run_id", as_dict=True, maintain_order=True).items():
        row = stats.get(rid, {})
        out[str(rid)] = wins.with_columns(
            pl.lit(row.get(c), dtype=schema[c]).alias(_RUN_PREFIX + c) for c in RUN_TOKEN_COLUMNS if c != "run_id"
        )
    return out


def _from_run_frames(frames: Sequence[pl.DataFrame], window_s: float) -> TokenAggregates:
    run_cols = [_RUN_PREFIX + c for c in RUN_TOKEN_COLUMNS if c != "run_id"]
    if not frames:
        return token_aggregates([], window_s)
    both = pl.concat(frames, how="vertical")
    runs = (
        both.group_by("run_id", maintain_order=True)
        .agg(pl.col(c).first() for c in run_cols)
        .rename({c: c.removeprefix(_RUN_PREFIX) for c in run_cols})
        .select(list(RUN_TOKEN_COLUMNS))
    )
    return TokenAggregates(float(window_s), runs, both.drop(run_cols))


def _read_kept(store: Any, run_ids: Sequence[str], rows: Mapping[str, int], window_s: float) -> dict[str, pl.DataFrame]:
    """The runs' kept aggregates at ``window_s`` that match their tokens' row counts (others: absent)."""
    scans: dict[str, pl.LazyFrame] = {}
    scan_artifact = getattr(store, "scan_artifact", None)
    if scan_artifact is None:
        return {}
    for rid in run_ids:
        with contextlib.suppress(*_READ_ERRORS):
            lf = scan_artifact(token_key(rid, window_s))
            if lf is not None:
                scans[rid] = lf
    if not scans:
        return {}
    try:  # one read of every file (in parallel)
        frames = pl.collect_all(list(scans.values()))
    except _READ_ERRORS:  # one of them is broken: read them one by one, the broken ones are recomputed
        frames = []
        for lf in scans.values():
            try:
                frames.append(lf.collect())
            except _READ_ERRORS:
                frames.append(None)  # type: ignore[arg-type]
    out = {}
    for rid, frame in zip(scans, frames, strict=True):
        if frame is not None and _matches(frame, rid, rows[rid]):
            out[rid] = frame
    return out


def _matches(frame: pl.DataFrame, run_id: str, rows: int) -> bool:
    """Whether a kept run frame is whole and was computed from ``rows`` tokens of ``run_id``."""
    need = {"run_id", "window_start", f"{_RUN_PREFIX}rows"}
    if frame.height == 0 or not need <= set(frame.columns):
        return False
    return frame[f"{_RUN_PREFIX}rows"][0] == rows and frame["run_id"][0] == run_id


KEEP_TELEMETRY_WINDOWS_BYTES = 512 * 2**20
"""At most this much of telemetry windows is kept (every distinct analysis range on a store still being written
leaves a few MB); the oldest go first."""
KEEP_DERIVED_BYTES = 4 * 2**30
"""At most this much of derived artifacts in all (token windows of every run analysed, older code versions' too);
the oldest go first."""
PRUNE_EVERY_S = 60.0

_last_prune: dict[int, float] = {}


def _keep(store: Any, key: str, frame: pl.DataFrame) -> None:
    """Write a derived artifact; a store that cannot keep it (read-only, full) just does not. Then, at most once a
    minute per store, the derived artifacts are pruned to their caps (oldest first)."""
    write = getattr(store, "write_artifact", None)
    if write is None:
        return
    try:
        write(key, frame)
    except (StoreError, OSError, PermissionError) as exc:
        log.debug("derived artifact %s not kept: %s", key, exc)
        return
    prune(store)


def prune(store: Any, *, force: bool = False) -> int:
    """Bound what analysis keeps in ``store``: telemetry windows to `KEEP_TELEMETRY_WINDOWS_BYTES`, all derived
    artifacts to `KEEP_DERIVED_BYTES`, the oldest removed first; returns the bytes removed. Rate-limited per store
    (`PRUNE_EVERY_S`) unless ``force``; a store without ``prune_artifacts`` keeps everything."""
    prune_artifacts = getattr(store, "prune_artifacts", None)
    now = time.monotonic()
    if prune_artifacts is None or (not force and now - _last_prune.get(id(store), -PRUNE_EVERY_S) < PRUNE_EVERY_S):
        return 0
    _last_prune[id(store)] = now
    try:
        return prune_artifacts(TELEMETRY_WINDOWS, KEEP_TELEMETRY_WINDOWS_BYTES) + prune_artifacts(
            DERIVED_PREFIX, KEEP_DERIVED_BYTES
        )
    except (StoreError, OSError) as exc:
        log.debug("derived artifacts not pruned: %s", exc)
        return 0


# ------------------------------------------------------------------------------------------------ telemetry


def files_identity(store: Any, measurement: str, start: datetime, end: datetime) -> str | None:
    """The identity of the store files a scan of ``measurement`` over [start, end) reads (path, size, mtime of each),
    hashed; None where the store does not list its files (the remote stores): then nothing is cached."""
    files = getattr(store, "files", None)
    if files is None:
        return None
    h = hashlib.sha256(f"{measurement}|{start.isoformat()}|{end.isoformat()}".encode())
    try:
        for path in sorted(str(p) for p in files(measurement, start, end)):
            st = os.stat(path)
            h.update(f"|{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    except OSError:  # a file went away while listed (compaction): no identity, no cache
        return None
    return h.hexdigest()


class TelemetryWindowCache:
    """`analysis.align.WindowCache` in the store: a measurement's window frame is kept under a key made of its
    inputs' identity (``identities``: measurement -> `files_identity` plus whatever else selects the rows, e.g. the
    node), the window, the victim's windows and `version`. A measurement without an identity is not cached."""

    def __init__(self, store: Any, identities: Mapping[str, str | None]) -> None:
        self.store = store
        self.identities = dict(identities)
        self.hits: list[str] = []
        self.misses: list[str] = []

    def _key(self, name: str, window_s: float, keep: pl.Series | None) -> str | None:
        ident = self.identities.get(name.split(".", 1)[0])
        if ident is None:
            return None
        h = hashlib.sha256(f"{name}|{window_s!r}|{ident}".encode())
        if keep is None:
            h.update(b"|all")
        else:
            h.update(keep.cast(pl.Int64).sort().to_numpy().tobytes())
        return f"{TELEMETRY_WINDOWS}/{version()}/{name}/{h.hexdigest()[:32]}"

    def get(self, name: str, window_s: float, keep: pl.Series | None) -> pl.DataFrame | None:
        key = self._key(name, window_s, keep)
        scan_artifact = getattr(self.store, "scan_artifact", None)
        if key is None or scan_artifact is None:
            return None
        try:
            lf = scan_artifact(key)
            frame = None if lf is None else lf.collect()
        except _READ_ERRORS:
            frame = None
        (self.misses if frame is None else self.hits).append(name)
        return frame

    def put(self, name: str, window_s: float, keep: pl.Series | None, frame: pl.DataFrame) -> None:
        key = self._key(name, window_s, keep)
        if key is not None:
            _keep(self.store, key, frame)


def is_derived(path: str) -> bool:
    """Whether a store path (as `unreadable_files` lists them) is a derived artifact: a broken one is recomputed,
    so it leaves no hole in a result."""
    parts = Path(path).parts
    return any(a == "artifacts" and b == DERIVED_PREFIX for a, b in itertools.pairwise(parts))
