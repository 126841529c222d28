"""The documented long format, CSV or Parquet: one row per value.

=========  =====================================================================================================
column     meaning
=========  =====================================================================================================
time       ISO 8601 (naive = ``--tz`` / local), or epoch s / ms / us / ns (by magnitude), or a Parquet datetime
node       node name (``--node`` fills empty cells)
device     accelerator (``gpu0``) for ``accel`` rows, empty otherwise
metric     ``measurement.field`` (``accel.power_w``) or a bare schema field (``power_w``: ``accel`` when a device
           is given, else ``host`` ...)
value      number (booleans as 0 / 1)
unit       optional: the value's unit, converted to the field's (``mW`` -> ``W``, ``MiB`` -> ``B``, ...)
tags       optional: other tags, ``k=v;k=v`` or a JSON object (``{"vendor": "amd", "group": "hive0"}``)
=========  =====================================================================================================
"""

from __future__ import annotations

import io
import json

import polars as pl

from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import.base import Frames, parse_time_ns, register, text_of, unit_factor
from telemetry.errors import SchemaError
from telemetry.schema import MEASUREMENTS, conform

REQUIRED = ("time", "metric", "value")
BARE_ORDER = ("accel", "host", "tenant", "host_core", "agent", "accel_event", "bench_request", "run_event")


def resolve_metric(metric: str, has_device: bool, source: str, line: int) -> tuple[str, str]:
    if "." in metric:
        m, f = metric.split(".", 1)
        if m in MEASUREMENTS and f in MEASUREMENTS[m].field_index:
            return m, f
        raise TelemetryFormatError(f"metric {metric!r}: no such measurement.field in the schema", source, line)
    order = BARE_ORDER if has_device else (*(m for m in BARE_ORDER if m != "accel"), "accel")
    for m in order:
        if metric in MEASUREMENTS[m].field_index:
            return m, metric
    raise TelemetryFormatError(f"metric {metric!r}: not a field of the schema (e.g. power_w, temp_c)", source, line)


def parse_tags(text: str | None, source: str, line: int) -> dict[str, str]:
    if text is None or not str(text).strip():
        return {}
    s = str(text).strip()
    if s.startswith("{"):
        try:
            d = json.loads(s)
        except json.JSONDecodeError:
            raise TelemetryFormatError(f"tags: expected a JSON object, got {s!r}", source, line) from None
        return {str(k): str(v) for k, v in d.items()}
    out = {}
    for part in s.replace(";", ",").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise TelemetryFormatError(f"tags: expected k=v pairs, got {part!r}", source, line)
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@register("long_format")
class LongFormat:
    name = "long_format"

    def sniff(self, head: bytes) -> bool:
        if head.startswith(b"PAR1"):
            return True
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
        cols = [c.strip().strip('"') for c in first.split(",")]
        return all(c in cols for c in REQUIRED)

    def parse(self, data: bytes, source: str, node: str | None, tz: str | None) -> Frames:
        parquet = data.startswith(b"PAR1")
        try:
            if parquet:
                frame = pl.read_parquet(io.BytesIO(data))
            else:
                frame = pl.read_csv(io.StringIO(text_of(data, source)), infer_schema=False, truncate_ragged_lines=False)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise TelemetryFormatError(f"unreadable {'Parquet' if parquet else 'CSV'}: {exc}", source) from None
        missing = [c for c in REQUIRED if c not in frame.columns]
        if missing:
            raise TelemetryFormatError(
                f"missing column(s) {missing}: expected time,node,device,metric,value", source, 1
            )
        return frames_from_long(frame, source, node, tz, first_line=2 if not parquet else 1)


def frames_from_long(frame: pl.DataFrame, source: str, node: str | None, tz: str | None, first_line: int = 2) -> Frames:
    rows: dict[str, list[dict]] = {}
    cols = frame.columns
    for i, rec in enumerate(frame.iter_rows(named=True)):
        line = first_line + i
        device = rec.get("device") if "device" in cols else None
        device = None if device in (None, "") else str(device)
        m, field = resolve_metric(str(rec["metric"]).strip(), device is not None, source, line)
        spec = MEASUREMENTS[m]
        t = rec["time"]
        if isinstance(t, str) or t is None:
            t_ns = parse_time_ns(str(t or ""), tz, "time", source, line)
        elif hasattr(t, "timestamp"):
            from analysis.ingest.telemetry_import.base import local_epoch_ns

            t_ns = local_epoch_ns(t, tz)
        else:
            t_ns = parse_time_ns(str(t), tz, "time", source, line)
        value = rec["value"]
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TelemetryFormatError(f"value: expected a number, got {value!r}", source, line) from None
        unit = rec.get("unit") if "unit" in cols else None
        target = spec.field_index[field].unit
        if spec.field_index[field].kind in ("float", "int"):
            v *= unit_factor(str(unit).strip() if unit else None, target, field, source, line)
        tags = {"node": (rec.get("node") if "node" in cols else None) or node}
        if device is not None:
            tags["device"] = device
        tags.update(parse_tags(rec.get("tags") if "tags" in cols else None, source, line))
        bad = [k for k in tags if k not in spec.tags]
        if bad:
            raise TelemetryFormatError(f"tag(s) {bad} not in measurement {m!r} (tags: {list(spec.tags)})", source, line)
        rows.setdefault(m, []).append({"time": t_ns, **tags, "_field": field, "_value": v})
    out: Frames = {}
    for m, recs in rows.items():
        spec = MEASUREMENTS[m]
        long = pl.DataFrame(recs, infer_schema_length=None)
        keys = ["time", *[t for t in spec.tags if t in long.columns]]
        dup = long.select([*keys, "_field"]).is_duplicated()
        if dup.any():
            i = int(dup.arg_true()[0])
            raise TelemetryFormatError(f"{m}: the same field twice for one time and tag set", source, first_line + i)
        wide = long.pivot(on="_field", index=keys, values="_value", aggregate_function=None)
        try:
            out[m] = conform(wide.sort("time"), m)
        except SchemaError as exc:
            raise TelemetryFormatError(str(exc), source) from None
    if not out:
        raise TelemetryFormatError("no values in the file", source, first_line)
    return out
