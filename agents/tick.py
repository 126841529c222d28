"""One clock for every sampler, and each sampler's health.

`Ticker` computes tick k's time from the start (``start + k * period``), never by sleeping after the
work, so it does not drift; a tick that comes too late (the machine stalled) is skipped, not bunched.
Every tick has one wall-clock timestamp, derived from the monotonic clock anchored once to the wall
clock (and re-anchored if the wall clock is stepped), aligned to a multiple of the period.

`SamplerRunner` wraps one sampler the way Telegraf's running input does: the sampler runs on its own
thread, so a slow or blocking sampler never delays the others. A tick that finds the previous read
still running skips it and counts it (``skipped_total``); the health row then shows the age of the
last good read (``staleness_s``), so stale data is visible instead of silent. Each read also writes
an `agent` row: ``latency_ms``, ``errors_total``, ``ok``, and ``staleness_s`` (0, or the age a sampler
with background readers reports).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping

from agents.samplers.base import Row, Rows, Sampler

log = logging.getLogger(__name__)

Sink = Callable[[Rows], None]
BEHIND_LOG_S = 60.0
"""At most one "fell behind" log line per this many seconds."""


class TickClock:
    """Wall-clock nanoseconds for monotonic instants: one anchor, re-anchored on a wall-clock step."""

    def __init__(
        self, wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic, max_step_s: float = 0.5
    ) -> None:
        self.wall, self.mono, self.max_step_s = wall, mono, max_step_s
        self._anchor()

    def _anchor(self) -> None:
        self.wall0, self.mono0 = self.wall(), self.mono()

    def wall_at(self, mono_t: float) -> float:
        now_wall, now_mono = self.wall(), self.mono()
        if abs((self.wall0 + now_mono - self.mono0) - now_wall) > self.max_step_s:
            log.warning(
                "wall clock stepped by %.3f s; re-anchoring the tick clock",
                now_wall - (self.wall0 + now_mono - self.mono0),
            )
            self._anchor()
        return self.wall0 + (mono_t - self.mono0)


class SamplerRunner:
    """Runs one sampler on its own thread; `trigger` hands it a tick."""

    def __init__(
        self,
        sampler: Sampler,
        every: int,
        sink: Sink,
        stamp: Callable[[Rows, int], Rows],
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sampler = sampler
        self.name = sampler.name
        self.every = max(1, every)
        self.sink = sink
        self.stamp = stamp
        self.mono = mono
        self.errors_total = 0
        self.skipped_total = 0
        self.reads_total = 0
        self.ok: bool | None = None
        self.last_ok_ns: int | None = None
        self.latency_ms: float | None = None
        # one trigger at a time: ``_busy`` is set by `trigger` and cleared when the read is done; the tick is
        # handed over through a SimpleQueue (a C-level blocking get: the cheapest thread handoff in CPython,
        # ten times a second per sampler)
        self._busy = False
        self._lock = threading.Lock()
        self._ticks: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._last_error = ""
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{self.name}", daemon=True)
        self._thread.start()

    def trigger(self, ts_ns: int) -> bool:
        """Ask for a read stamped ``ts_ns``; False (and a skipped tick) if the last one still runs."""
        with self._lock:
            busy = self._busy
            if busy:
                self.skipped_total += 1
                stale = None if self.last_ok_ns is None else (ts_ns - self.last_ok_ns) / 1e9
            else:
                self._busy = True
        if busy:
            self.sink({"agent": [self.health(ts_ns, staleness_s=stale)]})
            return False
        self._ticks.put(ts_ns)
        return True

    def health(self, ts_ns: int, staleness_s: float | None) -> Row:
        return {
            "time": ts_ns,
            "sampler": self.name,
            "latency_ms": self.latency_ms,
            "staleness_s": staleness_s,
            "errors_total": self.errors_total + int(getattr(self.sampler, "errors", 0) or 0),
            "skipped_total": self.skipped_total,
            "ok": self.ok,
        }

    def _loop(self) -> None:
        while True:
            ts_ns = self._ticks.get()
            if ts_ns is None:
                return
            ts = ts_ns / 1e9
            t0 = self.mono()
            rows: Rows = {}
            try:
                rows = self.sampler.read(ts)
                ok = True
            except Exception as exc:
                ok = False
                self.errors_total += 1
                msg = f"{type(exc).__name__}: {exc}"
                if msg != self._last_error:
                    log.warning("sampler %s failed: %s", self.name, msg)
                    self._last_error = msg
            self.latency_ms = (self.mono() - t0) * 1e3
            self.reads_total += 1
            self.ok = ok
            if ok:
                self.last_ok_ns = ts_ns
                self._last_error = ""
            bg = self.sampler.staleness_s(ts) if ok else None
            out = self.stamp(rows, ts_ns) if rows else {}
            out.setdefault("agent", []).append(
                self.health(ts_ns, staleness_s=bg if bg is not None else (0.0 if ok else None))
            )
            self.sink(out)
            with self._lock:
                self._busy = False

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._busy:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self, timeout: float = 2.0) -> None:
        self._ticks.put(None)
        self._thread.join(timeout)
        try:
            self.sampler.close()
        except Exception as exc:
            log.warning("sampler %s failed to close: %s", self.name, exc)


class Ticker:
    """Fires ticks at ``start + k * period`` (monotonic), aligned to a multiple of ``period`` in wall time."""

    def __init__(self, period_s: float, clock: TickClock | None = None, align: bool = True) -> None:
        if not period_s > 0:
            raise ValueError("period must be > 0")
        self.period_s = period_s
        self.clock = clock or TickClock()
        self.align = align
        self.ticks_total = 0
        self.missed_total = 0
        self._logged_at = -math.inf
        self._unlogged = 0

    def _behind(self, late: float, missed: int, now: float) -> None:
        """Log a fall behind: the first, then at most one line per `BEHIND_LOG_S` summing the ones between (a
        loaded host that misses ticks all the time must not spend its CPU on log lines; `missed_total` and the
        health rows count every one)."""
        self._unlogged += missed
        if now - self._logged_at < BEHIND_LOG_S:
            return
        log.warning(
            "agent fell %.3f s behind; skipping %d tick(s)%s",
            late,
            missed,
            "" if self._unlogged == missed else f" ({self._unlogged} since the last such line)",
        )
        self._logged_at, self._unlogged = now, 0

    def run(self, on_tick: Callable[[int, int], None], stop: threading.Event, max_ticks: int | None = None) -> None:
        """Call ``on_tick(k, ts_ns)`` for k = 0, 1, ... until ``stop`` is set (or ``max_ticks``)."""
        mono = self.clock.mono
        start = mono()
        if self.align:
            wall_now = self.clock.wall_at(start)
            start += math.ceil(wall_now / self.period_s) * self.period_s - wall_now
        k = 0
        while not stop.is_set() and (max_ticks is None or self.ticks_total < max_ticks):
            target = start + k * self.period_s
            delay = target - mono()
            if delay > 0 and stop.wait(delay):
                break
            late = mono() - target
            if late > self.period_s:
                missed = int(late // self.period_s)
                self.missed_total += missed
                self._behind(late, missed, mono())
                k += missed
                target = start + k * self.period_s
            ts_ns = round(self.clock.wall_at(target) * 1e9 / 1e3) * 1000  # µs resolution: stable, exact
            on_tick(k, ts_ns)
            self.ticks_total += 1
            k += 1


def stamp_rows(rows: Rows, ts_ns: int, device_groups: Mapping[str, str]) -> Rows:
    """Give rows without a time the tick's time; set ``group`` of devices the config maps.

    Rows are changed in place: a sampler hands over fresh dicts every read."""
    out: Rows = {}
    for meas, items in rows.items():
        if not items:
            continue
        for r in items:  # rows are the sampler's fresh dicts: stamped in place
            if r.get("time") is None:
                r["time"] = ts_ns
        if meas == "accel" and device_groups:
            for r in items:
                group = device_groups.get(r.get("device"))
                if group is not None:
                    r["group"] = group
        out[meas] = items
    return out
