"""The vectorised path of `telemetry.line_protocol.decode`: plain lines parsed with polars string kernels.

A *plain* line has no double quote (no string field), no control character, and no backslash but in the escapes
``\\ ``, ``\\,`` and ``\\=`` (a tag value ``Wormhole\\ n300``); those are set aside as control characters first,
so the only separators left are the first space (measurement and tags | fields), the second (fields | timestamp),
``,`` and ``=``. Such lines are grouped by their *skeleton* (the line with every value blanked: measurement, tag keys,
field keys, timestamp or not), which is judged once in Python (names, reserved keys, the schema); each group is
then split into columns by one ``split_exact`` and its values typed column by column (``5i`` int, ``t``/``false``
bool, decimals float), all in polars.

Whatever this path is not sure of it does not decide: `decode_plain` returns None (a line that does not split
as its skeleton says, a value that is neither a number nor a boolean, a timestamp out of range, a name or key the
rules refuse, an unknown field of a schema measurement, ...), and the caller parses those lines one at a time with
the reference parser, which names the line and what is wrong. So both paths accept the same lines into the same
frames, and every error comes from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

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
_FLOAT = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_INT = r"^[+-]?[0-9]+i$"
_UINT = r"^[0-9]+u$"
_TRUE = ("t", "T", "true", "True", "TRUE")
_FALSE = ("f", "F", "false", "False", "FALSE")
PLAIN = r'^(?:[^\\"\x00-\x1f\x7f]|\\[ ,=])*$'
ESCAPES = {"\\ ": "\x01", "\\,": "\x02", "\\=": "\x03"}
UNESCAPE = {v: k[1] for k, v in ESCAPES.items()}


def _hide_escapes(e: pl.Expr) -> pl.Expr:
    for k, v in ESCAPES.items():
        e = e.str.replace_all(k, v, literal=True)
    return e


def _unescape(e: pl.Expr) -> pl.Expr:
    for k, v in UNESCAPE.items():
        e = e.str.replace_all(k, v, literal=True)
    return e


def _unescape_text(text: str) -> str:
    for k, v in UNESCAPE.items():
        text = text.replace(k, v)
    return text


@dataclass(frozen=True)
class Skeleton:
    """One line shape: measurement, tag keys, field keys, whether a timestamp ends it."""

    measurement: str
    tags: tuple[str, ...]
    fields: tuple[str, ...]
    has_time: bool

    @property
    def separators(self) -> int:
        """``[ ,=]`` characters of a line of this shape."""
        return 2 * len(self.tags) + 2 * len(self.fields) - 1 + (1 if self.has_time else 0) + 1

    def names(self) -> list[str]:
        """Token names in split order: measurement, then tag key / value pairs, field pairs, time."""
        out = ["_m"]
        for t in self.tags:
            out += [f"_k{t}", t]
        for f in self.fields:
            out += [f"_k{f}", f]
        return [*out, TIME] if self.has_time else out


def parse_skeleton(text: str) -> Skeleton | None:
    """The shape of a blanked line (``m,t=,u= f=,g= T`` or without `` T``), or None if it is not one."""
    head, _, rest = text.partition(" ")
    fields_text, _, tail = rest.partition(" ")
    if tail not in ("", "T") or not fields_text:
        return None
    parts = head.split(",")
    m, tag_parts = parts[0], parts[1:]
    if not m or any(not p.endswith("=") or p.count("=") != 1 for p in tag_parts):
        return None
    field_parts = fields_text.split(",")
    if any(not p.endswith("=") or p.count("=") != 1 for p in field_parts):
        return None
    tags = tuple(_unescape_text(p[:-1]) for p in tag_parts)
    fields = tuple(_unescape_text(p[:-1]) for p in field_parts)
    m = _unescape_text(m)
    if any(not k for k in (*tags, *fields)) or len(set(tags)) != len(tags) or len(set(fields)) != len(fields):
        return None
    return Skeleton(m, tags, fields, tail == "T")


def skeleton_ok(sk: Skeleton, strict_schema: bool) -> bool:
    """The checks of `telemetry.line_protocol._line_problem` that depend on names only (once per shape)."""
    if measurement_name_problem(sk.measurement) is not None:
        return False
    keys = (*sk.tags, *sk.fields)
    if any(k in RESERVED_KEYS or text_problem(k, "key") is not None for k in keys):
        return False
    if set(sk.tags) & set(sk.fields) or "node" in sk.fields:
        return False
    known = MEASUREMENTS.get(sk.measurement)
    return not (
        known is not None
        and strict_schema
        and (any(t not in known.tags for t in sk.tags) or any(f not in known.field_index for f in sk.fields))
    )


def _typed(name: str, values: pl.Series, kind: str | None) -> pl.Series | None:
    """One field column from its tokens: all ints (``5i``) -> Int64, all booleans -> Boolean, else every token a
    decimal or int -> Float64; None when the tokens mix booleans and numbers or are neither (the reference parser
    then decides), or a schema field's kind does not match (a boolean for a number or a number for a boolean)."""
    frame = values.to_frame("v")
    is_bool = values.is_in([*_TRUE, *_FALSE])
    if is_bool.all():
        if kind is not None and kind not in ("bool", "str"):
            return None
        return frame.select(pl.col("v").is_in(list(_TRUE)).alias(name)).to_series()
    if is_bool.any() or kind == "bool":
        return None
    is_int = values.str.contains(_INT)
    if is_int.all():
        return frame.select(
            pl.col("v").str.slice(0, pl.col("v").str.len_chars() - 1).cast(pl.Int64, strict=False).alias(name)
        ).to_series()
    is_uint = values.str.contains(_UINT)
    ok = is_int | is_uint | values.str.contains(_FLOAT)
    if not ok.all():
        return None
    out = frame.select(
        pl.when(pl.col("v").str.ends_with("i") | pl.col("v").str.ends_with("u"))
        .then(pl.col("v").str.slice(0, pl.col("v").str.len_chars() - 1))
        .otherwise(pl.col("v"))
        .cast(pl.Float64, strict=False)
        .alias(name)
    ).to_series()
    return out if out.null_count() == 0 else None


def decode_plain(
    lines: pl.Series,
    line_nos: pl.Series,
    default_time_ns: int | None,
    strict_schema: bool,
    precision_factor: int,
    time_window: tuple[int, int] | None,
) -> dict[str, pl.DataFrame] | None:
    """Plain lines (see the module docstring; stripped, no comments or blanks) -> one frame per measurement with
    a ``_line`` column (the line number, to keep file order), or None when any line needs the reference parser."""
    if lines.len() == 0:
        return {}
    frame = pl.DataFrame({"l": lines, "_line": line_nos}).with_columns(_hide_escapes(pl.col("l")))
    frame = frame.with_columns(
        pl.col("l").str.replace_all(r"=[^ ,]*", "=").str.replace(r" [+-]?[0-9]+$", " T").alias("sk"),
        pl.col("l").str.count_matches(r"[ ,=]").alias("n"),
    )
    out: dict[str, list[pl.DataFrame]] = {}
    for (sk_text,), group in frame.group_by(["sk"], maintain_order=True):
        sk = parse_skeleton(str(sk_text))
        if sk is None or not skeleton_ok(sk, strict_schema):
            return None
        if (group["n"] != sk.separators).any():
            return None
        if not sk.has_time and default_time_ns is None:
            return None
        names = sk.names()
        cols = group.select(
            pl.col("l").str.replace_all(r"[ ,=]", SEP).str.split_exact(SEP, len(names) - 1).struct.rename_fields(names),
            "_line",
        ).unnest("l")
        if sk.tags and group["l"].str.contains("[\x01-\x03]").any():
            cols = cols.with_columns(_unescape(pl.col(t)) for t in sk.tags)
        if any(cols[t].null_count() or (cols[t] == "").any() for t in (*sk.tags, *sk.fields)):
            return None
        if sk.has_time:
            ts = cols[TIME].cast(pl.Int64, strict=False)
            if ts.null_count():
                return None
        else:
            ts = pl.Series(TIME, [default_time_ns] * cols.height, dtype=pl.Int64)
        if precision_factor != 1:
            lo, hi = INFLUX_MIN_NS // precision_factor, INFLUX_MAX_NS // precision_factor
            if ((ts < lo) | (ts > hi)).any():
                return None
            ts = ts * precision_factor
        if ((ts < INFLUX_MIN_NS) | (ts > INFLUX_MAX_NS)).any():
            return None
        if time_window is not None and ((ts < time_window[0]) | (ts > time_window[1])).any():
            return None
        long_tags = [t for t in sk.tags if (cols[t].str.len_bytes() > MAX_KEY_BYTES).any()]
        if long_tags or group["l"].str.len_bytes().max() > 60_000:  # type: ignore[operator]
            return None
        known = MEASUREMENTS.get(sk.measurement)
        series = [ts.cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias(TIME)]
        series += [cols[t] for t in sk.tags]
        for f in sk.fields:
            spec = known.field_index.get(f) if known is not None else None
            typed = _typed(f, cols[f], spec.kind if spec is not None else None)
            if typed is None:
                return None
            series.append(typed)
        series.append(cols["_line"])
        out.setdefault(sk.measurement, []).append(pl.DataFrame(series))
    frames: dict[str, pl.DataFrame] = {}
    for m, parts in out.items():
        if len(parts) > 1:
            kinds: dict[str, set[bool]] = {}
            for part in parts:
                for name, dtype in part.schema.items():
                    kinds.setdefault(name, set()).add(dtype == pl.Boolean)
            if any(len(k) > 1 for k in kinds.values()):  # a key true/false in some lines, a number in others
                return None
        frames[m] = (pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]).sort("_line")
    return frames


def plain_mask(lines: pl.Series) -> pl.Series:
    """Which (stripped, non-comment) lines the vectorised path may parse."""
    return lines.str.contains(PLAIN)
