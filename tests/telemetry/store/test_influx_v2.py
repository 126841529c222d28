"""The v2 write path (influxdb-client's synchronous WriteApi on ``/api/v2/write``) against a real server that
implements it: VictoriaMetrics. Points are checked through its export API (VictoriaMetrics keeps
milliseconds and turns each field into a series named ``<measurement>_<field>``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from telemetry.errors import InfluxUnavailableError, InfluxWriteRejectedError
from telemetry.schema import conform
from telemetry.store.base import BatchKey
from telemetry.store.factory import open_store
from telemetry.store.influx import InfluxConfig, InfluxStore
from telemetry.store.queued import QueuedStore

pytestmark = pytest.mark.influx

T0 = 1_763_600_000_123_456_789


def frame(node: str, n: int = 50) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "time": [T0 + i * 1_000_000_000 for i in range(n)],
                "node": [node] * n,
                "device": ["gpu 0" if i % 2 else "gpü,1" for i in range(n)],
                "temp_c": [40.0 + i / 8 for i in range(n)],
                "power_w": [None if i % 5 == 0 else 300.5 + i for i in range(n)],
                "pcie_link_gen": [5] * n,
                "throttle_power": [i % 3 == 0 for i in range(n)],
            }
        ),
        "accel",
    )


def exported(victoria, node: str, field: str) -> dict[str, dict[int, float]]:
    """device -> {time ms: value} of one field."""
    out: dict[str, dict[int, float]] = {}
    for series in victoria.export(f'{{__name__="accel_{field}",node="{node}"}}'):
        d = out.setdefault(series["metric"]["device"], {})
        d.update(zip(series["timestamps"], series["values"], strict=True))
    return out


@pytest.fixture
def v2_url(victoria, tmp_path) -> str:
    return f"influx2://127.0.0.1:{victoria.port}/?org=o&bucket=neighborscope&token=T&queue={tmp_path / 'q'}"


def expected(sent: pl.DataFrame, field: str) -> dict[str, dict[int, float]]:
    rows = sent.select("device", pl.col("time").dt.epoch("ms").alias("ms"), pl.col(field).cast(pl.Float64))
    out: dict[str, dict[int, float]] = {}
    for device, ms, value in rows.drop_nulls().iter_rows():
        out.setdefault(device, {})[ms] = value
    return out


def test_v2_url_writes_through_influxdb_client(v2_url):
    store = open_store(v2_url)
    assert isinstance(store, QueuedStore)
    assert store.remote.config.api == "v2"
    store.close()


def test_points_arrive_through_api_v2_write(victoria, v2_url):
    store = open_store(v2_url)
    sent = frame("v2-node-a")
    try:
        assert store.write_batch(BatchKey("v2-node-a", "boot", 0), {"accel": sent[:25]})
        assert store.write_batch(BatchKey("v2-node-a", "boot", 1), {"accel": sent[25:]})
        assert store.flush(30), store.status()
        assert store.status()["sent_lines"] == 50
    finally:
        store.close()
    for field in ("temp_c", "power_w", "pcie_link_gen", "throttle_power"):
        assert exported(victoria, "v2-node-a", field) == expected(sent, field), field


def test_direct_v2_write_without_queue(victoria):
    store = InfluxStore(InfluxConfig.from_url(f"influx2://127.0.0.1:{victoria.port}/?bucket=b&token=T&gzip=0"))
    sent = frame("v2-node-b", n=10)
    store.write("accel", sent)
    store.close()
    assert exported(victoria, "v2-node-b", "temp_c") == expected(sent, "temp_c")


class _FakeV2(BaseHTTPRequestHandler):
    """FakeInfluxV2: answers /api/v2/write with the next canned (status, headers) of the server."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, headers = self.server.answers.pop(0)  # type: ignore[attr-defined]
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        body = b'{"code":"invalid","message":"unable to parse"}' if status == 400 else b""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_v2():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeV2)
    server.answers, server.paths = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_v2_busy_server_gives_retry_after_through_influxdb_client(fake_v2):
    fake_v2.answers = [(429, {"Retry-After": "3"})]
    store = InfluxStore(InfluxConfig.from_url(f"influx2://127.0.0.1:{fake_v2.server_port}/?bucket=b&org=o&token=T"))
    with pytest.raises(InfluxUnavailableError) as err:
        store.write_lines(b"m v=1 1\n")
    assert err.value.retry_after_s == 3.0
    assert fake_v2.paths[0].startswith("/api/v2/write?")
    store.close()


def test_v2_refused_body_is_bisected_to_the_bad_line(fake_v2):
    fake_v2.answers = [(400, {}), (204, {}), (400, {})]  # whole body, good half, bad half (one line)
    store = InfluxStore(InfluxConfig.from_url(f"influx2://127.0.0.1:{fake_v2.server_port}/?bucket=b&token=T"))
    with pytest.raises(InfluxWriteRejectedError) as err:
        store.write_lines(b"m v=1 1\nm v=oops 2\n")
    assert [r.line for r in err.value.rejected] == ["m v=oops 2"]
    store.close()
