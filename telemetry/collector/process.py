"""A `neighborscope collector` subprocess on a free loopback port, started and waited for in one place.

The demo, the benchmarks, the examples and the tests start a real collector the way an operator does
(the command, not an import of the app)::

    with running_collector(store, workdir, tokens={"node1": "s3cret-token"}) as c:
        httpx.post(f"{c.url}/v1/batches", content=body, headers=c.headers("node1"))

`CollectorProcess.start` returns once ``/healthz`` answers 200; `stop` sends SIGTERM (the collector drains and
closes its store) and kills after a timeout; `kill` is ``kill -9``. A stopped or killed collector can be
started again on the same port and store.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

from telemetry.errors import NeighborscopeError

#: the root command, run with this interpreter
NEIGHBORSCOPE = [sys.executable, "-m", "telemetry.cli"]


class CollectorStartError(NeighborscopeError):
    """The collector exited, or did not answer ``/healthz``, while starting."""


@dataclass
class CollectorProcess:
    """A `neighborscope collector` subprocess: ``url`` is its base URL, ``tokens`` node -> token, its output
    goes (appended) to ``log`` (default ``workdir/collector.log``)."""

    store: str
    workdir: Path
    tokens: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    scheme: str = "http"
    verify: str | bool = True  # what the health check trusts: a CA bundle for a TLS collector
    log: Path | None = None
    nofile_limit: int | None = None  # `ulimit -n` for the process (soft and hard), e.g. to test running out
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        host = "localhost" if self.scheme == "https" else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log or self.workdir / "collector.log"

    def argv(self, port_file: Path) -> list[str]:
        args = [*NEIGHBORSCOPE, "collector", "--store", self.store, "--host", self.host]
        args += ["--port", str(self.port), "--port-file", str(port_file), *self.extra_args]
        for node, token in self.tokens.items():
            args += ["--node-token", f"{node}={token}"]
        return args

    def start(self, timeout_s: float = 60.0) -> CollectorProcess:
        """Start the process (on ``port``; 0 picks a free one, remembered for a restart) and wait until
        ``/healthz`` answers; `CollectorStartError` with the log's tail if it exits or times out."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / f"collector-{time.monotonic_ns()}.port"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(port_file),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                preexec_fn=None if self.nofile_limit is None else partial(_set_nofile, self.nofile_limit),
            )
        try:
            self._wait_healthy(port_file, timeout_s)
        except BaseException:
            self.kill()
            raise
        finally:
            port_file.unlink(missing_ok=True)
        return self

    def _wait_healthy(self, port_file: Path, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CollectorStartError(f"the collector exited (code {self.proc.returncode}): {self._log_tail()}")
            if port_file.exists() and (text := port_file.read_text().strip()):
                self.port = int(text)
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=2, verify=self.verify).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        raise CollectorStartError(f"the collector did not answer /healthz within {timeout_s:g} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (the collector finishes what it acknowledged and closes its store), then kill after
        ``timeout_s``; the exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return None if self.proc is None else self.proc.returncode

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def headers(self, node: str) -> dict[str, str]:
        """The ``Authorization`` header of ``node``'s token."""
        return {"Authorization": f"Bearer {self.tokens[node]}"}


def _set_nofile(limit: int) -> None:
    """`ulimit -n limit` (soft and hard) in the child, before it runs the collector."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@contextmanager
def running_collector(
    store: str | Path,
    workdir: Path,
    tokens: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout_s: float = 60.0,
    **options: object,
) -> Iterator[CollectorProcess]:
    """A started `CollectorProcess` (see its fields for ``options``: host, port, scheme, verify, log),
    stopped on exit."""
    cp = CollectorProcess(
        store=str(store), workdir=workdir, tokens=dict(tokens or {}), extra_args=list(extra_args), **options
    )  # type: ignore[arg-type]
    try:
        yield cp.start(timeout_s)
    finally:
        cp.stop()
