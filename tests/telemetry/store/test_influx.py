"""The InfluxDB store against a real ``influxd`` (Debian's 1.x): writes, InfluxQL reads, errors, init."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import polars as pl
import pytest

from telemetry.errors import ConfigError, InfluxUnavailableError, InfluxWriteRejectedError, StoreError
from telemetry.schema import ACCEL, conform
from telemetry.store.base import BatchKey
from telemetry.store.factory import open_store
from telemetry.store.influx import InfluxConfig, InfluxStore, quote_string, where_clause
from telemetry.store.queued import QueuedStore

pytestmark = pytest.mark.influx

T0 = 1_763_600_000_123_456_789  # ns precision on purpose

# tag values that need escaping in line protocol or quoting in InfluxQL (a trailing backslash cannot be
# written in line protocol at all: InfluxDB 1.x reads "\," as an escaped comma)
HOSTILE = [
    "gpu,0",
    "gpu 1",
    "gpu=2",
    'q"uote',
    "it's",
    "back\\slash",
    "ünïcødé 🚀",
    "x' OR 'a'='a",
    "a\\,b",
]


def accel_frame(seed: int = 0, n: int = 20, node: str = "node-1", t0: int = T0) -> pl.DataFrame:
    """Every accel field, with absent values (null and NaN) and hostile tag values."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {
        "time": [t0 + i * 1_000_000_007 + (i % 3) for i in range(n)],
        "node": [node] * n,
        "device": [HOSTILE[i % len(HOSTILE)] for i in range(n)],
        "vendor": ["nvidia"] * n,
        "model": ["H100 80GB HBM3"] * n,
        "group": [None if i % 4 == 0 else "tenant ä" for i in range(n)],
        "pci_bus": ["0000:17:00.0"] * n,
    }
    for spec in ACCEL.fields:
        if spec.kind == "float":
            values = rng.normal(100, 50, n).tolist()
            values[1] = float("nan")
            values[2] = None if spec.name != "temp_c" else 42.0  # a line needs one field
            values[3] = 1e-300
            values[4] = 0.1 + 0.2
            cols[spec.name] = values
        elif spec.kind == "int":
            cols[spec.name] = [None if i == 2 else int(v) for i, v in enumerate(rng.integers(-(2**62), 2**62, n))]
        elif spec.kind == "bool":
            cols[spec.name] = [None if i == 2 else bool(i % 2) for i in range(n)]
    return conform(pl.DataFrame(cols, strict=False), "accel")


def store_for(url: str) -> InfluxStore:
    return InfluxStore(InfluxConfig.from_url(url))


def test_every_field_tag_and_timestamp_round_trips(influx_url):
    store = store_for(influx_url)
    sent = accel_frame()
    assert store.write("accel", sent) == sent.height
    got = store.query("accel")
    assert got.schema == sent.schema
    assert got.equals(sent.sort("time"))
    assert got["time"].dt.epoch("ns").to_list() == sorted(sent["time"].dt.epoch("ns").to_list())
    assert math.isclose(got["temp_c"][4], 0.1 + 0.2, rel_tol=0) and got["temp_c"][4] == 0.1 + 0.2


def test_nan_and_null_fields_come_back_absent(influx_url):
    store = store_for(influx_url)
    store.write("accel", accel_frame())
    got = store.query("accel")
    assert got["power_w"][1] is None and got["power_w"][2] is None
    assert got["throttle_power"][2] is None and got["pcie_link_gen"][2] is None


def test_text_fields_with_quotes_backslashes_and_unicode_round_trip(influx_url):
    store = store_for(influx_url)
    messages = ['said "hi"', "c:\\path\\", 'ünï 🚀 \\"', "", "tab\there"]
    sent = conform(
        pl.DataFrame(
            {
                "time": [T0 + i for i in range(len(messages))],
                "node": ["n1"] * len(messages),
                "kind": ["xid"] * len(messages),
                "code": list(range(len(messages))),
                "message": messages,
            }
        ),
        "accel_event",
    )
    store.write("accel_event", sent)
    assert store.query("accel_event")["message"].to_list() == messages


def test_time_range_and_tag_filters_run_in_influxql(influx_url):
    store = store_for(influx_url)
    sent = accel_frame()
    store.write("accel", sent)
    start = datetime.fromtimestamp(T0 // 10**9, UTC) + timedelta(seconds=3)
    end = start + timedelta(seconds=5)
    got = store.query("accel", start=start, end=end, tags={"device": ["gpu,0", "it's"]}, fields=["temp_c"])
    want = sent.filter(
        (pl.col("time") >= start) & (pl.col("time") < end) & pl.col("device").is_in(["gpu,0", "it's"])
    ).select(got.columns)
    assert got.equals(want.sort("time"))
    assert "power_w" not in got.columns


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_tag_value_matches_only_itself(influx_url, value):
    store = store_for(influx_url)
    sent = accel_frame()
    store.write("accel", sent)
    got = store.query("accel", tags={"device": value})
    assert got.height == sent.filter(pl.col("device") == value).height > 0
    assert set(got["device"]) == {value}


def test_injection_attempt_in_a_tag_filter_matches_nothing(influx_url):
    store = store_for(influx_url)
    store.write("accel", accel_frame())
    evil = ["' OR time > 0 OR 'a'='a", "x') OR (1=1", "\\' OR 1=1 --", "gpu,0'; DROP DATABASE x"]
    for value in evil:
        assert store.query("accel", tags={"device": value}).height == 0
    assert store.query("accel").height > 0  # the database is still there


def test_quoting_escapes_quotes_and_backslashes():
    assert quote_string("a'b\\c") == "'a\\'b\\\\c'"
    assert where_clause(tags={'we"ird': "v"}) == ' WHERE "we\\"ird" = \'v\''


def test_downsampling_aggregates_in_influxdb(influx_url):
    store = store_for(influx_url)
    n = 60
    frame = conform(
        pl.DataFrame(
            {
                "time": [T0 + i * 10**9 for i in range(n)],
                "node": ["n1"] * n,
                "device": ["gpu0"] * n,
                "temp_c": [float(i) for i in range(n)],
                "power_w": [float(i % 10) for i in range(n)],
            }
        ),
        "accel",
    )
    store.write("accel", frame)
    mean = store.downsample("accel", "10s", fields=["temp_c", "power_w"], group_by=["device"])
    assert mean.columns == ["time", "device", "temp_c", "power_w"]
    assert mean["device"].unique().to_list() == ["gpu0"]
    # interval boundaries are aligned to the epoch: compute the expectation the same way
    want = (
        frame.with_columns(pl.col("time").dt.truncate("10s"))
        .group_by("time")
        .agg(pl.col("temp_c").mean(), pl.col("power_w").mean())
        .sort("time")
    )
    assert mean["temp_c"].to_list() == want["temp_c"].to_list()
    assert mean["time"].to_list() == want["time"].to_list()
    peak = store.downsample("accel", 60, fields=["power_w"], agg="max", group_by=[])
    assert peak["power_w"].max() == 9.0
    p95 = store.downsample("accel", "1h", fields=["temp_c"], agg="p95", group_by=[])
    assert p95.height == 1 and 54 <= p95["temp_c"][0] <= 57


def test_field_type_conflict_reports_the_line_and_keeps_the_rest(influx_url):
    store = store_for(influx_url)
    store.write_lines(b"custom,host=a v=1.5 1\n")
    body = b"custom,host=b v=2.5 2\ncustom,host=c v=3i 3\ncustom,host=d v=4.5 4\n"
    with pytest.raises(InfluxWriteRejectedError) as err:
        store.write_lines(body)
    assert [r.line for r in err.value.rejected] == ["custom,host=c v=3i 3"]
    assert "field type conflict" in err.value.rejected[0].reason
    assert sorted(store.query("custom")["host"].to_list()) == ["a", "b", "d"]


def test_unparsable_line_is_reported_and_the_rest_stored(influx_url):
    store = store_for(influx_url)
    with pytest.raises(InfluxWriteRejectedError) as err:
        store.write_lines(b"custom,host=a v=1 1\ncustom,host=b v= 2\ncustom,host=c v=3 3\n")
    assert err.value.rejected[0].line == "custom,host=b v= 2"
    assert sorted(store.query("custom")["host"].to_list()) == ["a", "c"]


def test_whole_body_refused_is_bisected_to_the_bad_line():
    """A server that refuses a whole body on one bad line (InfluxDB 2.x does): the good lines still get in."""
    stored: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:  # FakeInflux: all or nothing per request
        import gzip

        body = (
            gzip.decompress(request.content) if request.headers.get("content-encoding") == "gzip" else request.content
        )
        lines = [ln for ln in body.split(b"\n") if ln]
        if any(b"BAD" in ln for ln in lines):
            return httpx.Response(400, json={"error": "unable to parse points"})
        stored.extend(lines)
        return httpx.Response(204)

    store = InfluxStore(InfluxConfig.from_url("influx://fake:8086/db"))
    store._http = httpx.Client(base_url="http://fake:8086", transport=httpx.MockTransport(handler))
    body = b"".join(f"m v={i} {i}\n".encode() if i != 5 else b"m BAD 5\n" for i in range(10))
    with pytest.raises(InfluxWriteRejectedError) as err:
        store.write_lines(body)
    assert [r.line for r in err.value.rejected] == ["m BAD 5"]
    assert sorted(stored) == sorted(f"m v={i} {i}".encode() for i in range(10) if i != 5)


def test_body_above_the_server_limit_is_sent_in_halves():
    stored: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:  # FakeInflux with a 100-byte body limit
        import gzip

        body = (
            gzip.decompress(request.content) if request.headers.get("content-encoding") == "gzip" else request.content
        )
        if len(body) > 100:
            return httpx.Response(413, json={"error": "Request Entity Too Large"})
        stored.extend(ln for ln in body.split(b"\n") if ln)
        return httpx.Response(204)

    store = InfluxStore(InfluxConfig.from_url("influx://fake:8086/db"))
    store._http = httpx.Client(base_url="http://fake:8086", transport=httpx.MockTransport(handler))
    body = b"".join(f"m v={i} {i}\n".encode() for i in range(40))
    store.write_lines(body)
    assert sorted(stored) == sorted(f"m v={i} {i}".encode() for i in range(40))


@pytest.mark.parametrize("status", [429, 503])
def test_busy_server_gives_its_retry_after(status):
    def handler(request: httpx.Request) -> httpx.Response:  # FakeInflux: always busy
        return httpx.Response(status, headers={"Retry-After": "7"}, json={"error": "busy"})

    store = InfluxStore(InfluxConfig.from_url("influx://fake:8086/db"))
    store._http = httpx.Client(base_url="http://fake:8086", transport=httpx.MockTransport(handler))
    with pytest.raises(InfluxUnavailableError) as err:
        store.write_lines(b"m v=1 1\n")
    assert err.value.retry_after_s == 7.0


def test_down_server_is_unavailable_not_an_error():
    store = store_for("influx://127.0.0.1:9/db?timeout=1")
    with pytest.raises(InfluxUnavailableError):
        store.write_lines(b"m v=1 1\n")


def test_missing_database_says_how_to_create_it(influxd):
    store = store_for(f"influx://127.0.0.1:{influxd.http_port}/nosuchdb_x")
    with pytest.raises(StoreError, match=r"neighborscope influx init 'influx://127\.0\.0\.1:\d+/nosuchdb_x'"):
        store.write_lines(b"m v=1 1\n")


def test_init_creates_database_and_retention_policy(influxd):
    store = store_for(f"influx://127.0.0.1:{influxd.http_port}/initdb_x?rp=two_weeks")
    stmts = store.init(retention="14d")
    assert stmts[0] == 'CREATE DATABASE "initdb_x"'
    assert store.init(retention="14d")  # idempotent
    rps = {r["name"]: r for r in influxd.select("initdb_x", 'SHOW RETENTION POLICIES ON "initdb_x"')}
    assert rps["two_weeks"]["duration"] == "336h0m0s" and rps["two_weeks"]["default"] is True
    now = int(datetime.now(UTC).timestamp()) * 10**9
    store.write_lines(f"m v=1 {now}\n".encode())
    assert influxd.select("initdb_x", 'SELECT * FROM "two_weeks"."m"')[0]["v"] == 1


def test_series_lists_distinct_tag_sets_with_hostile_values(influx_url):
    store = store_for(influx_url)
    store.write("accel", accel_frame())
    series = store.series("accel")
    assert set(series["device"]) == set(HOSTILE)
    assert series.columns == ["measurement", *ACCEL.tags]


def test_open_store_gives_a_queued_influx_store(influx_url):
    store = open_store(influx_url)
    try:
        assert isinstance(store, QueuedStore) and isinstance(store.remote, InfluxStore)
        assert store.write_batch(BatchKey("node-1", "boot", 0), {"accel": accel_frame()}) is True
        assert store.flush(30)
        assert store.query("accel").height == 20
    finally:
        store.close()


def test_a_point_written_twice_in_one_run_keeps_the_value_written_last(influx_url):
    # two batches of one group rewrite the same 60 points (same series and time): one queue entry, one run of
    # two bodies, one batch each; sent together, the older one could land last and win
    rows = 60

    def batch(temp: float) -> dict[str, pl.DataFrame]:
        cols = {
            "time": [T0 + i for i in range(rows)],
            "node": ["n1"] * rows,
            "device": ["gpu0"] * rows,
            "temp_c": [temp] * rows,
        }
        return {"accel": conform(pl.DataFrame(cols), "accel")}

    one_body = len(store_for(influx_url).encode("accel", batch(1.0)["accel"]))
    store = open_store(influx_url.replace("?", f"?batch_bytes={one_body + 1}&"))
    try:
        assert isinstance(store, QueuedStore) and store.post_parallel == 2
        assert store.write_batches([(BatchKey("n1", "boot", 0), batch(1.0)), (BatchKey("n1", "boot", 1), batch(2.0))])
        assert store.flush(30)
        assert store.sent_requests == 2
        got = store.query("accel")
        assert got.height == rows and got["temp_c"].unique().to_list() == [2.0]
    finally:
        store.close()


def test_url_parsing_covers_v1_v2_and_the_1_8_bucket_convention():
    c = InfluxConfig.from_url("influx://u:p%40ss@db.example:8087/metrics?rp=week&batch_bytes=65536&gzip=0")
    assert (c.url, c.api, c.database, c.retention_policy, c.username, c.password) == (
        "http://db.example:8087",
        "v1",
        "metrics",
        "week",
        "u",
        "p@ss",
    )
    assert c.batch_bytes == 65536 and c.gzip is False
    c = InfluxConfig.from_url("influx2s://cloud.example/?org=o&bucket=b&token=T")
    assert (c.url, c.api, c.bucket, c.org, c.token) == ("https://cloud.example:443", "v2", "b", "o", "T")
    c = InfluxConfig.from_url("influx2://h:8086/?bucket=telegraf/autogen&token=u:p")
    assert (c.database, c.retention_policy, c.bucket) == ("telegraf", "autogen", "telegraf/autogen")
    assert repr(InfluxStore(InfluxConfig.from_url("influx://u:p%40ss@h:1/d?rp=r"))) == (
        "InfluxStore('influx://u:***@h:1/d?rp=r')"
    )
    assert InfluxConfig.from_url("influx2://h:1/?org=o&bucket=b&token=T").redacted() == (
        "influx2://h:1/?org=o&bucket=b&token=***"
    )


@pytest.mark.parametrize(
    "url", ["influx://h:8086/", "influx://h:8086/db?nope=1", "influx://h:8086/db?api=v9", "influx://h:x/db"]
)
def test_bad_urls_say_what_is_wrong(url):
    with pytest.raises(ConfigError):
        InfluxConfig.from_url(url)


def test_benchmark_requests_dispatched_in_the_same_nanosecond_all_survive(influx_url):
    """InfluxDB keeps one point per (series, time): 64 requests of one run started together must not
    overwrite each other (each k-th duplicate is stored k ns later)."""
    t0 = 1_763_600_000_000_000_000
    n = 64
    frame = conform(
        pl.DataFrame(
            {
                "time": [t0] * n + [t0 + 10**9],
                "node": ["node1"] * (n + 1),
                "run_id": ["r1"] * (n + 1),
                "group": ["hive0"] * (n + 1),
                "request_index": list(range(n + 1)),
                "ttft_ms": [float(i) for i in range(n + 1)],
            }
        ),
        "bench_request",
    )
    store = InfluxStore(InfluxConfig.from_url(influx_url))
    store.write("bench_request", frame)
    got = store.query("bench_request", tags={"run_id": "r1"})
    assert got.height == n + 1
    assert sorted(got["request_index"].to_list()) == list(range(n + 1))
    offsets = (got["time"].dt.epoch("ns") - t0).to_list()
    assert max(offsets[:n]) < 1000  # moved by nanoseconds only


def test_gzip_is_off_by_default_to_a_loopback_host():
    assert InfluxConfig.from_url("influx://127.0.0.1:8086/db").gzip is False
    assert InfluxConfig.from_url("influx://localhost:8086/db").gzip is False
    assert InfluxConfig.from_url("influx://[::1]:8086/db").gzip is False
    assert InfluxConfig.from_url("influx://db.example:8086/db").gzip is True
    assert InfluxConfig.from_url("influx://127.0.0.1:8086/db?gzip=1").gzip is True
