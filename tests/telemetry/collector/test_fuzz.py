"""Fuzzing the collector's OpenAPI document with schemathesis (bounded, runs in CI).

Every endpoint, with and without a token: no 5xx, every 4xx has the JSON error body, responses match
the documented status codes and schemas, and afterwards the store holds exactly the rows of the
accepted requests.
"""

from __future__ import annotations

import time

import polars as pl
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from telemetry.batch import frame_to_columns
from telemetry.errors import NeighborscopeError
from telemetry.line_protocol import decode, encode
from telemetry.schema import EARLIEST_NS, conform
from telemetry.store.parquet import ParquetStore


def valid_frames():
    """None, or a small accel frame with hostile-but-legal tag text and NaN / huge / tiny values."""
    text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8).filter(
        lambda s: s.strip() == s and not s.endswith("\\")
    )
    row = st.tuples(
        st.integers(EARLIEST_NS, NOW_NS),  # the collector's time window (older or later: 422, the unit looks wrong)
        text,
        st.floats(allow_infinity=False, allow_subnormal=False) | st.none(),
        st.integers(-(2**40), 2**40) | st.none(),
    )
    return st.none() | st.lists(row, min_size=1, max_size=5).map(
        lambda rows: conform(
            pl.DataFrame(
                {
                    "time": [r[0] for r in rows],
                    "device": [r[1] for r in rows],
                    "temp_c": [r[2] for r in rows],
                    "pcie_link_gen": [r[3] for r in rows],
                },
                schema={"time": pl.Int64, "device": pl.String, "temp_c": pl.Float64, "pcie_link_gen": pl.Int64},
            ),
            "accel",
        )
    )


NOW_NS = time.time_ns()
EXAMPLES_PER_OPERATION = 120  # x 2 (with / without a token) x 5 operations = 1,200 requests
STATUS: list = []


def error_body_is_json(ctx, response, case) -> bool:
    if 400 <= response.status_code < 500:
        body = response.json()
        assert set(body) == {"error"}, body
        assert {"code", "message", "where"} <= set(body["error"]), body
        assert body["error"]["message"], body
    return True


def test_fuzz_every_endpoint_with_and_without_auth(collector):
    schema = schemathesis.openapi.from_url(f"{collector.url}/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/batches", "/api/v2/write", "/write", "/healthz", "/metrics"}
    accepted_rows = 0
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    def fuzz(op) -> None:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=op.as_strategy(), authed=st.booleans(), own_node=st.booleans(), valid=valid_frames())
        def run(case, authed, own_node, valid):
            nonlocal accepted_rows
            if own_node and isinstance(case.body, dict) and "node" in case.body:
                case.body["node"] = "node1"
                if valid is not None:  # a well-formed batch half of the time: the accepted path gets fuzzed too
                    case.body["frames"] = [{"measurement": "accel", "columns": frame_to_columns(valid)}]
            if own_node and op.path in ("/api/v2/write", "/write") and valid is not None:
                case.body = encode(valid, "accel").decode()
            headers = collector.headers("node1") if authed else {}
            response = case.call(base_url=collector.url, headers=headers)
            STATUS.append((op.path, response.status_code))
            case.validate_response(response, checks=checks, additional_checks=[error_body_is_json])
            assert (
                authed
                or op.path in ("/healthz", "/metrics", "/openapi.json")
                or response.status_code
                in (
                    401,
                    400,
                    413,
                    415,
                    422,
                )
            ), (op.path, response.status_code)
            if op.path == "/v1/batches" and response.status_code == 200 and response.json()["status"] == "stored":
                accepted_rows += response.json()["rows"]
            if op.path in ("/api/v2/write", "/write") and response.status_code == 204:
                try:
                    accepted_rows += sum(f.height for f in decode(case.body or "", default_time_ns=0).values())
                except NeighborscopeError:
                    raise AssertionError(f"the collector accepted a body it cannot decode: {case.body!r}") from None

        run()

    for op in operations:
        fuzz(op)

    store = ParquetStore(collector.store)
    stored = sum(store.query(m).height for m in store.measurements())
    from collections import Counter

    print(Counter(STATUS), accepted_rows)
    assert stored == accepted_rows
