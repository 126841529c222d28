"""The VictoriaMetrics store beyond the shared contract, on a real VictoriaMetrics server: text fields and booleans
round-trip (companion series with the text in labels), events of one millisecond stay apart, a replayed body is
counted once (with and without the server's deduplication), downsampling agrees with the embedded store, the queue
survives a server restart, and URLs and bad input give one-line errors."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
import polars as pl
import pytest

from telemetry.errors import ConfigError, SchemaError
from telemetry.schema import MEASUREMENTS, conform
from telemetry.store.base import BatchKey
from telemetry.store.factory import open_store
from telemetry.store.parquet import ParquetStore
from telemetry.store.victoria import VictoriaConfig, VictoriaStore, decode_text, encode_text
from tests.telemetry.store.conftest import VICTORIA_PATHS, VictoriaServer, require_binary
from tests.telemetry.store.test_contract import T0, frame

pytestmark = pytest.mark.influx

AROUND = {"start": T0 - timedelta(hours=1), "end": T0 + timedelta(hours=1)}


def direct(url: str) -> VictoriaStore:
    return VictoriaStore(VictoriaConfig.from_url(url))


def flushed(store: VictoriaStore) -> VictoriaStore:
    store.sync()
    return store


def test_text_fields_and_booleans_round_trip(vm_url):
    metadata = json.dumps({"model": "llama", "note": 'a "quoted", spaced = text\nwith a line break, 100% \\ done'})
    events = conform(
        pl.DataFrame(
            {
                "time": [T0, T0, T0 + timedelta(seconds=60)],
                "node": ["n1"] * 3,
                "run_id": ["run-1"] * 3,
                "event": ["start", "summary", "end"],
                "tool": ["aiperf", None, "aiperf"],
                "command": ["aiperf profile --url http://x:8000", None, ""],
                "metadata_json": [None, metadata + "é€😀" + "x" * 2500, None],
                "exit_code": [None, None, 0],
            }
        ),
        "run_event",
    )
    store = direct(vm_url)
    store.write("run_event", events)
    got = flushed(store).query("run_event")
    assert got.equals(events.sort(["time", *MEASUREMENTS["run_event"].tags], nulls_last=True))
    assert got.filter(pl.col("event") == "end")["command"].to_list() == [""]  # empty text is not absent
    requests = conform(
        pl.DataFrame(
            {
                "time": [T0] * 3,  # dispatched in the same nanosecond
                "node": ["n1"] * 3,
                "run_id": ["run-1"] * 3,
                "request_index": [0, 1, 2],
                "ttft_ms": [10.0, 11.0, 12.0],
                "success": [True, False, True],
                "error": [None, "HTTP 500: upstream, timed out", None],
                "timing": ["wall_clock"] * 3,
            }
        ),
        "bench_request",
    )
    store.write("bench_request", requests)
    got = flushed(store).query("bench_request").sort("request_index")
    assert got["request_index"].to_list() == [0, 1, 2]  # three rows, not one: the k-th moved k ms later
    assert got["time"].to_list() == [T0, T0 + timedelta(milliseconds=1), T0 + timedelta(milliseconds=2)]
    assert got["success"].to_list() == [True, False, True]
    assert got["error"].to_list() == [None, "HTTP 500: upstream, timed out", None]
    assert got["timing"].to_list() == ["wall_clock"] * 3
    store.close()


def test_text_encoding_is_reversible_and_fits_a_label():
    text = "a%b\\c\nd\te\x7f" + "é" * 1500
    chunks = encode_text(text)
    assert decode_text(chunks) == text
    assert all(len(c.encode()) <= 4096 for c in chunks)
    assert all("\n" not in c and "\\" not in c for c in chunks)


def test_a_replayed_body_is_counted_once_with_server_dedup(vm_url):
    store = direct(vm_url)
    body = store.encode("accel", frame())
    store.write_lines(body)
    store.write_lines(body)  # the crash window: sent, not noted as sent, sent again
    flushed(store)
    assert store.server_dedup()
    assert store.query("accel").height == 6
    count = store.downsample("accel", "2s", fields=["temp_c"], group_by=[], agg="count", **AROUND)
    assert count["temp_c"].to_list() == [2, 2, 2]
    store.close()


def test_without_server_dedup_reads_stay_exact_from_raw_samples(own_victoria, caplog):
    store = direct(f"vm://127.0.0.1:{own_victoria.port}/d?artifacts=unused")
    body = store.encode("accel", frame())
    store.write_lines(body)
    store.write_lines(body)
    flushed(store)
    raw = own_victoria.export('{__name__="accel_temp_c"}')
    assert sum(len(s["values"]) for s in raw) == 12  # the server holds both copies
    assert not store.server_dedup()
    assert store.query("accel").height == 6
    count = store.downsample("accel", "2s", fields=["temp_c"], group_by=[], agg="count", **AROUND)
    assert count["temp_c"].to_list() == [2, 2, 2]
    assert "without -dedup.minScrapeInterval=1ms" in caplog.text
    forced = direct(f"vm://127.0.0.1:{own_victoria.port}/d?downsample=server")
    doubled = forced.downsample("accel", "2s", fields=["temp_c"], group_by=[], agg="count", **AROUND)
    assert doubled["temp_c"].to_list() == [4, 4, 4]  # why the store does not reduce on such a server
    store.close()
    forced.close()


def fleet_frame() -> pl.DataFrame:
    """Two nodes x 3 devices, 10 minutes at 1 Hz, with absent values."""
    n = 600
    rows = []
    for node in ("n1", "n2"):
        for d in range(3):
            for i in range(n):
                rows.append(
                    {
                        "time": T0 + timedelta(seconds=i),
                        "node": node,
                        "device": f"gpu{d}",
                        "group": f"hive{d % 2}",
                        "temp_c": None if (i + d) % 7 == 0 else 40.0 + ((i * 37 + d * 11) % 23) / 4,
                        "power_w": 100.0 + ((i * 13 + d) % 17) * 2.5,
                    }
                )
    return conform(pl.DataFrame(rows), "accel")


@pytest.mark.parametrize("mode", ["server", "raw"])
@pytest.mark.parametrize(
    ("agg", "every", "by"),
    [
        ("mean", "1m", ["node"]),
        ("max", "7s", []),
        ("min", "30s", ["device"]),
        ("sum", "1m", None),
        ("count", "45s", ["group"]),
        ("p95", "1m", ["node"]),
        ("median", "2m", []),
        ("first", "1m", ["device"]),
        ("last", "1m", ["device"]),
    ],
)
def test_downsample_agrees_with_the_embedded_store(vm_url, tmp_path, mode, agg, every, by):
    data = fleet_frame()
    reference = ParquetStore(tmp_path / "ref")
    reference.write("accel", data)
    store = open_store(f"{vm_url}&downsample={mode}")
    store.write("accel", data)
    assert store.flush(60)
    # a range that starts and ends inside an interval: partial first and last intervals
    window = {"start": T0 + timedelta(seconds=13, milliseconds=500), "end": T0 + timedelta(seconds=527)}
    args = ("accel", every, window["start"], window["end"], {"node": ["n1", "n2"]}, ["temp_c", "power_w"], agg, by)
    want = reference.downsample(*args)
    got = store.downsample(*args)
    assert got.columns == want.columns
    assert got.schema == want.schema
    assert got.height == want.height
    for col in want.columns:
        if want.schema[col] == pl.Float64:
            assert got[col].to_list() == pytest.approx(want[col].to_list(), rel=1e-9, nan_ok=True), col
        else:
            assert got[col].to_list() == want[col].to_list(), col
    store.close()
    reference.close()


def test_measurements_with_underscores_and_outside_the_schema(vm_url):
    store = direct(vm_url)
    host_core = conform(pl.DataFrame({"time": [T0], "node": ["n1"], "core": ["3"], "util_pct": [55.0]}), "host_core")
    store.write("host_core", host_core)
    host = conform(pl.DataFrame({"time": [T0], "node": ["n1"], "load1": [1.5]}), "host")
    store.write("host", host)
    cpu = pl.DataFrame(
        {"time": [T0, T0 + timedelta(seconds=1)], "host": ["h1", "h1"], "usage_idle": [97.5, 96.0]}
    ).with_columns(pl.col("time").dt.replace_time_zone("UTC"))
    store.write("cpu", cpu)
    flushed(store)
    assert store.measurements() == ["cpu", "host", "host_core"]
    assert store.query("host")["load1"].to_list() == [1.5]
    assert "util_pct" not in store.query("host").columns  # host_core's fields are not host's
    assert store.query("host_core")["util_pct"].to_list() == [55.0]
    got = store.query("cpu")
    assert got.columns == ["time", "host", "usage_idle"]
    assert got["usage_idle"].to_list() == [97.5, 96.0]
    assert store.time_bounds("cpu") == (T0, T0 + timedelta(seconds=1))
    assert set(store.series()["measurement"]) == {"cpu", "host", "host_core"}
    store.close()


def test_tag_filters_with_regex_and_quote_characters_match_exactly(vm_url):
    store = direct(vm_url)
    names = ["gpu.0", "gpu10", 'a"b', "x|y", "x", "(z)*", "back\\slash"]
    data = pl.concat([frame(1).with_columns(pl.lit(n).alias("device")) for n in names])
    store.write("accel", data)
    flushed(store)
    for wanted in (["gpu.0", "x|y"], ['a"b'], ["(z)*", "back\\slash"], ["x"]):
        got = store.query("accel", tags={"device": wanted})
        assert sorted(got["device"].to_list()) == sorted(wanted), wanted
        down = store.downsample(
            "accel", "1h", tags={"device": wanted}, fields=["temp_c"], group_by=["device"], **AROUND
        )
        assert sorted(down["device"].to_list()) == sorted(wanted), wanted
    assert store.query("accel", tags={"device": []}).height == 0
    store.close()


def test_reserved_labels_and_bad_values_are_refused_before_the_ack(vm_url):
    store = open_store(vm_url)
    bad = pl.DataFrame({"time": [T0], "db": ["other"], "v": [1.0]}).with_columns(
        pl.col("time").dt.replace_time_zone("UTC")
    )
    with pytest.raises(SchemaError, match="label name the VictoriaMetrics store keeps"):
        store.write("custom", bad)
    future = frame(t0=datetime.now(UTC) + timedelta(days=5))
    with pytest.raises(SchemaError, match="more than 2 days ahead"):
        store.write("accel", future)
    long = conform(
        pl.DataFrame({"time": [T0], "run_id": ["r"], "event": ["summary"], "metadata_json": ["x" * 40_000]}),
        "run_event",
    )
    with pytest.raises(SchemaError, match=r"run_event\.metadata_json\[0\]"):
        store.write("run_event", long)
    store.close()


def test_samples_older_than_the_retention_are_refused_not_dropped(tmp_path):
    """VictoriaMetrics drops such samples with a 204: the store refuses them before it acknowledges."""
    binary = require_binary("victoria-metrics", "NEIGHBORSCOPE_VICTORIA_METRICS", VICTORIA_PATHS)
    server = VictoriaServer(binary, tmp_path / "vm", retention="30d").start()
    try:
        store = open_store(f"vm://127.0.0.1:{server.port}/r?queue={tmp_path / 'q'}")
        recent = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
        store.write("accel", frame(t0=recent))
        with pytest.raises(SchemaError, match=r"accel\.time\[0\]: time older than the server's -retentionPeriod"):
            store.write("accel", frame(t0=recent - timedelta(days=60)))
        assert store.flush(30)
        assert store.query("accel").height == 6
        store.close()
    finally:
        server.stop()


def test_series_are_listed_within_the_servers_series_limit(tmp_path):
    """200 devices x 4 fields are 800 series, over a server's -search.maxSeries of 500: asked field by field."""
    binary = require_binary("victoria-metrics", "NEIGHBORSCOPE_VICTORIA_METRICS", VICTORIA_PATHS)
    server = VictoriaServer(binary, tmp_path / "vm", extra=("-search.maxSeries=500",)).start()
    try:
        store = direct(f"vm://127.0.0.1:{server.port}/s")
        many = pl.concat([frame(4).with_columns(pl.lit(f"gpu{d:03d}").alias("device")) for d in range(200)])
        store.write("accel", many)
        flushed(store)
        whole = httpx.post(f"{server.base_url}/api/v1/series", data={"match[]": '{db="s"}', "start": "1"})
        assert whole.status_code == 422  # one request for every series is refused (the server names its limit)
        series = store.series("accel")
        assert series.height == 200
        assert series["device"].to_list() == [f"gpu{d:03d}" for d in range(200)]
        everything = store.series()
        assert everything.columns[0] == "measurement" and everything.height == 200
        store.close()
    finally:
        server.stop()


def test_the_queue_keeps_writes_while_the_server_is_down(own_victoria, tmp_path):
    url = f"vm://127.0.0.1:{own_victoria.port}/q?queue={tmp_path / 'q'}&retry_max_s=0.5&timeout=2"
    store = open_store(url)
    own_victoria.stop()
    assert store.write_batch(BatchKey("n1", "b", 1), {"accel": frame()})
    assert not store.flush(1.5)  # acknowledged, still queued
    assert store.status()["last_error"]
    own_victoria.restart_same_port()
    assert store.flush(30)
    assert store.query("accel").height == 6
    store.close()


def test_artifacts_stay_on_local_disk(vm_url, tmp_path):
    store = open_store(vm_url)
    tokens = pl.DataFrame({"request_index": [0, 1], "itl_ms": [4.0, 5.0]})
    path = store.write_artifact("tokens/run-1", tokens)
    assert str(path).startswith(str(tmp_path / "vm-art"))
    assert store.read_artifact("tokens/run-1").equals(tokens)
    store.close()


def test_urls():
    single = VictoriaConfig.from_url("vm://u:p%40ss@vm.example:8428/fleet?batch_bytes=65536&gzip=0&token=T")
    assert single.write_url == "http://vm.example:8428/write"
    assert single.read_url == "http://vm.example:8428"
    assert (single.db, single.username, single.password, single.gzip) == ("fleet", "u", "p@ss", False)
    assert "p@ss" not in single.redacted() and "T" not in single.redacted().split("?")[-1].replace("token", "")
    assert VictoriaConfig.from_url("vm://127.0.0.1:8428").db == "neighborscope"
    assert VictoriaConfig.from_url("vm://127.0.0.1").gzip is False
    assert VictoriaConfig.from_url("vms://vm.example/x").read_url == "https://vm.example:443"
    cluster = VictoriaConfig.from_url("vmcluster://?insert=http://ins:8480&select=http://sel:8481/&tenant=7:2&db=fleet")
    assert cluster.write_url == "http://ins:8480/insert/7:2/influx/write"
    assert cluster.read_url == "http://sel:8481/select/7:2/prometheus"
    assert cluster.admin_url is None and cluster.cluster
    assert cluster.redacted() == "vmcluster://?insert=http://ins:8480&select=http://sel:8481&tenant=7:2&db=fleet"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("vm://h:8428/db?nope=1", "unknown parameter"),
        ("vm://h:x/db", "bad port"),
        ("vm:///db", "no host"),
        ("vm://h/db?downsample=fast", "downsample must be"),
        ("vmcluster://?select=http://s:8481", "name the insert URL"),
        ("vmcluster://?insert=ins:8480&select=http://s:8481", "insert must be an http"),
        ("vmcluster://?insert=http://i:8480&select=http://s:8481&tenant=x", "tenant must be"),
    ],
)
def test_bad_urls_are_one_line_errors(url, message):
    with pytest.raises(ConfigError, match=message) as err:
        open_store(url)
    assert "\n" not in str(err.value)


def test_an_unreachable_server_is_unavailable_not_a_traceback():
    store = direct("vm://127.0.0.1:9/db?timeout=1")
    from telemetry.errors import StoreUnavailableError

    with pytest.raises(StoreUnavailableError, match="unreachable"):
        store.query("accel")
    store.close()


def test_vm_answers_what_the_store_sends_on_the_wire(victoria, vm_db):
    """The layout Grafana users see: ``accel_temp_c{db, measurement, node, device, ...}``."""
    store = direct(f"vm://127.0.0.1:{victoria.port}/{vm_db}")
    store.write("accel", frame())
    flushed(store)
    series = victoria.export(f'{{__name__="accel_temp_c",db="{vm_db}"}}')
    assert {s["metric"]["device"] for s in series} == {"gpu0", "gpu1"}
    assert all(s["metric"]["measurement"] == "accel" for s in series)
    r = httpx.get(
        f"{victoria.base_url}/api/v1/label/__name__/values", params={"match[]": f'{{db="{vm_db}"}}', "start": "1"}
    )
    assert "accel_throttle_thermal" in r.json()["data"]
    store.close()


class ClusterPaths(http.server.BaseHTTPRequestHandler):
    """The URL layout of a VictoriaMetrics cluster (vminsert ``/insert/<tenant>/influx/write``, vmselect
    ``/select/<tenant>/prometheus/api/v1/...``) in front of the single-node server, which serves the same API
    without the prefixes (Debian packages no cluster binaries). Real HTTP both ways; tenant 3 only."""

    target: ClassVar[str] = ""
    seen: ClassVar[list[str]] = []

    def _forward(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/insert/3/influx/write":
            upstream = "/write"
        elif path.startswith("/select/3/prometheus/"):
            upstream = path.removeprefix("/select/3/prometheus")
        elif path in ("/flags", "/health"):
            upstream = path
        else:
            self.send_error(400, f"not a cluster path: {path}")
            return
        self.seen.append(path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding")}
        resp = httpx.request(
            self.command, f"{self.target}{upstream}" + (f"?{query}" if query else ""), content=body, headers=headers
        )
        self.send_response(resp.status_code)
        self.send_header("Content-Length", str(len(resp.content)))
        self.end_headers()
        self.wfile.write(resp.content)

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def log_message(self, *args) -> None:
        pass


def test_the_cluster_url_layout_end_to_end(victoria, vm_db, tmp_path):
    ClusterPaths.target, ClusterPaths.seen = victoria.base_url, []
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ClusterPaths)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    here = f"http://127.0.0.1:{proxy.server_address[1]}"
    try:
        url = f"vmcluster://?insert={here}&select={here}&tenant=3&db={vm_db}&queue={tmp_path / 'q'}"
        store = open_store(url)
        store.write("accel", frame())
        assert store.flush(30)
        httpx.get(f"{victoria.base_url}/internal/force_flush")  # vmstorage's, which the store cannot reach
        assert store.query("accel").equals(frame().sort("time"))
        assert store.series("accel").height == 2 and store.measurements() == ["accel"]
        assert store.time_bounds("accel") == (T0, T0 + timedelta(seconds=5))
        mean = store.downsample("accel", "2s", fields=["temp_c"], group_by=[], **AROUND)
        assert mean["temp_c"].to_list() == [40.5, 42.5, 44.5]
        assert store.remote.server_dedup()  # vmselect's /flags
        store.close()
    finally:
        proxy.shutdown()
    assert "/insert/3/influx/write" in ClusterPaths.seen
    assert {p for p in ClusterPaths.seen if p.startswith("/select/")} >= {
        "/select/3/prometheus/api/v1/export",
        "/select/3/prometheus/api/v1/query_range",
        "/select/3/prometheus/api/v1/query",
        "/select/3/prometheus/api/v1/series",
    }
