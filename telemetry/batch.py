"""The agent -> collector batch: a JSON document of columnar frames.

```json
{"node": "node1", "boot_id": "3f1c...", "seq": 42, "sent_at_ns": 1700000000000000000,
 "frames": [{"measurement": "accel",
             "columns": {"time": [1700000000000000000, ...], "device": ["gpu0", ...], "temp_c": [41.0, ...]}}]}
```

Columns hold one list per tag / field, all as long as ``time`` (epoch nanoseconds, UTC). A null is an
absent value. Columnar frames keep the collector's hot path vectorised (no per-sample Python loop).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from telemetry.errors import SchemaError
from telemetry.schema import TIME, TIME_DTYPE, conform, measurement

NODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


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
    """A schema frame -> JSON-ready columns (time as epoch ns)."""
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


def make_batch(
    node: str, boot_id: str, seq: int, frames: Mapping[str, pl.DataFrame], sent_at_ns: int | None = None
) -> dict:
    """Build the JSON document of a batch from schema frames (used by agents and the demo)."""
    return {
        "node": node,
        "boot_id": boot_id,
        "seq": seq,
        "sent_at_ns": sent_at_ns,
        "frames": [
            {"measurement": name, "columns": frame_to_columns(frame)} for name, frame in frames.items() if frame.height
        ],
    }


def batch_frames(batch: BatchIn) -> dict[str, pl.DataFrame]:
    """Validate a batch and turn it into schema frames, one per measurement.

    Raises `SchemaError` whose ``where`` names the frame, column and sample index, e.g.
    ``frames[0].columns.temp_c[17]``. Rows whose ``node`` tag is missing get the batch's node.
    """
    out: dict[str, list[pl.DataFrame]] = {}
    for i, fr in enumerate(batch.frames):
        where = f"frames[{i}]"
        m = measurement_or_error(fr.measurement, f"{where}.measurement")
        schema = m.polars_schema()
        if TIME not in fr.columns:
            raise SchemaError("missing the 'time' column", f"{where}.columns")
        n = len(fr.columns[TIME])
        series: list[pl.Series] = []
        for name, values in fr.columns.items():
            col_where = f"{where}.columns.{name}"
            if name not in schema:
                raise SchemaError(
                    f"unknown column for measurement {m.name!r} (tags: {list(m.tags)}; fields: {list(m.field_names)})",
                    col_where,
                )
            if len(values) != n:
                raise SchemaError(f"{len(values)} values but 'time' has {n}", col_where)
            series.append(_series(name, values, schema[name], col_where))
        nodes = fr.columns.get("node")
        if nodes is None:
            series.append(pl.Series("node", [batch.node] * n, dtype=pl.String))
        else:
            for j, v in enumerate(nodes):
                if v is not None and v != batch.node:
                    raise ForeignNodeError(
                        f"row tagged node={v!r} in a batch from node {batch.node!r}", f"{where}.columns.node[{j}]"
                    )
            if None in nodes:
                series = [s for s in series if s.name != "node"]
                series.append(pl.Series("node", [batch.node] * n, dtype=pl.String))
        frame = pl.DataFrame(series)
        out.setdefault(m.name, []).append(conform(frame, m.name, where=f"{where}.columns"))
    return {name: pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0] for name, parts in out.items()}


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
        return pl.Series(name, values, dtype=TIME_DTYPE)  # epoch ns straight into UTC datetimes (no cast query)
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
