"""Frames <-> InfluxDB line protocol."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.errors import LineProtocolError, SchemaError
from telemetry.line_protocol import decode, encode, repeats_points, split_lines
from telemetry.schema import conform

GOLDEN = Path(__file__).parent.parent / "fixtures" / "line_protocol" / "accel.lp"


def golden_frame() -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "time": [1_700_000_000_000_000_000, 1_700_000_001_000_000_000, 1_700_000_002_000_000_000],
                "node": ["node 1", "node,1", "n=1"],
                "device": ["gpu0", "gpu1", "gpu2"],
                "vendor": ["amd", None, ""],
                "temp_c": [41.5, float("nan"), None],
                "power_w": [300.25, 1e-5, None],
                "pcie_link_gen": [5, None, None],
                "throttle_thermal": [True, False, None],
            }
        ),
        "accel",
    )


def test_encoding_matches_the_golden_file_byte_for_byte():
    assert encode(golden_frame(), "accel") == GOLDEN.read_bytes()


def test_absent_fields_are_left_out_and_rows_without_fields_dropped():
    lines = encode(golden_frame(), "accel").decode().splitlines()
    assert len(lines) == 2  # the third row has no field at all
    assert "temp_c" not in lines[1]  # NaN is absent, not 0


def test_string_fields_escape_quotes_and_backslashes():
    f = conform(pl.DataFrame({"time": [1], "run_id": ["r 1"], "error": ['said "no" \\ twice']}), "bench_request")
    assert encode(f, "bench_request") == b'bench_request,run_id=r\\ 1 error="said \\"no\\" \\\\ twice" 1\n'


def test_decode_round_trips_the_encoder():
    f = golden_frame()
    back = decode(encode(f, "accel"))["accel"]
    assert back.equals(f.head(2).with_columns(pl.col("vendor").replace("", None)))


def test_decode_names_the_bad_line():
    with pytest.raises(LineProtocolError, match="line 2"):
        decode("accel,device=a temp_c=1 1\naccel,device=a temp_c 2\n")


def test_decode_rejects_unknown_fields_of_schema_measurements_with_the_line():
    with pytest.raises(LineProtocolError, match=r"line 1: unknown field 'temp_f'"):
        decode("accel,device=a temp_f=1 1\n")


def test_decode_keeps_other_measurements_as_they_come():
    got = decode("cpu,host=a usage=1.5,n=3i 10\n")["cpu"]
    assert got.select("host", "usage", "n").rows() == [("a", 1.5, 3)]


def test_missing_timestamp_takes_the_receive_time_or_fails():
    assert decode("cpu v=1", default_time_ns=5)["cpu"]["time"].dt.epoch("ns").to_list() == [5]
    with pytest.raises(LineProtocolError, match="no timestamp"):
        decode("cpu v=1")


tag_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and not s.endswith("\\")
)


@settings(max_examples=200, deadline=None)
@given(
    node=tag_text,
    device=tag_text,
    temp=st.floats(allow_nan=True, allow_infinity=False, allow_subnormal=False, width=64),
    gen=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    ts=st.integers(min_value=0, max_value=2**62),
)
def test_round_trip_property(node, device, temp, gen, ts):
    f = conform(
        pl.DataFrame({"time": [ts], "node": [node], "device": [device], "temp_c": [temp], "pcie_link_gen": [gen]}),
        "accel",
    )
    back = decode(encode(f, "accel"))["accel"]
    assert back["node"][0] == node and back["device"][0] == device
    assert back["pcie_link_gen"][0] == gen
    assert back["time"].dt.epoch("ns")[0] == ts
    got = back["temp_c"][0]
    assert (got is None and math.isnan(temp)) or got == temp


def test_many_lines_encode_as_the_same_bytes_as_few():
    # above 2,000 lines the bytes come from polars' CSV writer, below from a join: one result either way
    n = 2500
    frame = conform(
        pl.DataFrame(
            {
                "time": list(range(1, n + 1)),
                "node": ["n 1"] * n,
                "device": ["gpu,0"] * n,
                "temp_c": [float(i) / 3 for i in range(n)],
            }
        ),
        "accel",
    )
    whole = encode(frame, "accel")
    parts = b"".join(encode(frame.slice(i, 500), "accel") for i in range(0, n, 500))
    assert whole == parts and whole.count(b"\n") == n and whole.endswith(b"\n")


def test_columns_without_any_value_change_nothing():
    frame = pl.DataFrame({"time": [1, 2], "node": ["n1", "n1"], "device": ["gpu0", "gpu1"], "temp_c": [1.5, None]})
    assert encode(conform(frame, "accel"), "accel") == encode(frame, "accel")  # conform adds every schema column


def test_a_point_is_repeated_when_its_tags_and_time_come_twice():
    frame = conform(
        pl.DataFrame(
            {"time": [1, 1, 2], "node": ["n1"] * 3, "device": ["gpu0", "gpu1", "gpu0"], "temp_c": [1.0, 2.0, 3.0]}
        ),
        "accel",
    )
    assert not repeats_points(frame, "accel")
    assert repeats_points(pl.concat([frame, frame.slice(2, 1).with_columns(pl.lit(9.0).alias("temp_c"))]), "accel")


def test_split_lines_cuts_on_line_ends_within_the_limit():
    body = b"".join(b"m v=%di %d\n" % (i, i) for i in range(100))
    parts = split_lines(body, 64)
    assert b"".join(parts) == body
    assert all(len(p) <= 64 and p.endswith(b"\n") for p in parts)
    assert split_lines(body, len(body)) == [body]


def test_split_lines_keeps_a_line_longer_than_the_limit_whole():
    long = b'm s="' + b"x" * 100 + b'" 1\n'
    assert split_lines(b"m v=1 0\n" + long + b"m v=2 2\n", 32) == [b"m v=1 0\n", long, b"m v=2 2\n"]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("_internal value=1 1700000000000000000", "measurement name"),
        ("cpu,time=x usage=1 1700000000000000000", "'time'"),
        ("cpu usage=1,time=2 1700000000000000000", "'time'"),
        ("cpu,x=a x=1 1700000000000000000", "both a tag and a field"),
        ("cpu node=1 1700000000000000000", "'node' is a tag"),
        ("accel,device=gpu0 temp_c=true 1700000000000000000", "a number"),
        ("accel,device=gpu0 throttle_thermal=1i 1700000000000000000", "true/false"),
        ("cpu,host=" + "h" * 5000 + " usage=1 1700000000000000000", "4,096 bytes"),
    ],
)
def test_decode_refuses_what_no_store_keeps_naming_the_line(line, says):
    with pytest.raises(SchemaError, match=says) as err:
        decode(f"cpu usage=1 1700000000000000000\n{line}\n")
    assert err.value.where == "line 2"


def test_a_timestamp_is_checked_after_the_precision_is_applied():
    with pytest.raises(SchemaError, match="outside 1677-09-21") as err:
        decode("cpu usage=1 9223372036854775\n", precision_factor=10**9)
    assert err.value.where == "line 1"
    assert decode("cpu usage=1 1700000000\n", precision_factor=10**9)["cpu"]["time"].dt.epoch("s").to_list() == [
        1_700_000_000
    ]


def test_with_a_time_window_a_time_outside_says_the_unit_looks_wrong():
    window = (946_684_800 * 10**9, 1_800_000_000 * 10**9)
    assert decode("cpu usage=1 1700000000000000000\n", time_window=window)["cpu"].height == 1
    with pytest.raises(SchemaError, match="unit looks wrong") as err:
        decode("cpu usage=1 1700000000000000000\ncpu usage=1 1700000000\n", time_window=window)
    assert err.value.where == "line 2"


def test_a_backslash_inside_a_tag_round_trips_and_one_at_the_end_is_refused():
    frame = conform(
        pl.DataFrame({"time": [1_700_000_000 * 10**9], "device": ["a\\b,c=d e\\x"], "temp_c": [1.0]}), "accel"
    )
    assert decode(encode(frame, "accel"))["accel"]["device"].to_list() == ["a\\b,c=d e\\x"]
