"""Issue 17 item 9 (collector part): one rule for every value, whichever way it comes in.

- a gzip body whose trailer was cut off is refused (400), not inflated as far as it goes;
- booleans are not numbers: ``temp_c: true`` is refused like ``throttle_thermal: 1`` is;
- a time outside 2000-01-01 .. now + 1 day is refused with a 422 that says the unit looks wrong (seconds sent
  as nanoseconds land in 1970; milliseconds sent with ``precision=s`` land past 2262).
"""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest

from telemetry.batch import make_batch
from telemetry.store.parquet import ParquetStore

NOW_NS = time.time_ns()


def batch(columns: dict, seq: int = 0) -> dict:
    doc = make_batch("node1", "boot-a", seq, {})
    doc["frames"] = [{"measurement": "accel", "columns": columns}]
    return doc


def post_json(collector, doc: dict, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{collector.url}/v1/batches",
        content=json.dumps(doc).encode(),
        headers={**collector.headers("node1"), "Content-Type": "application/json", **headers},
        timeout=10,
    )


def accel_rows(collector) -> int:
    return ParquetStore(collector.store).query("accel").height


def test_gzip_body_with_its_trailer_cut_off_is_400_and_not_stored(collector):
    body = gzip.compress(json.dumps(batch({"time": [NOW_NS], "device": ["gpu0"], "temp_c": [41.0]})).encode())
    r = httpx.post(
        f"{collector.url}/v1/batches",
        content=body[:-8],  # the CRC and length trailer are gone; the deflate stream itself is whole
        headers={**collector.headers("node1"), "Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert "gzip" in r.json()["error"]["message"]
    assert accel_rows(collector) == 0


@pytest.mark.parametrize(
    ("field", "value"), [("temp_c", True), ("power_w", False), ("pcie_link_gen", True), ("throttle_thermal", 1)]
)
def test_booleans_are_not_numbers_and_numbers_are_not_booleans(collector, field, value):
    r = post_json(collector, batch({"time": [NOW_NS, NOW_NS], "device": ["gpu0", "gpu1"], field: [None, value]}))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["where"] == f"frames[0].columns.{field}[1]"
    assert accel_rows(collector) == 0


def test_a_boolean_for_a_number_is_refused_in_line_protocol_too(collector):
    r = httpx.post(
        f"{collector.url}/api/v2/write",
        params={"precision": "ns"},
        content=f"accel,device=gpu0 temp_c=true {NOW_NS}\n".encode(),
        headers={"Authorization": "Token token-node1"},
        timeout=10,
    )
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["where"] == "line 1"
    assert accel_rows(collector) == 0


def test_seconds_sent_as_nanoseconds_are_refused_saying_the_unit_looks_wrong(collector):
    seconds = NOW_NS // 10**9
    r = post_json(collector, batch({"time": [NOW_NS, seconds], "device": ["gpu0", "gpu0"], "temp_c": [40.0, 41.0]}))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["where"] == "frames[0].columns.time[1]"
    assert "unit" in error["message"] and "1970" in error["message"]
    assert accel_rows(collector) == 0


def test_milliseconds_sent_with_precision_s_are_refused_naming_the_line(collector):
    ms = NOW_NS // 10**6
    r = httpx.post(
        f"{collector.url}/write",
        params={"db": "x", "precision": "s"},
        content=f"accel,device=gpu0 temp_c=40 {NOW_NS // 10**9}\naccel,device=gpu0 temp_c=41 {ms}\n".encode(),
        headers=collector.headers("node1"),
        timeout=10,
    )
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["where"] == "line 2"
    assert "unit" in r.json()["error"]["message"]
    assert accel_rows(collector) == 0


def test_a_time_more_than_a_day_ahead_is_refused_and_one_within_it_is_stored(collector):
    ahead = NOW_NS + 3 * 86_400 * 10**9
    r = post_json(collector, batch({"time": [ahead], "device": ["gpu0"], "temp_c": [40.0]}))
    assert r.status_code == 422, r.text
    assert "future" in r.json()["error"]["message"]
    soon = NOW_NS + 3_600 * 10**9  # a clock an hour ahead is a clock problem, not a unit problem
    assert post_json(collector, batch({"time": [soon], "device": ["gpu0"], "temp_c": [40.0]}, seq=1)).status_code == 200
    assert accel_rows(collector) == 1
