"""The agent: samplers on one ticker, rows into batches, batches into the spool and to the collector.

```
sampler.read(ts) -> rows -> stamp (tick time, group) -> buffer -> every flush_s: Sender.submit
  -> spool -> Transport.post -> collector
```

`Agent.run` blocks until its stop event is set (SIGTERM / SIGINT in the command), then flushes what
the samplers produced, tries to deliver the spool for ``shutdown_timeout_s`` and leaves the rest on
disk for the next start.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.config import AgentConfig
from agents.metrics import LatestValues, serve_metrics
from agents.samplers.base import (
    Row,
    Rows,
    Sampler,
    SamplerContext,
    build_order,
    check_device_claims,
    config_error,
    sampler_class,
)
from agents.spool import DiskSpool, MemorySpool, Spool
from agents.tick import SamplerRunner, Ticker, stamp_rows
from agents.transport import Sender, Transport
from telemetry.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Built:
    sampler: Sampler
    cadence_s: float


def build_samplers(cfg: AgentConfig) -> list[Built]:
    """Build the enabled samplers. An ``auto`` sampler that fails to start or finds no device is left
    out (logged); an explicitly enabled one that fails raises `ConfigError`."""
    built: list[Built] = []
    accel_memory = None
    order = build_order()  # each sampler's declared `order`: nvml before tenants, which it feeds
    names = [n for n in order if n in cfg.samplers] + [n for n in cfg.samplers if n not in order]
    for name in names:
        sc = cfg.samplers[name]
        if sc.enabled is False:
            continue
        if (
            name == "tenants"
            and sc.enabled == "auto"
            and not (sc.options.get("rules") or sc.options.get("other_group"))
        ):
            log.info("sampler tenants: no [[tenants]] rules, not started")
            continue
        cls = sampler_class(name)
        ctx = SamplerContext(sc.options, sc.cadence_s, cfg.sysfs_root, cfg.proc_root, accel_memory)
        try:
            sampler = cls.from_context(ctx)
        except ConfigError:
            raise
        except Exception as exc:
            if sc.enabled is True:
                raise config_error(
                    f"sampler {name!r} could not start: {type(exc).__name__}: {exc}", f"samplers.{name}"
                ) from None
            log.info("sampler %s not started: %s: %s", name, type(exc).__name__, exc)
            continue
        if "accel" in cls.fields and not sampler.devices() and sc.enabled == "auto":
            log.info("sampler %s: no devices found, not started", name)
            sampler.close()
            continue
        if accel_memory is None and callable(getattr(sampler, "process_memory", None)):
            accel_memory = sampler.process_memory  # type: ignore[attr-defined]  # host PID -> bytes, for tenants
        built.append(Built(sampler, sc.cadence_s))
    check_device_claims({b.sampler.name: b.sampler.devices() for b in built})
    return built


class Buffer:
    """Rows of the current flush interval, filled from the sampler threads."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Row]] = {}
        self._lock = threading.Lock()

    def add(self, rows: Rows) -> None:
        with self._lock:
            for name, items in rows.items():
                self._rows.setdefault(name, []).extend(items)

    def take(self) -> dict[str, list[Row]]:
        with self._lock:
            rows, self._rows = self._rows, {}
        return rows


class Agent:
    def __init__(
        self, cfg: AgentConfig, built: list[Built], spool: Spool | None = None, transport: Transport | None = None
    ) -> None:
        if not built:
            raise ConfigError("no sampler to run: enable one in [samplers.*] (e.g. host)")
        self.cfg = cfg
        self.period_s = min(b.cadence_s for b in built)
        self.flush_every = max(1, round(cfg.flush_s / self.period_s))
        if spool is None:
            try:
                spool = (
                    DiskSpool(cfg.spool_dir, cfg.spool_max_bytes) if cfg.spool_dir else MemorySpool(cfg.spool_max_bytes)
                )
            except OSError as exc:
                raise config_error(
                    f"cannot use the spool directory {cfg.spool_dir}: {exc.strerror} "
                    '(set it, or "" for a memory spool)',
                    "agent.spool_dir",
                ) from None
        if transport is None and cfg.collector_url:
            transport = Transport(cfg.collector_url, cfg.token, cfg.timeout_s, ca_file=cfg.ca_file)
        if transport is None:
            log.warning("no collector url: batches stay in the spool")
        self.sender = Sender(cfg.node, spool, transport)
        self.buffer = Buffer()
        self.latest = LatestValues(cfg.node) if cfg.metrics_port else None
        self.device_groups = cfg.device_groups()
        self.ticker = Ticker(self.period_s)
        self.runners = [
            SamplerRunner(b.sampler, round(b.cadence_s / self.period_s), self._sink, self._stamp) for b in built
        ]
        self._metrics_server: Any = None
        self._flushed_ns: int | None = None

    def _stamp(self, rows: Rows, ts_ns: int) -> Rows:
        return stamp_rows(rows, ts_ns, self.device_groups)

    def _sink(self, rows: Rows) -> None:
        self.buffer.add(rows)
        if self.latest is not None:
            self.latest.update(rows)

    def _on_tick(self, k: int, ts_ns: int) -> None:
        for r in self.runners:
            if k % r.every == 0:
                r.trigger(ts_ns)
        if self._flushed_ns is None:
            self._flushed_ns = ts_ns - (self.flush_every - 1) * round(self.period_s * 1e9)
        if ts_ns - self._flushed_ns >= self.flush_every * round(self.period_s * 1e9):
            self._flushed_ns = ts_ns
            self.flush(ts_ns)

    def flush(self, ts_ns: int) -> None:
        rows = self.buffer.take()
        spool = self.sender.spool
        health = {
            "time": ts_ns,
            "sampler": "spool",
            "spool_bytes": float(spool.bytes_used),
            "spool_dropped_total": spool.dropped_total,
            "ok": not self.sender.last_error and not getattr(spool, "write_failing", False),
        }
        rows.setdefault("agent", []).append(health)
        if self.latest is not None:  # /metrics shows the spool too (drops while the disk is full, ...)
            self.latest.update({"agent": [health]})
        try:
            self.sender.submit(rows)
        except Exception:  # a bug in one batch must not stop the ticker (systemd would restart us in a loop)
            log.exception("could not submit the batch of %d ns; its rows are lost", ts_ns)

    def run(self, stop: threading.Event, max_ticks: int | None = None) -> dict[str, Any]:
        """Tick until ``stop`` is set; then flush, drain and return a summary."""
        if self.cfg.metrics_port and self.latest is not None:
            self._metrics_server = serve_metrics(self.latest, self.cfg.metrics_host, self.cfg.metrics_port)
            log.info("Prometheus metrics on http://%s:%d/metrics", self.cfg.metrics_host, self.cfg.metrics_port)
        self.sender.start()
        log.info(
            "agent %s: %d sampler(s) [%s], tick %.3f s, boot_id %s",
            self.cfg.node,
            len(self.runners),
            ", ".join(f"{r.name}/{r.every}" for r in self.runners),
            self.period_s,
            self.sender.boot_id,
        )
        try:
            self.ticker.run(self._on_tick, stop, max_ticks)
        finally:
            summary = self.shutdown()
        return summary

    def shutdown(self) -> dict[str, Any]:
        """Stop the samplers, flush, try to deliver the spool, summarise. Never raises: a failing step is
        logged and the next one still runs (a crash here would make systemd restart the agent in a loop)."""
        delivered = False

        def drain() -> None:
            nonlocal delivered
            delivered = self.sender.drain(self.cfg.shutdown_timeout_s)

        steps = (("stopping the samplers", self._stop_samplers), ("the last flush", lambda: self.flush(self.buffer_time())),
                 ("delivering the spool", drain), ("stopping the sender", self.sender.stop),
                 ("stopping /metrics", self._stop_metrics))  # fmt: skip
        for what, step in steps:
            try:
                step()
            except Exception:
                log.exception("shutdown: %s failed; going on", what)
        summary = {
            "node": self.cfg.node,
            "boot_id": self.sender.boot_id,
            "batches": self.sender.seq,
            "rows": dict(self.sender.rows_total),
            "sent": self.sender.sent_total,
            "rejected": self.sender.rejected_total,
            "spooled": len(self.sender.spool),
            "dropped": self.sender.spool.dropped_total,
            "ticks": self.ticker.ticks_total,
            "missed_ticks": self.ticker.missed_total,
            "delivered_all": delivered,
        }
        log.info("agent summary: %s", json.dumps(summary, sort_keys=True))
        return summary

    def _stop_samplers(self) -> None:
        for r in self.runners:
            if not r.wait_idle(2.0):
                log.warning("sampler %s still reading at shutdown", r.name)
        for r in self.runners:
            r.stop()

    def _stop_metrics(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()

    def buffer_time(self) -> int:
        import time

        return round(time.time() * 1e6) * 1000


def summary_line(summary: Mapping[str, Any]) -> str:
    return "agent summary: " + json.dumps(dict(summary), sort_keys=True)
