"""Real servers for the remote store tests: Debian's ``influxd`` (1.x, v1 API) and VictoriaMetrics (a real
``/api/v2/write``, and the VictoriaMetrics store's server), each in a temp dir on free loopback ports.

Without the binary a test is skipped, except in CI (``CI=true``), where a missing binary fails it:
``.ci/run`` installs both (see docs/influxdb.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import in_ci

VICTORIA_PATHS = ("/opt/victoria-metrics/usr/bin/victoria-metrics", "/usr/bin/victoria-metrics")


def find_binary(name: str, env: str, extra: tuple[str, ...] = ()) -> str | None:
    """``$env``, then PATH, then the usual install places."""
    if os.environ.get(env):
        return os.environ[env]
    found = shutil.which(name)
    if found:
        return found
    return next((p for p in extra if os.access(p, os.X_OK)), None)


def require_binary(name: str, env: str, extra: tuple[str, ...] = ()) -> str:
    path = find_binary(name, env, extra)
    if path is None:
        msg = f"{name} is not installed (apt-get install it, or set ${env}); see docs/influxdb.md"
        if in_ci():
            pytest.fail(f"CI: {msg}")
        pytest.skip(msg)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 300:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout_s} s: {log.read_text()[-2000:]}")


@dataclass
class InfluxServer:
    """A real ``influxd`` 1.x in ``root``; `stop()` / `start()` keep its data and ports."""

    binary: str
    root: Path
    http_port: int = 0
    rpc_port: int = 0
    proc: subprocess.Popen | None = None
    databases: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _config(self) -> Path:
        conf = self.root / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.root}/meta"
[data]
  dir = "{self.root}/data"
  wal-dir = "{self.root}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[http]
  bind-address = "127.0.0.1:{self.http_port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""
        )
        return conf

    def start(self) -> InfluxServer:
        self.root.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            if not self.http_port or attempt:
                self.http_port, self.rpc_port = free_port(), free_port()
            log = self.root / "influxd.log"
            with open(log, "ab") as fh:
                self.proc = subprocess.Popen([self.binary, "-config", str(self._config())], stdout=fh, stderr=fh)
            try:
                _wait_http(f"{self.base_url}/ping", self.proc, log)
                return self
            except RuntimeError:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait(10)
                if "address already in use" not in log.read_text() or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def restart_same_port(self) -> None:
        """Start again on the same ports (after `stop()`), so clients need no new URL."""
        log = self.root / "influxd.log"
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen([self.binary, "-config", str(self._config())], stdout=fh, stderr=fh)
        _wait_http(f"{self.base_url}/ping", self.proc, log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def influxql(self, q: str, db: str | None = None) -> dict:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        r = httpx.post(f"{self.base_url}/query", data=params, timeout=30)
        r.raise_for_status()
        return r.json()

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.influxql(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def select(self, db: str, q: str) -> list[dict]:
        """Rows of one InfluxQL statement as dicts (what a user would see with the influx CLI)."""
        out = []
        for result in self.influxql(q, db).get("results", []):
            assert "error" not in result, result
            for s in result.get("series", []):
                for values in s["values"]:
                    out.append({**(s.get("tags") or {}), **dict(zip(s["columns"], values, strict=True))})
        return out


@dataclass
class VictoriaServer:
    """A real VictoriaMetrics single-node binary: line protocol in (``/write``, ``/api/v2/write``), the Prometheus
    query API and ``/api/v1/export`` out. ``dedup``: ``-dedup.minScrapeInterval`` (the setting docs/victoriametrics.md
    asks for; empty for none)."""

    binary: str
    root: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    dedup: str = "1ms"
    retention: str = "100y"
    extra: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VictoriaServer:
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / "victoria.log"
        for attempt in range(5):
            self.port = free_port()
            args = self._args()
            with open(log, "ab") as fh:
                self.proc = subprocess.Popen(args, stdout=fh, stderr=fh)
            try:
                _wait_http(f"{self.base_url}/health", self.proc, log)
                return self
            except RuntimeError:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait(10)
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _args(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.root / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-retentionPeriod={self.retention}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
            *([f"-dedup.minScrapeInterval={self.dedup}"] if self.dedup else []),
            *self.extra,
        ]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart_same_port(self) -> None:
        """Start again on the same port and data (after `stop()`), so clients need no new URL."""
        log = self.root / "victoria.log"
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(self._args(), stdout=fh, stderr=fh)
        _wait_http(f"{self.base_url}/health", self.proc, log)

    def export(self, match: str) -> list[dict]:
        """Every sample of the series matching ``match`` (``/api/v1/export``, JSON lines)."""
        httpx.get(f"{self.base_url}/internal/force_flush", timeout=10)
        r = httpx.get(f"{self.base_url}/api/v1/export", params={"match[]": match}, timeout=30)
        r.raise_for_status()
        import json

        return [json.loads(line) for line in r.text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def influxd(tmp_path_factory) -> Iterator[InfluxServer]:
    """One ``influxd`` for the session (each test takes its own database: `influx_url`)."""
    binary = require_binary("influxd", "NEIGHBORSCOPE_INFLUXD")
    server = InfluxServer(binary, tmp_path_factory.mktemp("influxd")).start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxd: InfluxServer) -> str:
    """A fresh, empty database on the session's influxd."""
    return influxd.create_database()


@pytest.fixture
def influx_url(influxd: InfluxServer, influx_db: str, tmp_path: Path) -> str:
    """A store URL for the fresh database, with its own local queue."""
    return f"influx://127.0.0.1:{influxd.http_port}/{influx_db}?queue={tmp_path / 'queue'}&artifacts={tmp_path / 'art'}"


@pytest.fixture
def own_influxd(tmp_path: Path) -> Iterator[InfluxServer]:
    """An ``influxd`` of this test alone (to stop and restart it)."""
    binary = require_binary("influxd", "NEIGHBORSCOPE_INFLUXD")
    server = InfluxServer(binary, tmp_path / "influxd").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory) -> Iterator[VictoriaServer]:
    binary = require_binary("victoria-metrics", "NEIGHBORSCOPE_VICTORIA_METRICS", VICTORIA_PATHS)
    server = VictoriaServer(binary, tmp_path_factory.mktemp("victoria")).start()
    yield server
    server.stop()


@pytest.fixture
def vm_db() -> str:
    """A fresh ``db`` label: an empty VictoriaMetrics store on the session's server."""
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def vm_url(victoria: VictoriaServer, vm_db: str, tmp_path: Path) -> str:
    """A store URL for a fresh ``db`` on the session's VictoriaMetrics, with its own local queue and artifacts."""
    return f"vm://127.0.0.1:{victoria.port}/{vm_db}?queue={tmp_path / 'vm-queue'}&artifacts={tmp_path / 'vm-art'}"


@pytest.fixture
def own_victoria(tmp_path: Path) -> Iterator[VictoriaServer]:
    """A VictoriaMetrics of this test alone, without deduplication (to stop it, or to see duplicates)."""
    binary = require_binary("victoria-metrics", "NEIGHBORSCOPE_VICTORIA_METRICS", VICTORIA_PATHS)
    server = VictoriaServer(binary, tmp_path / "victoria", dedup="").start()
    yield server
    server.stop()
