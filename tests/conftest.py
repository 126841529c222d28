"""Shared fixtures: a real collector process on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
NEIGHBORSCOPE = [sys.executable, "-m", "telemetry.cli"]


@dataclass
class CollectorProcess:
    """A `neighborscope collector` subprocess; `url` is its base URL, `tokens` node -> token."""

    store: str
    workdir: Path
    tokens: dict[str, str]
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen | None = None
    scheme: str = "http"
    verify: str | bool = True

    @property
    def url(self) -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> CollectorProcess:
        port_file = self.workdir / f"collector-{time.monotonic_ns()}.port"
        args = [*NEIGHBORSCOPE, "collector", "--store", self.store, "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--port-file", str(port_file), *self.extra_args]
        for node, token in self.tokens.items():
            args += ["--node-token", f"{node}={token}"]
        log = open(self.workdir / "collector.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {(self.workdir / 'collector.log').read_text()[-2000:]}")
            if port_file.exists():
                self.port = int(port_file.read_text())
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("collector did not start in time")

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def headers(self, node: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[node]}"}


@pytest.fixture
def collector_factory(tmp_path: Path) -> Iterator:
    """Start collectors: `collector_factory(store=..., tokens={...})`; all are stopped at teardown."""
    started: list[CollectorProcess] = []

    def make(
        store: str | None = None,
        tokens: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        scheme: str = "http",
        verify: str | bool = True,
    ):
        cp = CollectorProcess(
            store=store or str(tmp_path / "store"),
            workdir=tmp_path,
            tokens={"node1": "token-node1", "node2": "token-node2"} if tokens is None else tokens,
            extra_args=extra_args or [],
            scheme=scheme,
            verify=verify,
        )
        started.append(cp)
        return cp.start()

    yield make
    for cp in started:
        cp.stop()


@pytest.fixture
def collector(collector_factory) -> CollectorProcess:
    return collector_factory()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def tls_files(tmp_path):
    """A test CA and a server certificate for localhost / 127.0.0.1 signed by it: (ca, cert, key)."""
    ca_key, ca_crt = tmp_path / "ca.key", tmp_path / "ca.crt"
    key, csr, crt = tmp_path / "srv.key", tmp_path / "srv.csr", tmp_path / "srv.crt"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        ca_key,
        "-out",
        ca_crt,
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
        "-extfile", ext)  # fmt: skip
    return ca_crt, crt, key
