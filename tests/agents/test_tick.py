"""One clock: ticks computed from the start, one timestamp per tick, slow samplers never delay others."""

from __future__ import annotations

import itertools
import threading

from agents.samplers.base import SamplerBase
from agents.tick import SamplerRunner, TickClock, Ticker, stamp_rows


class FakeTime:
    """A monotonic / wall clock pair that only moves when the ticker sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.mono_t = 50.0
        self.wall_t = 1_700_000_000.25

    def mono(self) -> float:
        return self.mono_t

    def wall(self) -> float:
        return self.wall_t


class FakeStop(threading.Event):
    """Advances the fake clocks instead of sleeping; `work_s` of extra time passes per tick."""

    def __init__(self, ft: FakeTime, work_s: float = 0.0) -> None:
        super().__init__()
        self.ft, self.work_s = ft, work_s

    def wait(self, timeout: float | None = None) -> bool:
        step = timeout or 0.0
        self.ft.mono_t += step
        self.ft.wall_t += step
        return self.is_set()


def run_ticks(period: float, n: int, work_s: float = 0.0) -> tuple[list[int], Ticker]:
    ft = FakeTime()
    ticker = Ticker(period, TickClock(wall=ft.wall, mono=ft.mono))
    stamps: list[int] = []
    stop = FakeStop(ft)

    def on_tick(k: int, ts_ns: int) -> None:
        stamps.append(ts_ns)
        ft.mono_t += work_s  # the work of the tick takes time
        ft.wall_t += work_s

    ticker.run(on_tick, stop, max_ticks=n)
    return stamps, ticker


def test_ticks_do_not_drift_when_each_tick_takes_time():
    stamps, _ = run_ticks(0.1, 50, work_s=0.03)
    diffs = {b - a for a, b in itertools.pairwise(stamps)}
    assert diffs == {100_000_000}  # exactly the period, not period + work


def test_tick_times_are_aligned_to_the_period_in_wall_time():
    stamps, _ = run_ticks(1.0, 3)
    assert all(s % 1_000_000_000 == 0 for s in stamps)


def test_a_stall_longer_than_a_period_skips_ticks_instead_of_bunching_them():
    stamps, ticker = run_ticks(0.1, 5, work_s=0.35)
    diffs = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(d % 100_000_000 == 0 and d >= 100_000_000 for d in diffs)
    assert ticker.missed_total > 0


class SlowSampler(SamplerBase):
    name = "slow"
    fields = {}  # noqa: RUF012

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def read(self, ts: float):
        self.gate.wait(5)
        return {"host": [{"load1": 1.0}]}


class FastSampler(SamplerBase):
    name = "fast"
    fields = {}  # noqa: RUF012

    def read(self, ts: float):
        return {"host": [{"load5": 2.0}]}


def test_a_slow_sampler_never_delays_the_others_and_its_skips_are_counted():
    gate = threading.Event()
    got: list[dict] = []
    lock = threading.Lock()

    def sink(rows):
        with lock:
            got.append(rows)

    def stamp(rows, ts_ns):
        return stamp_rows(rows, ts_ns, {})

    reads = iter([10.0, 10.25])  # the slow read starts at 10 s and ends at 10.25 s on its monotonic clock
    slow = SamplerRunner(SlowSampler(gate), 1, sink, stamp, mono=lambda: next(reads))
    fast = SamplerRunner(FastSampler(), 1, sink, stamp)
    try:
        for k in range(3):
            ts = 1_000_000_000 * (k + 1)
            slow.trigger(ts)
            fast.trigger(ts)
            assert fast.wait_idle(5)
        fast_rows = [r for rows in got for r in rows.get("host", []) if "load5" in r]
        assert [r["time"] for r in fast_rows] == [1_000_000_000, 2_000_000_000, 3_000_000_000]
        assert slow.skipped_total == 2
        skipped_health = [r for rows in got for r in rows.get("agent", []) if r["sampler"] == "slow"]
        assert [r["skipped_total"] for r in skipped_health] == [1, 2]
        gate.set()
        assert slow.wait_idle(5)
        slow_rows = [r for rows in got for r in rows.get("host", []) if "load1" in r]
        assert [r["time"] for r in slow_rows] == [1_000_000_000]  # stamped with the tick it was given
        health = [r for rows in got for r in rows.get("agent", []) if r["sampler"] == "slow"][-1]
        assert health["ok"] is True and health["latency_ms"] == 250.0
    finally:
        gate.set()
        slow.stop()
        fast.stop()


class FailingSampler(SamplerBase):
    name = "failing"
    fields = {}  # noqa: RUF012

    def read(self, ts: float):
        raise OSError("device busy")


def test_a_failing_sampler_reports_its_errors_in_the_agent_measurement():
    got: list[dict] = []
    r = SamplerRunner(FailingSampler(), 1, got.append, lambda rows, ts: rows)
    try:
        r.trigger(1)
        assert r.wait_idle(5)
        r.trigger(2)
        assert r.wait_idle(5)
    finally:
        r.stop()
    health = [row for rows in got for row in rows["agent"]]
    assert [(h["ok"], h["errors_total"], h["staleness_s"]) for h in health] == [(False, 1, None), (False, 2, None)]


def test_stamping_gives_rows_the_tick_time_and_the_configured_group():
    rows = {
        "accel": [{"device": "gpu0", "group": "sim"}, {"device": "gpu9"}],
        "accel_event": [{"device": "gpu0", "time": 5}],
    }
    out = stamp_rows(rows, 42, {"gpu0": "hive0"})
    assert out["accel"] == [{"device": "gpu0", "group": "hive0", "time": 42}, {"device": "gpu9", "time": 42}]
    assert out["accel_event"][0]["time"] == 5  # events keep their own time


def test_ticks_stop_when_the_stop_event_is_set_during_a_tick():
    ft = FakeTime()
    stop = FakeStop(ft)
    stamps: list[int] = []

    def on_tick(k: int, ts_ns: int) -> None:
        stamps.append(ts_ns)
        if len(stamps) == 3:
            stop.set()

    Ticker(0.5, TickClock(wall=ft.wall, mono=ft.mono)).run(on_tick, stop)
    assert [b - a for a, b in itertools.pairwise(stamps)] == [500_000_000, 500_000_000]


def test_real_ticker_stops_while_waiting_for_the_next_tick():
    """The next tick is an hour away: the ticker must leave its wait when stop is set, not when the hour ends."""
    stop, first = threading.Event(), threading.Event()
    ticks: list[int] = []

    def on_tick(k: int, ts_ns: int) -> None:
        ticks.append(k)
        first.set()

    t = threading.Thread(target=Ticker(3600.0, align=False).run, args=(on_tick, stop))
    t.start()
    assert first.wait(10)
    stop.set()
    t.join(10)
    assert not t.is_alive() and ticks == [0]
