"""Issue 17 item 7: slow and idle clients cannot hold the collector, nor slow down the agents.

- the token is checked from the headers, before the body is read: an unauthenticated upload is 401 at once;
- a body that does not arrive within ``body_timeout_s`` is 408, and headers that do not arrive within
  ``header_timeout_s`` close the connection (both in collector.toml);
- the group committer waits only for requests whose body is in (``neighborscope_collector_requests_arriving`` stays 0
  while a client is still uploading);
- with the collector out of file descriptors (``ulimit -n``), a valid batch gets a clear 503 or is stored,
  never a broken answer, and once the idle connections are gone every batch is stored.
"""

from __future__ import annotations

import json
import socket
import time

import httpx

from telemetry.batch import encode_batch, make_batch
from telemetry.collector.process import CollectorProcess
from telemetry.store.parquet import ParquetStore

NOW_NS = time.time_ns()
TOKENS = {"node1": "token-node1"}


def config(tmp_path, body: str) -> str:
    path = tmp_path / "collector.toml"
    path.write_text(body + '\n[nodes.node1]\ntoken = "token-node1"\n')
    return str(path)


def batch_body(seq: int) -> bytes:
    frame = {"time": [NOW_NS], "device": ["gpu0"], "temp_c": [41.0]}
    doc = make_batch("node1", "boot-a", seq, {})
    doc["frames"] = [{"measurement": "accel", "columns": frame}]
    return json.dumps(doc).encode()


def post_batch(collector, body: bytes) -> httpx.Response:
    headers = {**collector.headers("node1"), "Content-Type": "application/json"}
    return httpx.post(f"{collector.url}/v1/batches", content=body, headers=headers, timeout=30)


def start_upload(collector, token: str | None, length: int = 100_000, sent: bytes = b"{") -> socket.socket:
    """Headers of a POST /v1/batches announcing ``length`` bytes, and only ``sent`` of them."""
    sock = socket.create_connection(("127.0.0.1", collector.port), timeout=10)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def read_response(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b'"}}' in data:
                break
    except TimeoutError:
        pass
    return data


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(collector):
    sock = start_upload(collector, token=None)
    answer = read_response(sock, timeout_s=5)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"unauthenticated" in answer


def test_a_wrong_token_is_refused_before_its_body_is_read(collector):
    sock = start_upload(collector, token="not-a-token")
    answer = read_response(sock, timeout_s=5)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_a_body_that_does_not_arrive_in_time_is_408(collector_factory, tmp_path):
    c = collector_factory(tokens={}, extra_args=["--config", config(tmp_path, "[collector]\nbody_timeout_s = 1")])
    sock = start_upload(c, token="token-node1")
    answer = read_response(sock, timeout_s=8)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body_timeout_s" in answer


def test_headers_that_do_not_arrive_in_time_close_the_connection(collector_factory, tmp_path):
    c = collector_factory(tokens={}, extra_args=["--config", config(tmp_path, "[collector]\nheader_timeout_s = 1")])
    idle = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    slow = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    slow.sendall(b"POST /v1/batches HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    for sock in (idle, slow):
        answer = read_response(sock, timeout_s=8)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        sock.settimeout(1)
        assert sock.recv(1) == b""  # closed by the collector
        sock.close()


def test_the_group_committer_does_not_wait_for_a_request_still_uploading(collector):
    sock = start_upload(collector, token="token-node1")
    try:
        time.sleep(0.3)
        metrics = httpx.get(f"{collector.url}/metrics", timeout=10).text
        arriving = [ln for ln in metrics.splitlines() if ln.startswith("neighborscope_collector_requests_arriving ")]
        assert arriving == ["neighborscope_collector_requests_arriving 0.0"], arriving
        r = post_batch(collector, batch_body(0))
        assert r.status_code == 200, r.text
    finally:
        sock.close()


def test_out_of_file_descriptors_is_a_clear_503_never_a_broken_batch(tmp_path):
    cfg = config(tmp_path, "[collector]\nheader_timeout_s = 2")
    c = CollectorProcess(str(tmp_path / "store"), tmp_path, extra_args=["--config", cfg], nofile_limit=256)
    c.tokens = TOKENS
    c.start(timeout_s=30)
    idle: list[socket.socket] = []
    try:
        for _ in range(400):  # more than the collector has file descriptors
            try:
                idle.append(socket.create_connection(("127.0.0.1", c.port), timeout=2))
            except OSError:
                break
        statuses = []
        for seq in range(3):
            r = httpx.post(
                f"{c.url}/v1/batches",
                content=encode_batch("node1", "boot-b", seq, {"accel": [{"time": NOW_NS, "device": "gpu0"}]}),
                headers={**c.headers("node1"), "Content-Type": "application/json", "Content-Encoding": "gzip"},
                timeout=30,
            )
            statuses.append(r.status_code)
            assert r.status_code in (200, 503), r.text
            if r.status_code == 503:
                assert "Retry-After" in r.headers or b"Service Unavailable" in r.content
        for sock in idle:
            sock.close()
        time.sleep(3)  # the collector has closed its side by now (header_timeout_s)
        r = post_batch(c, batch_body(9))
        assert r.status_code == 200, r.text
        stored = ParquetStore(c.store).query("accel").height
        assert stored == 1 + statuses.count(200)
    finally:
        for sock in idle:
            sock.close()
        c.stop()
