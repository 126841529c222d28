"""One rule for the width of what commands print: a terminal's own width, a wide fixed width when piped.

Piped to a file or a CI log, rich would wrap at 80 columns: tables and the commands the demo prints would break
mid-word. Every command prints through `output_console`.
"""

from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 200
"""Columns of the output when it is not a terminal (a pipe or a file): wide enough that no table row wraps."""


def output_console(min_width: int = 0, *, stderr: bool = False) -> Console:
    """A rich console: the terminal's width (at least ``min_width``) on a terminal, `PIPED_WIDTH` when piped."""
    con = Console(stderr=stderr)
    if not con.is_terminal:
        return Console(width=PIPED_WIDTH, stderr=stderr)
    return con if con.width >= min_width else Console(width=min_width, stderr=stderr)
