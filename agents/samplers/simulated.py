"""The foundation's simulator as a live device source, for demos and tests without hardware.

A *source* is an iterator of time-ordered chunks, each a mapping measurement -> schema frame (the
simulator's output). The sampler replays the ``accel`` rows (and ``accel_event`` rows) live: at a
tick of wall time ``ts`` it reports, for every device, the latest simulated sample whose simulated
time is at or before ``sim_start + (ts - first_ts) * speed``, stamped with the tick's timestamp like any
real device. The ``node`` tag is dropped (the agent's own); a simulated ``group`` is kept unless the
node config maps the device to a group. When the source runs out the sampler starts it again (``loop = true``, the default).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from agents.samplers.base import Row, Rows, SamplerBase, SamplerContext, config_error, register
from telemetry.lazy import lazy_module
from telemetry.schema import ACCEL

if TYPE_CHECKING:
    import polars as pl
else:  # registering the sampler (every agent loads the registry) must not import polars: only running it does
    pl = lazy_module("polars")

Chunk = Mapping[str, "pl.DataFrame"]
SourceFactory = Callable[[], Iterator[Chunk]]
_DROP = {"node", "time"}
ACCEL_FIELDS = ACCEL.field_names


def simulator_source(scenario: str, seed: int | None = None, chunk_s: int = 60) -> SourceFactory:
    """A factory of the foundation simulator's telemetry chunks for a preset scenario (e.g. ``seed000``).

    The scenario is simulated once (without the benchmark runs), on the first call."""
    try:
        from telemetry.sim import iter_telemetry, preset, simulate
    except ImportError as exc:
        raise config_error(
            f"the simulator (telemetry.sim) is not available: {exc}", "samplers.simulated.scenario"
        ) from None
    try:
        sc = preset(scenario)
    except Exception as exc:
        raise config_error(f"unknown scenario {scenario!r}: {exc}", "samplers.simulated.scenario") from None
    cache: list[Any] = []

    def factory() -> Iterator[Chunk]:
        if not cache:
            cache.append(simulate(sc, seed=seed or 0, bench=False))
        return (frames for _, frames in iter_telemetry(cache[0], chunk_s=chunk_s))

    return factory


@register("simulated")
class SimulatedSampler(SamplerBase):
    """Replays simulated accelerators in real time."""

    fields: ClassVar = {"accel": ACCEL_FIELDS, "accel_event": ("code", "message")}
    enabled_by_default: ClassVar = False
    order: ClassVar = 40

    def __init__(
        self, source: SourceFactory, speed: float = 1.0, loop: bool = True, devices: list[str] | None = None
    ) -> None:
        super().__init__()
        self.source_factory = source
        self.speed = speed
        self.loop = loop
        self.wanted = set(devices) if devices else None
        self._iter = source()
        self._times: list[int] = []  # simulated sample times (ns), ascending, in the buffer
        self._rows: list[list[Row]] = []  # rows per simulated time
        self._events: list[Row] = []
        self._first_ts: float | None = None
        self._sim_start: int | None = None
        self._offset_ns = 0  # added to simulated times after a loop
        self._last_sim_ns = 0
        self._devices: list[str] = []
        self._latest: dict[str, Row] = {}
        self._fill_until(None)
        self._devices = sorted({r["device"] for rows in self._rows for r in rows})

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> SimulatedSampler:
        opts = dict(ctx.options)
        scenario = str(opts.pop("scenario", "seed000"))
        seed = opts.pop("seed", None)
        speed = float(opts.pop("speed", 1.0))
        loop = bool(opts.pop("loop", True))
        devices = opts.pop("devices", None)
        if opts:
            raise config_error(
                f"unknown option(s) {sorted(opts)} (known: scenario, seed, speed, loop, devices)", "samplers.simulated"
            )
        return cls(simulator_source(scenario, seed), speed, loop, devices)

    def _take_chunk(self) -> bool:
        try:
            chunk = next(self._iter)
        except StopIteration:
            if not self.loop:
                return False
            self._offset_ns = self._last_sim_ns + 1 - (self._sim_start or 0) + self._offset_ns
            self._iter = self.source_factory()
            try:
                chunk = next(self._iter)
            except StopIteration:
                return False
        accel = chunk.get("accel")
        if accel is not None and accel.height:
            frame = accel.with_columns(pl.col("time").dt.epoch("ns").alias("time"))
            if self.wanted is not None:
                frame = frame.filter(pl.col("device").is_in(sorted(self.wanted)))
            keep = [c for c in frame.columns if c not in _DROP]
            for t, part in frame.group_by("time", maintain_order=True):
                t_ns = int(t[0]) + self._offset_ns
                if self._sim_start is None:
                    self._sim_start = t_ns
                self._last_sim_ns = max(self._last_sim_ns, t_ns)
                rows = part.select(keep).to_dicts()
                i = bisect.bisect_right(self._times, t_ns)
                if i and self._times[i - 1] == t_ns:
                    self._rows[i - 1].extend(rows)
                else:
                    self._times.insert(i, t_ns)
                    self._rows.insert(i, rows)
        events = chunk.get("accel_event")
        if events is not None and events.height:
            ev = events.with_columns(pl.col("time").dt.epoch("ns") + self._offset_ns)
            self._events.extend(r for r in ev.drop([c for c in ("node",) if c in ev.columns]).to_dicts())
        return True

    def _fill_until(self, sim_ns: int | None) -> None:
        """Read chunks until the buffer holds a sample after ``sim_ns`` (or at least one sample)."""
        while not self._times or (sim_ns is not None and self._times[-1] <= sim_ns):
            if not self._take_chunk():
                return

    def devices(self) -> list[str]:
        return list(self._devices)

    def read(self, ts: float) -> Rows:
        if self._first_ts is None:
            self._first_ts = ts
        sim_ns = (self._sim_start or 0) + int((ts - self._first_ts) * self.speed * 1e9)
        self._fill_until(sim_ns)
        i = bisect.bisect_right(self._times, sim_ns)
        for rows in self._rows[:i]:
            for r in rows:
                self._latest[r["device"]] = r
        del self._times[:i], self._rows[:i]  # folded into _latest
        rows = [dict(r) for r in self._latest.values()]
        events = [e for e in self._events if e["time"] <= sim_ns]
        self._events = [e for e in self._events if e["time"] > sim_ns]
        shift = int(ts * 1e9) - sim_ns
        for e in events:
            e["time"] = int(e["time"]) + shift
        for r in rows:
            self.mark_row(r["device"], ACCEL_FIELDS, r)
        return {"accel": rows, "accel_event": events}
