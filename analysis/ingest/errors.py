"""Errors of benchmark and telemetry ingest. Each message names the file, the line and what was expected."""

from __future__ import annotations

from telemetry.errors import NeighborscopeError


class BenchFormatError(NeighborscopeError, ValueError):
    """A benchmark or telemetry file matches no known format, or is truncated / corrupt.

    ``source`` is the file (or ``<stdin>``), ``line`` the 1-based line where the problem was seen (0: whole file).
    """

    def __init__(self, message: str, source: str = "", line: int = 0) -> None:
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}" if where else message)


class TelemetryFormatError(BenchFormatError):
    """A telemetry file (line protocol, long CSV / Parquet, nvidia-smi / amd-smi CSV) is unknown or corrupt."""
