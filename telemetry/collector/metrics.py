"""The collector's own counters, exposed at /metrics in Prometheus text format (its own registry).

A collector with several worker processes (`telemetry.collector.workers`) keeps them in prometheus_client's
multiprocess mode: every process writes its values to a memory-mapped file of its own in one directory
(`use_multiprocess_values`), and whichever worker is scraped sums them all (`CollectorMetrics(multiprocess_dir=...)`).
The store writer process counts the group commits there (`commit_counters`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

#: the environment variable prometheus_client reads for its multiprocess directory
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

COMMIT_GROUPS = ("neighborscope_collector_commit_groups", "group commits handed to the store")
COMMIT_GROUP_BATCHES = ("neighborscope_collector_commit_group_batches", "agent batches in the group commits")
REQUESTS_ARRIVING = (
    "neighborscope_collector_requests_arriving",
    "Requests whose body is in and whose batch the group committer waits for",
)


def use_multiprocess_values(directory: str | Path) -> None:
    """From now on this process keeps every metric value it creates in ``directory`` (one file per process and
    kind, prometheus_client's multiprocess mode), where `CollectorMetrics(multiprocess_dir=directory)` sums them.
    Call it in each process before creating any metric."""
    from prometheus_client import values

    os.environ[MULTIPROC_ENV] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def commit_counters() -> tuple[Counter, Counter]:
    """The store writer's group commits and the batches in them (multiprocess values: `use_multiprocess_values`)."""
    return Counter(*COMMIT_GROUPS, registry=None), Counter(*COMMIT_GROUP_BATCHES, registry=None)


class CollectorMetrics:
    def __init__(self, multiprocess_dir: str | Path | None = None) -> None:
        """``multiprocess_dir``: this process is one of several of a collector (`telemetry.collector.workers`):
        its values go to that directory, and its ``registry`` serves the sum over every process's."""
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        own: CollectorRegistry | None = self.registry
        if multiprocess_dir is not None:
            use_multiprocess_values(multiprocess_dir)
            own = None  # the values live in the files; the registry serves their sum
        self.batches = Counter(
            "neighborscope_collector_batches", "Agent batches received, by outcome", ["status"], registry=own
        )
        self.rows = Counter("neighborscope_collector_rows", "Rows (samples) stored", ["measurement"], registry=own)
        self.values = Counter("neighborscope_collector_field_values", "Field values stored", registry=own)
        self.rejects = Counter(
            "neighborscope_collector_rejects", "Requests rejected, by reason", ["reason"], registry=own
        )
        self.lines = Counter("neighborscope_collector_lp_lines", "Line-protocol lines stored", registry=own)
        self.store_seconds = Histogram(
            "neighborscope_collector_store_write_seconds",
            "Time to make a write durable in the store",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=own,
        )

        self._children: dict[tuple[str, str], Any] = {}
        if multiprocess_dir is not None:
            docs = {m._name: m._documentation for m in (self.batches, self.rows, self.values, self.rejects, self.lines,
                                                        self.store_seconds)}  # fmt: skip
            docs.update(dict((COMMIT_GROUPS, COMMIT_GROUP_BATCHES, REQUESTS_ARRIVING)))
            self.registry.register(_Summed(Path(multiprocess_dir), docs))

    def child(self, metric: str, label: str) -> Any:
        """``getattr(self, metric).labels(label)``, looked up once (the batch path counts several per request)."""
        key = (metric, label)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = getattr(self, metric).labels(label)
        return found

    def watch_store(self, store: Any) -> None:
        """A store with a local queue (InfluxDB) reports its depth (gauges) and the lines the store refused
        since the collector started (a counter)."""
        status = getattr(store, "status", None)
        if callable(status):
            self.registry.register(_StoreQueue(status))

    def watch_committer(self, committer: Any) -> None:
        """The group committer's requests on their way in (body read, being validated): it waits for them.
        One process alone also reports its group commits; a worker of several does not (the store writer
        counts the groups it commits: `commit_counters`), and sets its share of the arriving requests on every
        change (summed over the live workers)."""
        if self.multiprocess_dir is not None:
            gauge = Gauge(*REQUESTS_ARRIVING, registry=None, multiprocess_mode="livesum")
            committer.on_arriving = lambda n: gauge.set(n)
            return
        gauge = Gauge(*REQUESTS_ARRIVING, registry=self.registry)
        gauge.set_function(lambda: float(committer.arriving))
        self.registry.register(_Commits(committer))


class _Summed:
    """Every process's values in ``path`` summed (prometheus_client's `MultiProcessCollector`), each metric with
    its own help text instead of the generic one."""

    def __init__(self, path: Path, docs: dict[str, str]) -> None:
        from prometheus_client.multiprocess import MultiProcessCollector

        self._merged = MultiProcessCollector(None, path=str(path))
        self.docs = docs

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for metric in sorted(self._merged.collect(), key=lambda m: m.name):
            metric.documentation = self.docs.get(metric.name, metric.documentation)
            yield metric


class _Commits:
    """The group committer's groups and the batches in them (their ratio: the mean group size)."""

    def __init__(self, committer: Any) -> None:
        self.committer = committer

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(*COMMIT_GROUPS, value=float(self.committer.commits))
        yield CounterMetricFamily(*COMMIT_GROUP_BATCHES, value=float(self.committer.committed))


class _StoreQueue:
    """The store's local queue, read from ``status()`` at every scrape (Prometheus names: base units,
    ``_total`` on the counter)."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def describe(self) -> list[Metric]:
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.status())

    @staticmethod
    def _families(st: dict[str, Any]) -> Iterator[Metric]:
        value = lambda key: float(st.get(key) or 0)  # noqa: E731
        yield GaugeMetricFamily(
            "neighborscope_store_queued_batches",
            "store queue: batches waiting for the store",
            value=value("queued_batches"),
        )
        yield GaugeMetricFamily(
            "neighborscope_store_queued_bytes", "store queue: bytes waiting for the store", value=value("queued_bytes")
        )
        yield CounterMetricFamily(
            "neighborscope_store_rejected_lines",
            "lines the store refused (kept in rejected.lp)",
            value=value("rejected_lines"),
        )
