"""InfluxDB line protocol files (Telegraf's ``file`` output, ``influx`` exports, our own exports).

Our schema's measurements are decoded by `telemetry.line_protocol.decode` (conformed, errors with line numbers).
Telegraf's own inputs are mapped onto the schema: ``nvidia_smi`` -> ``accel`` (index -> device ``gpu<index>``,
``memory_used`` MiB -> bytes, ...), ``cpu`` (cpu=cpu-total) / ``mem`` / ``system`` -> ``host``; the ``host`` tag
becomes ``node``. Other measurements are skipped and counted in the ``skipped`` attribute of the result.
Lines without a timestamp are refused (a file has no receive time).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import polars as pl

from analysis.ingest.errors import TelemetryFormatError
from analysis.ingest.telemetry_import.base import Frames, register, text_of
from telemetry.errors import NeighborscopeError
from telemetry.line_protocol import decode
from telemetry.schema import MEASUREMENTS, conform

_LINE = re.compile(rb"^[A-Za-z_][^\s,]*(?:,[^\s]+)?\s+[^\s=]+=[^\s]+.*?(?:\s+-?\d+)?\s*$")

PARSE_AHEAD = 1
"""Chunks parsed ahead of the one being stored, each on its own thread (one: the import has two cores, the other
stores)."""

TELEGRAF_NVIDIA = {
    "power_draw": ("power_w", 1.0),
    "power_limit": ("power_limit_w", 1.0),
    "enforced_power_limit": ("power_limit_w", 1.0),
    "temperature_gpu": ("temp_c", 1.0),
    "temperature_memory": ("temp_mem_c", 1.0),
    "utilization_gpu": ("util_pct", 1.0),
    "utilization_memory": ("mem_util_pct", 1.0),
    "memory_used": ("mem_used_bytes", 1024.0**2),
    "memory_total": ("mem_total_bytes", 1024.0**2),
    "fan_speed": ("fan_pct", 1.0),
    "clocks_current_sm": ("sm_clock_mhz", 1.0),
    "clocks_current_memory": ("mem_clock_mhz", 1.0),
    "pcie_link_gen_current": ("pcie_link_gen", 1.0),
    "pcie_link_width_current": ("pcie_link_width", 1.0),
}
TELEGRAF_HOST = {
    "cpu": {"usage_user": "cpu_user_pct", "usage_system": "cpu_system_pct", "usage_iowait": "cpu_iowait_pct",
            "usage_steal": "cpu_steal_pct", "usage_idle": "_idle"},
    "mem": {"total": "mem_total_bytes", "used": "mem_used_bytes", "available": "mem_available_bytes"},
    "system": {"load1": "load1", "load5": "load5", "load15": "load15", "n_cpus": "cpu_count"},
}  # fmt: skip


@register("line_protocol")
class LineProtocolFormat:
    name = "line_protocol"

    def sniff(self, head: bytes) -> bool:
        for raw in head.split(b"\n")[:20]:
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            return bool(_LINE.match(line)) and b"," not in line.split(b" ", 1)[0][:0] and line.count(b" ") >= 1
        return False

    def parse(self, data: bytes, source: str, node: str | None, tz: str | None) -> Frames:
        parts: dict[str, list[pl.DataFrame]] = {}
        for frames in self.parse_chunks([(1, data)], source, node, tz):
            for m, frame in frames.items():
                parts.setdefault(m, []).append(frame)
        return {m: pl.concat(fs, how="diagonal_relaxed") if len(fs) > 1 else fs[0] for m, fs in parts.items()}

    def parse_chunks(
        self, chunks: Iterable[tuple[int, bytes]], source: str, node: str | None, tz: str | None
    ) -> Iterator[Frames]:
        """Frames per chunk of whole lines ((first line number, bytes)), so a file of any size is read in bounded
        memory. Telegraf's cpu / mem / system lines of the last time of a chunk are held back and merged with the
        next chunk's (one host row per time and node)."""
        skipped: set[str] = set()
        found = False
        held: pl.DataFrame | None = None  # Telegraf host rows of a chunk's last time, merged with the next chunk
        for frames, telegraf_host in self._parsed(chunks, source, node, skipped):
            if held is not None:
                frames["host"] = _merge_host(pl.concat([held, *frames.get("host", [])], how="diagonal_relaxed"))
                held = None
            elif telegraf_host and "host" in frames:
                frames["host"] = _merge_host(pl.concat(frames["host"], how="diagonal_relaxed"))
            out = {
                m: (
                    fs
                    if isinstance(fs, pl.DataFrame)
                    else pl.concat(fs, how="diagonal_relaxed")
                    if len(fs) > 1
                    else fs[0]
                )
                for m, fs in frames.items()
            }
            if telegraf_host and "host" in out and out["host"].height:
                last = out["host"]["time"].max()
                held, out["host"] = (
                    out["host"].filter(pl.col("time") == last),
                    out["host"].filter(pl.col("time") < last),
                )
            found = found or bool(out) or held is not None
            yield {m: f for m, f in out.items() if f.height}
        if held is not None:
            yield {"host": held}
        if not found:
            raise TelemetryFormatError(
                f"no measurement of the schema or of Telegraf's nvidia_smi / cpu / mem / system inputs (found: "
                f"{', '.join(sorted(skipped)) or 'none'})",
                source,
            )

    def _parsed(
        self, chunks: Iterable[tuple[int, bytes]], source: str, node: str | None, skipped: set[str]
    ) -> Iterator[tuple[dict[str, list[pl.DataFrame]], bool]]:
        """`_parse_chunk` of each chunk, in order, the next ones parsed on other threads while the caller stores
        this one (the parse is mostly polars and numpy, which run without the GIL). An error in a chunk is raised
        when its turn comes, after every chunk before it was handed over; at most `PARSE_AHEAD` chunks are parsed
        ahead, so memory stays bounded."""
        it = iter(chunks)
        with ThreadPoolExecutor(max_workers=PARSE_AHEAD, thread_name_prefix="lp-parse") as pool:
            pending: deque[Future] = deque()

            def fill() -> None:
                while len(pending) < PARSE_AHEAD:
                    nxt = next(it, None)
                    if nxt is None:
                        return
                    pending.append(pool.submit(self._parse_chunk, nxt[1], source, node, nxt[0], skipped))

            fill()
            while pending:
                parsed = pending.popleft().result()
                fill()
                yield parsed

    def _parse_chunk(
        self, data: bytes, source: str, node: str | None, first_line: int, skipped: set[str]
    ) -> tuple[dict[str, list[pl.DataFrame]], bool]:
        text = text_of(data, source)
        try:
            decoded = decode(text, strict_schema=True)
        except NeighborscopeError as exc:
            line = getattr(exc, "line_no", 0)
            message = str(exc).removeprefix(f"line {line}: ") if line else str(exc)
            raise TelemetryFormatError(
                f"line protocol: {message}", source, line + first_line - 1 if line else 0
            ) from None
        out: dict[str, list[pl.DataFrame]] = {}
        telegraf_host = False
        for m, frame in decoded.items():
            if m in MEASUREMENTS:
                mapped = frame
                target = m
            elif m == "nvidia_smi":
                mapped, target = _telegraf_nvidia(frame), "accel"
            elif m in TELEGRAF_HOST:
                mapped, target = _telegraf_host(m, frame), "host"
                telegraf_host = True
            else:
                skipped.add(m)
                continue
            if node is not None and "node" in mapped.columns:
                mapped = mapped.with_columns(pl.col("node").fill_null(node))
            out.setdefault(target, []).append(conform(mapped, target))
        return out, telegraf_host


def _node(frame: pl.DataFrame) -> pl.Expr:
    return pl.col("host").cast(pl.String) if "host" in frame.columns else pl.lit(None, dtype=pl.String)


def _telegraf_nvidia(frame: pl.DataFrame) -> pl.DataFrame:
    cols = [pl.col("time"), _node(frame).alias("node"), pl.lit("nvidia").alias("vendor")]
    if "index" in frame.columns:
        cols.append(pl.format("gpu{}", pl.col("index")).alias("device"))
    if "name" in frame.columns:
        cols.append(pl.col("name").cast(pl.String).alias("model"))
    for src, (dst, factor) in TELEGRAF_NVIDIA.items():
        if src in frame.columns:
            cols.append((pl.col(src).cast(pl.Float64) * factor).alias(dst))
    return frame.select(cols)


def _telegraf_host(m: str, frame: pl.DataFrame) -> pl.DataFrame:
    if m == "cpu" and "cpu" in frame.columns:
        frame = frame.filter(pl.col("cpu") == "cpu-total")
    cols = [pl.col("time"), _node(frame).alias("node")]
    for src, dst in TELEGRAF_HOST[m].items():
        if src in frame.columns:
            if dst == "_idle":
                cols.append((100.0 - pl.col(src).cast(pl.Float64)).alias("cpu_util_pct"))
            else:
                cols.append(pl.col(src).alias(dst))
    return frame.select(cols)


def _merge_host(frame: pl.DataFrame) -> pl.DataFrame:
    """Telegraf writes cpu, mem and system as separate lines of one time: one host row per (time, node)."""
    fields = [c for c in frame.columns if c not in ("time", "node")]
    return frame.group_by(["time", "node"], maintain_order=True).agg([pl.col(f).drop_nulls().first() for f in fields])
