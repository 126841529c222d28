"""Bounded spools of encoded batches, replayed oldest first.

Every batch is appended to the spool before it is sent and removed once the collector has acked it,
so batches survive a collector outage (and an agent restart, with `DiskSpool`). A full spool drops the
oldest batches and counts them (``dropped_total``). Both spools implement one contract
(`tests/agents/test_spool.py` runs the same suite on each).

`DiskSpool` keeps one file per batch, named so that names sort in arrival order
(``<epoch ns>-<pid>-<n>.batch.gz``). Writes go to a temporary name and are renamed into place, so a
crash never leaves half a batch. Other processes (``neighborscope run``) may drop batches in the same
directory; the agent's sender delivers them too.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

SUFFIX = ".batch.gz"


class Spool(Protocol):
    """A bounded FIFO of encoded batches."""

    max_bytes: int
    dropped_total: int

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
        self._n = itertools.count()
        self._lock = threading.Lock()
        for tmp in self.path.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        self._sizes: dict[str, int] = {}
        self._scanned_at = 0.0
        self._rescan()

    def _rescan(self) -> None:
        sizes: dict[str, int] = {}
        for entry in os.scandir(self.path):
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
                oldest = next(iter(self._sizes))
                self._drop(oldest)
            if len(body) > self.max_bytes:
                self.dropped_total += 1
                return
            tmp = self.path / (name + ".tmp")
            tmp.write_bytes(body)
            os.replace(tmp, self.path / name)
            self._sizes[name] = len(body)

    def _drop(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)
        self._sizes.pop(name, None)
        self.dropped_total += 1
        log.warning("spool full (%d bytes max): dropped the oldest batch %s", self.max_bytes, name)

    def peek(self) -> tuple[str, bytes] | None:
        with self._lock:
            if not self._sizes or time.monotonic() - self._scanned_at > 1.0:
                self._rescan()  # other processes may have added batches
            for name in list(self._sizes):
                try:
                    return name, (self.path / name).read_bytes()
                except FileNotFoundError:
                    self._sizes.pop(name, None)
            return None

    def remove(self, key: str) -> None:
        with self._lock:
            (self.path / key).unlink(missing_ok=True)
            self._sizes.pop(key, None)

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def bytes_used(self) -> int:
        return sum(self._sizes.values())
