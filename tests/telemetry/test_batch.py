"""The batch wire format: what `make_batch` / `encode_batch` send (from frames or rows) decodes to the same
schema frames; and the collector's column fast path (`validate_columns` + `build_frame`) gives the same
frames and the same errors as the pydantic route (`BatchIn` + `batch_frames` + `conform`)."""

from __future__ import annotations

import copy
import gzip
import json
import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from telemetry.batch import (
    BatchIn,
    ForeignNodeError,
    batch_frames,
    build_frame,
    encode_batch,
    make_batch,
    validate_columns,
)
from telemetry.errors import SchemaError
from telemetry.schema import conform

T0 = 1_700_000_000_000_000_000


def _doc() -> dict:
    accel = pl.DataFrame(
        {
            "time": [T0 + i for i in range(4)],
            "device": [f"gpu{i}" for i in range(4)],
            "vendor": ["amd"] * 4,
            "temp_c": [40.0, 41.5, 42.0, 43.0],
            "pcie_link_gen": [4, 4, 5, 5],
            "throttle_power": [False, True, False, False],
        }
    )
    host = pl.DataFrame({"time": [T0], "cpu_util_pct": [12.5], "cpu_count": [64]})
    return make_batch("n1", "boot", 3, {"accel": conform(accel, "accel"), "host": conform(host, "host")})


def _fast(doc: dict) -> dict[str, pl.DataFrame]:
    cols = validate_columns(doc["node"], [(f["measurement"], f["columns"]) for f in doc["frames"]])
    return {m: build_frame(m, [c]) for m, c in cols.items()}


def _slow(doc: dict) -> dict[str, pl.DataFrame]:
    return {m: conform(f, m) for m, f in batch_frames(BatchIn.model_validate(doc)).items()}


def _mutations() -> list:
    def col(name, i, value, frame=0):
        return lambda d: d["frames"][frame]["columns"][name].__setitem__(i, value)

    return [
        lambda d: None,
        col("temp_c", 2, "hot"),
        col("temp_c", 2, None),
        col("temp_c", 2, math.nan),
        col("temp_c", 2, math.inf),
        col("temp_c", 2, True),
        col("temp_c", 2, 7),
        col("temp_c", 2, 2**70),
        col("pcie_link_gen", 1, 5.0),
        col("pcie_link_gen", 1, 5.5),
        col("pcie_link_gen", 1, 2**64),
        col("pcie_link_gen", 1, None),
        col("pcie_link_gen", 1, "5"),
        col("throttle_power", 0, 1),
        col("throttle_power", 0, None),
        col("device", 3, 7),
        col("device", 3, None),
        col("time", 0, 1.5),
        col("time", 0, None),
        lambda d: d["frames"][0]["columns"].__setitem__("node", ["n1", None, "n1", "n1"]),
        lambda d: d["frames"][0]["columns"].__setitem__("node", ["n1", "n2", "n1", "n1"]),
        lambda d: d["frames"][0]["columns"].pop("time"),
        lambda d: d["frames"][0]["columns"].__setitem__("temp_f", [1.0] * 4),
        lambda d: d["frames"][0]["columns"].__setitem__("temp_c", [1.0] * 3),
        lambda d: d["frames"][0].__setitem__("measurement", "nope"),
        lambda d: d["frames"].append(copy.deepcopy(d["frames"][0])),
        lambda d: d["frames"][1]["columns"].__setitem__("cpu_util_pct", [-math.inf]),
        lambda d: d.__setitem__("frames", []),
    ]


@pytest.mark.parametrize("i", range(len(_mutations())))
def test_fast_path_agrees_with_the_pydantic_route(i):
    doc = _doc()
    _mutations()[i](doc)
    try:
        want = _slow(doc)
    except SchemaError as exc:
        with pytest.raises(type(exc)) as got:
            _fast(doc)
        assert (str(got.value), got.value.where) == (str(exc), exc.where)
        return
    got = _fast(doc)
    assert set(got) == set(want)
    for m in want:
        assert_frame_equal(got[m], want[m])


def test_foreign_node_is_named_with_its_sample():
    doc = _doc()
    doc["frames"][0]["columns"]["node"] = ["n1", "n1", "n9", "n1"]
    with pytest.raises(ForeignNodeError) as err:
        _fast(doc)
    assert err.value.where == "frames[0].columns.node[2]"


def test_a_group_is_built_into_one_frame_in_order():
    docs = [_doc() for _ in range(3)]
    for k, d in enumerate(docs):
        d["frames"][0]["columns"]["time"] = [T0 + 10 * k + j for j in range(4)]
    docs[1]["frames"][0]["columns"]["temp_c"][0] = "41"  # a converted column (a Series) among plain lists
    docs[1]["frames"][0]["columns"]["temp_c"][0] = 41  # an int in a float column: the slow path converts it
    cols = [validate_columns("n1", [(f["measurement"], f["columns"]) for f in d["frames"]]) for d in docs]
    frame = build_frame("accel", [c["accel"] for c in cols])
    want = pl.concat([_slow(d)["accel"] for d in docs])
    assert_frame_equal(frame, want)
    assert [c["accel"].field_values for c in cols] == [12, 12, 12]


def _decoded(body: bytes) -> tuple[dict, dict[str, pl.DataFrame]]:
    """What the collector makes of a body: the document and its schema frames."""
    doc = json.loads(gzip.decompress(body))
    return doc, batch_frames(BatchIn.model_validate(doc))


ROWS = {
    "accel": [
        {"time": T0, "device": "gpu0", "vendor": "amd", "power_w": 300, "temp_c": float("nan"), "throttle_power": 1,
         "pcie_link_gen": 5},
        {"time": T0 + 1, "device": "gpu1", "vendor": "amd", "power_w": None, "temp_c": 41.5, "throttle_power": False},
    ],
    "agent": [{"time": T0 + 2, "sampler": "host", "ok": True, "errors_total": 0}],
    "host": [],
}  # fmt: skip


def test_frames_round_trip_through_the_wire():
    frames = {m: conform(pl.DataFrame(cols), m) for m, cols in [
        ("accel", {"time": [T0, T0 + 1], "device": ["gpu0", "gpu1"], "temp_c": [40.0, None], "pcie_link_gen": [4, 5]}),
        ("host", {"time": [T0], "cpu_util_pct": [12.5], "cpu_count": [64]}),
    ]}  # fmt: skip
    doc, got = _decoded(encode_batch("n1", "boot", 3, frames, sent_at_ns=T0))
    assert (doc["node"], doc["boot_id"], doc["seq"], doc["sent_at_ns"]) == ("n1", "boot", 3, T0)
    assert set(got) == set(frames)
    for m, want in frames.items():
        assert_frame_equal(conform(got[m], m), want.with_columns(pl.lit("n1").alias("node")))


def test_rows_round_trip_as_the_frames_they_describe():
    _, got = _decoded(encode_batch("n1", "boot", 0, ROWS))
    want = {m: conform(pl.DataFrame(rows, infer_schema_length=None), m) for m, rows in ROWS.items() if rows}
    assert set(got) == set(want)  # an empty measurement is not sent
    for m in want:
        assert_frame_equal(conform(got[m], m), want[m].with_columns(pl.lit("n1").alias("node")), check_dtypes=False)


def test_rows_are_converted_to_their_fields_kinds_and_nan_is_absent():
    cols = make_batch("n1", "b", 0, ROWS)["frames"][0]["columns"]
    assert cols["power_w"] == [300.0, None] and type(cols["power_w"][0]) is float
    assert cols["temp_c"] == [None, 41.5]
    assert cols["throttle_power"] == [True, False]
    assert cols["pcie_link_gen"] == [5, None]


def test_a_column_no_row_has_is_not_sent():
    cols = make_batch("n1", "b", 0, {"accel": [{"time": T0, "device": "gpu0", "power_w": None}]})["frames"][0]
    assert set(cols["columns"]) == {"time", "device"}


def test_rows_and_frames_of_the_same_samples_decode_alike():
    frame = conform(pl.DataFrame(ROWS["accel"], infer_schema_length=None), "accel")
    _, from_rows = _decoded(encode_batch("n1", "b", 0, {"accel": ROWS["accel"]}))
    _, from_frame = _decoded(encode_batch("n1", "b", 0, {"accel": frame}))
    assert_frame_equal(conform(from_rows["accel"], "accel"), conform(from_frame["accel"], "accel"))


def test_a_row_with_a_column_the_schema_lacks_is_a_schema_error():
    with pytest.raises(SchemaError, match="temp_f"):
        make_batch("n1", "b", 0, {"accel": [{"time": T0, "device": "gpu0", "temp_f": 100.0}]})


@pytest.mark.parametrize(("field", "value"), [("temp_c", True), ("pcie_link_gen", False)])
def test_a_boolean_is_not_a_number(field, value):
    with pytest.raises(SchemaError, match="expected a number") as err:
        validate_columns("n1", [("accel", {"time": [T0, T0], "device": ["a", "b"], field: [None, value]})])
    assert err.value.where == f"frames[0].columns.{field}[1]"


@pytest.mark.parametrize(
    ("device", "says"), [("gpu0\\", "backslash"), ("gpu\n0", "control character"), ("g" * 5000, "bytes")]
)
def test_a_tag_value_no_store_can_keep_is_named_with_its_sample(device, says):
    with pytest.raises(SchemaError, match=says) as err:
        validate_columns("n1", [("accel", {"time": [T0, T0], "device": ["gpu1", device]})])
    assert err.value.where == "frames[0].columns.device[1]"


def test_a_time_outside_the_window_is_named_and_the_message_says_the_unit_looks_wrong():
    window = (T0 - 10**9, T0 + 10**9)
    validate_columns("n1", [("accel", {"time": [T0], "device": ["a"]})], window)
    with pytest.raises(SchemaError, match="unit looks wrong") as err:
        validate_columns("n1", [("accel", {"time": [T0, T0 // 10**9], "device": ["a", "a"]})], window)
    assert err.value.where == "frames[0].columns.time[1]"
