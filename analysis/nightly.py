"""The nightly analysis of a fleet: the night's runs listed once, then every node's victims analysed in worker
processes, each node reading only its own runs, artifacts and telemetry.

    from analysis.nightly import plan_night, run_night, analyze_node
    jobs = plan_night(store, start, end)                      # one NodeJob per node with runs in [start, end)
    for done in run_night("store/dir", jobs, analyze_node, start=start, end=end, workers=2):
        done.node, done.value                                 # victim -> AnalysisResult (or the error, as text)

`run_night` runs any per-node function (``work(store, job, **kwargs)``) in ``workers`` processes, each opening the
store for each node; `analyze_node` is the analysis of a node's victims (`analysis.analyze.analyze` with the node's runs
handed over, so no worker lists the fleet's runs again); the fleet report (`analysis.report.fleet`) writes a node's
report with it. Why per node: `docs/nightly.md`.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: a worker imports what its work needs, not the whole analysis
    from analysis.analyze import AnalysisResult
    from analysis.ingest.model import Run


@dataclass(frozen=True)
class NodeJob:
    """One node's share of the night: its runs that started in the window (every group's: co-tenant benchmark runs
    are part of the node's picture) and the victims to analyse (groups with runs there)."""

    node: str  # "" for runs that name no node
    victims: tuple[str, ...]
    runs: tuple[Run, ...]


@dataclass
class NodeDone:
    """What a worker returns for one node: ``value`` (what the work returned) or ``error`` (one line), and what
    it cost in the worker (wall and CPU seconds, the worker's peak RSS so far)."""

    node: str
    value: Any = None
    error: str | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def plan_night(store: Any, start: datetime, end: datetime, victims: Sequence[str] | None = None) -> list[NodeJob]:
    """The night's work per node, from one listing of the store's runs: the runs that started in [start, end) (a
    run without a wall-clock start counts at its import time, as `analyze` counts it), grouped by node, with the
    groups to analyse (``victims`` where given, else every group with a run on that node). Nodes in name order."""
    from analysis.analyze import run_time
    from analysis.ingest.model import list_runs

    by_node: dict[str, list[Run]] = {}
    for r in list_runs(store):
        t = run_time(r)
        if t is not None and start <= t < end:
            by_node.setdefault(r.node or "", []).append(r)
    jobs = []
    for node in sorted(by_node):
        runs = by_node[node]
        groups = list(dict.fromkeys(r.group for r in runs if r.group))
        want = tuple(g for g in (victims if victims is not None else groups) if g in groups)
        if want:
            jobs.append(NodeJob(node, want, tuple(runs)))
    return jobs


def analyze_node(store: Any, job: NodeJob, *, start: datetime, end: datetime, **options: Any) -> dict[str, Any]:
    """`analysis.analyze.analyze` of each of the node's victims over [start, end) with the node's runs handed over:
    victim -> `AnalysisResult`, or the one-line error of a victim whose analysis failed (the others still run).
    ``options``: `analyze`'s topology, thresholds, seed, window_s ..."""
    from analysis.analyze import analyze

    out: dict[str, AnalysisResult | str] = {}
    for victim in job.victims:
        try:
            out[victim] = analyze(
                store, victim, node=job.node or None, start=start, end=end, source="bench", runs=job.runs, **options
            )
        except Exception as exc:  # one victim failing must not lose the node's other victims
            out[victim] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return out


Work = Callable[..., Any]


def run_night(
    store: str | Path,
    jobs: Sequence[NodeJob],
    work: Work = analyze_node,
    *,
    workers: int | None = None,
    **kwargs: Any,
) -> Iterator[NodeDone]:
    """``work(store, job, **kwargs)`` for every job in ``workers`` processes (default: one per core, at most one
    per job; 1 runs in this process). Each job opens ``store`` (a path or URL, read only) for itself, so that what
    a store handle records (the files it could not read) is that node's; what the embedded store caches per file
    (footers, statistics) lives as long as the worker. Yields each node as it is done (not in job order); a job
    that raised is yielded with its ``error``. ``work`` and ``kwargs`` must pickle (a module-level function;
    frames, dataclasses)."""
    n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if not jobs:
        return
    if n == 1:
        for job in jobs:
            yield _do(work, str(store), job, kwargs)
        return
    # spawn, not fork: the parent may hold polars' thread pool (a forked child can deadlock on its locks)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n, mp_context=ctx) as pool:
        # at most two jobs queued per worker: a node is handed to whichever worker is free (nodes differ in cost)
        todo = list(jobs)[::-1]
        running: set[Future[NodeDone]] = set()
        while todo or running:
            while todo and len(running) < 2 * n:
                running.add(pool.submit(_do, work, str(store), todo.pop(), kwargs))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()


def _do(work: Work, store: str, job: NodeJob, kwargs: dict[str, Any]) -> NodeDone:
    from telemetry.store.factory import open_store

    u0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    done = NodeDone(job.node)
    try:
        st = open_store(store, create=False)
        try:
            done.value = work(st, job, **kwargs)
        finally:
            st.close()
    except Exception as exc:
        done.error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    u1 = resource.getrusage(resource.RUSAGE_SELF)
    done.wall_s = time.perf_counter() - t0
    done.cpu_s = u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime
    done.peak_rss_bytes = peak_rss_bytes()
    return done


def peak_rss_bytes() -> int:
    """This process's peak RSS (``VmHWM``; not ``ru_maxrss``, which Linux carries across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
