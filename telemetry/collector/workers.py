"""A collector of several processes (``workers = N`` in collector.toml, ``--workers N``): N workers serve HTTP
on the one port, one store writer owns the store, and the first process (`Supervisor`) starts, watches and stops
them.

- Every worker inherits the one listening socket and runs the whole HTTP front of one collector process
  (`telemetry.collector.app.create_app`: auth, body limits, decoding, validation, limits, counters); its store is
  a `telemetry.collector.writer.RemoteStore`, so a batch is acknowledged only once the store writer has it in a
  durable group, and a store error comes back as the same answer as from one process.
- The store writer (`telemetry.collector.writer.serve_writer`) is the only process that opens the store: the
  embedded store's single-writer lock, the InfluxDB / VictoriaMetrics queue. It commits the batches of every
  worker in paced groups (``commit_pace_s``), deduplicated by batch identity as always.
- The supervisor holds no store and runs no thread (it forks, and a process with threads must not). It passes
  SIGHUP (reload the tokens and limits) on to every worker, restarts a worker or the writer that dies (logged;
  at most one restart per second per process), and on SIGTERM or SIGINT stops the workers first (each finishes
  the requests it is serving, which the writer answers), then the writer (which finishes what it received and
  closes the store).
- `/metrics`, from whichever worker answers, sums every process's counters (prometheus_client's multiprocess
  mode, in a private directory: `telemetry.collector.metrics`).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from telemetry.collector.server import bind, tune_gc, uvicorn_server
from telemetry.collector.settings import CollectorSettings, load_settings
from telemetry.errors import ConfigError, NeighborscopeError, StoreError

#: the signals the supervisor waits for (blocked, taken with sigtimedwait: no handler runs in the parent)
SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
#: a process that died this soon after its start is restarted only this long after that start
RESTART_MIN_INTERVAL_S = 1.0
#: how long stopping waits for the workers (uvicorn gives in-flight requests 10 s) and the writer
STOP_WORKERS_S = 20.0
STOP_WRITER_S = 60.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _threads() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 1


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"was killed by {name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """The first process of a collector with ``workers`` worker processes; `run` returns once all are stopped."""

    def __init__(
        self,
        workers: int,
        store_url: str,
        config: Path | None,
        extra_tokens: dict[str, str],
        settings: CollectorSettings,
        host: str,
        port: int,
        port_file: Path | None,
        log_level: str,
        tls_cert: Path | None,
        tls_key: Path | None,
    ) -> None:
        self.n = workers
        self.store_url = store_url
        self.config = config
        self.extra_tokens = extra_tokens
        self.settings = settings
        self.host, self.port, self.port_file = host, port, port_file
        self.log_level, self.tls_cert, self.tls_key = log_level, tls_cert, tls_key
        self.workers: dict[int, int] = {}  # pid -> slot
        self.started: dict[int | str, float] = {}  # slot (or "writer") -> when it was last started
        self.writer_pid: int | None = None
        self.sock: socket.socket | None = None
        self.old_mask: set[signal.Signals] = set()

    # ---- the parent ---------------------------------------------------------------------------------------

    def run(self) -> None:
        if _threads() > 1:
            raise RuntimeError("the collector's supervisor must not run threads: it forks its workers")
        _preload()
        run_dir = Path(tempfile.mkdtemp(prefix="neighborscope-collector-"))  # 0700: the writer's socket
        self.metrics_dir = run_dir / "metrics"
        self.metrics_dir.mkdir()
        self.writer_path = str(run_dir / "writer.sock")
        self.old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            self.sock = bind(self.host, self.port)
            store_repr = self._start_writer()
            readiness = [self._start_worker(slot, ready=True) for slot in range(1, self.n + 1)]
            for fd in readiness:  # every worker serves before the port is announced (it imports, then serves)
                self._wait_ready(fd)
            bound = self.sock.getsockname()[1]
            if self.port_file is not None:
                tmp = self.port_file.with_suffix(".tmp")
                tmp.write_text(str(bound))
                tmp.replace(self.port_file)
            scheme = "https" if self.tls_cert else "http"
            say(
                f"neighborscope collector listening on {scheme}://{self.host}:{bound} (store: {store_repr}; "
                f"{self.n} workers, store writer pid {self.writer_pid})"
            )
            self._supervise()
        finally:
            self._stop_all()
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)
            if self.sock is not None:
                self.sock.close()
            shutil.rmtree(run_dir, ignore_errors=True)

    def _supervise(self) -> None:
        due: dict[int | str, float] = {}  # what to restart, and not before when
        while True:
            info = signal.sigtimedwait(SIGNALS, 0.5)
            for slot in self._reap():
                due[slot] = max(time.monotonic(), self.started.get(slot, 0.0) + RESTART_MIN_INTERVAL_S)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                say(f"collector: {signal.Signals(info.si_signo).name}: stopping the workers, then the store writer")
                return
            if info is not None and info.si_signo == signal.SIGHUP:
                self._reload()
            now = time.monotonic()
            if "writer" in due and due["writer"] <= now:
                del due["writer"]
                try:
                    self._start_writer()
                except NeighborscopeError as exc:
                    say(f"collector: the store writer failed to start again, retrying in 5 s: {exc}")
                    due["writer"] = now + 5.0
            for slot in [s for s, t in due.items() if s != "writer" and t <= now]:
                del due[slot]
                self._start_worker(int(slot))

    def _reap(self) -> list[int | str]:
        """Collect the children that ended; the slots to restart."""
        ended: list[int | str] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return ended
            if pid == 0:
                return ended
            if pid == self.writer_pid:
                self.writer_pid = None
                say(f"collector: the store writer (pid {pid}) {_how(status)}; restarting it")
                ended.append("writer")
            elif pid in self.workers:
                slot = self.workers.pop(pid)
                self._forget_metrics(pid)
                say(f"collector: worker {slot} (pid {pid}) {_how(status)}; restarting it")
                ended.append(slot)

    def _reload(self) -> None:
        try:
            self.settings = load_settings(self.config, self.extra_tokens)
        except ConfigError as exc:
            say(f"reload failed, keeping the old settings: {exc}")
            return
        say(f"reloaded {self.config}: {len(self.settings.nodes)} node(s)")
        for pid in self.workers:
            _signal(pid, signal.SIGHUP)

    def _forget_metrics(self, pid: int) -> None:
        """A dead worker's live gauges leave the sums (its counters stay: a counter never goes back)."""
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, str(self.metrics_dir))

    def _stop_all(self) -> None:
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)
        for pid in _wait_all(list(self.workers), STOP_WORKERS_S):
            say(f"collector: worker pid {pid} did not stop within {STOP_WORKERS_S:g} s; killed")
        self.workers.clear()
        if self.writer_pid is not None:
            _signal(self.writer_pid, signal.SIGTERM)
            for pid in _wait_all([self.writer_pid], STOP_WRITER_S):
                say(f"collector: the store writer (pid {pid}) did not stop within {STOP_WRITER_S:g} s; killed")
            self.writer_pid = None

    def _fork(self, main: Callable[[], None]) -> int:
        if _threads() > 1:
            raise RuntimeError("the collector's supervisor must not run threads: it forks its workers")
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _start_writer(self) -> str:
        """Fork the store writer and wait until it serves; its store's repr. The store's error (locked,
        missing, a bad URL) is raised here as the `StoreError` one process would print."""
        r, w = os.pipe()
        pid = self._fork(lambda: self._writer_main(r, w))
        os.close(w)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        answer = b"".join(chunks).decode("utf-8", "replace")
        kind, _, text = answer.partition(":")
        if kind != "ok":
            _wait_all([pid], STOP_WRITER_S)
            if kind == "error":
                raise StoreError(text)
            raise RuntimeError(f"the store writer failed to start: {text or 'it exited'}")
        self.writer_pid = pid
        self.started["writer"] = time.monotonic()
        return text

    def _start_worker(self, slot: int, ready: bool = False) -> int | None:
        """Fork worker ``slot``; with ``ready``, the read end of a pipe it writes to once it is about to serve."""
        r, w = os.pipe() if ready else (None, None)
        pid = self._fork(lambda: self._worker_main(slot, r, w))
        if w is not None:
            os.close(w)
        self.workers[pid] = slot
        self.started[slot] = time.monotonic()
        say(f"collector: worker {slot} started (pid {pid})")
        return r

    @staticmethod
    def _wait_ready(fd: int | None) -> None:
        """Wait for a worker's word that it serves (nothing, when it exited first: the supervisor restarts it)."""
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.read(fd, 16)
        os.close(fd)

    # ---- the children ------------------------------------------------------------------------------------

    def _writer_main(self, r: int, w: int) -> None:
        os.close(r)
        if self.sock is not None:
            self.sock.close()
        from telemetry.collector.metrics import use_multiprocess_values
        from telemetry.collector.writer import serve_writer

        use_multiprocess_values(self.metrics_dir)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)

        def ready(error: BaseException | None, store_repr: str = "") -> None:
            if error is None:
                msg = f"ok:{store_repr}"
            elif isinstance(error, NeighborscopeError):
                msg = f"error:{error}"
            else:
                traceback.print_exception(error)
                msg = f"bug:{type(error).__name__}: {error}"
            os.write(w, msg.encode())
            os.close(w)

        serve_writer(self.store_url, self.settings.collector.commit_pace_s, self.writer_path, ready)

    def _worker_main(self, slot: int, r: int | None = None, w: int | None = None) -> None:
        assert self.sock is not None
        if r is not None:
            os.close(r)
        state: dict = {}

        def on_term(_signum: int, _frame: object) -> None:
            state["stop"] = True

        def on_hup(_signum: int, _frame: object) -> None:
            app = state.get("app")
            if app is None:
                state["reload"] = True
                return
            try:
                app.state.settings = load_settings(self.config, self.extra_tokens)
            except ConfigError as exc:
                say(f"collector: worker {slot}: reload failed, keeping the old settings: {exc}")

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops the workers (after a Ctrl-C too)
        signal.signal(signal.SIGTERM, on_term)  # uvicorn takes SIGTERM over while it serves
        signal.signal(signal.SIGHUP, on_hup)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)

        from telemetry.collector.app import create_app
        from telemetry.collector.metrics import CollectorMetrics
        from telemetry.collector.writer import RemoteCommitter, RemoteStore, WriterConnection

        store = RemoteStore(self.writer_path)
        metrics = CollectorMetrics(multiprocess_dir=self.metrics_dir)
        committer = RemoteCommitter(store, WriterConnection(self.writer_path))
        app = create_app(store, self.settings, metrics=metrics, committer=committer)
        state["app"] = app
        if state.pop("reload", False):
            on_hup(signal.SIGHUP, None)
        server = uvicorn_server(app, self.settings, self.log_level, self.tls_cert, self.tls_key)
        tune_gc()
        if w is not None:
            os.write(w, b"ok")
            os.close(w)
        if not state.get("stop"):
            server.run(sockets=[self.sock])
        store.close()


#: what every child imports and the supervisor can import without starting a thread (polars and numpy start
#: theirs at import: each child imports them itself), so the children share it and start faster
PRELOAD = (
    "fastapi",
    "orjson",
    "prometheus_client.multiprocess",
    "starlette.concurrency",
    "uvicorn",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
)


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_all(pids: list[int], timeout_s: float) -> list[int]:
    """Reap ``pids``, killing those still running after ``timeout_s``; the ones that had to be killed."""
    left = set(pids)
    deadline = time.monotonic() + timeout_s
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                left.discard(pid)
        if left:
            select.select([], [], [], 0.05)
    for pid in left:
        _signal(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return sorted(left)
