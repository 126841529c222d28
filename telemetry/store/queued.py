"""A durable local queue in front of a remote store (InfluxDB, VictoriaMetrics): nothing acknowledged is lost.

``write_batch`` / ``write`` check the frames against the schema, write them as one queue file (Arrow IPC,
lz4) and return once it is durable: that is when the collector acknowledges the agent. The file is a
*spare*, an empty ``q-<n>.arrow`` made ahead whose name is already durable (`SPARES` at a time, one directory
fsync for all), filled and fdatasynced: one flush per write; without a spare left, a temp file is fsynced,
renamed and the directory fsynced (two). ``write_batches`` does the same for the batches of concurrent
requests together: one frame per measurement and one queue file (one flush) for the whole group. A drainer
thread sends the queue to the remote store in order: it takes the next run of queue files (up to
``drain_rows`` rows; while a write is being queued, or the run has fewer than ``linger_rows`` rows, it waits up
to ``linger_s`` for more), concatenates each measurement's frames, encodes them to line protocol in one
vectorised call (the encoder's cost is mostly per call, so this is where batching pays: encoding when queued
would pay it per group) and POSTs bodies of at most ``batch_bytes``, in order (``post_parallel`` requests of
a run in flight, 2 by default, the next starting as soon as one ends, so the remote parses one while it
commits the other; a run that writes some point twice, same series and timestamp, goes one body at a time,
since only the order of requests tells InfluxDB which value wins):

- the remote is down, slow, or answers 429 / 503: wait (``Retry-After`` when given, else exponential
  backoff up to ``retry_max_s``, 30 s by default) and send what is missing again; never drop, and never
  send a run before the one ahead of it is stored;
- the remote refuses some lines (HTTP 400: a field type conflict, ...): the offending lines are logged
  and appended to ``rejected.lp`` with the reason, every other line is stored, the queue moves on;
- a configuration error (401, unknown database): logged, retried with backoff until fixed.

Idempotency: a batch key (node, boot_id, seq) is recorded when it is queued; a replay of a key the queue
holds or has sent is answered False and not queued again. Sent keys are kept as compact seq ranges per
(node, boot_id) in ``sent.json`` + ``sent.log``, so they survive restarts. The remote's own handling of
identical points is the second line of defence (e.g. a crash between a successful send and the ``sent.log``
append re-sends a batch): InfluxDB overwrites a point of the same series and timestamp; VictoriaMetrics keeps one
sample per series and millisecond when it runs with ``-dedup.minScrapeInterval=1ms``, and its store's raw reads
deduplicate anyway (`telemetry.store.victoria`).

Layout of the queue directory::

    q-<n:020d>.arrow one queued write or group of batches: a JSON header line (keys, rows, parts), then
                     one Arrow IPC stream (lz4) per measurement; empty: a spare made ahead (removed on
                     close and on open); shorter than its header says: cut short by a crash while written,
                     never acknowledged (removed on open, with a warning)
    sent.json        sent keys: {"node\\tboot_id": [[lo, hi], ...]} (rewritten at start)
    sent.log         sent keys appended since (one JSON [node, boot_id, seq] per line)
    rejected.lp      lines the remote refused, each after a "# reason" comment
    lock             flock: one process drains a queue

Reads (``query``, ``series``, ...) go to the remote store: what is still queued is not visible yet
(``flush(timeout)`` waits for the queue to empty).
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import io
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from telemetry.batch import Columns, group_frame
from telemetry.errors import InfluxWriteRejectedError, StoreError, StoreUnavailableError
from telemetry.line_protocol import repeats_points, split_lines
from telemetry.retry import Backoff
from telemetry.schema import MEASUREMENTS
from telemetry.store.base import BatchKey, TagFilter, fsync_dir

log = logging.getLogger("neighborscope.queue")

MAX_BACKOFF_S = 30.0
#: empty queue files made ahead (their directory entries already durable), so that a write needs one fdatasync
SPARES = 64


class SeqSet:
    """A set of non-negative integers kept as sorted disjoint ranges (sequence numbers of a boot)."""

    def __init__(self, ranges: Sequence[Sequence[int]] = ()) -> None:
        self.lo: list[int] = []
        self.hi: list[int] = []
        for lo, hi in ranges:
            self._add_range(int(lo), int(hi))

    def _add_range(self, lo: int, hi: int) -> None:
        i = bisect.bisect_left(self.hi, lo - 1)
        j = bisect.bisect_right(self.lo, hi + 1)
        if i < j:
            lo = min(lo, self.lo[i])
            hi = max(hi, self.hi[j - 1])
        self.lo[i:j] = [lo]
        self.hi[i:j] = [hi]

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self.lo, seq) - 1
        return i >= 0 and self.hi[i] >= seq

    def add(self, seq: int) -> None:
        self._add_range(seq, seq)

    def without(self, seq: int) -> SeqSet:
        """A copy without ``seq``."""
        out = SeqSet()
        for lo, hi in zip(self.lo, self.hi, strict=True):
            for a, b in ((lo, seq - 1), (seq + 1, hi)) if lo <= seq <= hi else ((lo, hi),):
                if a <= b:
                    out._add_range(a, b)
        return out

    def ranges(self) -> list[list[int]]:
        return [[lo, hi] for lo, hi in zip(self.lo, self.hi, strict=True)]


@dataclass
class _Entry:
    n: int
    path: Path
    keys: list[BatchKey]
    rows: int
    parts: list[list[Any]]  # [measurement, nbytes, rows]


class _Bodies(list[bytes]):
    """A run's line-protocol bodies; ``in_order``: send them one at a time (the run writes some point twice)."""

    def __init__(self, bodies: list[bytes], in_order: bool) -> None:
        super().__init__(bodies)
        self.in_order = in_order


class QueuedStore:
    """A `TelemetryStore` that queues writes durably on local disk and drains them to ``remote``.

    ``remote`` is an `InfluxStore` or a `VictoriaStore` (anything with ``prepare``, ``encode``,
    ``write_lines(body)``, ``config.batch_bytes`` and the read methods; optionally ``sync()``, called by
    `flush`). The queue directory is created on the first write; a process that only reads never touches it.
    """

    def __init__(
        self,
        remote: Any,
        queue_dir: str | Path,
        *,
        max_queue_bytes: int = 8 * 2**30,
        drain_rows: int = 50_000,
        linger_s: float = 0.05,
        linger_rows: int = 1_000,
        post_parallel: int = 2,
    ) -> None:
        self.remote = remote
        self.queue_dir = Path(queue_dir)
        self.max_queue_bytes = max_queue_bytes
        self.drain_rows = drain_rows
        self.linger_s = linger_s
        self.linger_rows = linger_rows
        self.post_parallel = max(1, post_parallel)
        self.compact_sent_after = 100_000
        self._pending_keys: set[BatchKey] = set()
        self._sent_log_lines = 0
        self.batch_bytes: int = remote.config.batch_bytes
        self.retry_max_s: float = getattr(remote.config, "retry_max_s", MAX_BACKOFF_S)
        self._lock = threading.Condition()
        self._entries: deque[_Entry] = deque()
        self._inflight: set[int] = set()
        self._next_n = 0
        self._queued_bytes = 0
        self._keys: dict[tuple[str, str], SeqSet] = {}
        self._sent_log: Any = None
        self._lock_fd: int | None = None
        self._opened = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._spares_upto = 0  # q-<n> files below this n and at or above _next_n exist, empty, durably named
        self._spares_thread: threading.Thread | None = None
        # status
        self.sent_lines = 0
        self.sent_requests = 0
        self.rejected_lines = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def __repr__(self) -> str:
        return f"QueuedStore({self.remote!r}, queue={str(self.queue_dir)!r})"

    # ---- opening the queue ---------------------------------------------------------------------

    def open(self) -> QueuedStore:
        """Take the queue (flock), load what it holds and start draining. Called by the first write, or by
        `start` (a collector calls it at startup so a queue left by a crash drains before any new write)."""
        with self._lock:
            if self._opened:
                return self
            self.queue_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.queue_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StoreError(
                    f"queue {self.queue_dir} is in use by another process; give each writer its own ?queue=DIR"
                ) from None
            try:  # the holder's PID, for people: informational, so a full disk must not stop the start
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError as exc:
                log.warning("queue %s: cannot note this PID in its lock file (%s)", self.queue_dir, exc)
            self._lock_fd = fd
            self._stop.clear()
            self._entries.clear()
            self._queued_bytes = 0
            self._load()
            self._opened = True
            self._thread = threading.Thread(target=self._drain_loop, name="influx-drainer", daemon=True)
            self._thread.start()
        self._top_up_spares()
        return self

    start = open

    def _load(self) -> None:
        for tmp in self.queue_dir.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
        state = self.queue_dir / "sent.json"
        if state.exists():
            for k, ranges in json.loads(state.read_text()).items():
                node, boot = k.split("\t", 1)
                self._keys[(node, boot)] = SeqSet(ranges)
        sent_log = self.queue_dir / "sent.log"
        if sent_log.exists():
            for line in sent_log.read_text().splitlines():
                with contextlib.suppress(ValueError):  # a torn last line after a crash
                    node, boot, seq = json.loads(line)
                    self._keys.setdefault((node, boot), SeqSet()).add(int(seq))
        entries = []
        for path in sorted(self.queue_dir.glob("q-*.arrow")):
            try:
                header = _read_header(path)
            except _InterruptedWriteError as exc:  # acknowledged only once complete and synced: drop, say so
                if exc.size:
                    log.warning("queue file %s was cut short by a crash while written (never acknowledged)", path)
                path.unlink()  # (size 0: a spare made ahead, never used)
                continue
            except (OSError, ValueError) as exc:
                # a file is renamed in only after fsync, so this is disk damage: keep it aside, say so
                log.error("queue file %s is unreadable (%s); moved to %s.bad", path, exc, path.name)
                path.rename(path.with_suffix(".bad"))
                continue
            keys = [BatchKey(*k) for k in header.get("keys") or ([header["key"]] if header.get("key") else [])]
            for key in keys:
                self._keys.setdefault((key.node, key.boot_id), SeqSet()).add(key.seq)
            entries.append(_Entry(int(path.stem[2:]), path, keys, header["rows"], header["parts"]))
            self._queued_bytes += path.stat().st_size
        self._entries.extend(entries)
        self._next_n = entries[-1].n + 1 if entries else 0
        try:  # folds sent.log into sent.json; both stay valid if it cannot (a full disk), and it is redone later
            self._write_sent_state()
        except OSError as exc:
            log.warning("queue %s: cannot compact its sent-batch index now (%s); kept as it is", self.queue_dir, exc)
        self._sent_log = open(sent_log, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if entries:
            log.info("queue %s: %d batch(es) left from before, draining", self.queue_dir, len(entries))

    def _write_sent_state(self) -> None:
        keys = dict(self._keys)
        for key in self._pending_keys:  # being written right now: not known until the file is in place
            keys[(key.node, key.boot_id)] = keys[(key.node, key.boot_id)].without(key.seq)
        state = {f"{n}\t{b}": s.ranges() for (n, b), s in keys.items()}
        tmp = self.queue_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.queue_dir / "sent.json")
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        with open(self.queue_dir / "sent.log", "w", encoding="utf-8") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.queue_dir)

    # ---- writing -------------------------------------------------------------------------------

    accepts_columns = True  # write_batches(conformed=True) takes telemetry.batch.Columns
    commit_pace_s = 0.01
    """The most a collector's group committer waits between groups in front of this store: an append is ~1 ms of
    CPU and one flush (the wait is the disk's, not ours), so the 50 ms that amortises a Parquet commit's ~4 ms of
    CPU would only hold batches back (`telemetry.collector.commit.GroupCommitter`)."""
    lazy_scan = False  # reads go to the remote server: reduce there with downsample()

    def write(self, measurement: str, frame: pl.DataFrame) -> int:
        prepared = self.remote.prepare(measurement, frame)
        self._enqueue([], {measurement: [prepared]}, prepared.height)
        return frame.height

    def write_batch(self, key: BatchKey, frames: Mapping[str, pl.DataFrame]) -> bool:
        (result,) = self.write_batches([(key, frames)])
        if isinstance(result, BaseException):
            raise result
        return result

    def write_batches(
        self, items: Sequence[tuple[BatchKey, Mapping[str, Any]]], *, conformed: bool = False
    ) -> list[bool | BaseException]:
        """`write_batch` for many batches at once: the new ones become one queue entry (one frame per
        measurement, one fsync). Returns per batch True (queued), False (a replay) or
        the exception it raised. ``conformed=True``: the frames are in schema form, or
        `telemetry.batch.Columns` (validated, built here into one DataFrame per measurement)."""
        self.open()
        results: list[bool | BaseException] = [False] * len(items)
        checked: list[tuple[int, BatchKey, dict[str, Any]]] = []
        unchecked: set[int] = set()  # conformed batches the server's own rules have not seen yet
        for i, (key, frames) in enumerate(items):
            try:
                if conformed and all(isinstance(f, Columns) or m in MEASUREMENTS for m, f in frames.items()):
                    ready = {m: f for m, f in frames.items() if f.height}
                    unchecked.add(i)
                else:
                    ready = {
                        m: self.remote.prepare(m, f.frame() if isinstance(f, Columns) else f) for m, f in frames.items()
                    }
                    ready = {m: f for m, f in ready.items() if f.height}
            except Exception as exc:
                results[i] = exc
                continue
            checked.append((i, key, ready))
        prebuilt: dict[str, pl.DataFrame] | None = None
        if unchecked:
            checked, prebuilt = self._server_rules(checked, unchecked, results)
        fresh: list[tuple[int, BatchKey, dict[str, Any]]] = []
        mine: set[BatchKey] = set()
        with self._lock:
            for i, key, ready in checked:
                if key in mine:  # twice in this group: the first one is queued with it
                    continue
                while key in self._pending_keys:  # the same batch, being written by another request
                    self._lock.wait(1.0)
                if self._known(key):
                    continue
                self._keys.setdefault((key.node, key.boot_id), SeqSet()).add(key.seq)
                self._pending_keys.add(key)
                mine.add(key)
                fresh.append((i, key, ready))
        if not fresh:
            return results
        keys = [key for _, key, _ in fresh]
        by_measurement: dict[str, list[Any]] = {}
        for _, _, ready in fresh:
            for m, f in ready.items():
                by_measurement.setdefault(m, []).append(f)
        try:
            if prebuilt is not None and len(fresh) == len(checked):  # the frames checked are the frames to write
                frames_by_m = {m: [f] for m, f in prebuilt.items()}
            else:
                frames_by_m = {m: [group_frame(m, parts)] for m, parts in by_measurement.items()}
            rows = sum(f.height for fs in frames_by_m.values() for f in fs)
            self._enqueue(keys, frames_by_m, rows)
        except BaseException as exc:
            with self._lock:
                for key in keys:
                    self._forget(key)
                    self._pending_keys.discard(key)
                self._lock.notify_all()
            if not isinstance(exc, Exception):
                raise
            for i, _, _ in fresh:
                results[i] = exc
            return results
        for i, _, _ in fresh:
            results[i] = True
        return results

    def _server_rules(
        self,
        checked: list[tuple[int, BatchKey, dict[str, Any]]],
        unchecked: set[int],
        results: list[bool | BaseException],
    ) -> tuple[list[tuple[int, BatchKey, dict[str, Any]]], dict[str, pl.DataFrame] | None]:
        """What the server would refuse or drop (`remote.prepare`: retention, far future, text too long...), checked
        before the ack on batches the collector validated against the schema only: one vectorised check per
        measurement over the whole group; only when that fails is each batch checked alone, so a bad batch gets
        its own error and the others are still written. Returns the batches to write, and the group's frames
        when every batch in ``checked`` was checked together and passed (to be written as they are)."""
        by_measurement: dict[str, list[Any]] = {}
        for i, _, ready in checked:
            if i in unchecked:
                for m, f in ready.items():
                    by_measurement.setdefault(m, []).append(f)
        built: dict[str, pl.DataFrame] = {}
        try:
            for m, parts in by_measurement.items():
                built[m] = self.remote.prepare(m, group_frame(m, parts))
        except Exception:
            built = {}
        else:
            return checked, (built if len(unchecked) == len(checked) else None)
        kept = []
        for i, key, ready in checked:
            if i in unchecked:
                try:
                    for m, f in ready.items():
                        self.remote.prepare(m, group_frame(m, [f]))
                except Exception as exc:
                    results[i] = exc
                    continue
            kept.append((i, key, ready))
        return kept, None

    def _known(self, key: BatchKey) -> bool:
        seqs = self._keys.get((key.node, key.boot_id))
        return seqs is not None and key.seq in seqs

    def _enqueue(self, keys: list[BatchKey], frames: Mapping[str, list[pl.DataFrame]], rows: int) -> None:
        """Make ``frames`` one durable queue entry: one Arrow IPC stream per measurement, written into a spare
        file made ahead and fdatasynced (one flush: the file's name is already durable), or, when none is left,
        through a temp file (fsync, rename, fsync the directory). ``keys`` are already recorded and pending;
        they stop being pending here, on success (the caller forgets them on failure)."""
        self.open()
        chunks: list[bytes] = []
        parts: list[list[Any]] = []
        for measurement, group in frames.items():
            frame = _concat(group) if group else None
            if frame is None or frame.height == 0:
                continue
            buf = io.BytesIO()
            frame.write_ipc_stream(buf, compression="lz4")
            chunks.append(buf.getvalue())
            parts.append([measurement, len(chunks[-1]), frame.height])
        payload = b"".join(chunks)
        header = {"keys": [[k.node, k.boot_id, k.seq] for k in keys], "rows": rows, "parts": parts}
        head = json.dumps(header).encode() + b"\n"
        with self._lock:
            if self._queued_bytes + len(head) + len(payload) > self.max_queue_bytes:
                raise StoreUnavailableError(
                    f"queue {self.queue_dir} is full ({self._queued_bytes} bytes waiting for "
                    f"{self.remote!r}; last error: {self.last_error}); retry later"
                )
            n = self._next_n
            self._next_n += 1
            self._inflight.add(n)
            spare = n < self._spares_upto
        path = self.queue_dir / f"q-{n:020d}.arrow"
        try:
            if spare:
                _fill_spare(path, head + payload)
            else:
                _write_renamed(path, head + payload)
        except BaseException:
            with self._lock:
                self._inflight.discard(n)
                self._lock.notify_all()
            raise
        finally:
            self._top_up_spares()
        entry = _Entry(n, path, list(keys), rows, parts)
        with self._lock:
            # keep the deque ordered by n (writers may finish out of order)
            if not self._entries or self._entries[-1].n < n:
                self._entries.append(entry)
            else:
                items = list(self._entries)
                bisect.insort(items, entry, key=lambda e: e.n)
                self._entries = deque(items)
            self._inflight.discard(n)
            for key in keys:
                self._pending_keys.discard(key)
            self._queued_bytes += len(head) + len(payload)
            self._lock.notify_all()

    def _top_up_spares(self) -> None:
        """Start making more spare queue files (on a thread of its own, off the acknowledgement's path) when
        fewer than half of `SPARES` are left."""
        with self._lock:
            if not self._opened or self._stop.is_set() or self._spares_upto - self._next_n > SPARES // 2:
                return
            if self._spares_thread is not None and self._spares_thread.is_alive():
                return
            self._spares_thread = threading.Thread(target=self._make_spares, name="queue-spares", daemon=True)
            self._spares_thread.start()

    def _make_spares(self) -> None:
        """Create empty q-<n> files for the next `SPARES` entry numbers and fsync the directory once; only then
        may a write fill one with a single fdatasync. A write that took one of these numbers meanwhile went
        through a temp file and replaces the spare (or finds it already there: skipped)."""
        with self._lock:
            start = max(self._spares_upto, self._next_n)
        made = start
        try:
            for n in range(start, start + SPARES):
                if n < self._next_n:  # taken meanwhile by a write that went through a temp file
                    made = n + 1
                    continue
                path = self.queue_dir / f"q-{n:020d}.arrow"
                with contextlib.suppress(FileExistsError):  # written meanwhile
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                made = n + 1
            fsync_dir(self.queue_dir)
        except OSError as exc:  # a full disk: writes go through temp files meanwhile (and fail alike)
            log.debug("queue %s: cannot make spare files now (%s)", self.queue_dir, exc)
            return
        with self._lock:
            self._spares_upto = max(self._spares_upto, made)

    def _remove_spares(self) -> None:
        if self._spares_thread is not None:
            self._spares_thread.join()
        with self._lock:
            numbers = range(self._next_n, self._spares_upto)
            self._spares_upto = 0
        for n in numbers:
            with contextlib.suppress(OSError):
                path = self.queue_dir / f"q-{n:020d}.arrow"
                if path.stat().st_size == 0:
                    path.unlink()

    def _forget(self, key: BatchKey) -> None:
        # only used right after adding the key, before anyone saw it acknowledged
        seqs = self._keys.get((key.node, key.boot_id))
        if seqs is not None:
            self._keys[(key.node, key.boot_id)] = seqs.without(key.seq)

    # ---- draining ------------------------------------------------------------------------------

    def _take(self, after: int = -1) -> list[_Entry]:
        """The next run of entries in order (those after entry ``after``), up to drain_rows rows (at least
        one), none past a write in flight."""
        limit = min(self._inflight) if self._inflight else None
        out: list[_Entry] = []
        size = 0
        for e in self._entries:
            if e.n <= after:
                continue
            if limit is not None and e.n > limit:
                break
            if out and size + e.rows > self.drain_rows:
                break
            out.append(e)
            size += e.rows
        return out

    def _next_run(self, ahead: tuple[list[_Entry], Future] | None) -> tuple[list[_Entry], _Bodies] | None:
        """Wait for the next run and encode it (or take the one encoded ahead); None when stopping."""
        with self._lock:
            while not self._stop.is_set() and not self._take():
                self._lock.wait(1.0)
            if self._stop.is_set():
                return None
            rows = sum(e.rows for e in self._take())
            if (
                ahead is None
                and self.linger_s
                and rows < self.drain_rows
                and (self._inflight or rows < self.linger_rows)
            ):
                # a write being queued right now, or a run of a few rows: let more arrive (the wait ends when a
                # write lands), since one large request costs InfluxDB (and the encoder) far less than many
                # small ones; a run of a group or more with nothing on its way goes at once (no idle wait
                # at the end of a burst)
                self._lock.wait(self.linger_s)
            batch = self._take()
        if ahead is not None and ahead[0][0].n == batch[0].n:
            return ahead[0], ahead[1].result()
        return batch, self._encode(batch)

    def _encode(self, batch: list[_Entry]) -> _Bodies:
        """Line-protocol bodies (at most batch_bytes each) for a run of entries: one encoder call per measurement;
        and whether they must be sent one at a time (the run writes some point twice)."""
        frames: dict[str, list[pl.DataFrame]] = {}
        for e in batch:
            for measurement, frame in _read_frames(e):
                frames.setdefault(measurement, []).append(frame)
        whole = {m: _concat(fs) for m, fs in frames.items()}
        body = b"".join(self.remote.encode(m, f) for m, f in whole.items())
        bodies = split_lines(body, self.batch_bytes) if body else []
        in_order = len(bodies) > 1 and any(repeats_points(f, m) for m, f in whole.items())
        return _Bodies(bodies, in_order)

    def _send(self, bodies: _Bodies, stored: set[int], pool: ThreadPoolExecutor) -> None:
        """POST the run's bodies not yet in ``stored``, keeping ``post_parallel`` requests in flight (the next
        starts as soon as one ends, so the remote always has one to parse while it commits another; one at a
        time for a run that must stay in order), adding each stored one (refused lines set aside in
        rejected.lp count as stored) to ``stored``. After a failure no new request starts; the first failure is
        raised once the requests in flight have ended: the retry sends only what is missing."""

        def post(i: int) -> Exception | None:
            try:
                self.remote.write_lines(bodies[i])
            except Exception as exc:  # refused lines, or a failure the drain loop retries or reports
                return exc
            return None

        width = 1 if bodies.in_order else self.post_parallel
        todo = deque(i for i in range(len(bodies)) if i not in stored)
        running: dict[Future, int] = {}
        failure: Exception | None = None
        while todo or running:
            while todo and failure is None and len(running) < width:
                i = todo.popleft()
                running[pool.submit(post, i)] = i
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                outcome = future.result()
                self.sent_requests += 1
                if isinstance(outcome, InfluxWriteRejectedError):
                    self._reject(outcome)
                elif outcome is not None:
                    failure = failure or outcome
                    continue
                stored.add(i)
        if failure is not None:
            raise failure

    def _drain_loop(self) -> None:
        """Send runs of entries in order. A run's bodies are fixed once encoded: a retry sends only the bodies
        not yet stored. The next run is encoded (on a second thread) while this one is sent. A failure waits
        (the remote's ``Retry-After`` when it gave one, else exponential backoff up to ``retry_max_s``) and
        sends what is missing again."""
        backoff = Backoff(min_s=0.5, max_s=max(0.5, self.retry_max_s), jitter=0.25)
        current: tuple[list[_Entry], _Bodies] | None = None
        ahead: tuple[list[_Entry], Future] | None = None
        stored: set[int] = set()  # bodies of the current run already in the remote
        encoder = ThreadPoolExecutor(1, thread_name_prefix="queue-encoder")
        posters = ThreadPoolExecutor(self.post_parallel, thread_name_prefix="queue-post")
        try:
            while not self._stop.is_set():
                try:
                    if current is None:
                        current = self._next_run(ahead)
                        ahead = None
                        stored = set()
                        if current is None:
                            return
                    batch, bodies = current
                    if ahead is None:
                        with self._lock:
                            nxt = self._take(after=batch[-1].n)
                        if nxt:
                            ahead = (nxt, encoder.submit(self._encode, nxt))
                    self._send(bodies, stored, posters)
                except StoreUnavailableError as exc:
                    self._note_error(str(exc))
                    self._idle(backoff.next_wait(exc.retry_after_s))
                    continue
                except StoreError as exc:  # auth, missing database: someone has to fix it; keep everything
                    self._note_error(str(exc))
                    log.error("cannot write to %r: %s (queued data kept, retrying)", self.remote, exc)
                    self._idle(backoff.next_wait())
                    continue
                except Exception as exc:  # a bug must not kill the drainer silently
                    self._note_error(f"{type(exc).__name__}: {exc}")
                    log.exception("drainer failed")
                    ahead = None
                    self._idle(backoff.next_wait())
                    continue
                backoff.reset()
                self.sent_lines += sum(b.count(b"\n") for b in bodies)
                self._done(batch)
                current = None
        finally:
            encoder.shutdown(wait=False, cancel_futures=True)
            posters.shutdown(wait=False, cancel_futures=True)

    def _idle(self, seconds: float) -> None:
        self._stop.wait(min(seconds, 300.0))

    def _note_error(self, message: str) -> None:
        if self.last_error != message:
            log.warning("remote store: %s (queued data kept, retrying)", message)
        self.last_error = message
        self.last_error_at = time.time()

    def _reject(self, exc: Any) -> None:
        self.rejected_lines += len(exc.rejected)
        with open(self.queue_dir / "rejected.lp", "a", encoding="utf-8") as fh:
            for r in exc.rejected:
                reason = r.reason.replace("\n", " ")
                fh.write(f"# {datetime.now().astimezone().isoformat()} {reason}\n{r.line}\n")
                log.error(
                    "InfluxDB rejected a line (kept in %s/rejected.lp): %s: %r", self.queue_dir, reason, r.line[:300]
                )
            fh.flush()
            os.fsync(fh.fileno())

    def _done(self, batch: list[_Entry]) -> None:
        keys = [k for e in batch for k in e.keys]
        if keys:
            self._sent_log.write("".join(json.dumps([k.node, k.boot_id, k.seq]) + "\n" for k in keys))
            self._sent_log.flush()
            os.fsync(self._sent_log.fileno())
            self._sent_log_lines += len(keys)
            if self._sent_log_lines >= self.compact_sent_after:
                with self._lock:  # the ranges in memory cover every line of the log: rewrite, truncate
                    self._write_sent_state()
                self._sent_log_lines = 0
        freed = 0
        for e in batch:
            with contextlib.suppress(FileNotFoundError):
                freed += e.path.stat().st_size
                e.path.unlink()
        with self._lock:
            for _ in batch:
                self._entries.popleft()
            self._queued_bytes = max(0, self._queued_bytes - freed)
            self.last_error = None
            self._lock.notify_all()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything queued so far is in the remote store, and searchable there (a remote with a
        ``sync()``, VictoriaMetrics, is asked to make recent writes searchable now); False when ``timeout`` ran
        out."""
        if not self._opened:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._next_n
            while (self._entries and self._entries[0].n < target) or any(n < target for n in self._inflight):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(0.5 if left is None else min(left, 0.5))
        sync = getattr(self.remote, "sync", None)
        if sync is not None and target:
            sync()
        return True

    def status(self) -> dict[str, Any]:
        """Queue depth and the drainer's last error (for /metrics and `neighborscope influx status`)."""
        with self._lock:
            return {
                "queued_batches": len(self._entries),
                "queued_bytes": self._queued_bytes,
                "sent_requests": self.sent_requests,
                "sent_lines": self.sent_lines,
                "rejected_lines": self.rejected_lines,
                "last_error": self.last_error,
            }

    def close(self, drain_timeout: float = 5.0) -> None:
        """Try to drain for ``drain_timeout`` s, then stop; whatever is left stays queued for the next start."""
        if self._opened:
            if not self.flush(drain_timeout):
                log.warning("closing with %d batch(es) still queued in %s", len(self._entries), self.queue_dir)
            self._stop.set()
            with self._lock:
                self._lock.notify_all()
            if self._thread is not None:
                self._thread.join(timeout=self.remote.config.timeout_s + 5)
            self._remove_spares()
            if self._sent_log is not None:
                self._sent_log.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self._opened = False
        self.remote.close()

    # ---- reads go to the remote store ----------------------------------------------------------

    def query(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        return self.remote.query(measurement, start, end, tags, fields)

    def scan(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.LazyFrame:
        return self.remote.scan(measurement, start, end, tags, fields)

    def time_bounds(self, measurement: str) -> tuple[datetime, datetime] | None:
        return self.remote.time_bounds(measurement)

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
        return self.remote.downsample(measurement, every, start, end, tags, fields, agg, group_by)

    def series(self, measurement: str | None = None) -> pl.DataFrame:
        return self.remote.series(measurement)

    def measurements(self) -> list[str]:
        return self.remote.measurements()

    def write_artifact(self, key: str, frame: pl.DataFrame) -> Path:
        return self.remote.write_artifact(key, frame)

    def read_artifact(self, key: str) -> pl.DataFrame | None:
        return self.remote.read_artifact(key)

    def scan_artifact(self, key: str) -> pl.LazyFrame | None:
        return self.remote.scan_artifact(key)

    def prune_artifacts(self, prefix: str, keep_bytes: int) -> int:
        return self.remote.prune_artifacts(prefix, keep_bytes)

    def list_artifacts(self, prefix: str = "") -> list[str]:
        return self.remote.list_artifacts(prefix)

    def unreadable_files(self) -> list[tuple[str, str]]:
        return self.remote.unreadable_files()


class _InterruptedWriteError(Exception):
    """A queue file that is a spare never filled (``size`` 0) or was cut short while written (never
    acknowledged: a write is acknowledged once the whole file is synced)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _read_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        line = fh.readline()
        size = os.fstat(fh.fileno()).st_size
    if not line.endswith(b"\n"):  # one write puts the header and the frames in: a prefix of it
        raise _InterruptedWriteError(size)
    header = json.loads(line)
    if not isinstance(header, dict) or "parts" not in header:
        raise ValueError("no header")
    if size < len(line) + sum(int(part[1]) for part in header["parts"]):
        raise _InterruptedWriteError(size)
    return header


def _fill_spare(path: Path, data: bytes) -> None:
    """Write a queue entry into a spare file made ahead, and fdatasync it (its name is durable already). On
    failure the file is emptied again, a spare nobody reads (or, if even that fails, cut short: dropped when
    the queue is next opened, never acknowledged)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except FileNotFoundError:  # removed by hand: make the entry the slow way
        _write_renamed(path, data)
        return
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        raise
    finally:
        os.close(fd)


def _write_renamed(path: Path, data: bytes) -> None:
    """Write a queue entry under a temp name, fsync, rename it into place, fsync the directory."""
    tmp = path.with_name(f".tmp-{path.stem}-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _read_frames(entry: _Entry) -> list[tuple[str, pl.DataFrame]]:
    with open(entry.path, "rb") as fh:
        fh.readline()
        payload = fh.read()
    out = []
    offset = 0
    for measurement, nbytes, _rows in entry.parts:
        out.append((measurement, pl.read_ipc_stream(io.BytesIO(payload[offset : offset + nbytes]))))
        offset += nbytes
    return out


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if len(frames) == 1:
        return frames[0]
    try:
        return pl.concat(frames, how="vertical")
    except pl.exceptions.PolarsError:  # plain writes of a non-schema measurement may differ in columns
        return pl.concat(frames, how="diagonal_relaxed")
