"""Bounded spools of encoded batches, replayed oldest first.

Every batch is appended to the spool before it is sent and removed once the collector has acked it,
so batches survive a collector outage (and an agent restart, with `DiskSpool`). A full spool drops the
oldest batches and counts them (``dropped_total``). Both spools implement one contract
(`tests/agents/test_spool.py` runs the same suite on each).

`DiskSpool` keeps one file per batch, named so that names sort in arrival order
(``<epoch ns>-<pid>-<n>.batch.gz``). Writes go to a temporary name and are renamed into place, so a
crash never leaves half a batch. Other processes (``neighborscope run``) may drop batches in the same
directory; the agent's sender delivers them too.

A disk that fills up (ENOSPC, EDQUOT) is the same as a full spool, the way Vector's disk buffers and
Prometheus' WAL treat it: the oldest batches are dropped until the new one fits (``dropped_total``), the
temporary file is removed, the agent keeps sampling, and the spool recovers by itself once there is space
again. Each episode is logged once when it starts and once when it ends; any other write error drops the
new batch the same way instead of stopping the agent. `append` never raises `OSError`.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import itertools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

SUFFIX = ".batch.gz"


#: write errors that mean "no space": the spool drops its oldest batches to make room
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class Spool(Protocol):
    """A bounded FIFO of encoded batches."""

    max_bytes: int
    dropped_total: int
    write_failing: bool  # True during a disk-full or write-error episode (batches are being dropped)

    def append(self, body: bytes) -> None:
        """Add a batch at the end; drop the oldest ones while the spool would exceed ``max_bytes``."""
        ...

    def peek(self) -> tuple[str, bytes] | None:
        """The oldest batch as (key, body), or None when empty."""
        ...

    def remove(self, key: str) -> None:
        """Forget a batch (acked or rejected); a missing key is not an error."""
        ...

    def __len__(self) -> int: ...

    @property
    def bytes_used(self) -> int: ...


class MemorySpool:
    """Spool in memory: for tests, and for agents that must not write to disk (lost on restart)."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.dropped_total = 0
        self.write_failing = False
        self._items: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._bytes = 0
        self._n = itertools.count()
        self._lock = threading.Lock()

    def append(self, body: bytes) -> None:
        with self._lock:
            while self._items and self._bytes + len(body) > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)
                self.dropped_total += 1
            if len(body) > self.max_bytes:
                self.dropped_total += 1
                return
            self._items[f"{next(self._n):020d}"] = body
            self._bytes += len(body)

    def peek(self) -> tuple[str, bytes] | None:
        with self._lock:
            if not self._items:
                return None
            key = next(iter(self._items))
            return key, self._items[key]

    def remove(self, key: str) -> None:
        with self._lock:
            body = self._items.pop(key, None)
            if body is not None:
                self._bytes -= len(body)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes_used(self) -> int:
        return self._bytes


class DiskSpool:
    """Spool in a directory: one file per batch, oldest name first."""

    def __init__(self, path: Path, max_bytes: int = 256 * 2**20) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.dropped_total = 0
        self.write_failing = False
        self._episode: _Episode | None = None  # the current disk-full / write-error episode
        self._full_episode: _Episode | None = None  # the current max_bytes episode
        self._n = itertools.count()
        self._lock = threading.Lock()
        for tmp in self.path.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        self._sizes: dict[str, int] = {}
        self._scanned_at = 0.0
        self._rescan()

    def _rescan(self) -> None:
        sizes: dict[str, int] = {}
        try:
            entries = list(os.scandir(self.path))
        except OSError as exc:
            log.error("cannot list the spool %s: %s", self.path, exc.strerror)
            return
        for entry in entries:
            if entry.name.endswith(SUFFIX):
                try:
                    sizes[entry.name] = entry.stat().st_size
                except FileNotFoundError:
                    continue
        self._sizes = dict(sorted(sizes.items()))
        self._scanned_at = time.monotonic()

    def append(self, body: bytes) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._n):06d}{SUFFIX}"
        with self._lock:
            while self._sizes and self.bytes_used + len(body) > self.max_bytes:
                self._drop(next(iter(self._sizes)), "full")
            if len(body) > self.max_bytes:
                self.dropped_total += 1
                log.warning(
                    "batch of %d bytes is larger than the whole spool (%d bytes): dropped", len(body), self.max_bytes
                )
                return
            if self._full_episode is not None and self.bytes_used + len(body) <= self.max_bytes // 2:
                self._full_episode = self._full_episode.end(log, "spool below its limit again")
            first_try = True
            while True:
                err = self._write(name, body)
                if err is None:
                    self._sizes[name] = len(body)
                    if self._episode is not None and first_try and self._room_for(4 * len(body)):
                        self._episode = self._episode.end(log, f"spool {self.path} writable again")
                    self.write_failing = self._episode is not None
                    return
                self.write_failing = True
                first_try = False
                if err.errno in NO_SPACE and self._sizes:
                    self._start_episode(err)
                    self._drop(next(iter(self._sizes)), "disk")  # make room: the oldest batch goes
                    continue
                self._start_episode(err)
                self.dropped_total += 1  # nothing left to drop (or not a space problem): this batch goes
                self._episode.dropped += 1  # type: ignore[union-attr]
                return

    def _room_for(self, nbytes: int) -> bool:
        """Whether the spool's file system has ``nbytes`` free (ends an episode without flapping)."""
        try:
            st = os.statvfs(self.path)
        except OSError:
            return False
        free = st.f_bfree if os.geteuid() == 0 else st.f_bavail  # root may write into the reserved blocks
        return free * st.f_frsize >= nbytes

    def _write(self, name: str, body: bytes) -> OSError | None:
        """Write one batch file (temporary name, then rename); on error leave no file behind."""
        tmp = self.path / (name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(body)
            os.replace(tmp, self.path / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return exc
        return None

    def _start_episode(self, err: OSError) -> None:
        if self._episode is None:
            if err.errno in NO_SPACE:
                what = (
                    f"no space left for the spool in {self.path} ({err.strerror}): dropping the oldest "
                    "batches to make room; the agent keeps sampling"
                )
            else:
                what = f"cannot write to the spool in {self.path} ({err.strerror}): dropping new batches"
            log.error("%s", what)
            self._episode = _Episode()

    def _drop(self, name: str, why: str) -> None:
        with contextlib.suppress(OSError):
            (self.path / name).unlink(missing_ok=True)
        self._sizes.pop(name, None)
        self.dropped_total += 1
        if why == "disk":
            self._episode.dropped += 1  # type: ignore[union-attr]
            return
        if self._full_episode is None:
            log.warning("spool full (%d bytes max): dropping the oldest batches", self.max_bytes)
            self._full_episode = _Episode()
        self._full_episode.dropped += 1

    def peek(self) -> tuple[str, bytes] | None:
        with self._lock:
            if not self._sizes or time.monotonic() - self._scanned_at > 1.0:
                self._rescan()  # other processes may have added batches
            for name in list(self._sizes):
                try:
                    return name, (self.path / name).read_bytes()
                except FileNotFoundError:
                    self._sizes.pop(name, None)
                except OSError as exc:  # unreadable (I/O error): set it aside, keep delivering the rest
                    log.error("cannot read spooled batch %s: %s; it stays on disk, skipped", name, exc.strerror)
                    self._sizes.pop(name, None)
            return None

    def remove(self, key: str) -> None:
        with self._lock:
            try:
                (self.path / key).unlink(missing_ok=True)
            except OSError as exc:
                log.error("cannot remove delivered batch %s: %s", key, exc.strerror)
            self._sizes.pop(key, None)

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def bytes_used(self) -> int:
        return sum(self._sizes.values())


class _Episode:
    """One stretch of dropping (disk full, write errors, spool at its limit): logged when it starts and ends."""

    def __init__(self) -> None:
        self.dropped = 0
        self.since = time.monotonic()

    def end(self, logger: logging.Logger, what: str) -> None:
        logger.warning(
            "%s after %.0f s: %d batch(es) dropped meanwhile", what, time.monotonic() - self.since, self.dropped
        )
