"""Writes to the store: agent batches committed in groups (`GroupCommitter`), and the one mapping of a store
failure to an answer (503 with ``Retry-After``: the sender comes back later, nothing is lost)."""

from __future__ import annotations

import asyncio
import errno
import inspect
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from telemetry.batch import Columns
from telemetry.collector.errors import ApiError
from telemetry.collector.metrics import CollectorMetrics
from telemetry.errors import StoreError, StoreUnavailableError
from telemetry.store.base import BatchKey

#: what a store failure tells the sender to wait, in seconds
STORE_RETRY_AFTER_S = 5


def store_error(exc: StoreError, metrics: CollectorMetrics) -> ApiError:
    """A store failure as the 503 the sender retries (counted by reason)."""
    code = "store_unavailable" if isinstance(exc, StoreUnavailableError) else "store_error"
    metrics.rejects.labels(code).inc()
    return ApiError(503, code, str(exc), headers={"Retry-After": str(STORE_RETRY_AFTER_S)})


#: operating-system errors that pass: the collector is out of file descriptors (or the system is)
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)


def os_error(exc: OSError, metrics: CollectorMetrics) -> ApiError | OSError:
    """An operating-system error of a store write: running out of file descriptors is a 503 the sender retries
    (too many connections at once: `telemetry.collector.settings.connection_limit`); anything else is left
    as it is (a bug or a broken disk: a 500)."""
    if exc.errno not in _OUT_OF_FDS:
        return exc
    metrics.rejects.labels("out_of_file_descriptors").inc()
    return ApiError(
        503,
        "out_of_file_descriptors",
        f"the collector is out of file descriptors ({exc.strerror}); retry later (raise `ulimit -n` or lower "
        "max_connections in collector.toml)",
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


async def call_store(metrics: CollectorMetrics, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a worker thread, timed (``store_write_seconds``); a `StoreError` becomes a 503, as does
    running out of file descriptors."""
    started = time.perf_counter()
    try:
        return await run_in_threadpool(fn, *args)
    except StoreError as exc:  # StoreUnavailableError is a StoreError
        raise store_error(exc, metrics) from None
    except OSError as exc:
        raise os_error(exc, metrics) from None
    finally:
        metrics.store_seconds.observe(time.perf_counter() - started)


class Arrival:
    """A request on its way in (its body read, being validated): the committer waits for it before
    committing a group. Never created before the body is in (`routes.BatchLane`): a slow client must not
    hold up the group. `done` once its batch is handed over, or it gives up; more calls do nothing."""

    __slots__ = ("_committer",)

    def __init__(self, committer: GroupCommitter) -> None:
        self._committer: GroupCommitter | None = committer
        committer.arriving += 1

    def done(self) -> None:
        if self._committer is not None:
            self._committer.arriving -= 1
            self._committer = None


class GroupCommitter:
    """Hands the batches of concurrent requests to the store together: one ``write_batches`` call (one file
    per measurement and one fsync each, for the whole group) on one worker thread, instead of a thread
    per request contending for the GIL and the commit lock. A group is committed as soon as the previous
    one is done and no other request is on its way in (an `Arrival`); while some are, it waits for them,
    up to ``min_interval_s`` after the previous group started. So a lone request is committed at once, a
    few clients sending back to back are not held up, and a busy collector commits fewer, larger groups.
    Once busy (the previous group, or the one waiting, holds more than one batch) groups are paced: the next
    starts five times the previous one's duration after it, at least ``pace_s / 5`` and at most ``pace_s``
    after. A Parquet commit costs ~4 ms of CPU whatever its size (a file and fsyncs per measurement), a batch
    ~0.15 ms, so at 1,000 batches/s groups of ~50 instead of ~5 take the collector's CPU per batch down about
    twofold, for at most ``pace_s`` more latency (docs/collector-performance.md); a fast store (a queue
    append) is paced less, and a store whose ``commit_pace_s`` is smaller caps ``pace_s`` at it. A lone client sending back to back (groups of one) is never paced. Every caller
    gets its own batch's answer once the group is durable."""

    def __init__(
        self,
        store: Any,
        min_interval_s: float = 0.05,
        pace_s: float = 0.05,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        """``on_commit(batches)`` is called as each group is handed to the store (the store writer process of a
        collector with workers counts its groups with it)."""
        self.store = store
        self.on_commit = on_commit
        self.on_arriving: Callable[[int], None] | None = None  # called with `arriving` on every change
        self.min_interval_s = min_interval_s
        # a store may pace less than the default: its commit costs less CPU than the wait would save
        self.pace_s = min(pace_s, getattr(store, "commit_pace_s", pace_s))
        self.commits = 0  # groups handed to the store
        self.committed = 0  # batches in them
        write_many = getattr(store, "write_batches", None)
        columns = bool(getattr(store, "accepts_columns", False))

        def built(items: list) -> list:  # a store that wants DataFrames: build each batch's frames
            return [(k, {m: c.frame() if isinstance(c, Columns) else c for m, c in f.items()}) for k, f in items]

        if write_many is not None and "conformed" in inspect.signature(write_many).parameters:
            self._write_many: Callable | None = lambda items: write_many(
                items if columns else built(items), conformed=True
            )
        elif write_many is not None:
            self._write_many = lambda items: write_many(built(items))
        else:
            self._write_many = None
        self._pending: list[tuple[BatchKey, dict, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self._last_start = 0.0
        self._last_size = 0
        self._last_duration = 0.0
        self._arriving = 0

    @property
    def arriving(self) -> int:
        """Requests received and not yet handed to `write`."""
        return self._arriving

    @arriving.setter
    def arriving(self, n: int) -> None:
        self._arriving = n
        if self.on_arriving is not None:
            self.on_arriving(n)

    def arrival(self) -> Arrival:
        return Arrival(self)

    async def write_group(self, items: list[tuple[BatchKey, dict[str, Columns]]]) -> list[bool | BaseException]:
        """`write` for several batches handed over together (a worker process's group, in the store writer):
        per batch True (new), False (a replay) or the exception it raised, once every one is durable."""
        if self._write_many is None:
            out: list[bool | BaseException] = []
            for key, frames in items:
                try:
                    out.append(await self.write(key, frames))
                except Exception as exc:
                    out.append(exc)
            return out
        futures = [self.submit(key, frames) for key, frames in items]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def write(self, key: BatchKey, frames: dict[str, Columns], arrival: Arrival | None = None) -> bool:
        """Store one batch (validated columns); True when new, False for a replay. ``arrival``, the request's,
        is done from here on."""
        if arrival is not None:
            arrival.done()
        if self._write_many is None:
            built = await run_in_threadpool(lambda: {m: c.frame() for m, c in frames.items()})
            return await run_in_threadpool(self.store.write_batch, key, built)
        return await self.submit(key, frames)

    @property
    def groups(self) -> bool:
        """Whether the store takes groups (`submit` works); else `write` stores each batch on its own."""
        return self._write_many is not None

    def submit(self, key: BatchKey, frames: dict[str, Columns]) -> asyncio.Future:
        """Queue one batch for the next group (a store that takes groups: `groups`); the future's result is what
        `write` returns (or its exception). For a caller that answers from a callback (the store writer)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((key, frames, fut))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return fut

    async def _run(self) -> None:
        while self._pending:
            if self._last_size > 1 or len(self._pending) > 1:  # busy: groups paced (see the class)
                pace = min(self.pace_s, max(self.pace_s / 5, 5 * self._last_duration))
                wait = self._last_start + pace - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            deadline = self._last_start + self.min_interval_s
            while self.arriving > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            group, self._pending = self._pending, []
            self._last_start = time.monotonic()
            self._last_size = len(group)
            self.commits += 1
            self.committed += len(group)
            if self.on_commit is not None:
                self.on_commit(len(group))
            try:
                results = await run_in_threadpool(self._write_many, [(k, f) for k, f, _ in group])
                self._last_duration = time.monotonic() - self._last_start
            except asyncio.CancelledError:  # shutting down: nobody is acknowledged
                for _k, _f, fut in group:
                    fut.cancel()
                raise
            except Exception as exc:  # every waiting request gets the error
                results = [exc] * len(group)
            for (_k, _f, fut), result in zip(group, results, strict=True):
                if fut.done():  # the request went away; its batch is stored all the same
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
