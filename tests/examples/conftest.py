"""Fixtures of the noisy-neighbor example tests: the example's victim server (a real process on a free loopback
port) and a real Alertmanager (Debian ``prometheus-alertmanager``) with a config and storage of its own."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "noisy-neighbor"


def example_module(name: str):
    """``examples/noisy-neighbor/NAME.py`` as a module, loaded as the script runs (its directory first on
    ``sys.path`` while it imports, so its sibling ``stack`` imports)."""
    spec = importlib.util.spec_from_file_location(f"noisy_neighbor_{name}", EXAMPLE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(EXAMPLE))
        del sys.modules[spec.name]
    return mod


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path


def start_server(workdir: Path, *args: str, timeout_s: float = 60.0) -> Server:
    """``server.py --port 0 ARGS`` started and healthy; the caller stops it (``stop_process``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port_file, log = workdir / "server.port", workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "server.py"), "--port", "0", "--port-file", str(port_file), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with code {proc.returncode}: {log.read_text()[-2000:]}")
        if port_file.exists():
            url = f"http://127.0.0.1:{port_file.read_text().strip()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    return Server(url, proc, log)
        time.sleep(0.1)
    stop_process(proc)
    raise AssertionError(f"the server did not come up in {timeout_s:g} s: {log.read_text()[-2000:]}")


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    """``server_factory(*args)``: example servers with those options, all stopped at teardown."""
    started: list[Server] = []

    def make(*args: str) -> Server:
        srv = start_server(tmp_path / f"server{len(started)}", *args)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        stop_process(srv.proc)


@dataclass
class Alertmanager:
    url: str
    proc: subprocess.Popen
    log: Path

    def alerts(self, **params: str) -> list[dict]:
        """``GET /api/v2/alerts`` (active, not silenced or inhibited by default)."""
        r = httpx.get(self.url + "/api/v2/alerts", params=params, timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """A real Alertmanager on a free loopback port (tmp config, ``--storage.path``, no clustering); skips when the
    binary is missing, except in CI where it fails. Its config and port: live.py's own (`ALERTMANAGER_YML`) and the
    examples' `stack.free_port`."""
    live = example_module("live")
    binary = live.alertmanager_binary()
    if binary is None:
        msg = "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    home = tmp_path / "alertmanager"
    (home / "data").mkdir(parents=True)
    (home / "alertmanager.yml").write_text(live.ALERTMANAGER_YML)
    port = example_module("stack").free_port()
    log = home / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={home / 'alertmanager.yml'}",
                f"--storage.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    am = Alertmanager(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"alertmanager exited with code {proc.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(am.url + "/-/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"alertmanager did not become ready in 30 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield am
    finally:
        stop_process(proc)
