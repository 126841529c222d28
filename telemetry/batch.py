"""The agent -> collector batch: a JSON document of columnar frames.

```json
{"node": "node1", "boot_id": "3f1c...", "seq": 42, "sent_at_ns": 1700000000000000000,
 "frames": [{"measurement": "accel",
             "columns": {"time": [1700000000000000000, ...], "device": ["gpu0", ...], "temp_c": [41.0, ...]}}]}
```

Columns hold one list per tag / field, all as long as ``time`` (epoch nanoseconds, UTC). A null is an
absent value. Columnar frames keep the collector's hot path vectorised (no per-sample Python loop).

Both ends live here: `make_batch` / `encode_batch` build a batch from schema frames or samplers' rows (the
agent, the demo and the benchmarks all send through them); `BatchIn`, `validate_columns` and
`batch_frames` check one and turn it back into schema frames (the collector). The collector's first try is
`decode_batch` + `validate_typed`: the JSON body decoded straight into typed columns by a decoder built from
the schema (msgspec), for a plainly valid batch; what it leaves goes the generic way, which names the sample.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field

from telemetry import schema
from telemetry.errors import SchemaError
from telemetry.lazy import lazy_module, loaded
from telemetry.schema import MEASUREMENTS, TIME, measurement, tag_values_problem, time_problem

if TYPE_CHECKING:
    import msgspec
    import numpy as np
    import polars as pl
else:  # the agent's path (rows -> JSON) needs none; the collector's imports them on first use
    msgspec = lazy_module("msgspec")
    np = lazy_module("numpy")
    pl = lazy_module("polars")

NODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_NODE_RE = re.compile(NODE_PATTERN)


class FrameIn(BaseModel):
    """One measurement's rows in columnar form."""

    model_config = ConfigDict(extra="forbid")

    measurement: str = Field(description="a measurement of the schema (accel, host, host_core, tenant, ...)")
    columns: dict[str, list[Any]] = Field(
        description="column name -> values; `time` is epoch nanoseconds (UTC); null = absent"
    )


class BatchIn(BaseModel):
    """A batch as an agent sends it."""

    model_config = ConfigDict(extra="forbid")

    node: str = Field(pattern=NODE_PATTERN, description="the sending node (must match its token)")
    boot_id: str = Field(min_length=1, max_length=64, description="the agent's boot id (new per agent start)")
    seq: int = Field(ge=0, le=2**63 - 1, description="per (node, boot_id) sequence number, increasing")
    sent_at_ns: int | None = Field(default=None, description="the agent's wall clock when sending")
    frames: list[FrameIn] = Field(max_length=64)


class BatchAck(BaseModel):
    status: str = Field(description="stored | duplicate")
    node: str
    boot_id: str
    seq: int
    rows: int


def frame_to_columns(frame: pl.DataFrame) -> dict[str, list[Any]]:
    """A schema frame -> JSON-ready columns (time as epoch ns; float NaN as null)."""
    cols: dict[str, list[Any]] = {}
    for name in frame.columns:
        s = frame[name]
        if name == TIME:
            cols[name] = s.dt.epoch("ns").to_list() if isinstance(s.dtype, pl.Datetime) else s.to_list()
        elif s.dtype.is_float():
            cols[name] = s.fill_nan(None).to_list()
        else:
            cols[name] = s.to_list()
    return cols


def rows_to_columns(name: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Rows (dicts) of one measurement -> JSON-ready columns, built without a DataFrame (the agent's hot path).
    A column no row has a value for is left out (absent); values are converted to their field's kind; NaN
    becomes null. `SchemaError` for a column the measurement does not have."""
    spec = _row_columns(name)
    present: set[str] = set()
    for r in rows:
        present.update(r)
    unknown = present - spec.keys()
    if unknown:
        raise SchemaError(f"unknown column(s) {sorted(unknown)}", name)
    out: dict[str, list[Any]] = {}
    n = len(rows)
    for c, (typ, conv) in spec.items():
        if c not in present:
            continue
        values = [r.get(c) for r in rows]
        if values.count(None) == n:
            continue
        if typ is float:
            # floats pass as they are unless NaN (v != v) or of another type
            values = [v if v.__class__ is float and v == v else conv(v) for v in values]
        elif not all(v.__class__ is typ or v is None for v in values):
            values = [conv(v) for v in values]
        out[c] = values
    return out


#: what a batch carries per measurement: a schema frame, or rows (one dict per sample, as samplers read them)
Measurements = Mapping[str, "pl.DataFrame | Sequence[Mapping[str, Any]]"]


def make_batch(node: str, boot_id: str, seq: int, data: Measurements, sent_at_ns: int | None = None) -> dict:
    """The JSON document of a batch (the one encoder: agents, the demo, benchmarks and tests use it).
    ``data`` maps a measurement to a schema frame (`frame_to_columns`) or to rows (`rows_to_columns`);
    empty ones are left out."""
    return {
        "node": node,
        "boot_id": boot_id,
        "seq": seq,
        "sent_at_ns": sent_at_ns,
        "frames": [
            {"measurement": name, "columns": _to_columns(name, items)} for name, items in data.items() if len(items)
        ],
    }


def encode_batch(
    node: str,
    boot_id: str,
    seq: int,
    data: Measurements,
    sent_at_ns: int | None = None,
    compresslevel: int = 5,
) -> bytes:
    """`make_batch` as the body of ``POST /v1/batches``: compact JSON, gzip-compressed
    (``Content-Type: application/json``, ``Content-Encoding: gzip``)."""
    doc = make_batch(node, boot_id, seq, data, sent_at_ns=sent_at_ns)
    try:  # orjson: a third of the agent's encoding CPU; the same document once decoded
        body = orjson.dumps(doc)
    except TypeError:  # what orjson does not write (an integer beyond 64 bits): the collector names it
        body = json.dumps(doc, separators=(",", ":")).encode()
    return gzip.compress(body, compresslevel=compresslevel)


def _to_columns(name: str, items: pl.DataFrame | Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    if loaded("polars") and isinstance(items, pl.DataFrame):  # no frame can exist before polars is imported
        return frame_to_columns(items)
    return rows_to_columns(name, items)


def _float(v: Any) -> float | None:
    return None if v is None or v != v else float(v)  # NaN -> absent


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


_KIND_TYPE: dict[str, type] = {"float": float, "int": int, "bool": bool, "str": str}
_KIND_CONV: dict[str, Callable[[Any], Any]] = {"float": _float, "int": _int, "bool": _bool, "str": _str}
_ROW_COLUMNS: dict[str, dict[str, tuple[type, Callable[[Any], Any]]]] = {}


def _row_columns(name: str) -> dict[str, tuple[type, Callable[[Any], Any]]]:
    """Column -> (plain type, converter) of a measurement, in schema order (cached)."""
    cols = _ROW_COLUMNS.get(name)
    if cols is None:
        m = measurement(name)
        cols = {TIME: (int, int)}
        cols.update({t: (str, _str) for t in m.tags})
        cols.update({f.name: (_KIND_TYPE[f.kind], _KIND_CONV[f.kind]) for f in m.fields})
        _ROW_COLUMNS[name] = cols
    return cols


def batch_frames(batch: BatchIn) -> dict[str, pl.DataFrame]:
    """Validate a batch and turn it into schema frames, one per measurement.

    Raises `SchemaError` whose ``where`` names the frame, column and sample index, e.g.
    ``frames[0].columns.temp_c[17]``. Rows whose ``node`` tag is missing get the batch's node.
    """
    return frames_from_columns(batch.node, [(fr.measurement, fr.columns) for fr in batch.frames])


def frames_from_columns(node: str, frames: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, pl.DataFrame]:
    """`batch_frames` on plain ``(measurement, columns)`` pairs (no pydantic model per batch). The frames
    come out conformed (`telemetry.schema.conform`): every schema column in order, declared dtypes, float
    NaN / infinities as null."""
    return {name: cols.frame() for name, cols in validate_columns(node, frames).items()}


class Columns:
    """One measurement's rows of a batch, validated against the schema but not yet a DataFrame.

    The collector validates every request on its own (errors name the sample) and builds one DataFrame
    per measurement for a whole group of batches (`build_frame`): polars' cost is mostly per column and
    call, not per value, so building per group instead of per request is where the CPU goes down.
    ``parts`` holds ``(rows, {column: list of plain JSON values | pl.Series})``; a list is already
    checked to hold only values of the column's type, a Series (for values that needed a conversion) is
    already in the column's dtype. ``finite``: every float is finite and a float (`validate_typed`'s columns),
    so a float column is built without the NaN / infinity pass. ``field_values`` (the non-null field values)
    may be left None: `build_frame` then finds it from the built columns' null counts (free in Arrow), and
    reading it before that counts the values here.
    """

    __slots__ = ("_field_values", "_span", "finite", "height", "measurement", "parts")

    def __init__(
        self,
        measurement: str,
        parts: list[tuple[int, dict[str, Any]]],
        field_values: int | None,
        span: tuple[int, int] | None = None,
        finite: bool = False,
    ) -> None:
        self.measurement = measurement
        self.parts = parts
        self.height = sum(n for n, _ in parts)
        self._field_values = field_values
        self._span = span  # the time range, when validation already found it
        self.finite = finite

    @property
    def field_values(self) -> int:
        """Field values the rows hold: not null (and for floats finite: NaN / infinities are stored as null)."""
        if self._field_values is None:
            m = measurement(self.measurement)
            kinds = _kinds(m)
            self._field_values = sum(
                _present(v, kinds[c], n) for n, cols in self.parts for c, v in cols.items() if c in m.field_index
            )
        return self._field_values

    def frame(self) -> pl.DataFrame:
        return build_frame(self.measurement, [self])

    def time_range(self) -> tuple[int, int] | None:
        """Smallest and largest epoch-ns time, None when there are no rows."""
        if self._span is not None:
            return self._span
        lo = hi = None
        for n, cols in self.parts:
            if not n:
                continue
            t = cols[TIME]
            a, b = (t.dt.epoch("ns").min(), t.dt.epoch("ns").max()) if isinstance(t, pl.Series) else (min(t), max(t))
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        return None if lo is None else (lo, hi)


def validate_columns(
    node: str, frames: Sequence[tuple[str, Mapping[str, Any]]], time_window: tuple[int, int] | None = None
) -> dict[str, Columns]:
    """Validate a batch's frames (same checks and errors as `batch_frames`) without building DataFrames.
    Tag values must be text every store can hold (`telemetry.schema.text_problem`); with ``time_window``
    (epoch ns, inclusive: the collector's `telemetry.schema.time_window_ns`) a time outside it is refused
    saying the unit looks wrong."""
    out: dict[str, Columns] = {}
    for i, (name, columns) in enumerate(frames):
        where = f"frames[{i}]"
        m = measurement_or_error(name, f"{where}.measurement")
        schema = m.polars_schema()
        kinds = _kinds(m)
        if TIME not in columns:
            raise SchemaError("missing the 'time' column", f"{where}.columns")
        n = len(columns[TIME])
        fast = _plain_frame(m, kinds, columns, n)
        if fast is not None:  # every column plainly valid: checked a kind at a time, not a column at a time
            checked, field_values = fast
        else:  # something to convert or to refuse: column by column, naming the first bad sample
            checked, field_values = _checked_columns(m, kinds, schema, columns, n, where)
        span = None
        if time_window is not None and n:
            span = _check_times(columns[TIME], time_window, f"{where}.columns.{TIME}")
        nodes = columns.get("node")
        if nodes is not None:
            if not set(nodes) <= {node, None}:
                for j, v in enumerate(nodes):
                    if v is not None and v != node:
                        raise ForeignNodeError(
                            f"row tagged node={v!r} in a batch from node {node!r}", f"{where}.columns.node[{j}]"
                        )
            if None in nodes:
                nodes = None
        if nodes is None:
            checked["node"] = [node] * n
        got = out.get(m.name)
        if got is None:
            out[m.name] = Columns(m.name, [(n, checked)], field_values, span)
        else:  # the same measurement twice in a batch: the time range is found again when needed
            out[m.name] = Columns(m.name, [*got.parts, (n, checked)], got.field_values + field_values)
    return out


#: tag values `text_problem` found fine (and None, ""): a tag column of known values is checked by one subset test
_GOOD_TAGS: set[Any] = {None, ""}
_GOOD_TAGS_MAX = 200_000


def _plain_frame(m: Any, kinds: dict[str, str], columns: Mapping[str, Any], n: int) -> tuple[dict, int] | None:
    """``(checked columns, field values)`` of a frame whose every column is known, ``n`` long and plainly of its
    kind (`_plain`), and whose tags are all fine; None when any is not (`_checked_columns` then judges it,
    column by column, with the errors naming the sample). The columns of one kind are checked together: a
    frame of 30 columns costs a handful of C-level passes instead of 30 rounds of Python."""
    groups: dict[tuple[str, bool], list[list[Any]]] = {}
    tags = m.tags
    for col, values in columns.items():
        kind = kinds.get(col)
        if kind is None or type(values) is not list or len(values) != n:
            return None
        groups.setdefault((kind, col in tags), []).append(values)
    field_values = 0
    for (kind, is_tag), cols in groups.items():
        values = cols[0] if len(cols) == 1 else list(chain.from_iterable(cols))
        if not _plain(values, kind):
            return None
        if is_tag:
            distinct = set(values)
            if not distinct <= _GOOD_TAGS:
                if tag_values_problem(values) is not None:
                    return None
                if len(_GOOD_TAGS) > _GOOD_TAGS_MAX:
                    _GOOD_TAGS.intersection_update({None, ""})
                _GOOD_TAGS.update(distinct)
        elif kind != "time":
            field_values += _present(values, kind, len(values))
    return dict(columns), field_values


def _checked_columns(
    m: Any, kinds: dict[str, str], schema: Any, columns: Mapping[str, Any], n: int, where: str
) -> tuple[dict[str, Any], int]:
    """A frame's columns checked one by one: converted where the schema allows (a Series), else refused
    naming the column and sample."""
    checked: dict[str, Any] = {}
    field_values = 0
    for col, values in columns.items():
        col_where = f"{where}.columns.{col}"
        kind = kinds.get(col)
        if kind is None:
            raise SchemaError(
                f"unknown column for measurement {m.name!r} (tags: {list(m.tags)}; fields: {list(m.field_names)})",
                col_where,
            )
        if len(values) != n:
            raise SchemaError(f"{len(values)} values but 'time' has {n}", col_where)
        value = values if _plain(values, kind) else _column(col, values, kind, schema[col], col_where)
        if kind == "str" and col in m.tags and (bad := tag_values_problem(values)) is not None:
            raise SchemaError(bad[1], f"{col_where}[{bad[0]}]")
        checked[col] = value
        if col in m.field_index:
            field_values += _present(value, kind, n)
    return checked, field_values


def _check_times(times: list[int], window: tuple[int, int], where: str) -> tuple[int, int]:
    """The smallest and largest time, all within ``window``; else `SchemaError` naming the first outside it."""
    lo, hi = window
    first, last = min(times), max(times)
    if lo <= first and last <= hi:
        return first, last
    j, t = next((j, t) for j, t in enumerate(times) if not lo <= t <= hi)
    raise SchemaError(time_problem(t, window) or "time out of range", f"{where}[{j}]")


# ---- the collector's typed decoder: JSON body -> typed columns, checked in C ------------------------------------


class TypedBatch(NamedTuple):
    """A batch `decode_batch` read straight into typed columns: ``frames`` are ``(measurement, columns)`` pairs
    whose every column is known to its measurement and a list of its kind (time: 64-bit integers; tags: text or
    null; fields: numbers as floats, 64-bit integers, booleans or text, or null)."""

    node: str
    boot_id: str
    seq: int
    frames: list[tuple[str, dict[str, list[Any]]]]


def decode_batch(data: bytes) -> TypedBatch | None:
    """The batch in the JSON body ``data``, decoded by a decoder built from the schema (msgspec): every value
    lands in a list of its column's type, so the types, the 64-bit integer range, unknown columns or members,
    the node pattern, ``boot_id``, ``seq`` and the 64-frame limit are all checked in C while parsing, and no
    value is first a generic JSON object. None when the body is not plainly such a batch (bad JSON, NaN
    literals, a value of another type, an unknown measurement or column, ...): `validate_columns` on the
    generic JSON then judges it and names the column and sample. Never looser than that path."""
    decoder, frame_types = _typed_decoder()
    try:
        doc = decoder.decode(data)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # ValueError: UnicodeDecodeError (not UTF-8)
        return None
    if _NODE_RE.fullmatch(doc.node) is None:  # fullmatch: a "$" pattern would let a trailing newline through
        return None
    frames = []
    for fr in doc.frames:
        name, fields = frame_types[type(fr)]
        cols = fr.columns
        frames.append((name, {c: v for c in fields if (v := getattr(cols, c)) is not _UNSET}))
    return TypedBatch(doc.node, doc.boot_id, doc.seq, frames)


def validate_typed(
    node: str, frames: Sequence[tuple[str, dict[str, list[Any]]]], time_window: tuple[int, int] | None = None
) -> dict[str, Columns] | None:
    """`validate_columns` for the frames of a `TypedBatch`, where what is left to check is cheap and done a
    frame at a time by C-level passes (no Python step per value): every column as long as ``time``, the tag
    values' text (one subset test against those already found fine), the time window (one min and max), the
    node tag. None when anything is amiss (nothing is refused here: the caller then runs `validate_columns`
    on the generic JSON, whose errors name the column and sample), else the validated columns
    `validate_columns` gives for the same batch. The decoder's floats are all finite (it refuses numbers past
    the float range, and JSON has no NaN): every non-null field value counts."""
    out: dict[str, Columns] = {}
    for name, columns in frames:
        tags = _TAGS.get(name) or _tags(name)
        times = columns[TIME]
        n = len(times)
        lists = list(columns.values())
        if len(set(map(len, lists))) != 1:
            return None
        tag_lists = [v for t in tags if (v := columns.get(t)) is not None]
        if tag_lists:
            distinct = set(chain.from_iterable(tag_lists))
            if not distinct <= _GOOD_TAGS:
                if tag_values_problem(list(distinct)) is not None:
                    return None
                if len(_GOOD_TAGS) > _GOOD_TAGS_MAX:
                    _GOOD_TAGS.intersection_update({None, ""})
                _GOOD_TAGS.update(distinct)
        span = None
        if n:
            span = lo, hi = min(times), max(times)
            if time_window is not None and not (time_window[0] <= lo and hi <= time_window[1]):
                return None
        checked = dict(columns)
        nodes = columns.get("node")
        if nodes is not None and not set(nodes) <= {node}:
            if not set(nodes) <= {node, None}:
                return None  # a row of another node: the 403 is said by the column-by-column path
            nodes = None
        if nodes is None:
            checked["node"] = [node] * n
        got = out.get(name)
        if got is None:
            out[name] = Columns(name, [(n, checked)], None, span, finite=True)  # values counted when built
        else:  # the same measurement twice in a batch: the time range is found again when needed
            out[name] = Columns(name, [*got.parts, (n, checked)], None, finite=True)
    return out


_TAGS: dict[str, frozenset[str]] = {}
_UNSET: Any = None  # msgspec.UNSET, once the decoder is built
_DECODER: tuple[Any, dict[type, tuple[str, tuple[str, ...]]]] | None = None


def _tags(name: str) -> frozenset[str]:
    tags = _TAGS[name] = frozenset(measurement(name).tags)
    return tags


def _typed_decoder() -> tuple[Any, dict[type, tuple[str, tuple[str, ...]]]]:
    """The msgspec decoder of a batch (one tagged struct per schema measurement, ``measurement`` the tag) and
    struct type -> (measurement, column names); built once."""
    global _DECODER, _UNSET
    if _DECODER is not None:
        return _DECODER
    from typing import Annotated, Union

    i64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
    kinds: dict[str, Any] = {"float": float, "int": i64, "bool": bool, "str": str}
    unset = msgspec.UnsetType
    frame_types: dict[type, tuple[str, tuple[str, ...]]] = {}
    for name, m in MEASUREMENTS.items():
        fields: list[Any] = [(TIME, list[i64])]
        fields += [(t, Union[list[str | None], unset], msgspec.UNSET) for t in m.tags]  # noqa: UP007
        fields += [(f.name, Union[list[kinds[f.kind] | None], unset], msgspec.UNSET) for f in m.fields]  # noqa: UP007
        cols = msgspec.defstruct(f"{name}_columns", fields, forbid_unknown_fields=True)
        frame = msgspec.defstruct(
            f"{name}_frame", [("columns", cols)], tag_field="measurement", tag=name, forbid_unknown_fields=True
        )
        frame_types[frame] = (name, m.columns)
    batch = msgspec.defstruct(
        "TypedBatchDoc",
        [
            ("node", str),
            ("boot_id", Annotated[str, msgspec.Meta(min_length=1, max_length=64)]),
            ("seq", Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]),
            ("frames", Annotated[list[Union[tuple(frame_types)]], msgspec.Meta(max_length=64)]),  # noqa: UP007
            ("sent_at_ns", Union[i64, None], None),  # noqa: UP007
        ],
        forbid_unknown_fields=True,
    )
    _UNSET = msgspec.UNSET
    _DECODER = (msgspec.json.Decoder(batch), frame_types)
    return _DECODER


def group_frame(measurement_name: str, parts: Sequence[pl.DataFrame | Columns]) -> pl.DataFrame:
    """One frame of a commit group's rows of one measurement: validated columns are built together
    (`build_frame`), frames concatenated (a plain write of a non-schema measurement may differ in columns)."""
    if all(isinstance(p, Columns) for p in parts):
        return build_frame(measurement_name, parts)  # type: ignore[arg-type]
    frames = [p.frame() if isinstance(p, Columns) else p for p in parts]
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="vertical" if measurement_name in MEASUREMENTS else "diagonal_relaxed")


def build_frame(measurement_name: str, batches: Sequence[Columns]) -> pl.DataFrame:
    """One conformed DataFrame of ``measurement_name`` from the validated columns of many batches, in
    order: per column one concatenated list and one conversion."""
    m = measurement(measurement_name)
    schema = m.polars_schema()
    kinds = _kinds(m)
    parts = [p for b in batches for p in b.parts]
    total = sum(n for n, _ in parts)
    finite = all(b.finite for b in batches)
    series: list[pl.Series] = []
    for col, dtype in schema.items():
        present = [cols.get(col) for _, cols in parts]
        kinds_present = set(map(type, present))
        if kinds_present == _ONLY_NONE:
            series.append(_nulls(col, dtype, total))
            continue
        if kinds_present <= _LIST_OR_NONE:
            values: list[Any] = []
            for (n, _), v in zip(parts, present, strict=True):
                values.extend([None] * n if v is None else v)
            if finite and kinds[col] == "float":  # floats and nulls only: straight in, no NaN to turn null
                series.append(pl.Series(col, values, dtype=dtype))
            else:
                series.append(_from_plain(col, values, kinds[col], dtype))
            continue
        pieces = []
        for (n, _), v in zip(parts, present, strict=True):
            if v is None:
                pieces.append(_nulls(col, dtype, n))
            elif isinstance(v, pl.Series):
                pieces.append(v)
            else:
                pieces.append(_from_plain(col, v, kinds[col], dtype))
        series.append(pl.concat(pieces) if len(pieces) > 1 else pieces[0])
    frame = pl.DataFrame(series)
    if any(b._field_values is None for b in batches):
        _count_field_values(m, frame, batches)
    return frame


def _count_field_values(m: Any, frame: pl.DataFrame, batches: Sequence[Columns]) -> None:
    """Each batch's non-null field values, from the built frame (its rows in order) instead of a count per
    value per request: a column's null count is free in Arrow, so a column without nulls, or all null, costs
    one call; only a column with some nulls has its null mask summed per batch. The built floats are finite
    or null."""
    heights = [b.height for b in batches]
    fields = [f.name for f in m.fields]
    all_null = 0
    partial: list[pl.Series] = []
    for name in fields:
        s = frame[name]
        k = s.null_count()
        if k == frame.height:
            all_null += 1
        elif k:
            partial.append(s)
    nulls = [h * all_null for h in heights]
    if partial:
        mask = np.zeros(frame.height, dtype=np.int64)
        for s in partial:
            mask += s.is_null().to_numpy()
        sums = np.concatenate(([0], np.cumsum(mask)))
        ends = np.cumsum(heights)
        for i, end in enumerate(ends):
            nulls[i] += int(sums[end] - sums[end - heights[i]])
    for b, h, k in zip(batches, heights, nulls, strict=True):
        if b._field_values is None:
            b._field_values = h * len(fields) - k


def _plain(values: list[Any], kind: str) -> bool:
    """Every value is of the plain JSON type of the column (checked in C), and fits it."""
    types = set(map(type, values))
    if not types <= _PLAIN_TYPES[kind]:
        return False
    if kind in ("int", "time") and values:
        present = values if _NONE not in types else [v for v in values if v is not None]
        return not present or (min(present) >= -(2**63) and max(present) < 2**63)
    # a huge integer may not fit a float: let the slow path judge integers in a float column
    return not (kind == "float" and int in types)


def _present(value: Any, kind: str, n: int) -> int:
    """Values a column holds: not null, and for floats finite (NaN / infinities are stored as null)."""
    if isinstance(value, pl.Series):
        return n - value.null_count()
    if kind == "float":
        if math.isfinite(sum(filter(None, value))):  # None and 0.0 left out; NaN / inf poison the sum
            return n - value.count(None)
        return sum(1 for v in value if v is not None and math.isfinite(v))
    return n - value.count(None)


def _from_plain(name: str, values: list[Any], kind: str, dtype: pl.DataType) -> pl.Series:
    """A Series from values `_plain` accepted."""
    if kind == "float":
        arr = np.array(values, dtype=np.float64)  # None -> NaN
        if not np.isfinite(arr).all():
            arr[np.isinf(arr)] = np.nan
        return pl.Series(name, arr, nan_to_null=True)  # NaN / +-inf / None -> null (absent)
    return pl.Series(name, values, dtype=dtype)


_NONE = type(None)
_LIST_OR_NONE = frozenset({list, _NONE})
_ONLY_NONE = frozenset({_NONE})
_PLAIN_TYPES = {
    "time": frozenset({int}),
    "float": frozenset({float, int, _NONE}),
    "int": frozenset({int, _NONE}),
    "bool": frozenset({bool, _NONE}),
    "str": frozenset({str, _NONE}),
}
_KINDS: dict[str, dict[str, str]] = {}
_NULLS: dict[tuple[str, pl.DataType, int], pl.Series] = {}


def _kinds(m: Any) -> dict[str, str]:
    """Column -> kind ("time", "str" for tags, else the field's kind) of a measurement (cached)."""
    kinds = _KINDS.get(m.name)
    if kinds is None:
        kinds = {TIME: "time", **{t: "str" for t in m.tags}, **{f.name: f.kind for f in m.fields}}
        _KINDS[m.name] = kinds
    return kinds


def _nulls(name: str, dtype: pl.DataType, n: int) -> pl.Series:
    key = (name, dtype, n)
    s = _NULLS.get(key)
    if s is None:
        s = pl.Series(name, [None] * n, dtype=dtype)
        if len(_NULLS) < 4096:
            _NULLS[key] = s
    return s


def _column(name: str, values: list[Any], kind: str, dtype: pl.DataType, where: str) -> pl.Series:
    """One column in its declared dtype, through `_series`: converts what the schema allows (5.0 for an
    integer, ...) and names the first bad sample."""
    s = _series(name, values, dtype, where)
    if kind == "float" and not s.is_finite().fill_null(True).all():
        return s.to_frame().select(pl.when(pl.col(name).is_finite()).then(pl.col(name)).alias(name)).to_series()
    return s


class ForeignNodeError(SchemaError):
    """A batch carries rows of another node than the one it was sent as."""


def measurement_or_error(name: str, where: str):
    try:
        return measurement(name)
    except SchemaError as exc:
        raise SchemaError(str(exc), where) from None


def _series(name: str, values: list[Any], dtype: pl.DataType, where: str) -> pl.Series:
    if name == TIME:
        for j, v in enumerate(values):
            if not isinstance(v, int) or isinstance(v, bool):
                raise SchemaError(f"time must be an integer of epoch nanoseconds, got {v!r}", f"{where}[{j}]")
        return pl.Series(name, values, dtype=schema.TIME_DTYPE)  # epoch ns straight into UTC datetimes (no cast query)
    if dtype.is_numeric() and bool in set(map(type, values)):  # booleans are not numbers (polars takes them)
        j = next(j for j, v in enumerate(values) if isinstance(v, bool))
        raise SchemaError(f"expected a number, got {values[j]!r}", f"{where}[{j}]")
    try:
        return pl.Series(name, values, dtype=dtype, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        pass
    for j, v in enumerate(values):
        if v is None:
            continue
        if dtype == pl.String and not isinstance(v, str):
            raise SchemaError(f"expected text, got {v!r}", f"{where}[{j}]")
        if dtype == pl.Boolean and not isinstance(v, bool):
            raise SchemaError(f"expected true/false, got {v!r}", f"{where}[{j}]")
        if dtype in (pl.Float64, pl.Int64):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise SchemaError(f"expected a number, got {v!r}", f"{where}[{j}]")
            if dtype == pl.Int64 and isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
                raise SchemaError(f"expected an integer, got {v!r}", f"{where}[{j}]")
            if dtype == pl.Int64 and not -(2**63) <= int(v) < 2**63:
                raise SchemaError(f"integer out of range: {v!r}", f"{where}[{j}]")
    return pl.Series(name, values, dtype=dtype, strict=False)
