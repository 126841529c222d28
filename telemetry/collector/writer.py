"""The store writer of a collector with several worker processes, and the store the workers write through.

With ``workers = N > 1`` (`telemetry.collector.workers`) every worker serves HTTP, checks tokens, decodes and
validates batches as one collector process does, and hands the validated batches to one more process, the
store writer (`serve_writer`), which alone owns the store (the embedded store's single-writer lock, the
InfluxDB / VictoriaMetrics queue). The writer commits the batches of every worker together in paced groups
(`telemetry.collector.commit.GroupCommitter`, ``commit_pace_s``) and answers each batch once its group is
durable; only then does the worker acknowledge the request. The worker's side is `RemoteStore`: a store with the
same ``write_batches`` / ``write`` / ``status`` as the real one, so the request path does not change, and a store
error reaches the worker as the same exception (type, message, ``where``), answered with the same status.

The wire: a Unix stream socket in a private (0700) directory; each message is an 8-byte little-endian length
and a pickle (`telemetry.batch.Columns` as they are: the writer builds one DataFrame per measurement per group,
as one process does). A request is ``(id, op, args)``, an answer ``(id, ok, value)``; a worker sends requests
from any thread and one reader thread hands out the answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pickle  # nosec B403 - only between this collector's own processes, over a Unix socket in a 0700 directory
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from telemetry.batch import Columns
from telemetry.collector.commit import Arrival, GroupCommitter
from telemetry.errors import StoreError, StoreUnavailableError
from telemetry.store.base import BatchKey

_LEN = 8
#: what a worker waits, at most, for the writer's answer (a group is paced by at most 1 s; a full disk or a slow
#: remote store answers with an error long before this)
ANSWER_TIMEOUT_S = 300.0


def loads(data: bytes) -> Any:
    """Unpickle what one of this collector's own processes sent (never anything from the network)."""
    return pickle.loads(data)  # noqa: S301  # nosec B301 - our own processes, over a 0700 Unix socket


def frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=5)
    return len(data).to_bytes(_LEN, "little") + data


class Framed(asyncio.Protocol):
    """Length-prefixed pickles on a stream, both ways: `received` is called with each message that arrives;
    `send` queues one, and what is queued in one turn of the event loop goes out in one write (a group's
    answers to a worker, a worker's batches of one turn: one system call instead of one each)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._out: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, n = 0, len(buf)
        while n - pos >= _LEN:
            end = pos + _LEN + int.from_bytes(buf[pos : pos + _LEN], "little")
            if end > n:
                break
            message = loads(bytes(buf[pos + _LEN : end]))
            pos = end
            self.received(message)
        if pos:
            del buf[:pos]

    def send(self, message: Any) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame(message))

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.lost(exc)

    def received(self, message: Any) -> None:
        raise NotImplementedError

    def lost(self, exc: Exception | None) -> None:
        """The other side closed the connection or went away."""


class _Rebuilt:
    """An exception whose class cannot be rebuilt from its ``args`` (its ``__init__`` takes other arguments):
    rebuilt from its class, args and attributes instead."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> tuple:
        return _rebuild, (type(self.exc), self.exc.args, dict(vars(self.exc)))


def _rebuild(cls: type[BaseException], args: tuple, state: dict) -> BaseException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


def portable_error(exc: BaseException) -> Any:
    """``exc`` as it can cross to a worker with the same type, message and attributes (``where``, ``errno``,
    ``retry_after_s``); a `StoreError` naming it when even that fails."""
    if isinstance(exc, asyncio.CancelledError):
        return StoreUnavailableError("the collector's store writer is shutting down; retry later")
    with contextlib.suppress(Exception):  # if not, the next way below
        back = loads(pickle.dumps(exc, protocol=5))
        if type(back) is type(exc) and str(back) == str(exc) and vars(back) == vars(exc):
            return exc
    try:
        box = _Rebuilt(exc)
        loads(pickle.dumps(box, protocol=5))
        return box
    except Exception:
        return StoreError(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------------------------
# The writer process


class WriterServer:
    """Answers the workers' requests on ``path``: ``hello`` (what the store is), ``write_batches`` (through the
    group committer), ``write`` (line protocol: one store write each), ``status`` (the store queue's)."""

    def __init__(self, store: Any, committer: Any) -> None:
        self.store = store
        self.committer = committer
        self.tasks: set[asyncio.Future] = set()

    def hello(self) -> dict[str, Any]:
        return {"repr": repr(self.store), "status": callable(getattr(self.store, "status", None))}

    def dispatch(self, conn: Framed, rid: int, op: str, args: tuple) -> None:
        """One request of a worker on ``conn``; its answer is sent there when ready."""
        if op == "write_batch" and self.committer.groups:  # the hot path: no task per batch
            fut = self.committer.submit(*args)
            self.tasks.add(fut)
            fut.add_done_callback(lambda done: self._answered(conn, rid, done))
            return
        task = asyncio.get_running_loop().create_task(self._do(op, args))
        self.tasks.add(task)
        task.add_done_callback(lambda done: self._answered(conn, rid, done))

    def _answered(self, conn: Framed, rid: int, done: asyncio.Future) -> None:
        self.tasks.discard(done)
        if done.cancelled():
            answer: tuple = (rid, False, portable_error(asyncio.CancelledError()))
        elif done.exception() is not None:  # every failure goes back to the worker as its own exception
            answer = (rid, False, portable_error(done.exception()))  # type: ignore[arg-type]
        else:
            answer = (rid, True, done.result())
        conn.send(answer)  # a worker that is gone gets nothing; its batches are stored all the same

    async def _do(self, op: str, args: tuple) -> Any:
        from starlette.concurrency import run_in_threadpool

        if op == "write_batch":
            return await self.committer.write(*args)
        if op == "write_batches":
            items, conformed = args
            if conformed:
                results = await self.committer.write_group(items)
            else:
                results = await run_in_threadpool(self.store.write_batches, items)
            return [portable_error(r) if isinstance(r, BaseException) else r for r in results]
        if op == "write":
            return await run_in_threadpool(self.store.write, *args)
        if op == "status":
            return await run_in_threadpool(self.store.status)
        if op == "hello":
            return self.hello()
        raise StoreError(f"the store writer does not know {op!r}")

    def protocol(self) -> Framed:
        server = self

        class Worker(Framed):
            def received(self, message: Any) -> None:
                server.dispatch(self, *message)

        return Worker()

    async def drain(self) -> None:
        """Wait for every request already received (its group committed and answered)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def serve_writer(store_url: str, pace_s: float, path: str, ready: Callable[[BaseException | None, str], None]) -> None:
    """The store writer process's main: open the store (its lock, recovery, compactor), listen on ``path``,
    call ``ready(None, repr(store))`` (or ``ready(error, "")`` when the store cannot be opened, then return), and
    serve until
    SIGTERM; then finish what it received and close the store. SIGINT is left to the parent (a Ctrl-C in a
    terminal reaches every process: the writer must outlive the workers that are still draining)."""
    from telemetry.collector.metrics import commit_counters
    from telemetry.collector.server import tune_gc
    from telemetry.store.factory import open_store

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        db = open_store(store_url)
        if hasattr(db, "start_compactor"):
            db.start_compactor()
        if hasattr(db, "start"):  # a queued store: drain what a crash left before the first new write
            db.start()
    except Exception as exc:
        ready(exc, "")
        return
    groups, batches = commit_counters()

    def counted(n: int) -> None:
        groups.inc()
        batches.inc(n)

    server = WriterServer(db, GroupCommitter(db, min_interval_s=0.1, pace_s=pace_s, on_commit=counted))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        with _private_path(path):
            listener = await loop.create_unix_server(server.protocol, path=path)
        ready(None, repr(db))
        tune_gc()
        await stop.wait()
        listener.close()
        await server.drain()

    try:
        _run(main())
    finally:
        db.close()


@contextlib.contextmanager
def _private_path(path: str) -> Iterator[None]:
    """Sockets created meanwhile are readable and writable by this user only (umask 0o077); a socket left by a
    writer before this one (killed) is removed."""
    if os.path.exists(path):
        os.unlink(path)
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _run(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


# ---------------------------------------------------------------------------------------------------------------
# The workers' side


class WriterConnection:
    """A worker's connection to the store writer in its event loop (opened on first use, again after the writer
    was restarted): `call` sends a request at once and waits for its answer, so a worker has as many batches on
    their way to the writer as it has requests, and the writer groups the batches of every worker."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ids = itertools.count()
        self._waiting: dict[int, tuple[asyncio.Future, Framed]] = {}
        self._conn: Framed | None = None
        self._opening: asyncio.Lock | None = None

    async def call(self, op: str, *args: Any) -> Any:
        conn = self._conn or await self._open()
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._waiting[rid] = (fut, conn)
        conn.send((rid, op, args))
        ok, value = await fut
        if not ok:
            raise value
        return value

    async def _open(self) -> Framed:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._conn is None:
                owner = self

                class Writer(Framed):
                    def received(self, message: Any) -> None:
                        rid, ok, value = message
                        waiting = owner._waiting.pop(rid, None)
                        if waiting is not None and not waiting[0].done():
                            waiting[0].set_result((ok, value))

                    def lost(self, exc: Exception | None) -> None:
                        owner._lost(self, exc)

                try:
                    _, conn = await asyncio.get_running_loop().create_unix_connection(Writer, self.path)
                except OSError as exc:
                    raise StoreUnavailableError(
                        f"the collector's store writer is not running ({exc.strerror}); retry later"
                    ) from None
                self._conn = conn
            return self._conn

    def _lost(self, conn: Framed, exc: Exception | None) -> None:
        """The writer went away: what waits on ``conn`` is answered 503 (a batch among them may have been stored
        all the same; its retry is then a duplicate); the next call connects again."""
        if self._conn is conn:
            self._conn = None
        error = StoreUnavailableError(
            f"lost the collector's store writer ({exc or 'it closed the connection'}); retry later"
        )
        for rid, (fut, on) in list(self._waiting.items()):
            if on is conn:
                del self._waiting[rid]
                if not fut.done():
                    fut.set_result((False, error))
        print(f"collector: worker pid {os.getpid()}: {error}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None


class RemoteCommitter(GroupCommitter):
    """A worker's group committer: each validated batch goes to the store writer at once (`WriterConnection`),
    whose own `GroupCommitter` groups and paces the batches of every worker; the answer (stored, duplicate, or
    the store's exception) is the one the writer's store gave. Arrivals are still counted (for /metrics)."""

    def __init__(self, store: Any, connection: WriterConnection) -> None:
        super().__init__(store, pace_s=0.0)
        self.connection = connection

    async def write(self, key: BatchKey, frames: dict[str, Columns], arrival: Arrival | None = None) -> bool:
        if arrival is not None:
            arrival.done()
        return await self.connection.call("write_batch", key, frames)


class RemoteStore:
    """The store as a worker process sees it: every write goes to the store writer on ``path`` and returns (or
    raises) what the real store's did there. Thread-safe (the group committer's thread, the line-protocol
    writes and the metrics scrape call it at once). When the writer is gone (killed, restarting) a call raises
    `StoreUnavailableError` (the agent retries: 503) and the next call connects again."""

    accepts_columns = True  # the writer's group committer builds frames when its store wants DataFrames

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._waiting: dict[int, tuple[Future, socket.socket]] = {}
        self._sock: socket.socket | None = None
        self._closing = False
        self._info = self._call("hello")
        if self._info["status"]:
            self.status = self._status

    def __repr__(self) -> str:
        return str(self._info["repr"])

    def write_batches(self, items: Any, *, conformed: bool = False) -> list[bool | BaseException]:
        return self._call("write_batches", list(items), conformed)

    def write_batch(self, key: Any, frames: Any) -> bool:
        (result,) = self.write_batches([(key, frames)])
        if isinstance(result, BaseException):
            raise result
        return result

    def write(self, measurement: str, frame_: Any) -> int:
        return self._call("write", measurement, frame_)

    def _status(self) -> dict[str, Any]:
        return self._call("status")

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self._sock is not None:
                self._sock.close()  # the reader thread fails what is still waiting
                self._sock = None

    def _call(self, op: str, *args: Any) -> Any:
        fut: Future = Future()
        rid = next(self._ids)
        data = frame((rid, op, args))
        with self._lock:
            sock = self._connected()
            self._waiting[rid] = (fut, sock)
            try:
                sock.sendall(data)
            except OSError as exc:
                self._lost(sock, exc)
        ok, value = fut.result(ANSWER_TIMEOUT_S)
        if not ok:
            raise value
        return value

    def _connected(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise StoreUnavailableError(
                f"the collector's store writer is not running ({exc.strerror}); retry later"
            ) from None
        self._sock = sock
        threading.Thread(target=self._read, args=(sock,), name="store-writer-answers", daemon=True).start()
        return sock

    def _read(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        try:
            while True:
                head = reader.read(_LEN)
                if len(head) < _LEN:
                    raise ConnectionError("the store writer closed the connection")
                size = int.from_bytes(head, "little")
                body = reader.read(size)
                if len(body) < size:
                    raise ConnectionError("the store writer closed the connection")
                rid, ok, value = loads(body)
                with self._lock:
                    waiting = self._waiting.pop(rid, None)
                if waiting is not None:
                    waiting[0].set_result((ok, value))
        except (OSError, ValueError) as exc:
            with self._lock:
                self._lost(sock, exc)
        finally:
            reader.close()

    def _lost(self, sock: socket.socket, exc: BaseException) -> None:
        """The connection ``sock`` broke (called with the lock held): whatever waits on it is answered 503.
        A batch among them may have been stored all the same; its retry is then a duplicate."""
        if self._sock is sock:
            self._sock = None
        sock.close()
        error = StoreUnavailableError(f"lost the collector's store writer ({exc}); retry later")
        for rid, (fut, on) in list(self._waiting.items()):
            if on is sock:
                del self._waiting[rid]
                if not fut.done():
                    fut.set_result((False, error))
        if not self._closing:
            print(f"collector: worker pid {os.getpid()}: {error}", file=sys.stderr, flush=True)
