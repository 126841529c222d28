"""Shared fixtures: a real collector process on a free loopback port."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry.collector.process import NEIGHBORSCOPE, CollectorProcess

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["NEIGHBORSCOPE", "ROOT", "CollectorProcess"]


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
        return cp.start(timeout_s=30)

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
