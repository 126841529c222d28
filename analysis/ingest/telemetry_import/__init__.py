"""Telemetry recorded without our agent -> schema frames -> the store (`neighborscope import telemetry`).

Formats (one module each, registered under the module name): ``line_protocol`` (Telegraf file output, ``influx``
exports; Telegraf's ``nvidia_smi`` / ``cpu`` / ``mem`` / ``system`` measurements are mapped onto ``accel`` /
``host``), ``long_format`` (CSV / Parquet: time, node, device, metric, value[, unit][, tags]), ``nvidia_smi``
(``nvidia-smi --query-gpu=... --format=csv``, InferenceX's ``gpu_metrics.csv``), ``amd_smi``
(``amd-smi metric --csv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from analysis.ingest.telemetry_import.base import Frames, parse_file


def parse_telemetry_files(
    paths: Sequence[str | Path], *, node: str | None = None, tz: str | None = None, fmt: str | None = None
) -> Frames:
    """Parse telemetry files into one conformed frame per measurement."""
    parts: dict[str, list[pl.DataFrame]] = {}
    for p in paths:
        for m, frame in parse_file(p, node=node, tz=tz, fmt=fmt).items():
            parts.setdefault(m, []).append(frame)
    return {m: pl.concat(fs, how="diagonal_relaxed") if len(fs) > 1 else fs[0] for m, fs in parts.items()}


def import_telemetry_files(store: Any, paths: Sequence[str | Path], **kwargs: Any) -> Frames:
    """`parse_telemetry_files`, then ``store.write`` each measurement (the collector's store path)."""
    frames = parse_telemetry_files(paths, **kwargs)
    for m, frame in frames.items():
        if frame.height:
            store.write(m, frame)
    return frames


__all__ = ["import_telemetry_files", "parse_telemetry_files"]
