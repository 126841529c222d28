"""The collector over real HTTP on loopback (a `neighborscope collector` subprocess)."""

from __future__ import annotations

import gzip
import json
import threading
import time

import httpx
import polars as pl
import pytest

from telemetry.batch import make_batch
from telemetry.schema import conform
from telemetry.store.parquet import ParquetStore

T0 = 1_700_000_000_000_000_000


def accel_frame(n: int = 3, t0: int = T0, device_count: int = 2) -> pl.DataFrame:
    rows = [(t0 + i * 10**9, f"gpu{d}") for i in range(n) for d in range(device_count)]
    return conform(
        pl.DataFrame(
            {
                "time": [r[0] for r in rows],
                "device": [r[1] for r in rows],
                "vendor": ["amd"] * len(rows),
                "temp_c": [40.0 + i for i in range(len(rows))],
                "power_w": [300.0] * len(rows),
            }
        ),
        "accel",
    )


def post(collector, payload, node="node1", **kw) -> httpx.Response:
    return httpx.post(f"{collector.url}/v1/batches", json=payload, headers=collector.headers(node), timeout=10, **kw)


def test_batch_is_stored_and_read_back(collector):
    r = post(collector, make_batch("node1", "boot-a", 0, {"accel": accel_frame()}))
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "stored", "node": "node1", "boot_id": "boot-a", "seq": 0, "rows": 6}
    stored = ParquetStore(collector.store).query("accel")
    assert stored.height == 6
    assert stored["node"].unique().to_list() == ["node1"]
    assert stored["temp_c"].to_list() == [40.0 + i for i in range(6)]


def test_missing_token_is_401(collector):
    r = httpx.post(f"{collector.url}/v1/batches", json=make_batch("node1", "b", 0, {"accel": accel_frame()}))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"


def test_wrong_token_is_401(collector):
    r = httpx.post(
        f"{collector.url}/v1/batches",
        json=make_batch("node1", "b", 0, {"accel": accel_frame()}),
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert r.status_code == 401


def test_token_writing_as_another_node_is_403(collector):
    r = post(collector, make_batch("node2", "b", 0, {"accel": accel_frame()}), node="node1")
    assert r.status_code == 403
    assert "node1" in r.json()["error"]["message"]


def test_row_tagged_with_another_node_is_403(collector):
    frame = accel_frame().with_columns(pl.lit("node2").alias("node"))
    r = post(collector, make_batch("node1", "b", 0, {"accel": frame}))
    assert r.status_code == 403


def test_bad_value_is_422_naming_field_and_sample_index(collector):
    payload = make_batch("node1", "b", 0, {"accel": accel_frame()})
    payload["frames"][0]["columns"]["temp_c"][4] = "hot"
    r = post(collector, payload)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["where"] == "frames[0].columns.temp_c[4]"
    assert "'hot'" in err["message"]


def test_unknown_field_is_422_naming_it(collector):
    payload = make_batch("node1", "b", 0, {"accel": accel_frame()})
    payload["frames"][0]["columns"]["temp_f"] = [1.0] * 6
    r = post(collector, payload)
    assert r.status_code == 422
    assert r.json()["error"]["where"] == "frames[0].columns.temp_f"


def test_missing_required_member_is_422_with_its_location(collector):
    r = post(collector, {"node": "node1", "boot_id": "b", "frames": []})
    assert r.status_code == 422
    assert r.json()["error"]["where"] == "seq"


def test_invalid_json_is_400(collector):
    r = httpx.post(
        f"{collector.url}/v1/batches",
        content=b'{"node": "node1", "boot',
        headers={**collector.headers("node1"), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed"


def test_body_over_limit_is_413(collector_factory, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[collector]\nmax_body_bytes = 4096\n[nodes.node1]\ntoken = "token-node1"\n')
    c = collector_factory(tokens={}, extra_args=["--config", str(config)])
    c.tokens = {"node1": "token-node1"}
    big = make_batch("node1", "b", 0, {"accel": accel_frame(n=200)})
    assert post(c, big).status_code == 413
    # a gzip body that inflates past the limit is refused too (no zip bombs)
    body = gzip.compress(json.dumps(big).encode())
    assert len(body) < 4096
    r = httpx.post(
        f"{c.url}/v1/batches",
        content=body,
        headers={**c.headers("node1"), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_gzip_body_is_accepted(collector):
    body = gzip.compress(json.dumps(make_batch("node1", "b", 7, {"accel": accel_frame()})).encode())
    r = httpx.post(
        f"{collector.url}/v1/batches",
        content=body,
        headers={**collector.headers("node1"), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


def test_replayed_batch_is_acknowledged_and_stored_once(collector):
    payload = make_batch("node1", "boot-a", 5, {"accel": accel_frame()})
    assert post(collector, payload).json()["status"] == "stored"
    assert post(collector, payload).json()["status"] == "duplicate"
    assert ParquetStore(collector.store).query("accel").height == 6


def test_bad_request_does_not_drop_good_ones_in_other_requests(collector):
    good = make_batch("node1", "b", 1, {"accel": accel_frame()})
    bad = make_batch("node1", "b", 2, {"accel": accel_frame(t0=T0 + 10**12)})
    bad["frames"][0]["columns"]["power_w"][0] = "x"
    assert post(collector, good).status_code == 200
    assert post(collector, bad).status_code == 422
    assert ParquetStore(collector.store).query("accel").height == 6


def test_line_protocol_write_v2_and_v1(collector):
    body = "accel,device=gpu3,vendor=nvidia temp_c=51.5,pcie_link_gen=5i 1700000000\ncpu,cpu=cpu0 usage_idle=99.5 1700000001\n"
    r = httpx.post(
        f"{collector.url}/api/v2/write?org=o&bucket=b&precision=s",
        content=body,
        headers={"Authorization": "Token token-node1"},
    )
    assert r.status_code == 204, r.text
    r = httpx.post(
        f"{collector.url}/write?db=x&p=token-node2", content="accel,device=gpu4 temp_c=60 1700000002000000000"
    )
    assert r.status_code == 204, r.text
    store = ParquetStore(collector.store)
    accel = store.query("accel")
    assert accel.select("node", "device", "temp_c").rows() == [("node1", "gpu3", 51.5), ("node2", "gpu4", 60.0)]
    assert accel["pcie_link_gen"][0] == 5
    assert accel["time"][0].timestamp() == 1_700_000_000
    cpu = store.query("cpu")
    assert cpu["usage_idle"].to_list() == [99.5]


def test_line_protocol_error_names_the_line(collector):
    body = "accel,device=gpu3 temp_c=51.5 1700000000000000000\naccel,device=gpu3 temp_c= 1700000000000000000\n"
    r = httpx.post(f"{collector.url}/api/v2/write", content=body, headers={"Authorization": "Token token-node1"})
    assert r.status_code == 400
    assert r.json()["error"]["where"] == "line 2"


def test_metrics_count_batches_and_rejects(collector):
    post(collector, make_batch("node1", "b", 0, {"accel": accel_frame()}))
    post(collector, make_batch("node2", "b", 0, {"accel": accel_frame()}))
    text = httpx.get(f"{collector.url}/metrics").text
    assert 'neighborscope_collector_batches_total{status="stored"} 1.0' in text
    assert 'neighborscope_collector_rejects_total{reason="forbidden"} 1.0' in text
    assert "neighborscope_collector_field_values_total 12.0" in text
    assert "neighborscope_collector_store_write_seconds_count" in text


def test_openapi_documents_every_endpoint(collector):
    spec = httpx.get(f"{collector.url}/openapi.json").json()
    assert {"/v1/batches", "/api/v2/write", "/write", "/healthz", "/metrics"} <= set(spec["paths"])
    responses = spec["paths"]["/v1/batches"]["post"]["responses"]
    assert {"200", "401", "403", "413", "422"} <= set(responses)


@pytest.mark.slow
def test_kill_9_mid_stream_loses_no_acknowledged_sample(collector_factory, tmp_path):
    c = collector_factory()
    acked: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        seq = 0
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                frame = accel_frame(n=5, t0=T0 + seq * 10 * 10**9)
                try:
                    r = client.post(
                        f"{c.url}/v1/batches",
                        json=make_batch("node1", "b", seq, {"accel": frame}),
                        headers=c.headers("node1"),
                    )
                except httpx.HTTPError:
                    continue  # not acknowledged: the agent would retry it
                if r.status_code == 200:
                    acked.append(seq)
                    seq += 1

    t = threading.Thread(target=stream)
    t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    c.kill()
    stop.set()
    t.join()
    assert len(acked) >= 40
    store = ParquetStore(c.store)
    times = store.query("accel", tags={"device": "gpu0"})["time"].dt.epoch("ns").to_list()
    expected = {T0 + s * 10 * 10**9 + i * 10**9 for s in acked for i in range(5)}
    assert expected <= set(times)
    assert len(times) == len(set(times))  # nothing stored twice


def test_nan_and_infinity_literals_are_accepted_as_absent(collector):
    body = (
        json.dumps(make_batch("node1", "b", 9, {"accel": accel_frame(n=1)}))
        .replace("40.0", "NaN")
        .replace("41.0", "Infinity")
    )
    r = httpx.post(
        f"{collector.url}/v1/batches",
        content=body,
        headers={**collector.headers("node1"), "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert ParquetStore(collector.store).query("accel")["temp_c"].to_list() == [None, None]


# ---- a value the store refuses: 422 with the store's message (issue 21) -----------------------------------------


@pytest.fixture
def app_server():
    """Serve a collector app (`create_app`) over real HTTP on a loopback port from a thread: for a store the
    collector's command line cannot open (a `VictoriaStore` without its queue, whose own checks refuse a
    value before any request to the server)."""
    import socket

    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_a_value_the_store_refuses_is_422_with_the_stores_message(app_server):
    from telemetry.collector.app import create_app
    from telemetry.collector.settings import CollectorSettings, NodeAuth
    from telemetry.store.victoria import MAX_TEXT_CHARS, VictoriaConfig, VictoriaStore

    store = VictoriaStore(VictoriaConfig.from_url("vm://127.0.0.1:9"))  # nothing listens: the refusal comes first
    url = app_server(create_app(store, CollectorSettings(nodes={"node1": NodeAuth(token="token-node1")})))
    pids = "1" * (MAX_TEXT_CHARS + 1)  # valid for the collector's rules, too long for VictoriaMetrics' labels
    now = time.time_ns()
    auth = {"Authorization": "Bearer token-node1"}
    doc = make_batch("node1", "boot", 0, {"tenant": [{"time": now, "group": "t1", "pids": pids, "cpu_pct": 1.0}]})
    r = httpx.post(f"{url}/v1/batches", json=doc, headers=auth, timeout=10)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["where"] == "tenant.pids[0]"
    assert "VictoriaMetrics store keeps at most" in err["message"]
    r = httpx.post(f"{url}/api/v2/write", content=f'tenant,group=t1 pids="{pids}" {now}', headers=auth, timeout=10)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["where"] == "tenant.pids[0]"
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'neighborscope_collector_rejects_total{reason="invalid"} 2.0' in metrics
