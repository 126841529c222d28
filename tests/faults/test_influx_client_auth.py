"""Issue 18 item 8: InfluxDB's own clients write to the collector with the auth they already send.

InfluxDB 1.x clients and Telegraf's ``outputs.influxdb`` send a username and password (HTTP Basic, or the
``u`` / ``p`` query parameters); InfluxDB 2.x clients send ``Authorization: Token``. The collector takes the
node token as the password or the token, in every form, and refuses a wrong one (401) in every form.
"""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from telemetry.store.parquet import ParquetStore
from tests.conftest import in_ci

TOKEN = "token-node1"
NOW_S = int(time.time())


def client_module(name: str):
    try:
        return pytest.importorskip(name)
    except pytest.skip.Exception:
        if in_ci():
            pytest.fail(f"CI: the Python package {name!r} is not installed")
        raise


def rows(collector, measurement: str) -> int:
    store = ParquetStore(collector.store)
    return store.query(measurement).height if measurement in store.measurements() else 0


def test_influxdb_1x_python_client_writes_with_username_and_password(collector):
    influxdb = client_module("influxdb")
    client = influxdb.InfluxDBClient(
        host="127.0.0.1", port=collector.port, username="telegraf", password=TOKEN, database="telegraf"
    )
    points = [{"measurement": "cpu", "tags": {"cpu": "cpu-total"}, "time": NOW_S, "fields": {"usage_user": 3.5}}]
    assert client.write_points(points, time_precision="s")
    assert rows(collector, "cpu") == 1
    bad = influxdb.InfluxDBClient(host="127.0.0.1", port=collector.port, username="x", password="wrong-token")
    with pytest.raises(influxdb.exceptions.InfluxDBClientError) as err:
        bad.write_points(points, time_precision="s", database="telegraf")
    assert err.value.code == 401
    assert rows(collector, "cpu") == 1


def test_influxdb_2x_python_client_writes_with_a_token(collector):
    influxdb_client = client_module("influxdb_client")
    from influxdb_client.client.write_api import SYNCHRONOUS

    with influxdb_client.InfluxDBClient(url=collector.url, token=TOKEN, org="-") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="telegraf", record=f"mem,host=n1 used_percent=41.5 {NOW_S}", write_precision="s"
        )
    assert rows(collector, "mem") == 1


@pytest.mark.parametrize(
    ("path", "params", "headers"),
    [
        ("/write", {"u": "telegraf", "p": TOKEN}, {}),
        ("/write", {}, {"Authorization": "Basic " + base64.b64encode(f"any:{TOKEN}".encode()).decode()}),
        ("/write", {}, {"Authorization": f"Token {TOKEN}"}),
        ("/api/v2/write", {}, {"Authorization": f"Token telegraf:{TOKEN}"}),  # InfluxDB 1.8's v2 form
        ("/api/v2/write", {}, {"Authorization": f"Bearer {TOKEN}"}),
    ],
    ids=["u-p-query", "basic", "token", "token-user-colon-password", "bearer"],
)
def test_every_auth_form_influxdb_accepts_is_accepted(collector, path, params, headers):
    body = f"system,host=n1 load1=0.25 {NOW_S}\n".encode()
    r = httpx.post(f"{collector.url}{path}", params={**params, "precision": "s"}, content=body, headers=headers)
    assert r.status_code == 204, r.text
    wrong = {k: v.replace(TOKEN, "wrong-token") for k, v in params.items()}
    wrong_headers = {"Authorization": headers["Authorization"].replace(TOKEN, "wrong-token")} if headers else {}
    if "Basic" in headers.get("Authorization", ""):
        wrong_headers = {"Authorization": "Basic " + base64.b64encode(b"any:wrong-token").decode()}
    r = httpx.post(f"{collector.url}{path}", params={**wrong, "precision": "s"}, content=body, headers=wrong_headers)
    assert r.status_code == 401, r.text
    assert rows(collector, "system") == 1
