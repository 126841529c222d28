"""The vectorised path of `telemetry.line_protocol.decode`: plain lines parsed with polars string kernels.

A *plain* line has no double quote (no string field), no control character, and no backslash but in the escapes
``\\ ``, ``\\,`` and ``\\=`` (a tag value ``Wormhole\\ n300``); those are set aside as control characters first,
so the only separators left are the first space (measurement and tags | fields), the second (fields | timestamp),
``,`` and ``=``.

The text is cut once, as bytes, into two aligned views (`split_text`): each line's *tokens* (every separator
turned into one character, so a line splits into its tokens with one kernel) and its *signature* (its separators
alone: ``,=,= =,= `` is a line with two tags, two fields and a timestamp). Lines are grouped by signature, which
is judged once in Python and gives the token count and each token's role; within a group, lines with the same
measurement and keys form a *skeleton* (judged once: names, reserved keys, the schema), and each skeleton's values
are typed column by column (``5i`` int, ``t``/``false`` bool, decimals float), all in polars, a few calls per
skeleton whatever the number of lines.

Whatever this path is not sure of it does not decide: a line whose signature is not a line's, whose tokens or
values are not what line protocol allows (a value that is neither a number nor a boolean, an unsigned ``5u``, a
float the reference parser refuses, ``+1``, ...), whose timestamp is out of range, or a skeleton whose names the
rules refuse (a reserved key, an unknown field of a schema measurement, ...) is *declined*: the caller parses the
declined lines one at a time with the reference parser, which names the line and what is wrong. So both paths
accept the same lines into the same frames, and every error comes from one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from telemetry.schema import (
    INFLUX_MAX_NS,
    INFLUX_MIN_NS,
    MAX_KEY_BYTES,
    MEASUREMENTS,
    RESERVED_KEYS,
    TIME,
    measurement_name_problem,
    text_problem,
)

SEP = "\x1f"
# The reference parser's (line-protocol-parser's) numbers: a float ``-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?``
# in the normal double range (it refuses what underflows or overflows: ERANGE), an integer ``-?[0-9]+`` in int64 and
# ``i``, a timestamp ``-?[0-9]+``. polars' casts take exactly these, and also a leading '+' (refused here when a token
# may start with one) and inf / nan (not finite); tests/telemetry/test_line_protocol_fast.py holds polars to it.
FLOAT_GRAMMAR = r"^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
INT_GRAMMAR = r"^-?[0-9]+$"
_DBL_MIN = 2.2250738585072014e-308  # below it (and not 0) the reference parser refuses a float (ERANGE)
_TRUE = ("t", "T", "true", "True", "TRUE")
_FALSE = ("f", "F", "false", "False", "FALSE")
_BOOLS = [*_TRUE, *_FALSE]
PLAIN = r'^(?:[^\\"\x00-\x1f\x7f]|\\[ ,=])*$'
# an escaped separator keeps its backslash and becomes a control character, so no byte moves
ESCAPES = {"\\ ": "\\\x01", "\\,": "\\\x02", "\\=": "\\\x03"}
UNESCAPE = {v: k[1] for k, v in ESCAPES.items()}
_HIDE = np.arange(256, dtype=np.uint8)
_HIDE[[ord(" "), ord(","), ord("=")]] = [1, 2, 3]
_TO_SEP = bytes.maketrans(b" ,=", SEP.encode() * 3)
_NOT_SEP = bytes(b for b in range(256) if b not in b" ,=\n")
_SIGNATURE = re.compile(r"((?:,=)*) =((?:,=)*)( ?)")
MAX_LINE_BYTES = 60_000  # longer lines go to the reference parser (it checks the series key's size)


def _unescape(e: pl.Expr) -> pl.Expr:
    for k, v in UNESCAPE.items():
        e = e.str.replace_all(k, v, literal=True)
    return e


def _unescape_text(text: str) -> str:
    for k, v in UNESCAPE.items():
        text = text.replace(k, v)
    return text


def plain_mask(lines: pl.Series) -> pl.Series:
    """Which (stripped, non-comment) lines the vectorised path may parse."""
    return lines.str.contains(PLAIN)


def _hide_escapes(data: bytes) -> tuple[bytes, bool]:
    """``\\ ``, ``\\,`` and ``\\=`` with the escaped character as ``\\x01``-``\\x03`` (see `ESCAPES`); and whether every
    backslash was one of those."""
    arr = np.frombuffer(data, dtype=np.uint8)
    slashes = np.flatnonzero(arr == 0x5C)
    at = slashes[slashes < len(data) - 1] + 1
    after = arr[at]
    at = at[(after == 0x20) | (after == 0x2C) | (after == 0x3D)]
    if not at.size:
        return data, not slashes.size
    out = arr.copy()
    out[at] = _HIDE[out[at]]
    return out.tobytes(), at.size == slashes.size


def _plus_starts(data: bytes) -> bool:
    """Whether a token of ``data`` may start with '+' (one after a separator or at a line start)."""
    if b"+" not in data:
        return False
    arr = np.frombuffer(data, dtype=np.uint8)
    at = np.flatnonzero(arr == 0x2B)
    if at[0] == 0:
        return True
    before = arr[at - 1]
    return bool(((before == 0x3D) | (before == 0x20) | (before == 0x2C) | (before == 0x0A)).any())


def _lines_of(data: bytes) -> pl.Series:
    return pl.Series([data], dtype=pl.Binary).cast(pl.String).str.split("\n").explode()


@dataclass
class Lines:
    """A body cut into lines for the vectorised path: ``text`` (the body), and for each *candidate* line (not blank,
    not a comment) its ``number`` (1-based), whether it is ``plain`` (may the vectorised path try it), its ``tokens``
    (escapes hidden, every separator `SEP`, stripped) and ``signature`` (its separators); ``escaped``: the body holds
    an escape (so tokens may hold hidden ones)."""

    text: str
    number: pl.Series
    plain: pl.Series
    tokens: pl.Series
    signature: pl.Series
    escaped: bool = False
    plus: bool = True  # a token may start with '+'

    def stripped(self, number: pl.Series | None = None) -> tuple[pl.Series, pl.Series]:
        """(line numbers, stripped lines) of the lines of ``number`` (default: every line) that are not blank or
        comments, as the reference parser takes them."""
        lines = pl.Series("l", [self.text]).str.split("\n").explode().str.strip_chars()
        if number is None:
            number = pl.int_range(1, lines.len() + 1, eager=True).alias("_line")
        else:
            lines = lines.gather(number - 1)
        kept = lines.str.len_bytes().gt(0) & ~lines.str.starts_with("#")
        return number.filter(kept), lines.filter(kept)


def split_text(text: str, data: bytes | None = None) -> Lines | None:
    """``text`` (``data``: the same as UTF-8 bytes, when the caller has them) into `Lines`; None when there is no
    vectorised path for it (a lone surrogate)."""
    if data is None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    clean = b'"' not in data and b"\x7f" not in data
    if clean:
        arr = np.frombuffer(data, dtype=np.uint8)
        clean = int(np.count_nonzero(arr < 0x20)) == int(np.count_nonzero(arr == 0x0A))
    escaped = b"\\" in data
    if escaped:
        data, all_escapes = _hide_escapes(data)
        clean = clean and all_escapes
    tokens = _lines_of(data.translate(_TO_SEP))
    if not (clean and data.isascii()):  # else there is nothing to strip: no control character, no other space
        tokens = tokens.str.strip_chars()
    signature = _lines_of(data.translate(None, _NOT_SEP))
    # blank lines and comments (a line of spaces is not blank here: its signature declines it)
    candidate = tokens.str.len_bytes().gt(0) & ~tokens.str.starts_with("#")
    number = pl.int_range(1, tokens.len() + 1, eager=True).alias("_line").filter(candidate)
    if clean:
        plain = pl.repeat(True, number.len(), eager=True)
    else:
        lines = pl.Series("l", [text]).str.split("\n").explode().str.strip_chars().filter(candidate)
        plain = plain_mask(lines)
    return Lines(
        text, number, plain, tokens.filter(candidate), signature.filter(candidate), escaped, _plus_starts(data)
    )


@dataclass(frozen=True)
class Skeleton:
    """One line shape: measurement, tag keys, field keys, whether a timestamp ends it."""

    measurement: str
    tags: tuple[str, ...]
    fields: tuple[str, ...]
    has_time: bool


def signature_shape(signature: str) -> tuple[int, int, bool] | None:
    """(tags, fields, has a timestamp) of a line with these separators, or None if no line has them."""
    m = _SIGNATURE.fullmatch(signature)
    if m is None:
        return None
    return len(m.group(1)) // 2, len(m.group(2)) // 2 + 1, m.group(3) == " "


def skeleton_ok(sk: Skeleton, strict_schema: bool) -> bool:
    """The checks of `telemetry.line_protocol._line_problem` that depend on names only (once per shape)."""
    if not sk.measurement or measurement_name_problem(sk.measurement) is not None:
        return False
    keys = (*sk.tags, *sk.fields)
    if any(k in RESERVED_KEYS or text_problem(k, "key") is not None for k in keys):
        return False
    if len(set(sk.tags)) != len(sk.tags) or len(set(sk.fields)) != len(sk.fields):
        return False
    if set(sk.tags) & set(sk.fields) or "node" in sk.fields:
        return False
    known = MEASUREMENTS.get(sk.measurement)
    return not (
        known is not None
        and strict_schema
        and (any(t not in known.tags for t in sk.tags) or any(f not in known.field_index for f in sk.fields))
    )


# A field's tokens, from counts over them: every one a boolean, every one ending in "i", none, some of them (numbers
# either way), or booleans mixed with numbers (the reference parser decides those lines).
BOOL, INT, FLOAT, MIXED, BOOL_AND_NUMBER = "b", "i", "f", "m", "x"


def field_class(n: int, n_bool: int, n_int: int) -> str:
    if n_bool == n:
        return BOOL
    if n_bool:
        return BOOL_AND_NUMBER
    return INT if n_int == n else FLOAT if n_int == 0 else MIXED


def _no_plus(token: pl.Expr, plus: bool) -> pl.Expr:
    return ~token.str.starts_with("+") if plus else pl.lit(True)


def _field_exprs(token: str, cls: str, kind: str | None, plus: bool) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, token ok) of a field from its ``token`` column and its tokens' class: booleans -> Boolean, all
    ``i`` -> Int64, else Float64 (``5i`` tokens as numbers); ``plus``: a token may start with '+'. A token not ok
    declines its line; a schema field's kind that does not match declines every line (the reference parser names
    the first). A float's range is checked apart (`_underflow`)."""
    c = pl.col(token)
    if cls == BOOL:
        return c.is_in(list(_TRUE)), pl.lit(kind is None or kind in ("bool", "str"))
    if kind == "bool":
        return pl.lit(None, dtype=pl.Boolean), pl.lit(False)
    if cls == INT:
        value = c.str.head(-1).cast(pl.Int64, strict=False)
        return value, value.is_not_null() & _no_plus(c, plus)
    if cls == FLOAT:
        value = c.cast(pl.Float64, strict=False)
        return value, value.is_finite() & _no_plus(c, plus)
    ends_i = c.str.ends_with("i")
    body = pl.when(ends_i).then(c.str.head(-1)).otherwise(c)
    value = body.cast(pl.Float64, strict=False)
    int_ok = body.cast(pl.Int64, strict=False).is_not_null()
    return value, pl.when(ends_i).then(int_ok).otherwise(value.is_finite()) & _no_plus(c, plus)


def _underflow(token: str, name: str) -> tuple[pl.Expr, pl.Expr]:
    """(any, per token) a float the reference parser refuses as out of range though polars reads it: not 0 and below
    the normal range, or 0 from a token that is not a plain 0 (``1e-400``; ``0e5`` too, left to the reference)."""
    v, c = pl.col(name), pl.col(token)
    denormal = (v != 0) & (v.abs() < _DBL_MIN)
    odd_zero = c.str.contains("[eE]") | (c.str.len_bytes() > 300)
    return (
        denormal.any() | c.filter(v == 0).str.contains("[eE]").any() | c.filter(v == 0).str.len_bytes().gt(300).any(),
        denormal | ((v == 0) & odd_zero),
    )


def _time_exprs(
    token: str,
    has_time: bool,
    default_time_ns: int | None,
    precision_factor: int,
    time_window: tuple[int, int] | None,
    plus: bool,
) -> tuple[pl.Expr, pl.Expr]:
    """(epoch ns, ok) of each line: its timestamp token times ``precision_factor`` (or the default), within
    InfluxDB's range and ``time_window``."""
    if has_time:
        raw = pl.col(token).cast(pl.Int64, strict=False)
        ok = _no_plus(pl.col(token), plus)
        if precision_factor != 1:
            lo, hi = INFLUX_MIN_NS // precision_factor, INFLUX_MAX_NS // precision_factor
            ts = pl.when(raw.is_between(lo, hi)).then(raw * precision_factor)
        else:
            ts = raw
    else:
        assert default_time_ns is not None
        value = default_time_ns * precision_factor
        fits = INFLUX_MIN_NS <= value <= INFLUX_MAX_NS
        ts = pl.lit(value if fits else None, dtype=pl.Int64)
        ok = pl.lit(True)
    ok = ok & ts.is_between(INFLUX_MIN_NS, INFLUX_MAX_NS)
    if time_window is not None:
        ok = ok & ts.is_between(*time_window)
    return ts, ok


@dataclass(frozen=True)
class _Roles:
    """Token column names by role for a signature (names no key can have: keys hold no control character)."""

    keys: tuple[str, ...]  # measurement, tag keys, field keys
    tag_values: tuple[str, ...]
    field_values: tuple[str, ...]
    time: str
    order: tuple[str, ...]  # every token, in line order


@lru_cache(maxsize=1024)
def _signature_plan(n_tags: int, n_fields: int, has_time: bool) -> tuple[_Roles, pl.Expr, list[pl.Expr]]:
    """A signature's token roles, the expression splitting a line into them, and one row of checks over a group:
    every line's tokens there and not empty (a space the strip took from a line end leaves one empty) and the line
    not too long, every key the same as the first line's, and per field / tag the counts `field_class` needs."""
    keys = ("\0m", *(f"\0kt{i}" for i in range(n_tags)), *(f"\0kf{i}" for i in range(n_fields)))
    tags = tuple(f"\0t{i}" for i in range(n_tags))
    fields = tuple(f"\0f{i}" for i in range(n_fields))
    order = [keys[0]]
    for i in range(n_tags):
        order += [keys[1 + i], tags[i]]
    for i in range(n_fields):
        order += [keys[1 + n_tags + i], fields[i]]
    if has_time:
        order.append("\0time")
    roles = _Roles(keys, tags, fields, "\0time", tuple(order))
    split = pl.col("tok").str.split(SEP).list.to_struct(fields=list(order)).struct.unnest()
    checks = [
        _tokens_ok(roles).all().alias("ok"),
        pl.all_horizontal((pl.col(k) == pl.col(k).first()).all() for k in keys).alias("same"),
        pl.len().alias("n"),
        pl.col("\0len").max().alias("longest"),
        *_count_exprs(roles),
    ]
    return roles, split, checks


def _tokens_ok(roles: _Roles) -> pl.Expr:
    return (pl.col("\0len") <= MAX_LINE_BYTES) & (
        pl.min_horizontal(pl.col(r).str.len_bytes() for r in roles.order).fill_null(0) > 0
    )


def _count_exprs(roles: _Roles) -> list[pl.Expr]:
    return [
        *(pl.col(t).is_in(_BOOLS).sum().alias(f"b{i}") for i, t in enumerate(roles.field_values)),
        *(pl.col(t).str.ends_with("i").sum().alias(f"i{i}") for i, t in enumerate(roles.field_values)),
        *(pl.col(t).str.contains("\\", literal=True).any().alias(f"e{i}") for i, t in enumerate(roles.tag_values)),
    ]


@dataclass(frozen=True)
class _Options:
    default_time_ns: int | None
    precision_factor: int
    time_window: tuple[int, int] | None
    plus: bool  # a token may start with '+'


@lru_cache(maxsize=1024)
def _skeleton_plan(
    sk: Skeleton,
    roles: _Roles,
    classes: tuple[str, ...],
    unescape: tuple[bool, ...],
    long_lines: bool,
    underflow: bool,
    opts: _Options,
) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """The two steps (typed values, then the frame with an ``ok`` column per line) that decode a skeleton's token
    columns, for its fields' classes, which tag columns hold escapes, whether a line is longer than a tag value may
    be; with ``underflow``, each float is checked per line (`_underflow`), else the frame has an ``underflow``
    column (whether any float needs that)."""
    known = MEASUREMENTS.get(sk.measurement)
    values: list[pl.Expr] = []
    oks: list[pl.Expr] = []
    floats: list[tuple[str, str]] = []
    for token, f, cls in zip(roles.field_values, sk.fields, classes, strict=True):
        spec = known.field_index.get(f) if known is not None else None
        kind = spec.kind if spec is not None else None
        value, ok = _field_exprs(token, cls, kind, opts.plus)
        values.append(value.alias(f))
        oks.append(ok)
        if cls in (FLOAT, MIXED) and kind != "bool":
            floats.append((token, f))
    ts, time_ok = _time_exprs(
        roles.time, sk.has_time, opts.default_time_ns, opts.precision_factor, opts.time_window, opts.plus
    )
    values.append(ts.alias("\0ns"))
    oks.append(time_ok)
    if long_lines:
        oks += [pl.col(t).str.len_bytes() <= MAX_KEY_BYTES for t in roles.tag_values]
    extra: list[pl.Expr] = []
    if underflow:
        oks += [~_underflow(token, f)[1] for token, f in floats]
    else:
        extra.append(pl.any_horizontal(pl.lit(False), *(_underflow(token, f)[0] for token, f in floats)).alias("\0uf"))
    frame = [
        pl.col("\0ns").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias(TIME),
        *(
            (_unescape(pl.col(token)) if u else pl.col(token)).alias(t)
            for token, t, u in zip(roles.tag_values, sk.tags, unescape, strict=True)
        ),
        *sk.fields,
        "_line",
        pl.all_horizontal(oks).fill_null(False).alias("\0ok"),
        *extra,
    ]
    return values, frame


def _decode_skeleton(
    sk: Skeleton, cols: pl.DataFrame, roles: _Roles, counts: dict[str, int], opts: _Options, underflow: bool = False
) -> tuple[pl.DataFrame, pl.Series] | None:
    """The lines of one skeleton (token columns named by ``roles``, ``_line``; ``counts``: its `_count_exprs`) ->
    (frame with ``_line``, line numbers of the lines declined), or None to decline them all."""
    n = counts["n"]
    classes = tuple(field_class(n, counts[f"b{i}"], counts[f"i{i}"]) for i in range(len(sk.fields)))
    if BOOL_AND_NUMBER in classes:
        return None
    unescape = tuple(bool(counts[f"e{i}"]) for i in range(len(sk.tags)))
    long_lines = counts["longest"] > MAX_KEY_BYTES
    values, frame = _skeleton_plan(sk, roles, classes, unescape, long_lines, underflow, opts)
    out = cols.lazy().with_columns(values).select(frame).collect(optimizations=pl.QueryOptFlags.none())
    if not underflow and out.drop_in_place("\0uf")[0]:
        return _decode_skeleton(sk, cols, roles, counts, opts, underflow=True)
    ok = out.drop_in_place("\0ok")
    if ok.all():
        return out, pl.Series("_line", [], dtype=pl.Int64)
    if not ok.any():
        return None
    declined = out.filter(~ok)["_line"]
    # the classes were chosen over every line: choose them again over the lines kept (all of whose tokens are ok)
    kept = cols.filter(ok)
    counts = kept.select(pl.len().alias("n"), pl.col("\0len").max().alias("longest"), *_count_exprs(roles))
    again = _decode_skeleton(sk, kept, roles, counts.row(0, named=True), opts, underflow)
    if again is None:
        return None
    return again[0], pl.concat([declined, again[1]])


def decode_plain(
    lines: Lines,
    default_time_ns: int | None,
    strict_schema: bool,
    precision_factor: int,
    time_window: tuple[int, int] | None,
) -> tuple[dict[str, pl.DataFrame], pl.Series] | None:
    """The plain lines of ``lines`` -> (one frame per measurement with a ``_line`` column (the line number, to keep
    file order), a mask over ``lines`` of the lines parsed); the caller parses every other line with the reference
    parser. None when the vectorised path leaves the whole body to the reference parser (a key that is a boolean in
    some lines and a number in others)."""
    if not lines.plain.any():
        return {}, lines.plain
    frame = pl.DataFrame({"tok": lines.tokens, "sig": lines.signature, "_line": lines.number})
    if not lines.plain.all():
        frame = frame.filter(lines.plain)
    opts = _Options(default_time_ns, precision_factor, time_window, lines.plus)
    out: dict[str, list[pl.DataFrame]] = {}
    declined: list[pl.Series] = []
    groups = (
        [(frame["sig"][0], frame)]
        if frame["sig"].n_unique() == 1
        else [(sig, g) for (sig,), g in frame.group_by(["sig"], maintain_order=True)]
    )
    for sig, group in groups:
        shape = signature_shape(str(sig))
        if shape is None or (not shape[2] and default_time_ns is None):
            declined.append(group["_line"])
            continue
        n_tags, n_fields, has_time = shape
        roles, split, checks = _signature_plan(n_tags, n_fields, has_time)
        cols = group.lazy().select(split, "_line", pl.col("tok").str.len_bytes().alias("\0len")).collect()
        summary = cols.select(checks).row(0, named=True)
        if summary["ok"] and summary["same"]:
            parts = [(cols, summary)]
        else:
            ok = cols.select(_tokens_ok(roles)).to_series().fill_null(False)
            if not ok.all():
                declined.append(cols.filter(~ok)["_line"])
                cols = cols.filter(ok)
            parts = [
                (
                    part,
                    part.select(pl.len().alias("n"), pl.col("\0len").max().alias("longest"), *_count_exprs(roles)).row(
                        0, named=True
                    ),
                )
                for part in (cols.partition_by(list(roles.keys), maintain_order=True) if cols.height else [])
            ]
        for part, counts in parts:
            first = part.select(roles.keys).row(0)
            names = [_unescape_text(k) if lines.escaped else k for k in first]
            sk = Skeleton(names[0], tuple(names[1 : 1 + n_tags]), tuple(names[1 + n_tags :]), has_time)
            if not skeleton_ok(sk, strict_schema) or "_line" in (*sk.tags, *sk.fields):
                declined.append(part["_line"])
                continue
            decoded = _decode_skeleton(sk, part, roles, counts, opts)
            if decoded is None:
                declined.append(part["_line"])
                continue
            out.setdefault(sk.measurement, []).append(decoded[0])
            if decoded[1].len():
                declined.append(decoded[1])
    frames: dict[str, pl.DataFrame] = {}
    for m, parts in out.items():
        if len(parts) > 1:
            if mixed_kinds(parts):
                return None
            frames[m] = pl.concat(parts, how="diagonal_relaxed").sort("_line")
        else:
            frames[m] = parts[0]
    done = lines.plain
    if declined:
        done = done & ~lines.number.is_in(pl.concat(declined).implode())
    return frames, done


def _kind(dtype: pl.DataType) -> str:
    return "number" if dtype.is_numeric() else "null" if dtype == pl.Null else str(dtype)


def mixed_kinds(parts: list[pl.DataFrame]) -> bool:
    """True when a column is of another kind (boolean, number, string) in one part than in another: merging them
    could cast what the reference parser refuses as mixed types."""
    kinds: dict[str, set[str]] = {}
    for part in parts:
        for name, dtype in part.schema.items():
            kinds.setdefault(name, set()).add(_kind(dtype))
    return any(len(k - {"null"}) > 1 for k in kinds.values())
