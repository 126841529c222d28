"""Frames <-> InfluxDB line protocol. Pure functions, no I/O.

Encoding is vectorised over polars expressions (no per-point Python loop). Escaping follows the
line-protocol reference: measurement names escape ``,`` and space; tag keys, tag values and field keys
escape ``,``, ``=`` and space; string field values are double-quoted with ``"`` and ``\\`` escaped.
Line protocol has no way to carry a newline in a tag or field value, so newlines (and carriage returns)
become spaces. Null tags are left out of the line (InfluxDB has no empty tag values); null, NaN and
infinite fields are left out (absent, never 0); a row with no field left is dropped, since a line needs
at least one field. Floats are written as decimals, integers with the ``i`` suffix, booleans as
``true``/``false``, timestamps in nanoseconds.

Decoding parses plain lines (no string fields) with polars string kernels (`telemetry.line_protocol_fast`: the
body cut once into token and signature views, lines grouped by shape, values typed column by column) and every line
that path declines (a string field, a value or shape it is not sure of, a bad line) with the maintained
`line-protocol-parser` package, one line at a time, which reports the line number and text of a bad line.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache

import line_protocol_parser
import polars as pl

from telemetry.errors import LineProtocolError, SchemaError
from telemetry.line_protocol_fast import Lines, decode_plain, mixed_kinds, split_text
from telemetry.schema import (
    INFLUX_MAX_NS,
    INFLUX_MIN_NS,
    MAX_SERIES_KEY_BYTES,
    MEASUREMENTS,
    RESERVED_KEYS,
    TIME,
    conform,
    measurement_name_problem,
    text_problem,
    time_problem,
)


def _escape(expr: pl.Expr, chars: str) -> pl.Expr:
    expr = expr.str.replace_all("\n", " ", literal=True).str.replace_all("\r", " ", literal=True)
    for ch in chars:
        expr = expr.str.replace_all(ch, "\\" + ch, literal=True)
    return expr


def _escape_text(text: str, chars: str) -> str:
    text = text.replace("\n", " ").replace("\r", " ")
    for ch in chars:
        text = text.replace(ch, "\\" + ch)
    return text


def _field_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    key = _escape_text(name, ",= ") + "="
    col = pl.col(name)
    if dtype == pl.Boolean:
        value = pl.when(col).then(pl.lit("true")).when(~col).then(pl.lit("false"))
    elif dtype.is_integer():
        value = col.cast(pl.String) + pl.lit("i")
    elif dtype.is_float():
        value = pl.when(col.is_finite()).then(col.cast(pl.Float64).cast(pl.String))
    elif dtype == pl.String:
        inner = col.str.replace_all("\n", " ", literal=True).str.replace_all("\r", " ", literal=True)
        inner = inner.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
        value = pl.lit('"') + inner + pl.lit('"')
    else:
        raise SchemaError(f"field {name!r} has dtype {dtype}, which line protocol cannot carry")
    return pl.lit(key) + value


@lru_cache(maxsize=256)
def _line_parts(
    measurement: str, schema: tuple[tuple[str, pl.DataType], ...], tag_cols: tuple[str, ...]
) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """A line's three parts (measurement+tags, fields, timestamp) as expressions for one frame schema: built
    once per (measurement, schema, tags) and cached, since building them costs about 1 ms of Python."""
    types = dict(schema)
    field_cols = [c for c, _ in schema if c != TIME and c not in tag_cols]
    head: list[pl.Expr] = [pl.lit(_escape_text(measurement, ", "))]
    for t in tag_cols:
        v = pl.col(t).cast(pl.String)
        head.append(
            pl.when(v.is_not_null() & (v != "")).then(pl.lit("," + _escape_text(t, ",= ") + "=") + _escape(v, ",= "))
        )
    fields = pl.concat_str([_field_expr(c, types[c]) for c in field_cols], separator=",", ignore_nulls=True)
    ts = pl.col(TIME).dt.epoch("ns") if isinstance(types[TIME], pl.Datetime) else pl.col(TIME).cast(pl.Int64)
    return (
        pl.concat_str(head, ignore_nulls=True).alias("_head"),
        fields.alias("_fields"),
        ts.cast(pl.String).alias("_ts"),
    )


def _tag_columns(frame: pl.DataFrame, measurement: str, tags: Iterable[str] | None) -> tuple[str, ...]:
    """The frame's tag columns, sorted: ``tags`` if given, else the schema's, else every String column."""
    if tags is None:
        tags = (
            MEASUREMENTS[measurement].tags
            if measurement in MEASUREMENTS
            else [c for c, t in frame.schema.items() if t == pl.String and c != TIME]
        )
    return tuple(sorted(t for t in tags if t in frame.columns))


def repeats_points(frame: pl.DataFrame, measurement: str, tags: Iterable[str] | None = None) -> bool:
    """True when two rows would be the same InfluxDB point (same tag set and timestamp): whichever InfluxDB
    receives last wins, so such rows must reach it in order."""
    if TIME not in frame.columns or frame.height < 2:
        return False
    return frame.select(TIME, *_tag_columns(frame, measurement, tags)).n_unique() < frame.height


def encode_lines(frame: pl.DataFrame, measurement: str, tags: Iterable[str] | None = None) -> pl.Series:
    """One line-protocol line per row of ``frame`` (a String series; rows without any field are dropped).

    ``tags`` names the tag columns; for a schema measurement it defaults to the schema's tags, else to
    every String column.
    """
    if TIME not in frame.columns:
        raise SchemaError("missing the 'time' column", measurement)
    tag_cols = _tag_columns(frame, measurement, tags)
    # columns without a single value add nothing to any line: leave them out of the expressions (an agent
    # fills only the fields its hardware reports; the schema has many more)
    n = frame.height
    nulls = dict(zip(frame.columns, frame.null_count().row(0), strict=True)) if n else {}
    present = tuple((c, t) for c, t in frame.schema.items() if c == TIME or nulls.get(c, n) < n)
    tag_cols = tuple(t for t in tag_cols if nulls.get(t, n) < n)
    if n == 0 or all(c == TIME or c in tag_cols for c, _ in present):
        return pl.Series("line", [], dtype=pl.String)
    parts = _line_parts(measurement, present, tag_cols)
    plan = (
        frame.lazy()
        .select(*parts)
        .filter(pl.col("_fields") != "")
        .select(pl.concat_str(["_head", "_fields", "_ts"], separator=" ").alias("line"))
    )
    # no query optimisation: on this plan the optimiser only adds work (it takes twice as long with it)
    return plan.collect(optimizations=pl.QueryOptFlags.none())["line"]


def lines_bytes(lines: pl.Series) -> bytes:
    """Newline-terminated UTF-8 bytes of encoded lines. Many lines go through polars' CSV writer (one unquoted
    column; a line never holds a newline), without a Python string per line: 2-3x faster than joining them."""
    if lines.len() == 0:
        return b""
    if lines.len() < 2000:  # below that, the writer's start-up costs more than it saves
        return (lines.str.join("\n")[0] + "\n").encode("utf-8")
    buf = io.BytesIO()
    lines.to_frame("line").write_csv(buf, include_header=False, quote_style="never", line_terminator="\n")
    return buf.getvalue()


def encode(frame: pl.DataFrame, measurement: str, tags: Iterable[str] | None = None) -> bytes:
    """Line protocol for a whole frame, newline-terminated lines, UTF-8."""
    return lines_bytes(encode_lines(frame, measurement, tags))


def split_lines(body: bytes, max_bytes: int) -> list[bytes]:
    """Line-protocol ``body`` cut on line ends into parts of at most ``max_bytes`` (a longer line stands alone)."""
    if len(body) <= max_bytes:
        return [body]
    parts: list[bytes] = []
    start = 0
    n = len(body)
    while start < n:
        stop = start + max_bytes
        if stop >= n:
            parts.append(body[start:])
            break
        cut = body.rfind(b"\n", start, stop)
        if cut < start:  # one line longer than max_bytes
            cut = body.find(b"\n", stop)
            if cut < 0:
                parts.append(body[start:])
                break
        parts.append(body[start : cut + 1])
        start = cut + 1
    return [p for p in parts if p and not p.isspace()]  # (strip() would copy every part)


def decode(
    text: str | bytes,
    default_time_ns: int | None = None,
    strict_schema: bool = True,
    precision_factor: int = 1,
    time_window: tuple[int, int] | None = None,
) -> dict[str, pl.DataFrame]:
    """Parse line protocol into one frame per measurement, judging every line before returning anything.

    Schema measurements are conformed to the schema (an unknown field raises `SchemaError` naming the
    line); other measurements keep the tags and fields they carry. Lines without a timestamp get
    ``default_time_ns`` (the receive time), or raise when it is None. Timestamps are multiplied by
    ``precision_factor`` (1 for ns, 1000 for us, ...) to give nanoseconds.

    `LineProtocolError` naming the line for a line that does not parse; `SchemaError` whose ``where`` is
    ``line N`` for a line that parses but holds what no store can keep: a measurement name outside
    `telemetry.schema.MEASUREMENT_NAME_PATTERN`, a tag or field named ``time``, a key used as both tag and
    field, a key or tag value `telemetry.schema.text_problem` refuses, a series key over 64 KiB, a timestamp
    outside InfluxDB's range once ``precision_factor`` is applied, a boolean for a number (or a number for a
    boolean) of a schema field; with ``time_window`` (epoch ns), a time outside it.
    """
    data = None
    if isinstance(text, bytes):
        data = text
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineProtocolError(f"not UTF-8 at byte {exc.start}", 0) from None
    lines = split_text(text, data)
    fast = None if lines is None else decode_plain(lines, default_time_ns, strict_schema, precision_factor, time_window)
    if fast is not None:
        frames, done = fast
        slow: dict[str, list[tuple[int, dict, dict, int]]] = {}
        if not done.all():
            numbers, texts = lines.stripped(lines.number.filter(~done))
            slow = _parse_lines(
                zip(numbers.to_list(), texts.to_list(), strict=True), default_time_ns, precision_factor, time_window
            )
        merged: dict[str, list[pl.DataFrame]] = {}
        for m in dict.fromkeys([*frames, *slow]):
            merged[m] = [
                f
                for f in (
                    frames.get(m),
                    _rows_to_frame(m, slow[m], strict_schema, keep_lines=True) if m in slow else None,
                )
                if f is not None
            ]
        if not any(len(parts) > 1 and mixed_kinds(parts) for parts in merged.values()):
            return {
                m: _finish(m, pl.concat(parts, how="diagonal_relaxed").sort("_line") if len(parts) > 1 else parts[0])
                for m, parts in merged.items()
            }
    # the reference parser judges every line, and names the first bad one
    numbers, texts = lines.stripped() if lines is not None else Lines(text, *[pl.Series()] * 4).stripped()
    pairs = zip(numbers.to_list(), texts.to_list(), strict=True)
    return {
        m: _rows_to_frame(m, r, strict_schema)
        for m, r in _parse_lines(pairs, default_time_ns, precision_factor, time_window).items()
    }


def _parse_lines(
    pairs: Iterable[tuple[int, str]],
    default_time_ns: int | None,
    precision_factor: int,
    time_window: tuple[int, int] | None,
) -> dict[str, list[tuple[int, dict, dict, int]]]:
    """(line number, stripped line) pairs through the reference parser, judged one by one (the first problem
    raises, naming its line)."""
    rows: dict[str, list[tuple[int, dict, dict, int]]] = {}
    judged: dict[str, bool] = {}  # measurement names, keys and tag values already found fine
    for no, line in pairs:
        try:
            p = line_protocol_parser.parse_line(line)
        except line_protocol_parser.LineFormatError as exc:
            raise LineProtocolError(str(exc).rstrip("."), no, line) from None
        ts = p["time"]
        if ts is None:
            if default_time_ns is None:
                raise LineProtocolError("no timestamp", no, line)
            ts = default_time_ns
        ts *= precision_factor
        problem = _line_problem(p, ts, judged, time_window)
        if problem is not None:
            error = SchemaError(f"{problem}: {line if len(line) <= 200 else line[:200] + '...'!r}", f"line {no}")
            error.line_no = no  # type: ignore[attr-defined] - as a LineProtocolError has, for importers
            raise error
        rows.setdefault(p["measurement"], []).append((no, p["tags"], p["fields"], ts))
    return rows


def _line_problem(p: dict, ts: int, judged: dict[str, bool], time_window: tuple[int, int] | None) -> str | None:
    """Why a parsed line cannot be stored, or None (``judged`` caches the texts found fine)."""
    name, tags, fields = p["measurement"], p["tags"], p["fields"]
    if not INFLUX_MIN_NS <= ts <= INFLUX_MAX_NS:
        return (
            f"timestamp {ts} (in ns) is outside 1677-09-21 .. 2262-04-11: the unit looks wrong (is ?precision right?)"
        )
    if time_window is not None and (why := time_problem(ts, time_window)) is not None:
        return why
    if name not in judged:
        if (why := measurement_name_problem(name)) is not None:
            return why
        judged[name] = True
    for key in (*tags, *fields):
        if key in RESERVED_KEYS:
            kind = "tag" if key in tags else "field"
            return f"a {kind} may not be named {key!r} (the timestamp is the line's last part)"
        if key not in judged:
            if (why := text_problem(key, "key")) is not None:
                return why
            judged[key] = True
    both = tags.keys() & fields.keys()
    if both:
        return f"{sorted(both)[0]!r} is both a tag and a field"
    if "node" in fields:
        return "'node' is a tag (the writing node), not a field"
    size = len(name)
    for key, value in tags.items():
        if value not in judged:
            if (why := text_problem(value, f"tag {key!r}")) is not None:
                return why
            judged[value] = True
        size += len(key) + len(value) + 2
    if (
        size > MAX_SERIES_KEY_BYTES // 4
        and len(name.encode()) + sum(len(k.encode()) + len(v.encode()) + 2 for k, v in tags.items())
        > MAX_SERIES_KEY_BYTES
    ):
        return f"series key (measurement and tags) over {MAX_SERIES_KEY_BYTES:,} bytes"
    known = MEASUREMENTS.get(name)
    if known is not None:
        for key, value in fields.items():
            spec = known.field_index.get(key)
            if spec is None or spec.kind == "str":
                continue
            if (spec.kind == "bool") != isinstance(value, bool):  # booleans are not numbers, nor numbers booleans
                return f"field {key!r} expects {'true/false' if spec.kind == 'bool' else 'a number'}, got {value!r}"
    return None


def _rows_to_frame(
    measurement: str, rows: list[tuple[int, dict, dict, int]], strict_schema: bool, keep_lines: bool = False
) -> pl.DataFrame:
    """Parsed rows -> the measurement's frame (conformed for a schema measurement); ``keep_lines``: with a
    ``_line`` column and not yet conformed (`_finish` does that after merging with the vectorised path's)."""
    known = MEASUREMENTS.get(measurement)
    cols: dict[str, list] = {TIME: [r[3] for r in rows]}
    n = len(rows)
    for i, (no, tags, fields, _ts) in enumerate(rows):
        for kind, mapping in (("tag", tags), ("field", fields)):
            for k, v in mapping.items():
                if known is not None and strict_schema:
                    ok = k in known.tags if kind == "tag" else k in known.field_index
                    if not ok:
                        raise LineProtocolError(f"unknown {kind} {k!r} for measurement {measurement!r}", no)
                col = cols.get(k)
                if col is None:
                    col = cols[k] = [None] * n
                col[i] = v
    series = []
    for k, values in cols.items():
        try:
            series.append(pl.Series(k, values, strict=False))
        except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
            raise LineProtocolError(f"field {k!r} mixes types: {exc}", rows[0][0]) from None
    frame = pl.DataFrame(series)
    frame = frame.with_columns(pl.col(TIME).cast(pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))
    frame = frame.with_columns(pl.Series("_line", [r[0] for r in rows], dtype=pl.Int64))
    return frame if keep_lines else _finish(measurement, frame)


def _finish(measurement: str, frame: pl.DataFrame) -> pl.DataFrame:
    """A decoded frame with its ``_line`` column -> conformed (schema measurements), without ``_line``; a value
    `conform` refuses is named by its line."""
    lines = frame["_line"]
    frame = frame.drop("_line")
    if measurement not in MEASUREMENTS:
        return frame
    try:
        return conform(frame, measurement, where=measurement)
    except SchemaError as exc:
        # map the row index back to its line number
        if exc.where.endswith("]") and "[" in exc.where:
            idx = int(exc.where.rsplit("[", 1)[1][:-1])
            raise LineProtocolError(str(exc), int(lines[idx])) from None
        raise
