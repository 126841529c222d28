"""The collector's batch validation: the column fast path (`validate_columns` + `build_frame`) gives the
same frames and the same errors as the pydantic route (`BatchIn` + `batch_frames` + `conform`)."""

from __future__ import annotations

import copy
import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from telemetry.batch import BatchIn, ForeignNodeError, batch_frames, build_frame, make_batch, validate_columns
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
