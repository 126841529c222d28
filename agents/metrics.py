"""Prometheus exposition of the agent's latest samples (optional, off by default).

For sites that scrape instead of push: every numeric or boolean field of the latest row of each series
becomes a metric ``neighborscope_<measurement>_<name>_<base unit>`` labelled with the row's tags. The
schema's units are turned into Prometheus base units by one table, `PROM_UNITS` (``power_w`` ->
``power_watts``, ``latency_ms`` -> ``latency_seconds`` x 0.001, ``util_pct`` -> ``util_ratio`` x 0.01,
``pcie_rx_bytes_per_s`` -> ``pcie_rx_bytes_per_second``); cumulative fields (`COUNTERS`) are counters named
``..._total``, the rest gauges (docs/agent-metrics.md). Encoding is pure (`prometheus_text`); `serve_metrics`
is a thin shell around prometheus_client's HTTP server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agents.samplers.base import Row
from telemetry.schema import MEASUREMENTS, FieldSpec

PREFIX = "neighborscope"


@dataclass(frozen=True)
class PromUnit:
    """How a schema unit is exposed: ``spelled`` is the unit as field names end (``ms``, ``bytes_per_s``),
    replaced by the Prometheus base unit ``base`` (``seconds``; "" for a pure number) and values times
    ``factor``."""

    spelled: str
    base: str
    factor: float = 1.0
    words: str = ""  # the base unit in the HELP text, when not ``base`` itself

    @property
    def help(self) -> str:
        return self.words or self.base.replace("_", " ")


#: schema unit -> Prometheus base unit (https://prometheus.io/docs/practices/naming/): the one table
PROM_UNITS: dict[str, PromUnit] = {
    "degC": PromUnit("c", "celsius"),
    "W": PromUnit("w", "watts"),
    "J": PromUnit("j", "joules"),
    "V": PromUnit("v", "volts"),
    "A": PromUnit("a", "amperes"),
    "B": PromUnit("bytes", "bytes"),
    "B/s": PromUnit("bytes_per_s", "bytes_per_second"),
    "1/s": PromUnit("per_s", "per_second"),
    "us/s": PromUnit("us_per_s", "seconds_per_second", 1e-6, "seconds per second, 1 = all the time"),
    "ms/s": PromUnit("ms_per_s", "seconds_per_second", 1e-3, "seconds per second, 1 = all the time"),
    "Mbit/s": PromUnit("mbit_per_s", "bytes_per_second", 1e6 / 8),
    "%": PromUnit("pct", "ratio", 0.01, "ratio, 1 = 100 %"),
    "MHz": PromUnit("mhz", "hertz", 1e6),
    "ms": PromUnit("ms", "seconds", 0.001),
    "s": PromUnit("s", "seconds"),
    "1": PromUnit("", ""),
    "lanes": PromUnit("", ""),
    "bool": PromUnit("", ""),
    "bitmask": PromUnit("", ""),
}

#: cumulative fields (``measurement.field``): exposed as counters, ``_count`` / ``_total`` becoming ``_total``
COUNTERS = frozenset({
    "accel.energy_j", "accel.pcie_replay_count", "accel.ecc_corrected_count", "accel.ecc_uncorrected_count",
    "agent.errors_total", "agent.skipped_total", "agent.spool_dropped_total",
})  # fmt: skip

#: gauges whose schema name ends in ``_count`` (Prometheus keeps that suffix for histograms and summaries), or
#: holds a metric type
GAUGE_NAMES: dict[str, str] = {
    "host.cpu_count": "cpus",
    "tenant.process_count": "processes",
    "tenant.threads_count": "threads",
    **{f"serving.{h}_count": f"{h}_observations" for h in ("ttft", "itl", "tpot", "e2e", "queue")},
    "serving.counter_reset": "counters_reset",  # a name holding a metric type ("counter") is refused by promtool
}


@dataclass(frozen=True)
class PromMetric:
    """The Prometheus side of one schema field."""

    name: str  # a counter's name without ``_total`` (prometheus_client adds it)
    help: str
    factor: float
    counter: bool

    @property
    def exposed(self) -> str:
        """The name as scraped (a counter's with ``_total``)."""
        return f"{self.name}_total" if self.counter else self.name


def _without(tokens: list[str], part: list[str]) -> list[str] | None:
    """``tokens`` less the last run equal to ``part`` (None when it has none)."""
    for i in range(len(tokens) - len(part), -1, -1):
        if tokens[i : i + len(part)] == part:
            return tokens[:i] + tokens[i + len(part) :]
    return None


@cache
def prom_metric(measurement: str, spec: FieldSpec) -> PromMetric:
    """The Prometheus name, HELP, value factor and type of a numeric or boolean schema field. Raises
    ValueError for a unit missing from `PROM_UNITS` or a field name that does not end in its unit."""
    key = f"{measurement}.{spec.name}"
    unit = PROM_UNITS.get(spec.unit)
    if unit is None:
        raise ValueError(f"{key}: unit {spec.unit!r} has no Prometheus base unit in PROM_UNITS")
    counter = key in COUNTERS
    tokens = spec.name.split("_")
    if unit.spelled:
        rest = _without(tokens, unit.spelled.split("_"))
        if rest is None:
            raise ValueError(f"{key}: the name does not spell its unit {spec.unit!r} as '_{unit.spelled}'")
        tokens = rest
    if counter and tokens[-1] in ("count", "total"):
        tokens = tokens[:-1]
    if key in GAUGE_NAMES:
        tokens = [GAUGE_NAMES[key]]
    name = "_".join([PREFIX, measurement, *tokens, *([unit.base] if unit.base else [])])
    if unit.base:
        where = f"{unit.help}; schema field {key} in {spec.unit}"
    else:
        where = "; ".join([*({"bool": ["1 or 0"], "1": []}.get(spec.unit, [spec.unit])), f"schema field {key}"])
    help_ = f"{spec.description or spec.name} ({where})"
    return PromMetric(name, help_, unit.factor, counter)


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
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for (name, _), row in sorted(self.latest.snapshot().items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            m = MEASUREMENTS[name]
            labels = ["node", *[t for t in m.tags if t != "node"]]
            values = [self.latest.node, *[str(row.get(t) or "") for t in labels[1:]]]
            for spec in m.fields:
                v = row.get(spec.name)
                if v is None or spec.kind == "str":
                    continue
                pm = prom_metric(name, spec)
                fam = families.get(pm.name)
                if fam is None:
                    kind = CounterMetricFamily if pm.counter else GaugeMetricFamily
                    fam = families[pm.name] = kind(pm.name, pm.help, labels=labels)
                fam.add_metric(values, float(v) * pm.factor)
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
