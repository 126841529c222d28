"""Transport and sender against a fake collector (a real loopback HTTP server): gzip, auth, retries, 4xx,
the collector's Retry-After."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.spool import MemorySpool
from agents.transport import Sender, Transport
from telemetry.batch import BatchIn, batch_frames, encode_batch


class FakeCollector:
    """A fake collector on a real loopback HTTP server: answers each POST with the next status of a
    script (then 200; an entry may be ``(status, headers)``), keeping the batches it stored and when each
    POST arrived."""

    def __init__(self, script: list[int | tuple[int, dict]] | None = None, drop_idle: bool = False) -> None:
        self.script = list(script or [])
        self.drop_idle = drop_idle  # close each connection after answering, without saying so
        self.received: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.arrived: list[float] = []  # time.monotonic() of each POST
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.arrived.append(time.monotonic())
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                status = fake.script.pop(0) if fake.script else 200
                status, extra = status if isinstance(status, tuple) else (status, {})
                if status == 200:
                    fake.received.append(json.loads(gzip.decompress(body)))
                    out = b'{"status": "stored"}'
                else:
                    out = json.dumps({"error": {"code": "bad", "message": f"status {status}", "where": "x"}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)
                self.close_connection = fake.drop_idle

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_collector():
    made: list[FakeCollector] = []

    def make(script: list[int | tuple[int, dict]] | None = None, drop_idle: bool = False) -> FakeCollector:
        made.append(FakeCollector(script, drop_idle))
        return made[-1]

    yield make
    for f in made:
        f.close()


def transport(fake: FakeCollector) -> Transport:
    return Transport(fake.url, "tok", timeout_s=5)


def rows(n: int = 1) -> dict:
    return {"host": [{"time": 1_700_000_000_000_000_000 + i, "load1": float(i)} for i in range(n)]}


def test_encoded_batch_is_gzip_json_the_collector_accepts():
    body = encode_batch(
        "node1",
        "boot",
        7,
        {"host": rows(3)["host"], "accel": [{"time": 1, "device": "gpu0", "power_w": None, "temp_c": 40}]},
    )
    doc = json.loads(gzip.decompress(body))
    frames = batch_frames(BatchIn.model_validate(doc))
    assert frames["host"].height == 3 and doc["seq"] == 7
    assert frames["accel"]["power_w"].to_list() == [None]  # absent stays absent
    assert "power_w" not in doc["frames"][1]["columns"]  # an all-absent column is not sent at all


def test_post_sends_gzip_with_the_bearer_token(fake_collector):
    fake = fake_collector()
    assert transport(fake).post(encode_batch("n", "b", 0, rows())).outcome == "ok"
    assert fake.headers[0]["authorization"] == "Bearer tok"
    assert fake.headers[0]["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (503, "retry"),
        (500, "retry"),
        (429, "retry"),
        (401, "retry"),
        (422, "rejected"),
        (400, "rejected"),
        (413, "rejected"),
    ],
)
def test_answers_are_classified(fake_collector, status, outcome):
    result = transport(fake_collector([status])).post(b"x")
    assert result.outcome == outcome
    assert result.message == f"bad: status {status} (at x)"


def test_connection_errors_are_retried():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = Transport(f"http://127.0.0.1:{port}", None, timeout_s=2).post(b"x")
    assert result.outcome == "retry" and "Connection" in result.message


def test_a_bad_collector_url_is_a_config_error():
    from telemetry.errors import ConfigError

    with pytest.raises(ConfigError, match=r"collector\.url"):
        Transport("ftp://x", None)


def test_the_connection_is_kept_alive_and_reopened_after_the_server_closes_it(fake_collector):
    fake = fake_collector(drop_idle=True)  # like a server or proxy timing out idle connections
    t = transport(fake)
    for seq in range(3):
        assert t.post(encode_batch("n", "b", seq, rows())).outcome == "ok"
    assert [d["seq"] for d in fake.received] == [0, 1, 2]


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def run_until(sender: Sender, cond) -> None:
    """Run the sender's thread until ``cond()`` holds."""
    sender.start()
    try:
        wait_for(cond)
    finally:
        sender.stop()


def test_sender_replays_in_order_after_5xx_with_increasing_seq(fake_collector):
    fake = fake_collector([503, 503, 500])
    s = Sender("node1", MemorySpool(), transport(fake), backoff_min_s=0.01, backoff_max_s=0.02)
    for i in range(3):
        s.submit(rows(i + 1))
    run_until(s, lambda: len(fake.received) == 3)
    assert [d["seq"] for d in fake.received] == [0, 1, 2]
    assert len(s.spool) == 0 and s.sent_total == 3


def test_a_4xx_is_logged_with_the_collector_message_and_not_retried_forever(fake_collector, caplog):
    fake = fake_collector([422])
    s = Sender("node1", MemorySpool(), transport(fake), backoff_min_s=0.01)
    s.submit(rows())
    s.submit(rows())
    run_until(s, lambda: len(fake.received) == 1)
    assert s.rejected_total == 1 and fake.received[0]["seq"] == 1
    assert "bad: status 422 (at x)" in caplog.text


def test_a_wrong_token_is_retried_a_few_times_then_given_up(fake_collector):
    fake = fake_collector([401] * 3)
    s = Sender("node1", MemorySpool(), transport(fake), backoff_min_s=0.01, backoff_max_s=0.01, auth_attempts=3)
    s.submit(rows())
    run_until(s, lambda: s.rejected_total == 1)
    assert len(fake.headers) == 3 and len(s.spool) == 0


def test_empty_rows_make_no_batch():
    s = Sender("node1", MemorySpool(), None)
    assert s.submit({"host": []}) is None and len(s.spool) == 0


@pytest.mark.parametrize("status", [429, 503])
def test_the_collectors_retry_after_is_read_from_429_and_503(fake_collector, status):
    result = transport(fake_collector([(status, {"Retry-After": "7"})])).post(b"x")
    assert (result.outcome, result.retry_after_s) == ("retry", 7.0)


def test_retry_after_of_other_answers_is_not_read(fake_collector):
    fake = fake_collector([(500, {"Retry-After": "7"}), 503])
    assert transport(fake).post(b"x").retry_after_s is None
    assert transport(fake).post(b"x").retry_after_s is None  # 503 without the header


@pytest.mark.parametrize("status", [429, 503])
def test_the_sender_waits_what_the_collectors_retry_after_says(fake_collector, status):
    fake = fake_collector([(status, {"Retry-After": "1"})])
    s = Sender("node1", MemorySpool(), transport(fake), backoff_min_s=0.01, backoff_max_s=0.02)
    s.submit(rows())
    run_until(s, lambda: len(fake.received) == 1)
    waited = fake.arrived[1] - fake.arrived[0]
    assert waited >= 0.95  # its own backoff would have come back after ~0.01 s
