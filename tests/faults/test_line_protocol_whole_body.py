"""Issue 17 item 3: a line-protocol write is judged whole before anything is stored.

A body whose last line is a client error (a reserved measurement name, a tag or field named ``time``, a
timestamp that overflows once ``precision`` is applied) used to answer 500 after storing the good lines, so
a client that retries 5xx (Telegraf does) stored them twice. Now: 400 naming the line, nothing stored.
"""

from __future__ import annotations

import httpx
import pytest

from telemetry.store.parquet import ParquetStore

NOW_S = 1_750_000_000  # a plausible second (2025-06-15)
GOOD = f"cpu,cpu=cpu0 usage_user=12.5 {NOW_S}"


def write(collector, body: str, precision: str = "s") -> httpx.Response:
    return httpx.post(
        f"{collector.url}/write",
        params={"db": "telegraf", "precision": precision},
        content=body.encode(),
        headers=collector.headers("node1"),
        timeout=10,
    )


def stored_rows(collector) -> int:
    store = ParquetStore(collector.store)
    return sum(store.query(m).height for m in store.measurements())


@pytest.mark.parametrize(
    ("bad_line", "says"),
    [
        (f".hidden value=1 {NOW_S}", "measurement"),
        (f"../x value=1 {NOW_S}", "measurement"),
        (f"quarantine value=1 {NOW_S}", "measurement"),  # a directory of the embedded store
        (f"cpu,time=yesterday usage_user=1 {NOW_S}", "time"),
        (f"cpu,cpu=cpu1 time=1,usage_user=3 {NOW_S}", "time"),
        ("cpu,cpu=cpu1 usage_user=3 9223372036854775", "timestamp"),
    ],
    ids=[
        "hidden-measurement",
        "path-measurement",
        "store-directory-measurement",
        "tag-named-time",
        "field-named-time",
        "overflow-after-precision",
    ],
)
def test_a_bad_line_refuses_the_whole_body_naming_the_line_and_stores_nothing(collector, bad_line, says):
    r = write(collector, f"{GOOD}\n{GOOD.replace('cpu0', 'cpu2')}\n{bad_line}\n")
    assert r.status_code in (400, 422), r.text
    error = r.json()["error"]
    assert error["where"] == "line 3", error
    assert says in error["message"], error
    assert stored_rows(collector) == 0


def test_the_same_body_without_its_bad_line_is_stored_once(collector):
    assert write(collector, f"{GOOD}\n.hidden value=1 {NOW_S}\n").status_code in (400, 422)
    assert write(collector, f"{GOOD}\n").status_code == 204
    assert stored_rows(collector) == 1
