"""Security of the ingest path: TLS, hashed tokens reloaded on SIGHUP, rate limits, no token echo."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from telemetry.batch import make_batch
from telemetry.collector.settings import hash_token

from .test_http_ingest import accel_frame, post


def config(tmp_path, body: str):
    path = tmp_path / "collector.toml"
    path.write_text(body)
    return path


def test_rate_limited_node_gets_429_with_retry_after_and_others_are_not_slowed(collector_factory, tmp_path):
    cfg = config(
        tmp_path,
        "[collector]\nrate_limit_rows_per_s = 1\nrate_limit_burst_rows = 10\n"  # 6 s to refill: no race
        '[nodes.node1]\ntoken = "token-node1"\n[nodes.node2]\ntoken = "token-node2"\n',
    )
    c = collector_factory(tokens={}, extra_args=["--config", str(cfg)])
    c.tokens = {"node1": "token-node1", "node2": "token-node2"}
    assert post(c, make_batch("node1", "b", 0, {"accel": accel_frame(n=4)})).status_code == 200  # 8 rows
    r = post(c, make_batch("node1", "b", 1, {"accel": accel_frame(n=4)}))
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    assert post(c, make_batch("node2", "b", 0, {"accel": accel_frame(n=4)}), node="node2").status_code == 200


def test_batch_with_too_many_rows_is_413(collector_factory, tmp_path):
    cfg = config(tmp_path, '[collector]\nmax_batch_rows = 5\n[nodes.node1]\ntoken = "token-node1"\n')
    c = collector_factory(tokens={}, extra_args=["--config", str(cfg)])
    c.tokens = {"node1": "token-node1"}
    r = post(c, make_batch("node1", "b", 0, {"accel": accel_frame(n=3)}))  # 6 rows
    assert r.status_code == 413
    assert "6 rows" in r.json()["error"]["message"]


def test_hashed_tokens_are_reloaded_on_sighup_without_restart(collector_factory, tmp_path):
    cfg = config(tmp_path, f'[nodes.node1]\ntoken_sha256 = "{hash_token("old-token-1")}"\n')
    c = collector_factory(tokens={}, extra_args=["--config", str(cfg)])
    c.tokens = {"node1": "old-token-1"}
    assert post(c, make_batch("node1", "b", 0, {"accel": accel_frame()})).status_code == 200
    cfg.write_text(f'[nodes.node1]\ntoken_sha256 = "{hash_token("new-token-2")}"\n')
    c.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if post(c, make_batch("node1", "b", 1, {"accel": accel_frame()})).status_code == 401:
            break
        time.sleep(0.1)
    assert post(c, make_batch("node1", "b", 1, {"accel": accel_frame()})).status_code == 401
    c.tokens = {"node1": "new-token-2"}
    assert post(c, make_batch("node1", "b", 1, {"accel": accel_frame()})).status_code == 200
    assert c.proc.poll() is None  # same process: no restart


def test_a_token_is_never_echoed_in_errors_or_logs(collector_factory, tmp_path):
    c = collector_factory()
    secret = "s3cr3t-never-echo-me"
    r = httpx.post(
        f"{c.url}/v1/batches",
        json=make_batch("node1", "b", 0, {"accel": accel_frame()}),
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 401
    assert secret not in r.text
    r = httpx.post(f"{c.url}/write?p={secret}", content="accel,device=a temp_c=1 1")
    assert r.status_code == 401 and secret not in r.text
    c.stop()
    assert secret not in (tmp_path / "collector.log").read_text()


def test_refuses_to_listen_beyond_loopback_without_tokens(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "telemetry.cli", "collector", "--store", str(tmp_path / "s"), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0 without node tokens" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tls_collector_is_verified_against_a_custom_ca(collector_factory, tls_files):
    ca, crt, key = tls_files
    c = collector_factory(
        extra_args=["--tls-cert", str(crt), "--tls-key", str(key)],
        scheme="https",
        verify=ssl.create_default_context(cafile=str(ca)),
    )
    r = httpx.post(
        f"{c.url}/v1/batches",
        json=make_batch("node1", "b", 0, {"accel": accel_frame()}),
        headers=c.headers("node1"),
        verify=ssl.create_default_context(cafile=str(ca)),
    )
    assert r.status_code == 200
    with pytest.raises(httpx.ConnectError):  # an unknown CA is refused
        httpx.get(f"{c.url}/healthz")
    with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
        httpx.get(f"http://127.0.0.1:{c.port}/healthz")
