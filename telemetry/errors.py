"""Errors of the ground floor. Each message says what was wrong and where."""

from __future__ import annotations


class NeighborscopeError(Exception):
    """Base of every error neighborscope turns into a one-line message."""


class SchemaError(NeighborscopeError, ValueError):
    """A frame or sample does not fit the declared schema.

    `where` locates the problem (e.g. ``frames[0].columns.temp_c[17]``).
    """

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class LineProtocolError(NeighborscopeError, ValueError):
    """A line of InfluxDB line protocol could not be parsed."""

    def __init__(self, message: str, line_no: int, line: str = "") -> None:
        self.line_no = line_no
        self.line = line
        shown = line if len(line) <= 200 else line[:200] + "..."
        super().__init__(f"line {line_no}: {message}: {shown!r}" if line else f"line {line_no}: {message}")


class StoreError(NeighborscopeError):
    """The store could not write or read."""


class StoreUnavailableError(StoreError):
    """The store's backend is down or unreachable (retry later)."""


class ConfigError(NeighborscopeError, ValueError):
    """A configuration file or option is invalid."""
