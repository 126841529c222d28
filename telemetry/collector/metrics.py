"""The collector's own counters, exposed at /metrics in Prometheus text format (its own registry)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.batches = Counter(
            "neighborscope_collector_batches", "Agent batches received, by outcome", ["status"], registry=self.registry
        )
        self.rows = Counter(
            "neighborscope_collector_rows", "Rows (samples) stored", ["measurement"], registry=self.registry
        )
        self.values = Counter("neighborscope_collector_field_values", "Field values stored", registry=self.registry)
        self.rejects = Counter(
            "neighborscope_collector_rejects", "Requests rejected, by reason", ["reason"], registry=self.registry
        )
        self.lines = Counter("neighborscope_collector_lp_lines", "Line-protocol lines stored", registry=self.registry)
        self.store_seconds = Histogram(
            "neighborscope_collector_store_write_seconds",
            "Time to make a write durable in the store",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

        self._children: dict[tuple[str, str], Any] = {}

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
        """The group committer's requests on their way in (body read, being validated): it waits for them."""
        gauge = Gauge(
            "neighborscope_collector_requests_arriving",
            "Requests whose body is in and whose batch the group committer waits for",
            registry=self.registry,
        )
        gauge.set_function(lambda: float(committer.arriving))
        self.registry.register(_Commits(committer))


class _Commits:
    """The group committer's groups and the batches in them (their ratio: the mean group size)."""

    def __init__(self, committer: Any) -> None:
        self.committer = committer

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "neighborscope_collector_commit_groups",
            "group commits handed to the store",
            value=float(self.committer.commits),
        )
        yield CounterMetricFamily(
            "neighborscope_collector_commit_group_batches",
            "agent batches in the group commits",
            value=float(self.committer.committed),
        )


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
