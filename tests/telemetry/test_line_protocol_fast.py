"""The vectorised line-protocol path decodes exactly what the reference parser decodes, and leaves every line it
is not sure of (and every error) to the reference parser."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.errors import LineProtocolError, NeighborscopeError, SchemaError
from telemetry.line_protocol import _parse_lines, _rows_to_frame, decode
from telemetry.line_protocol_fast import decode_plain, parse_skeleton, plain_mask
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


def test_the_vectorised_path_declines_what_it_is_not_sure_of():
    import polars as pl

    nos = pl.Series([1])
    for line in (
        f"cpu,host=a v=1 {T0} extra",  # a fourth part
        f"cpu,host=a=b v=1 {T0}",  # '=' inside a tag value, unescaped
        f"cpu,host=a v=nan {T0}",  # not a number of line protocol
        f"cpu,host=a v=1,v=2 {T0}",  # a field twice
    ):
        assert decode_plain(pl.Series([line]), nos, None, True, 1, None) is None, line
    assert not plain_mask(pl.Series(['m,t=a v="x" 1', "m,t=a\\\\b v=1 1"])).any()
    assert parse_skeleton("accel,node=,device= temp_c= T") is not None
    assert parse_skeleton("accel,node=,device= temp_c=") is not None


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
    try:
        ref = reference(text)
    except NeighborscopeError as exc:
        with pytest.raises(type(exc)):
            decode(text)
        return
    equal(decode(text), ref)
