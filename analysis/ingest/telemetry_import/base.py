"""Contract, registry and detection of telemetry file formats, and what they share (units, times, wide frames).

A format parses a file into ``{measurement: frame}`` in the schema's wide form (`telemetry.schema.conform`), units
converted to the field's unit; the importer writes them through the store protocol like the collector does.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Protocol
from zoneinfo import ZoneInfo

import polars as pl

from analysis.ingest.errors import TelemetryFormatError
from telemetry.registry import Registry
from telemetry.schema import ACCEL

BUILTIN = ("line_protocol", "nvidia_smi", "amd_smi", "long_format")
"""The built-in formats (module file stems), one line per plugin, in detection order."""

Frames = dict[str, pl.DataFrame]


#: bytes of a file parsed at once by formats that stream (`TelemetryFormat.parse_chunks`): bounds an import's memory
CHUNK_BYTES = 8 * 2**20
HEAD_BYTES = 65536


class TelemetryFormat(Protocol):
    """``sniff`` the head of a file, ``parse`` it whole. A format that can read a file in pieces also has
    ``parse_chunks(chunks, source, node, tz) -> Iterator[Frames]`` (chunks: (first line number, whole lines))."""

    name: ClassVar[str]

    def sniff(self, head: bytes) -> bool: ...

    def parse(self, data: bytes, source: str, node: str | None, tz: str | None) -> Frames: ...


FORMATS: Registry[TelemetryFormat] = Registry(
    "telemetry format", "analysis.ingest.telemetry_import", BUILTIN, build=lambda cls: cls(), error=TelemetryFormatError
)
"""Every telemetry file format by name (its module's file stem), in detection order; built-ins imported on first use."""

register = FORMATS.register
"""``@register("nvidia_smi")``: register a format class under its module's file name (one instance)."""


def detect(data: bytes, source: str) -> TelemetryFormat:
    head = data[:65536]
    fmt = FORMATS.first(lambda f: f.sniff(head))
    if fmt is not None:
        return fmt
    first = head.split(b"\n", 1)[0][:80].decode("utf-8", "replace")
    raise TelemetryFormatError(
        f"matches no telemetry format (tried {', '.join(FORMATS.names())}); it starts with {first!r}. Expected InfluxDB line "
        "protocol, a long CSV / Parquet with columns time,node,device,metric,value, nvidia-smi --query-gpu "
        "--format=csv output or amd-smi metric --csv output",
        source,
        1,
    )


def format_named(name: str) -> TelemetryFormat:
    """The format named ``name`` (``-`` read as ``_``); `TelemetryFormatError` naming the known formats otherwise."""
    return FORMATS.get(name)


def parse_file(path: str | Path, *, node: str | None = None, tz: str | None = None, fmt: str | None = None) -> Frames:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TelemetryFormatError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    parser = format_named(fmt) if fmt else detect(data, str(path))
    return parser.parse(data, str(path), node, tz)


def line_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
    """The file in pieces of about ``chunk_bytes``, each ending at a line end: (first line number, bytes).
    The cut points depend only on the content, so the same file always gives the same chunks."""
    line = 1
    rest = b""
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk_bytes):
                data = rest + block
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a chunk: keep reading
                    rest = data
                    continue
                chunk, rest = data[:cut], data[cut:]
                yield line, chunk
                line += chunk.count(b"\n")
    except OSError as exc:
        raise TelemetryFormatError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    if rest:
        yield line, rest


def iter_file(
    path: str | Path,
    *,
    node: str | None = None,
    tz: str | None = None,
    fmt: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    chunks: Iterator[tuple[int, bytes]] | None = None,
) -> Iterator[Frames]:
    """A file's frames, chunk by chunk where its format streams (line protocol), else whole (one item).
    ``chunks``: the file's `line_chunks` when the caller reads them itself (to hash them)."""
    path = Path(path)
    source = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise TelemetryFormatError(f"cannot read: {exc.strerror or exc}", source) from None
    if not head.strip():
        raise TelemetryFormatError("empty file: no telemetry to import", source)
    parser = format_named(fmt) if fmt else detect(head, source)
    stream = getattr(parser, "parse_chunks", None)
    if stream is None:
        yield parse_file(path, node=node, tz=tz, fmt=parser.name)
        return
    yield from stream(chunks if chunks is not None else line_chunks(path, chunk_bytes), source, node, tz)


def text_of(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TelemetryFormatError(f"not UTF-8 text (byte {exc.start})", source, line) from None


# ---------------------------------------------------------------------------------------------------------------
# Units: factor to the schema unit

UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("mW", "W"): 1e-3,
    ("kW", "W"): 1e3,
    ("mJ", "J"): 1e-3,
    ("uJ", "J"): 1e-6,
    ("µJ", "J"): 1e-6,
    ("kJ", "J"): 1e3,
    ("KiB", "B"): 1024.0,
    ("MiB", "B"): 1024.0**2,
    ("GiB", "B"): 1024.0**3,
    ("KB", "B"): 1e3,
    ("kB", "B"): 1e3,
    ("MB", "B"): 1e6,
    ("GB", "B"): 1e9,
    ("mV", "V"): 1e-3,
    ("mA", "A"): 1e-3,
    ("GHz", "MHz"): 1e3,
    ("kHz", "MHz"): 1e-3,
    ("Hz", "MHz"): 1e-6,
    ("C", "degC"): 1.0,
    ("°C", "degC"): 1.0,
    ("celsius", "degC"): 1.0,
    ("ms", "s"): 1e-3,
    ("s", "ms"): 1e3,
    ("ratio", "%"): 100.0,
}


def unit_factor(unit: str | None, target: str, what: str, source: str, line: int = 0) -> float:
    if unit is None or unit == "" or unit == target:
        return 1.0
    factor = UNIT_FACTORS.get((unit, target))
    if factor is None:
        raise TelemetryFormatError(f"{what}: cannot convert unit {unit!r} to {target!r}", source, line)
    return factor


NA = {"", "n/a", "[n/a]", "na", "[not supported]", "not supported", "[unknown error]", "unknown", "none", "null"}
_NUM_UNIT = re.compile(r"^\s*(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>[A-Za-z°µ%/]*)\s*$")


def value_and_unit(text: str) -> tuple[float | None, str | None] | None:
    """'250.12 W' -> (250.12, 'W'); 'N/A' -> (None, None); not a number -> None."""
    s = text.strip()
    if s.lower() in NA:
        return None, None
    m = _NUM_UNIT.match(s)
    if not m:
        return None
    return float(m.group("num")), (m.group("unit") or None)


def local_epoch_ns(t: datetime, tz: str | None) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=ZoneInfo(tz)) if tz else t.astimezone()
    return round(t.timestamp() * 1e6) * 1000


_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S")


def parse_time_ns(text: str, tz: str | None, what: str, source: str, line: int) -> int:
    """nvidia-smi ``YYYY/MM/DD HH:MM:SS.fff`` (local), ISO 8601, or epoch s / ms / us / ns by magnitude."""
    s = text.strip()
    try:
        v = float(s)
    except ValueError:
        v = math.nan
    if math.isfinite(v):
        for scale, limit in ((1e9, 1e11), (1e6, 1e14), (1e3, 1e17), (1.0, math.inf)):
            if abs(v) < limit:
                return round(v * scale)
    for fmt in _TIME_FORMATS:
        try:
            return local_epoch_ns(datetime.strptime(s, fmt), tz)
        except ValueError:
            pass
    try:
        return local_epoch_ns(datetime.fromisoformat(s.replace("Z", "+00:00")), tz)
    except ValueError:
        raise TelemetryFormatError(f"{what}: expected a timestamp, got {s!r}", source, line) from None


def csv_records(data: bytes, source: str, tool: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """A vendor tool's CSV log: its header cells and an iterator of (line, row) for each non-blank row, every row
    as wide as the header (`TelemetryFormatError` for an empty file or a truncated row)."""
    reader = csv.reader(io.StringIO(text_of(data, source)), skipinitialspace=True)
    try:
        header = next(reader)
    except StopIteration:
        raise TelemetryFormatError(f"empty file: expected an {tool} CSV header", source, 1) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        for row in reader:
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise TelemetryFormatError(
                    f"expected {len(header)} fields as in the header, got {len(row)} (truncated line?)",
                    source,
                    reader.line_num,
                )
            yield reader.line_num, row

    return header, rows()


def accel_value(cell: str, unit: str | None, field: str, what: str, source: str, line: int) -> float | None:
    """A CSV cell (``250.12 W``, ``N/A``, ``42``) as ``field``'s value in its schema unit; ``unit`` is the column's
    when the cell has none. None for a value the tool could not give; `TelemetryFormatError` for a non-number."""
    parsed = value_and_unit(cell)
    if parsed is None:
        raise TelemetryFormatError(f"{what}: expected a number, got {cell.strip()!r}", source, line)
    v, vunit = parsed
    if v is None:
        return None
    return v * unit_factor(vunit or unit, ACCEL.field_index[field].unit, what, source, line)


def wide_frame(columns: Mapping[str, list], measurement: str, source: str) -> pl.DataFrame:
    """Columns (time as epoch ns) -> a conformed frame of ``measurement``."""
    from telemetry.errors import SchemaError
    from telemetry.schema import conform

    frame = pl.DataFrame({k: pl.Series(k, v, strict=False) for k, v in columns.items()})
    try:
        return conform(frame, measurement)
    except SchemaError as exc:
        raise TelemetryFormatError(str(exc), source) from None
