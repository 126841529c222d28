"""Files -> runs on the wall clock -> store. The one function the CLI and the wrapper's subprocess call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.ingest.base import parse_file
from analysis.ingest.model import ParsedRun, Run, stamped, write_run
from analysis.ingest.timing import ImportOptions, resolve, safe_run_id


def parse_bench_files(
    paths: Sequence[str | Path],
    *,
    run_id: str | None = None,
    phase: str = "",
    group: str = "",
    node: str = "",
    wall_monotonic_pair: tuple[float, float] | None = None,
    wall_start_s: float | None = None,
    tz: str | None = None,
    fmt: str | None = None,
) -> list[Run]:
    """Parse benchmark files (format detected from content unless ``fmt``) into `Run` values on the wall clock.

    Run ids: ``run_id`` for a single run, ``run_id.1``, ``run_id.2``, ... when the files hold several; without
    ``run_id``, the file name (plus ``.k``). ``wall_monotonic_pair`` = (time.time(), time.monotonic()) read
    together on the benchmark host; it maps vLLM ``start_times`` to the wall clock exactly. Every run gets its
    ``import_seq`` (the reading order, `analysis.ingest.model.next_import_seq`).
    """
    wall, mono = wall_monotonic_pair if wall_monotonic_pair else (wall_start_s, None)
    options = ImportOptions(
        run_id=run_id, group=group, phase=phase, node=node, wall_start_s=wall, monotonic_start_s=mono, tz=tz
    )
    per_file: list[tuple[Path, list[ParsedRun]]] = [(Path(p), parse_file(p, fmt)) for p in paths]
    total = sum(len(parsed) for _, parsed in per_file)
    runs: list[Run] = []
    k = 0
    for path, parsed in per_file:
        ids = []
        for j in range(len(parsed)):
            k += 1
            if run_id:
                ids.append(safe_run_id(run_id if total == 1 else f"{run_id}.{k}"))
            else:
                ids.append(safe_run_id(path.stem if len(parsed) == 1 else f"{path.stem}.{j + 1}"))
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            mtime = None
        runs.extend(stamped(run) for run in resolve(parsed, options, ids, mtime))
    return runs


def import_bench_files(store: Any, paths: Sequence[str | Path], *, tokens: bool = False, **kwargs: Any) -> list[Run]:
    """`parse_bench_files`, then store every run (run_event and bench_request rows, the requests artifact, and with
    ``tokens`` the materialised tokens artifact), each with its ``import_seq`` (the import order)."""
    runs = parse_bench_files(paths, **kwargs)
    for run in runs:
        write_run(store, run, tokens=tokens)
    return runs
