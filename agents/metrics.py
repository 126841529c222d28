"""Prometheus exposition of the agent's latest samples (optional, off by default).

For sites that scrape instead of push: every numeric or boolean field of the latest row of each series
becomes a gauge ``neighborscope_<measurement>_<field>`` labelled with the row's tags. Encoding is pure
(`prometheus_text`); `serve_metrics` is a thin shell around prometheus_client's HTTP server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

from agents.samplers.base import Row
from telemetry.schema import MEASUREMENTS

PREFIX = "neighborscope"


class LatestValues:
    """The latest row per series (measurement + tag values), fed with every tick's rows."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._rows: dict[tuple[str, tuple[Any, ...]], Row] = {}
        self._lock = threading.Lock()

    def update(self, rows: Mapping[str, list[Row]]) -> None:
        with self._lock:
            for name, items in rows.items():
                m = MEASUREMENTS.get(name)
                if m is None:
                    continue
                for r in items:
                    key = tuple(r.get(t) for t in m.tags if t != "node")
                    self._rows[(name, key)] = r

    def snapshot(self) -> dict[tuple[str, tuple[Any, ...]], Row]:
        with self._lock:
            return dict(self._rows)


class LatestCollector:
    """A prometheus_client collector over `LatestValues`."""

    def __init__(self, latest: LatestValues) -> None:
        self.latest = latest

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for (name, _), row in sorted(self.latest.snapshot().items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            m = MEASUREMENTS[name]
            labels = ["node", *[t for t in m.tags if t != "node"]]
            values = [self.latest.node, *[str(row.get(t) or "") for t in labels[1:]]]
            for spec in m.fields:
                v = row.get(spec.name)
                if v is None or spec.kind == "str":
                    continue
                metric = f"{PREFIX}_{name}_{spec.name}"
                fam = families.get(metric)
                if fam is None:
                    fam = families[metric] = GaugeMetricFamily(metric, f"{spec.description or spec.name} ({spec.unit})",
                                                               labels=labels)
                fam.add_metric(values, float(v))
        yield from families.values()


def prometheus_text(latest: LatestValues) -> bytes:
    """The Prometheus text exposition of the latest values (pure)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LatestCollector(latest))
    return generate_latest(registry)


def serve_metrics(latest: LatestValues, host: str, port: int) -> Any:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns the server."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LatestCollector(latest))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
