"""The vectorised line-protocol path decodes exactly what the reference parser decodes, and leaves every line it
is not sure of (and every error) to the reference parser."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.errors import LineProtocolError, NeighborscopeError, SchemaError
from telemetry.line_protocol import _parse_lines, _rows_to_frame, decode
from telemetry.line_protocol_fast import (
    FLOAT_GRAMMAR,
    INT_GRAMMAR,
    decode_plain,
    plain_mask,
    signature_shape,
    split_text,
)
from telemetry.schema import MEASUREMENTS

T0 = 1_764_000_000_000_000_000


def reference(text: str, default_time_ns: int | None = None, strict_schema: bool = True) -> dict:
    """The per-line parser alone (what `decode` did before the vectorised path)."""
    pairs = [
        (i, line.strip())
        for i, line in enumerate(text.split("\n"), 1)
        if line.strip() and not line.strip().startswith("#")
    ]
    rows = _parse_lines(pairs, default_time_ns, 1, None)
    return {m: _rows_to_frame(m, r, strict_schema) for m, r in rows.items()}


def same_as_reference(text: str, default_time_ns: int | None = None, strict_schema: bool = True) -> None:
    """`decode` gives the reference parser's frames, or fails with the same kind of error where it fails."""
    try:
        ref = reference(text, default_time_ns, strict_schema)
    except NeighborscopeError as exc:
        with pytest.raises(type(exc)):
            decode(text, default_time_ns=default_time_ns, strict_schema=strict_schema)
        return
    equal(decode(text, default_time_ns=default_time_ns, strict_schema=strict_schema), ref)


def equal(fast: dict, ref: dict) -> None:
    """Same measurements, rows, values and dtypes; a measurement outside the schema has no column order (the
    reference parser gives its keys in reverse), so its columns are compared by name."""
    assert fast.keys() == ref.keys()
    for m in ref:
        a, b = fast[m], ref[m]
        if m not in MEASUREMENTS:
            a, b = a.select(sorted(a.columns)), b.select(sorted(b.columns))
        assert a.equals(b), (m, a, b)


def same(text: str, **kw) -> dict:
    fast = decode(text, **kw)
    equal(fast, reference(text, kw.get("default_time_ns"), kw.get("strict_schema", True)))
    return fast


def test_schema_rows_with_escaped_tags_ints_bools_and_gaps_decode_as_the_reference_does():
    text = "\n".join(
        [
            "# a comment",
            f"accel,node=n1,device=gpu0,model=Wormhole\\ n300,group=a\\,b temp_c=41.5,pcie_link_gen=5i,throttle_thermal=t {T0}",
            f"accel,node=n1,device=gpu1 temp_c=42,throttle_power=false {T0 + 1}",
            "",
            f"host,node=n1 cpu_util_pct=12.5,cpu_count=64i,load1=1e-2 {T0 + 2}",
            f"accel,node=n1,device=gpu0,model=Wormhole\\ n300,group=a\\,b temp_c=43.0,pcie_link_gen=5i,throttle_thermal=T {T0 + 3}",
        ]
    )
    out = same(text)
    assert out["accel"]["model"].to_list() == ["Wormhole n300", None, "Wormhole n300"]
    assert out["accel"]["group"][0] == "a,b"
    assert out["accel"]["throttle_thermal"].to_list() == [True, None, True]


def test_string_fields_and_plain_lines_of_one_measurement_keep_file_order():
    text = "\n".join(
        [
            f'tenant,node=n1,group=g cpu_pct=10,pids="1 2" {T0}',
            f"tenant,node=n1,group=g cpu_pct=20 {T0 + 1}",
            f'tenant,node=n1,group=h cpu_pct=30,pids="3" {T0 + 2}',
            f"tenant,node=n1,group=h cpu_pct=40 {T0 + 3}",
        ]
    )
    out = same(text)
    assert out["tenant"]["cpu_pct"].to_list() == [10.0, 20.0, 30.0, 40.0]


def test_foreign_measurements_and_lines_without_time_decode_as_the_reference_does():
    text = f"cpu,host=a,cpu=cpu-total usage_idle=90,usage_user=5i\nmem,host=a used=1i {T0}\nnvidia_smi,host=a,index=0 power_draw=300.5"
    same(text, default_time_ns=T0, strict_schema=True)


@pytest.mark.parametrize(
    ("line", "error", "words"),
    [
        (f"accel,node=n1,device=g bogus_c=1 {T0}", LineProtocolError, "unknown field 'bogus_c'"),
        (f"accel,node=n1,device=g temp_c=true {T0}", SchemaError, "expects a number"),
        (f"accel,node=n1,device=g throttle_power=1 {T0}", SchemaError, "expects true/false"),
        (f"cpu,host=a time=1 {T0}", SchemaError, "may not be named 'time'"),
        (f"cpu,host=a usage=abc {T0}", LineProtocolError, ""),
        ("cpu,host=a usage=1", LineProtocolError, "no timestamp"),
    ],
)
def test_a_bad_plain_line_is_named_by_the_reference_parser(line: str, error: type, words: str):
    text = f"host,node=n1 cpu_util_pct=1 {T0}\n{line}\nhost,node=n1 cpu_util_pct=2 {T0 + 1}"
    with pytest.raises(error) as exc:
        decode(text)
    assert getattr(exc.value, "line_no", None) == 2 or "line 2" in str(exc.value)
    assert words in str(exc.value)


def _declined(line: str) -> bool:
    fast = decode_plain(split_text(line), None, True, 1, None)
    return fast is None or not fast[1].any()


def test_the_vectorised_path_declines_what_it_is_not_sure_of():
    for line in (
        f"cpu,host=a v=1 {T0} extra",  # a fourth part
        f"cpu,host=a=b v=1 {T0}",  # '=' inside a tag value, unescaped
        f"cpu,host=a v=nan {T0}",  # not a number of line protocol
        f"cpu,host=a v=1,v=2 {T0}",  # a field twice
        f"cpu,host=a v=+1 {T0}",  # polars reads '+1', the reference parser refuses it
        f"cpu,host=a v=1 +{T0}",
        f"cpu,host=a v=1e-400 {T0}",  # underflows: refused by the reference parser (ERANGE)
        f"cpu,host=a v=5u {T0}",  # unsigned: left to the reference parser
        f"cpu,host=a  v=1 {T0}",  # two spaces
        f"cpu,host=a _line=1 {T0}",  # the vectorised path's own column
    ):
        assert _declined(line), line
    assert not _declined(f"cpu,host=a v=1 {T0}")
    assert not plain_mask(pl.Series(['m,t=a v="x" 1', "m,t=a\\\\b v=1 1"])).any()
    assert signature_shape(",=,= = ") == (2, 1, True)
    assert signature_shape(",=,= =") == (2, 1, False)
    assert signature_shape(",=, = ") is None


def test_lines_the_vectorised_path_declines_go_one_by_one_to_the_reference_parser_and_the_rest_stay_fast():
    good = [f"host,node=n{i % 3} cpu_util_pct={i}.5,cpu_count=64i {T0 + i}" for i in range(200)]
    odd = [
        f"  host,node=n1 cpu_util_pct=1 {T0 + 1000}  ",  # spaces around the line
        f"host,node=n1 cpu_util_pct=12u {T0 + 1002}",  # unsigned
        f"host,node=n1 cpu_util_pct=0e5 {T0 + 1003}",  # a 0 with an exponent
        f"foo,host=a v=1i,w=2u {T0}",
        f"foo,host=a v=1.5,w=3i {T0 + 1}",
        "   ",
        "  # an indented comment",
        f"host,node=n1 cpu_util_pct=2 {T0 + 1004}\t",  # a tab at the end
    ]
    lines = good[:100] + odd + good[100:]
    text = "\n".join(lines)
    fast = decode_plain(split_text(text), None, True, 1, None)
    assert fast is not None
    assert int(fast[1].sum()) >= 200  # the plain lines
    same(text)
    same(text.replace("\n", "\r\n"))


@pytest.mark.parametrize(
    "value",
    ["+1", "+.5", "1e999", "-1e999", "1e-400", "1e-310", "2e-308", "0e-400", "0.0", "-0", "5.", ".5", "00012", "1E+05",
     "+5i", "9223372036854775807i", "9223372036854775808i", "-9223372036854775808i", "5u", "-5u", "inf", "NaN", "tRUE",
     "T", "False"],
)  # fmt: skip
def test_numbers_at_the_edges_of_the_grammar_decode_or_fail_as_the_reference_does(value: str):
    text = "\n".join(f"m,t=a v={v} {T0 + i}" for i, v in enumerate([value, "1.5" if value[-1] != "i" else "2i"]))
    same_as_reference(text)


def test_polars_reads_numbers_as_the_line_protocol_grammar_says():
    """The vectorised path types tokens with polars' casts and refuses only what is not finite or starts with '+'
    (see `telemetry.line_protocol_fast`): this holds polars to the grammar over many random tokens."""
    import random

    rnd = random.Random(7)
    alphabet = "0123456789" * 3 + ".eE+-infaNIxd_ "
    tokens = ["".join(rnd.choices(alphabet, k=rnd.randint(1, 12))) for _ in range(100_000)]
    frame = pl.DataFrame({"t": tokens}).with_columns(
        f=pl.col("t").cast(pl.Float64, strict=False),
        i=pl.col("t").cast(pl.Int64, strict=False),
        fg=pl.col("t").str.contains(FLOAT_GRAMMAR),
        ig=pl.col("t").str.contains(INT_GRAMMAR),
        plus=pl.col("t").str.starts_with("+"),
    )
    assert frame["fg"].sum() > 1000 and frame["ig"].sum() > 1000
    # what polars reads (finite, no '+') is in the grammar, and what is in the grammar polars reads (overflow: inf)
    float_read = frame["f"].is_not_null() & frame["f"].is_finite() & ~frame["plus"]
    assert frame.filter(float_read & ~frame["fg"]).is_empty()
    assert frame.filter(frame["fg"] & frame["f"].is_null()).is_empty()
    int_read = frame["i"].is_not_null() & ~frame["plus"]
    assert frame.filter(int_read & ~frame["ig"]).is_empty()
    assert frame.filter(frame["ig"] & frame["i"].is_null() & frame["t"].str.len_bytes().lt(19)).is_empty()


tag_text = st.text(alphabet=st.sampled_from(list("ab9 ,=\\_-.")), min_size=1, max_size=6).filter(
    lambda s: not s.endswith("\\") and s.strip() == s
)
number = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda v: repr(float(v))),
    st.integers(-(2**40), 2**40).map(lambda v: f"{v}i"),
    st.sampled_from(["t", "false", "1.5e3", "-0.25", "7"]),
)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\=")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(tag_text, number, number, st.booleans()), min_size=1, max_size=12))
def test_random_lines_decode_the_same_or_fail_the_same(rows):
    text = "\n".join(
        f"m,t={_escape(t)} a={a}" + (f",b={b}" if both else "") + f" {T0 + i}" for i, (t, a, b, both) in enumerate(rows)
    )
    same_as_reference(text)


raw_line = st.text(alphabet=st.sampled_from(list("m,=  t1i.e-+\\#\tu")), min_size=1, max_size=24)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_line, min_size=1, max_size=8))
def test_random_bytes_of_line_protocol_decode_the_same_or_fail_the_same(lines):
    """Lines of separators, escapes, numbers and suffixes in any order (most of them bad): the vectorised path
    takes only what the reference parser takes, into the same frames, and leaves every error to it."""
    text = "\n".join(f"{line} {T0 + i}" if i % 2 else line for i, line in enumerate(lines))
    same_as_reference(text, T0, strict_schema=False)
