"""What the two experiments of this directory share (`run.py`, `live.py`): the started processes and their stop,
a free loopback port, the wait for a process's HTTP endpoint, and the victim server's and collector's start.

Both scripts import it as a sibling (``python examples/noisy-neighbor/run.py`` puts this directory first on
``sys.path``); it imports nothing of neighborscope at module level (the scripts put the repository on ``sys.path``
only when they run).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
NEIGHBORSCOPE = [sys.executable, "-m", "telemetry.cli"]
VICTIM = "victim"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def stop(
    proc: subprocess.Popen, name: str = "", timeout_s: float = 20.0, say: Callable[[str], None] = _stderr
) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {timeout_s:g} s: killed")
            proc.kill()
            proc.wait()
    return proc.returncode


class Stack(contextlib.ExitStack):
    """Started processes, stopped (SIGTERM, then SIGKILL) in reverse order on exit; ``say`` logs a process that had
    to be killed."""

    def __init__(self, say: Callable[[str], None] = _stderr) -> None:
        super().__init__()
        self.say = say

    def start(self, name: str, argv: list[str], log: Path, **kw: Any) -> subprocess.Popen:
        """``argv`` started with its output in ``log``, stopped when the stack closes."""
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        self.callback(stop, proc, name, say=self.say)
        return proc

    def stop(self, proc: subprocess.Popen, name: str = "", timeout_s: float = 20.0) -> int | None:
        """Stop one process now (the stack's own stop at exit then finds it gone)."""
        return stop(proc, name, timeout_s, say=self.say)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_file_url(port_file: Path, host: str = "127.0.0.1") -> Callable[[], str | None]:
    """``url_of`` for `wait_http`: the URL once a process wrote its port to ``port_file`` (None until then)."""

    def url_of() -> str | None:
        with contextlib.suppress(OSError):
            if port := port_file.read_text().strip():
                return f"http://{host}:{port}"
        return None

    return url_of


def wait_http(
    proc: subprocess.Popen, url_of: Callable[[], str | None], path: str, name: str, log: Path, timeout_s: float = 90
) -> str:
    """Wait until ``url_of()`` (None while unknown) answers 200 on ``path``; the URL. Exits with the log's tail when
    the process exits or does not come up in ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        if (url := url_of()) is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + path, timeout=2).status_code == 200:
                    return url
        time.sleep(0.2)
    raise SystemExit(f"{name} did not come up in {timeout_s:g} s:\n{log.read_text()[-3000:]}")


def start_server(stack: Stack, wd: Path, args: list[str], **kw: Any) -> tuple[subprocess.Popen, Callable[[], str]]:
    """The victim, ``server.py --port 0 --port-file WD/server.port ARGS`` (log ``WD/logs/server.log``; ``kw``: for
    `subprocess.Popen`, e.g. ``preexec_fn``), and a function that waits until it is healthy and returns its URL
    (start the collector in between: both come up together)."""
    port_file, log = wd / "server.port", wd / "logs" / "server.log"
    argv = [sys.executable, str(HERE / "server.py"), "--port", "0", "--port-file", str(port_file), *args]
    proc = stack.start("server", argv, log, **kw)
    return proc, lambda: wait_http(proc, port_file_url(port_file), "/health", "server", log)


def start_collector(stack: Stack, wd: Path, node: str, token: str) -> Any:
    """A real collector (`telemetry.collector.process.running_collector`) on the embedded store ``WD/store``, one
    node token, log ``WD/logs/collector.log``; stopped when the stack closes."""
    from telemetry.collector.process import CollectorStartError, running_collector

    try:
        return stack.enter_context(
            running_collector(
                str(wd / "store"), wd, tokens={node: token}, timeout_s=90, log=wd / "logs" / "collector.log"
            )
        )
    except CollectorStartError as exc:
        raise SystemExit(str(exc)) from None


def start_agent(stack: Stack, config: Path, log: Path) -> subprocess.Popen:
    """``neighborscope agent --config CONFIG --log-level warning``, stopped when the stack closes."""
    return stack.start("agent", [*NEIGHBORSCOPE, "agent", "--config", str(config), "--log-level", "warning"], log)
