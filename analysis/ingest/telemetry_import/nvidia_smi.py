"""``nvidia-smi --query-gpu=timestamp,index,power.draw,... --format=csv[,nounits] [-l 1]`` logs (InferenceX records
one as ``gpu_metrics.csv`` beside each run) -> ``accel`` rows, units converted (``memory.used [MiB]`` -> bytes,
``total_energy_consumption [mJ]`` -> J). Timestamps ``YYYY/MM/DD HH:MM:SS.fff`` are local time (``--tz``).
``[N/A]`` / ``[Not Supported]`` are absent. Columns without a schema field are skipped. ``device`` = ``gpu<index>``.
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

# query name -> schema field
FIELDS = {
    "power.draw": "power_w",
    "power.draw.instant": "power_w",
    "power.draw.average": "power_avg_w",
    "power.limit": "power_limit_w",
    "enforced.power.limit": "power_limit_w",
    "temperature.gpu": "temp_c",
    "temperature.memory": "temp_mem_c",
    "clocks.current.sm": "sm_clock_mhz",
    "clocks.sm": "sm_clock_mhz",
    "clocks.current.memory": "mem_clock_mhz",
    "clocks.mem": "mem_clock_mhz",
    "utilization.gpu": "util_pct",
    "utilization.memory": "mem_util_pct",
    "memory.used": "mem_used_bytes",
    "memory.total": "mem_total_bytes",
    "fan.speed": "fan_pct",
    "pcie.link.gen.current": "pcie_link_gen",
    "pcie.link.gen.gpucurrent": "pcie_link_gen",
    "pcie.link.width.current": "pcie_link_width",
    "ecc.errors.corrected.volatile.total": "ecc_corrected_count",
    "ecc.errors.uncorrected.volatile.total": "ecc_uncorrected_count",
    "total_energy_consumption": "energy_j",
}
DEFAULT_UNITS = {"total_energy_consumption": "mJ", "memory.used": "MiB", "memory.total": "MiB"}
THROTTLE = {
    "hw_thermal_slowdown": "throttle_thermal",
    "sw_thermal_slowdown": "throttle_thermal",
    "sw_power_cap": "throttle_power",
    "hw_power_brake_slowdown": "throttle_power",
    "hw_slowdown": "throttle_other",
    "sync_boost": "throttle_other",
}
TAGS = {"index": "device", "pci.bus_id": "pci_bus", "name": "model"}
_HEADER = re.compile(r"^\s*(?P<name>[^\[]+?)\s*(?:\[(?P<unit>[^\]]*)\])?\s*$")
_KNOWN = re.compile(
    r"(^|,)\s*(power\.draw|power\.limit|temperature\.(gpu|memory)|utilization\.|clocks\.|memory\.(used|total)|"
    r"pci\.bus_id|fan\.speed|pcie\.link|clocks_(event|throttle)_reasons)"
)


@register("nvidia_smi")
class NvidiaSmiFormat:
    name = "nvidia_smi"

    def sniff(self, head: bytes) -> bool:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
        return "," in first and bool(_KNOWN.search(first)) and "metric" not in first.split(",")

    def parse(self, data: bytes, source: str, node: str | None, tz: str | None) -> Frames:
        if not node:
            raise TelemetryFormatError("nvidia-smi logs do not name their node: expected --node NODE", source)
        header, rows = csv_records(data, source, "nvidia-smi")
        cols = []
        for h in header:
            m = _HEADER.match(h)
            name = (m.group("name") if m else h).strip().lower()
            cols.append((name, (m.group("unit") if m else None) or DEFAULT_UNITS.get(name)))
        names = [c[0] for c in cols]
        if "timestamp" not in names:
            raise TelemetryFormatError("expected a 'timestamp' column (--query-gpu=timestamp,...)", source, 1)
        out: dict[str, list] = {"time": [], "node": [], "device": [], "vendor": [], "model": [], "pci_bus": []}
        fields = {FIELDS[n] for n in names if n in FIELDS}
        fields |= {"throttle_reasons"} if any(n.endswith("reasons.active") for n in names) else set()
        fields |= {THROTTLE[n.rsplit(".", 1)[1]] for n in names if "reasons." in n and n.rsplit(".", 1)[1] in THROTTLE}
        for f in fields:
            out[f] = []
        for line, row in rows:
            rec: dict[str, object] = dict.fromkeys(fields)
            rec.update({"node": node, "device": None, "vendor": "nvidia", "model": None, "pci_bus": None})
            for (name, unit), cell in zip(cols, row, strict=True):
                if name == "timestamp":
                    rec["time"] = parse_time_ns(cell, tz, "timestamp", source, line)
                elif name in TAGS:
                    v = cell.strip()
                    rec[TAGS[name]] = (f"gpu{v}" if name == "index" else v) or None
                elif name in FIELDS:
                    value = accel_value(cell, unit, FIELDS[name], name, source, line)
                    if value is not None:
                        rec[FIELDS[name]] = value
                elif name.endswith("reasons.active"):
                    s = cell.strip()
                    if s.lower() not in ("", "[n/a]", "[not supported]"):
                        try:
                            rec["throttle_reasons"] = int(s, 16) if s.lower().startswith("0x") else int(s)
                        except ValueError:
                            raise TelemetryFormatError(f"{name}: expected a bitmask, got {s!r}", source, line) from None
                elif "reasons." in name and name.rsplit(".", 1)[1] in THROTTLE:
                    field = THROTTLE[name.rsplit(".", 1)[1]]
                    s = cell.strip().lower()
                    if s in ("active", "not active"):
                        rec[field] = bool(rec.get(field)) or s == "active"
            if "time" not in rec:
                raise TelemetryFormatError("row without a timestamp", source, line)
            for k in out:
                out[k].append(rec.get(k))
        if not out["time"]:
            raise TelemetryFormatError("no data rows after the header", source, 1)
        return {"accel": wide_frame(out, "accel", source)}
