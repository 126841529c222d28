"""The collector's typed decoder (`telemetry.batch.decode_batch` + `validate_typed`, issue 21) against the generic
path it stands in front of (`orjson` + `plain_batch` + `validate_columns`): whatever it accepts comes out as the
same frames, counts and time range; anything the generic path refuses, converts or names it leaves to that
path (None), so every error still names the column and sample."""

from __future__ import annotations

import json
import random

import pytest

from telemetry.batch import build_frame, decode_batch, make_batch, validate_columns, validate_typed
from telemetry.collector.ingest import plain_batch
from telemetry.errors import SchemaError

T0 = 1_700_000_000_000_000_000
WINDOW = (T0 - 10**15, T0 + 10**15)


def accel_rows(n: int = 4, t0: int = T0) -> list[dict]:
    return [
        {
            "time": t0,
            "device": f"gpu{d}",
            "vendor": "nvidia",
            "model": "H100",
            "temp_c": 40.5 + d,
            "power_w": 300.25,
            "pcie_link_gen": 5,
            "throttle_thermal": d == 2,
        }
        for d in range(n)
    ]


def agent_doc(**frames) -> dict:
    data = frames or {
        "accel": accel_rows(),
        "host": [{"time": T0, "cpu_util_pct": 12.5, "cpu_count": 32, "load1": None}],
        "host_core": [{"time": T0, "core": str(c), "util_pct": 10.0 * c} for c in range(3)],
    }
    return make_batch("node1", "boot", 7, data, sent_at_ns=T0)


def generic(doc_bytes: bytes) -> dict:
    """What the generic path makes of a body: {measurement: (frame, field values, time range)}, or the error."""
    doc = plain_batch(json.loads(doc_bytes))
    if doc is None:
        return {"error": "not plain"}
    try:
        cols = validate_columns(doc[0], doc[3], WINDOW)
    except SchemaError as exc:
        return {"error": exc.where}
    return {m: (build_frame(m, [c]), c.field_values, c.time_range()) for m, c in cols.items()}


def typed(doc_bytes: bytes) -> dict | None:
    tb = decode_batch(doc_bytes)
    if tb is None:
        return None
    cols = validate_typed(tb.node, tb.frames, WINDOW)
    if cols is None:
        return None
    return {m: (build_frame(m, [c]), c.field_values, c.time_range()) for m, c in cols.items()}


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for m, (frame, values, span) in want.items():
        assert got[m][0].equals(frame), m
        assert got[m][1:] == (values, span), m


def body(doc: dict) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"accel": [{**r, "temp_c": None} for r in accel_rows()]},  # a column of nulls
        {"accel": [{**r, "power_w": 300} for r in accel_rows()]},  # integers in a float column: converted alike
        {"accel": [{**r, "node": "node1"} for r in accel_rows()]},  # the node tag given
        {"accel": [{**r, "model": ""} for r in accel_rows()]},  # empty tag values
        {"tenant": [{"time": T0, "group": "t1", "pids": "1 2 3", "cpu_pct": 5.0, "process_count": 3}]},  # a text field
    ],
)
def test_an_agent_batch_decodes_to_the_columns_the_generic_path_gives(change):
    doc = agent_doc(**change) if change else agent_doc()
    got = typed(body(doc))
    assert got is not None
    assert_same(got, generic(body(doc)))


def test_the_same_measurement_twice_and_an_empty_frame_decode_alike():
    doc = agent_doc()
    doc["frames"].append({"measurement": "accel", "columns": doc["frames"][0]["columns"]})
    doc["frames"].append({"measurement": "host", "columns": {"time": []}})
    got = typed(body(doc))
    assert got is not None and got["accel"][0].height == 8
    assert_same(got, generic(body(doc)))


def test_a_node_column_with_gaps_is_filled_with_the_batchs_node():
    doc = agent_doc(accel=[{**r, "node": "node1" if i % 2 else None} for i, r in enumerate(accel_rows())])
    got = typed(body(doc))
    assert got is not None and got["accel"][0]["node"].to_list() == ["node1"] * 4


def columns_doc(**cols) -> dict:
    base = {"time": [T0, T0], "device": ["gpu0", "gpu1"], "temp_c": [40.0, 41.0]}
    doc = make_batch("node1", "boot", 1, {})
    doc["frames"] = [{"measurement": "accel", "columns": {**base, **cols}}]
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        columns_doc(temp_c=[40.0, "hot"]),
        columns_doc(temp_c=[40.0, True]),
        columns_doc(pcie_link_gen=[5, 2.5]),
        columns_doc(pcie_link_gen=[5, True]),
        columns_doc(pcie_link_gen=[5, 2**63]),
        columns_doc(throttle_thermal=[False, 1]),
        columns_doc(temp_c=None),
        columns_doc(temp_c=[40.0]),
        columns_doc(bogus=[1.0, 2.0]),
        columns_doc(device=["gpu0", "gpu1\\"]),
        columns_doc(device=["gpu0", "gpu\n1"]),
        columns_doc(device=["gpu0", 1]),
        columns_doc(node=["node1", "node2"]),
        columns_doc(time=[T0, T0 // 10**9]),
        columns_doc(time=[T0, None]),
        columns_doc(time=[T0, 1.5]),
        {**columns_doc(), "node": "node1\n"},
        {**columns_doc(), "boot_id": ""},
        {**columns_doc(), "boot_id": "b" * 65},
        {**columns_doc(), "seq": -1},
        {**columns_doc(), "seq": True},
        {**columns_doc(), "extra": 1},
        {**columns_doc(), "frames": [{"measurement": "nope", "columns": {"time": [T0]}}]},
        {**columns_doc(), "frames": [{"measurement": "accel", "columns": {"time": [T0]}, "x": 1}]},
        {**columns_doc(), "frames": [{"measurement": "accel", "columns": {"time": [T0]}}] * 65},
    ],
    ids=lambda d: json.dumps(d)[-90:],
)
def test_anything_the_generic_path_refuses_is_left_to_it(doc):
    assert typed(body(doc)) is None
    assert "error" in generic(body(doc))


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400])
def test_numbers_past_the_float_range_and_nan_literals_are_left_to_the_generic_path(literal):
    raw = body(columns_doc(temp_c=[40.0, 12345.0])).replace(b"12345.0", literal)
    assert decode_batch(raw) is None  # so every float the typed path keeps is finite: all count as values


def test_random_mutations_never_pass_the_typed_path_unless_the_generic_path_agrees():
    """Seeded fuzz: one value of an agent batch replaced by another JSON value; whenever the typed path takes
    the result, the generic path takes it too and builds the same frames."""
    rng = random.Random(21)
    pool = [None, 0, 1, -1, 2**63, -(2**63), 2**64, 1.5, -0.0, 1e308, True, False, "", "x", "a\\", "a\tb", [], {}, [1]]
    taken = 0
    for _ in range(250):
        doc = agent_doc()
        frame = rng.choice(doc["frames"])
        cols = frame["columns"]
        name = rng.choice(list(cols))
        where = rng.randrange(4)
        value = rng.choice(pool)
        if where == 0:
            cols[name][rng.randrange(len(cols[name]))] = value
        elif where == 1:
            cols[name] = value
        elif where == 2:
            doc[rng.choice(["node", "boot_id", "seq", "sent_at_ns"])] = value
        else:
            cols[name] = [value] * len(cols[name])
        raw = body(doc)
        got = typed(raw)
        if got is None:
            continue
        taken += 1
        want = generic(raw)
        assert "error" not in want, (doc, want)
        assert_same(got, want)
    assert taken > 20  # the fuzz also exercised what the typed path takes


def test_field_values_are_counted_alike_before_a_build_and_by_a_groups_build():
    """The typed path leaves the count of field values to the group's build (the null counts of the built
    frame); read before any build it is counted from the lists. Both give what the generic path counts, also in
    a group mixing batches of both paths."""
    docs = [
        agent_doc(),
        agent_doc(accel=[{**r, "temp_c": None if r["device"] == "gpu1" else 41.0} for r in accel_rows()]),
        agent_doc(accel=accel_rows(2), host=[{"time": T0, "cpu_count": 4}]),
    ]
    want = [{m: c.field_values for m, c in validate_columns("node1", [(f["measurement"], f["columns"]) for f in
                                                                      d["frames"]], WINDOW).items()} for d in docs]  # fmt: skip

    def typed_columns(doc: dict) -> dict:
        tb = decode_batch(body(doc))
        assert tb is not None
        cols = validate_typed(tb.node, tb.frames, WINDOW)
        assert cols is not None
        return cols

    unbuilt = [typed_columns(d) for d in docs]
    assert [{m: c.field_values for m, c in cols.items()} for cols in unbuilt] == want
    group = [typed_columns(d) for d in docs]
    generic_host = validate_columns("node1", [("host", docs[0]["frames"][1]["columns"])], WINDOW)["host"]
    for m in ("accel", "host_core"):
        build_frame(m, [cols[m] for cols in group if m in cols])
    build_frame("host", [group[0]["host"], generic_host, group[2]["host"]])
    assert [{m: c.field_values for m, c in cols.items()} for cols in group] == want
    assert generic_host.field_values == want[0]["host"]


@pytest.mark.parametrize(
    "raw",
    [
        body(columns_doc()).replace(b"gpu1", b"gpu\xff"),  # not UTF-8
        body(columns_doc()).replace(b"gpu1", b"gpu\\ud800"),  # a lone surrogate
        body(columns_doc())[:-5],  # cut off
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any decoder goes
        b"",
    ],
)
def test_a_body_that_is_not_json_text_is_left_to_the_generic_path(raw):
    assert decode_batch(raw) is None
