"""Per-request row limits: at most ``max_batch_rows`` rows in one write (413), and a per-node rate budget
(`TokenBuckets`; 429 with ``Retry-After`` above it). The limits are read from the settings of each request,
so a reload (SIGHUP) applies to the next one."""

from __future__ import annotations

from telemetry.collector.errors import ApiError
from telemetry.collector.metrics import CollectorMetrics
from telemetry.collector.ratelimit import TokenBuckets, retry_after_header
from telemetry.collector.settings import CollectorOptions


class RowLimits:
    def __init__(self, metrics: CollectorMetrics) -> None:
        self.metrics = metrics
        self._buckets: dict[tuple[float, float], TokenBuckets] = {}  # one set per (rate, burst) ever configured

    def check(self, opts: CollectorOptions, node: str, rows: int) -> None:
        """Admit ``rows`` rows from ``node`` or raise: 413 above ``max_batch_rows``, 429 over the budget."""
        if rows > opts.max_batch_rows:
            self.metrics.rejects.labels("too_large").inc()
            raise ApiError(413, "too_large", f"{rows} rows in one batch; the limit is {opts.max_batch_rows}")
        if opts.rate_limit_rows_per_s <= 0:
            return
        burst = opts.rate_limit_burst_rows or 10 * opts.rate_limit_rows_per_s
        bucket = self._buckets.setdefault(
            (opts.rate_limit_rows_per_s, burst), TokenBuckets(opts.rate_limit_rows_per_s, burst)
        )
        wait = bucket.take(node, rows)
        if wait > 0:
            self.metrics.rejects.labels("rate_limited").inc()
            raise ApiError(
                429,
                "rate_limited",
                f"node {node!r} is over its budget of {opts.rate_limit_rows_per_s:g} rows/s; retry later",
                headers={"Retry-After": retry_after_header(wait)},
            )
