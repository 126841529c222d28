"""``amd-smi metric [-p -c -t -u -w 1] --csv`` output -> ``accel`` rows. amd-smi's CSV column names drift between
ROCm releases, so columns are matched by name patterns (socket_power / power_usage -> power_w, hotspot -> temp_hotspot_c,
edge -> temp_c, gfx_usage / gfx_activity -> util_pct, gfx_0_clk -> sm_clock_mhz, ...); values may carry units
(``W``, ``C``, ``MHz``, ``mV``, ``MB``). Needs a time column (``timestamp``, from ``-w``); ``device`` = ``gpu<n>``.
"""

from __future__ import annotations

import re

from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import.base import (
    Frames,
    accel_value,
    csv_records,
    parse_time_ns,
    register,
    wide_frame,
)

PATTERNS: tuple[tuple[str, str, str | None], ...] = (
    (r"(current_)?socket_power|power_usage|average_socket_power|power", "power_w", "W"),
    (r"(socket_)?power_(limit|cap)|power_cap", "power_limit_w", "W"),
    (r"(temperature_)?edge(_temperature)?|temperature|temp", "temp_c", "C"),
    (r"(temperature_)?(hotspot|junction)(_temperature)?", "temp_hotspot_c", "C"),
    (r"(temperature_)?(mem|hbm|vram)(_temperature)?", "temp_mem_c", "C"),
    (r"gfx_(usage|activity|util)|gpu_(use|util|busy)_?(percent)?", "util_pct", "%"),
    (r"(umc|mem)_(usage|activity|util)", "mem_util_pct", "%"),
    (r"gfx(_0)?_clk(_clk)?|gfxclk|current_gfxclk|sclk", "sm_clock_mhz", "MHz"),
    (r"mem(_0)?_clk(_clk)?|uclk|current_uclk|mclk", "mem_clock_mhz", "MHz"),
    (r"(used_vram|vram_used|mem_usage_used_vram)", "mem_used_bytes", "MB"),
    (r"(total_vram|vram_total|mem_usage_total_vram)", "mem_total_bytes", "MB"),
    (r"(gfx_)?voltage|voltage_gfx", "voltage_v", "mV"),
    (r"energy_accumulator|total_energy_consumption|energy", "energy_j", "J"),
    (r"fan_speed|fan_usage", "fan_pct", "%"),
)
_HEADER = re.compile(r"^\s*(?P<name>[^\(\[]+?)\s*(?:[\(\[](?P<unit>[^\)\]]*)[\)\]])?\s*$")


def field_of(name: str) -> tuple[str, str | None] | None:
    for pattern, field, unit in PATTERNS:
        if re.fullmatch(pattern, name):
            return field, unit
    return None


@register("amd_smi")
class AmdSmiFormat:
    name = "amd_smi"

    def sniff(self, head: bytes) -> bool:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
        cols = [c.strip() for c in first.split(",")]
        return "gpu" in cols and any(field_of(c) for c in cols) and "metric" not in cols

    def parse(self, data: bytes, source: str, node: str | None, tz: str | None) -> Frames:
        if not node:
            raise TelemetryFormatError("amd-smi logs do not name their node: expected --node NODE", source)
        header, rows = csv_records(data, source, "amd-smi")
        cols: list[tuple[str, str | None]] = []
        for h in header:
            m = _HEADER.match(h)
            cols.append(((m.group("name") if m else h).strip().lower(), m.group("unit") if m else None))
        names = [c[0] for c in cols]
        time_col = next((n for n in names if n in ("timestamp", "time", "date")), None)
        if time_col is None:
            raise TelemetryFormatError("expected a 'timestamp' column (run amd-smi metric with -w INTERVAL)", source, 1)
        mapped = {n: field_of(n) for n in names}
        fields = sorted({f[0] for f in mapped.values() if f})
        out: dict[str, list] = {"time": [], "node": [], "device": [], "vendor": []} | {f: [] for f in fields}
        for line, row in rows:
            rec: dict[str, object] = dict.fromkeys(fields)
            rec.update({"node": node, "vendor": "amd", "device": None})
            for (name, unit), cell in zip(cols, row, strict=True):
                if name == time_col:
                    rec["time"] = parse_time_ns(cell, tz, name, source, line)
                elif name == "gpu":
                    rec["device"] = f"gpu{cell.strip()}" if cell.strip() else None
                elif mapped.get(name) and rec.get(mapped[name][0]) is None:
                    field, default_unit = mapped[name]
                    rec[field] = accel_value(cell, unit or default_unit, field, name, source, line)
            for k in out:
                out[k].append(rec.get(k))
        if not out["time"]:
            raise TelemetryFormatError("no data rows after the header", source, 1)
        return {"accel": wide_frame(out, "accel", source)}
