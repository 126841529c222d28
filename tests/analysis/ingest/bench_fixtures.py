"""The benchmark fixture files (tests/fixtures/bench/<tool>/..., nested folders too) the shared ingest tests walk."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "fixtures" / "bench"

NOT_RESULTS = frozenset(
    {
        "SOURCES.md",
        "README.md",
        "profile_export_console.txt",  # AIPerf's printed tables: the expected numbers
        "console_tail.txt",
        "benchmark_args.json",  # EvalScope's arguments file
    }
)
"""File names that are no result we read: notes, a tool's printed tables kept as expectations, its config."""

REFUSED = frozenset(
    {
        "profile_export_aiperf_aggregate.json",  # AIPerf multi-run aggregate: its runs are read from beside it
        "config.yaml",  # inference-perf's configuration: refused, naming the result files
        "performance_summary.txt",  # EvalScope's printed tables of every level: refused, naming the files to use
    }
)
"""Files of a known tool that are detected, then refused with a pointer to the file to import (or, like the AIPerf
aggregate, read only with the files beside it)."""


def tool_of(path: Path) -> str:
    """The tool (parser name) a fixture belongs to: its first folder under tests/fixtures/bench."""
    return path.relative_to(BENCH).parts[0]


def result_files(*, flat_only: bool = False) -> list[Path]:
    """Every fixture that is a result we read (``flat_only``: directly in a tool's folder), sorted."""
    pattern = "*/*" if flat_only else "**/*"
    return sorted(
        p
        for p in BENCH.glob(pattern)
        if p.is_file() and p.parent != BENCH and p.name not in NOT_RESULTS and p.name not in REFUSED
    )


def refused_files() -> list[Path]:
    """The fixtures in `REFUSED`, sorted."""
    return sorted(p for p in BENCH.glob("**/*") if p.is_file() and p.name in REFUSED)
