"""Errors of the ground floor. Each message says what was wrong and where."""

from __future__ import annotations

from dataclasses import dataclass


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


class StoreLockedError(StoreError):
    """The embedded store is already held by another writing process (its lock file names the holder).

    ``pid`` and ``owner`` (free text, e.g. the collector's command line or listen address) describe the holder,
    when its lock file says.
    """

    def __init__(self, message: str, pid: int | None = None, owner: str = "") -> None:
        self.pid = pid
        self.owner = owner
        super().__init__(message)


class StoreUnavailableError(StoreError):
    """The store's backend is down, unreachable or busy (retry later).

    ``retry_after_s`` is the wait the backend asked for (its ``Retry-After``), or None.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class InfluxUnavailableError(StoreUnavailableError):
    """InfluxDB is down, slow or asks us to wait (429 / 503 / 5xx / connection refused / timeout)."""


@dataclass(frozen=True)
class RejectedLine:
    """A line of line protocol a remote store refused, and why."""

    line: str
    reason: str


class InfluxWriteRejectedError(StoreError):
    """InfluxDB refused some points (HTTP 400: a field type conflict, an unparsable line, ...).

    ``rejected`` lists the offending lines; every other line of the write was stored.
    """

    def __init__(self, rejected: list[RejectedLine], written_lines: int) -> None:
        self.rejected = rejected
        self.written_lines = written_lines
        first = rejected[0] if rejected else RejectedLine("", "")
        more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
        super().__init__(f"InfluxDB rejected {first.line[:200]!r}: {first.reason}{more}")


class ConfigError(NeighborscopeError, ValueError):
    """A configuration file or option is invalid; ``where`` (optional) names the key, e.g. ``collector.url``."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
