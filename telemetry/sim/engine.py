"""Run a `Scenario`: interference pressure -> serving runs -> node physics -> ground truth.

`simulate(scenario, seed)` returns a `SimResult`; its telemetry is built lazily per time window
(`SimResult.telemetry(t0, t1)`, `iter_telemetry`) from per-second state arrays, so 24 h of the
34-accelerator node take a few seconds and stream in chunks.

Order of computation (all vectorised over seconds x devices; the only Python loop is one iteration per
serving-engine step, see `telemetry.sim.serving`):

1. Schedule: per tenant, on/off per second (`Scenario.schedule`).
2. Pressure on each victim group: sum over couplings of ``strength * antagonist activity``; thermal
   and power pressure follow the antagonist through a first-order lag (tau 45 s), memory (reclaim) pressure
   through a shorter one (tau 15 s: the hog's footprint grows as it allocates).
3. Benchmark runs (`BenchRun`) of every serving tenant, with that pressure; plus counterfactual reruns
   (same requests, same jitter) without one antagonist's couplings, which give the ground truth.
4. Node state per second: utilisation, power, temperature (lagged, with cooling-zone heat), clocks,
   PCIe rates, host CPU (`physics`).

Ground truth (``SimResult.ground_truth``, written as ``ground_truth.json``)::

    {"scenario": "seed000", "seed": 0, "description": "...", "victim": "hive0",
     "culprits": ["furiosa", "hive1", "tt"],        # groups with a coupling to the victim that were on
     "innocent": [...],                              # other co-tenants that were on
     "decoys": [...],                                # innocent twins of a culprit (same tenant, no coupling)
     "effects": [{"victim": "hive0", "antagonist": "tt", "phase": "full_stress",   # "while_on" if continuous
                  "resources": ["cpu", "pcie", "thermal"],
                  "throughput_change_pct": -1.4, "p99_itl_change_pct": 4.5}, ...],  # victim first, worst first
     "couplings": [{"antagonist", "victim", "resource", "strength"}, ...],
     "phases": {"full_stress": {"active": [...], "runs": {"hive0": {
                   "observed": {summary}, "without_interference": {summary},
                   "true_effect": {"throughput_change_pct", "p99_itl_change_pct"}}}}, ...},
                # continuous designs: {"continuous": {"runs": {"hive0": {"observed": {summary}}}}}
     "schedule": [{"phase", "start_s", "end_s", "active": [...]}, ...],   # seconds from scenario start
     "notes": "..."}

An effect is the change of the victim's run caused by one antagonist: the observed run vs the same run
(same requests, same jitter draws) simulated without that antagonist's couplings. ``summary`` keys:
`telemetry.sim.serving.summary` (``output_throughput`` tok/s, ``p99_itl_ms``, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from telemetry.sim import physics
from telemetry.sim.scenario import Scenario
from telemetry.sim.serving import Pressure, Requests, ServingResult, draw_requests, simulate_serving, summary

THERMAL_TAU_S = 45.0
MEMORY_TAU_S = 15.0  # a memory hog's footprint (and the reclaim it forces) builds up as it allocates
RUN_LEAD_S = 5
UPTIME_AT_START_S = 183_245.0  # the host's CLOCK_MONOTONIC at scenario start (for vLLM start_times)


@dataclass
class BenchRun:
    """One benchmark run of one serving group.

    ``start`` is the wall clock (UTC) of the first dispatch; request times in ``result`` are seconds
    from it. ``monotonic_start_s`` is the host's CLOCK_MONOTONIC at ``start`` (what ``perf_counter``
    reads, so vLLM ``start_times`` = ``monotonic_start_s + result.start_s``). For a continuous design
    ``phase`` is the scenario name and ``request_phase`` gives each request's phase (block) by start time.
    """

    run_id: str
    group: str
    phase: str
    tool: str
    model: str
    start: datetime
    result: ServingResult
    max_concurrency: int
    num_prompts: int
    input_len: int
    output_len: int
    range_ratio: float
    monotonic_start_s: float
    node: str
    request_phase: np.ndarray | None = None  # per request, for continuous runs: the phase it started in

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.result.duration_s)

    @property
    def start_ns(self) -> int:
        return int(self.start.timestamp() * 1e9)

    def summary(self) -> dict[str, float]:
        """Headline metrics (`telemetry.sim.serving.summary`)."""
        return summary(self.result)

    def requests_frame(self) -> pl.DataFrame:
        """The run's requests as a `bench_request` frame (schema form, ``timing`` = ``wall_clock``)."""
        r = self.result
        out = r.output_tokens.astype(float)
        e2e_ms = r.e2e_s * 1000.0
        ttft_ms = r.ttft_s * 1000.0
        itl_mean = np.where(out > 1, (e2e_ms - ttft_ms) / np.maximum(out - 1, 1), np.nan)
        itl_max = np.array([x.max() * 1000.0 if len(x) else np.nan for x in (r.itls(i) for i in range(r.n))])
        frame = pl.DataFrame(
            {
                "time": (self.start_ns + np.round(r.start_s * 1e9)).astype(np.int64),
                "node": self.node,
                "run_id": self.run_id,
                "group": self.group,
                "phase": self.request_phase if self.request_phase is not None else self.phase,
                "tool": self.tool,
                "request_index": np.arange(r.n, dtype=np.int64),
                "ttft_ms": ttft_ms,
                "tpot_ms": itl_mean,
                "e2e_ms": e2e_ms,
                "itl_ms_mean": itl_mean,
                "itl_ms_max": itl_max,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "success": np.ones(r.n, dtype=bool),
                "timing": "wall_clock",
            }
        )
        from telemetry.schema import conform

        return conform(frame, "bench_request", where=f"run {self.run_id}")

    def tokens_frame(self) -> pl.DataFrame:
        """Token-level artifact: one row per token after the first (run_id, request_index, token_index
        (1-based position of the token), time of the token (UTC), itl_ms)."""
        r = self.result
        idx = [np.arange(int(f) + 1, int(f) + int(o)) for f, o in zip(r.first_step, r.output_tokens, strict=True)]
        steps = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
        req = np.repeat(np.arange(r.n), [len(x) for x in idx])
        tok = np.concatenate([np.arange(1, len(x) + 1) for x in idx]) if idx else np.zeros(0, dtype=np.int64)
        return pl.DataFrame(
            {
                "run_id": self.run_id,
                "request_index": req.astype(np.int64),
                "token_index": tok.astype(np.int64),
                "time": pl.Series((self.start_ns + np.round(r.step_end_s * 1e9)).astype(np.int64)[steps])
                .cast(pl.Datetime("ns"))
                .dt.replace_time_zone("UTC"),
                "itl_ms": (r.step_s * 1000.0)[steps],
            }
        )


@dataclass
class SimResult:
    """Everything one simulation produced. Telemetry is computed on demand per window."""

    scenario: Scenario
    seed: int
    runs: list[BenchRun]
    ground_truth: dict[str, Any]
    state: physics.NodeState = field(repr=False)

    @property
    def start_ns(self) -> int:
        return int(self.scenario.start.timestamp() * 1e9)

    @property
    def duration_s(self) -> int:
        return self.state.seconds

    def telemetry(self, t0: int = 0, t1: int | None = None) -> dict[str, pl.DataFrame]:
        """Frames of ``accel``, ``host``, ``host_core``, ``tenant`` for seconds ``[t0, t1)`` of the scenario
        (1 Hz, schema form via `telemetry.schema.conform`), plus ``run_event`` rows that fall in the window.
        """
        t1 = self.duration_s if t1 is None else min(t1, self.duration_s)
        step = 3600  # build long windows hour by hour: smaller temporaries, faster
        parts = [
            physics.frames(self.state, self.scenario, self.start_ns, a, min(a + step, t1))
            for a in range(t0, max(t1, t0 + 1), step)
        ]
        frames = {
            k: pl.concat([p[k] for p in parts], rechunk=False) if len(parts) > 1 else parts[0][k] for k in parts[0]
        }
        frames["run_event"] = self._run_events(t0, t1)
        return frames

    def iter_telemetry(self, chunk_s: int = 60):
        """Yield ``(t0, frames)`` for consecutive windows of ``chunk_s`` seconds, in time order."""
        for t0 in range(0, self.duration_s, chunk_s):
            yield t0, self.telemetry(t0, t0 + chunk_s)

    def bench_requests(self) -> pl.DataFrame:
        """All runs' requests as one `bench_request` frame."""
        frames = [r.requests_frame() for r in self.runs]
        from telemetry.schema import empty_frame

        return pl.concat(frames) if frames else empty_frame("bench_request")

    def run_events(self) -> pl.DataFrame:
        return self._run_events(0, self.duration_s)

    def _run_events(self, t0: int, t1: int) -> pl.DataFrame:
        from telemetry.schema import conform

        rows: list[dict[str, Any]] = []
        lo, hi = self.start_ns + t0 * 10**9, self.start_ns + t1 * 10**9
        for run in self.runs:
            meta = {
                "tool": run.tool,
                "model": run.model,
                "max_concurrency": run.max_concurrency,
                "num_prompts": run.num_prompts,
                "input_len": run.input_len,
                "output_len": run.output_len,
            }
            for event, when, extra in (("start", run.start, {}), ("end", run.end, run.summary())):
                ns = int(when.timestamp() * 1e9)
                mono = run.monotonic_start_s + (0.0 if event == "start" else run.result.duration_s)
                rows.append(
                    {
                        "time": ns,
                        "node": self.scenario.topology.node,
                        "run_id": run.run_id,
                        "group": run.group,
                        "phase": run.phase,
                        "event": event,
                        "monotonic_s": mono,
                        "tool": run.tool,
                        "command": f"python -m sglang.bench_serving --backend sglang --dataset-name random "
                        f"--random-input-len {run.input_len} --random-output-len {run.output_len} "
                        f"--random-range-ratio {run.range_ratio} --num-prompts {run.num_prompts} "
                        f"--max-concurrency {run.max_concurrency} --request-rate inf",
                        "exit_code": 0 if event == "end" else None,
                        "metadata_json": json.dumps({**meta, **extra}, sort_keys=True),
                    }
                )
        sched = self.scenario.schedule()
        for group, on in sched.items():
            diff = np.diff(np.concatenate([[False], on]).astype(np.int8))
            for t in np.flatnonzero(diff):
                ev = "switch_on" if diff[t] > 0 else "switch_off"
                rows.append(
                    {
                        "time": self.start_ns + int(t) * 10**9,
                        "node": self.scenario.topology.node,
                        "run_id": f"{self.scenario.name}-seed{self.seed}",
                        "group": group,
                        "phase": self.scenario.phases[_phase_index(self.scenario, int(t))].name,
                        "event": ev,
                        "monotonic_s": UPTIME_AT_START_S + float(t),
                        "tenant": group,
                    }
                )
        rows = [r for r in rows if lo <= r["time"] < hi]
        rows.sort(key=lambda r: r["time"])
        if not rows:
            from telemetry.schema import empty_frame

            return empty_frame("run_event")
        cols = {
            k: [r.get(k) for r in rows]
            for k in (
                "time",
                "node",
                "run_id",
                "group",
                "phase",
                "event",
                "monotonic_s",
                "tool",
                "command",
                "exit_code",
                "tenant",
                "metadata_json",
            )
        }
        frame = pl.DataFrame(cols, schema_overrides={"exit_code": pl.Int64, "monotonic_s": pl.Float64})
        return conform(frame, "run_event")


def _twin(scenario: Scenario, group: str, culprits: list[str]) -> bool:
    """Whether ``group`` is a culprit's twin (the same tenant but for its name: a decoy beside it)."""
    me = scenario.tenant(group)
    return any(replace(me, group=c) == scenario.tenant(c) for c in culprits)


def _phase_index(scenario: Scenario, t: int) -> int:
    acc = 0
    for i, p in enumerate(scenario.phases):
        acc += p.duration_s
        if t < acc:
            return i
    return len(scenario.phases) - 1


# --------------------------------------------------------------------------------------------- pressure


def _lag(x: np.ndarray, tau_s: float) -> np.ndarray:
    a = float(np.exp(-1.0 / tau_s))
    y, _ = lfilter([1 - a], [1, -a], x, zi=np.array([a * x[0]]) if len(x) else None)
    return y


def pressures(scenario: Scenario, exclude: frozenset[str] = frozenset()) -> dict[str, dict[str, np.ndarray]]:
    """Per victim group, per resource: pressure per second (antagonists in ``exclude`` left out)."""
    sched = scenario.schedule()
    out: dict[str, dict[str, np.ndarray]] = {}
    for c in scenario.couplings:
        if c.antagonist in exclude:
            continue
        act = sched[c.antagonist].astype(float)
        if c.resource in ("thermal", "power"):
            act = _lag(act, THERMAL_TAU_S)
        elif c.resource == "memory":
            act = _lag(act, MEMORY_TAU_S)
        res = out.setdefault(c.victim, {})
        res[c.resource] = res.get(c.resource, np.zeros(scenario.duration_s)) + c.strength * act
    return out


# --------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class _RunPlan:
    group: str
    phase: str
    start_s: int
    window_s: float
    requests: Requests
    jitter_seed: list[int]
    concurrency: np.ndarray | None = None  # per second of the run (the victim's drifting load)
    input_scale: np.ndarray | None = None
    step_scale: np.ndarray | None = None


def _drifted(scenario: Scenario, plans: list[_RunPlan]) -> list[_RunPlan]:
    """The plans with the victim's drifting load (`Scenario.drift`) for the victim's runs."""
    if scenario.drift is None:
        return plans
    n = scenario.duration_s + 3600
    conc, scale = scenario.drift.factors(n)
    slow = scenario.drift.slowdown(n) if scenario.drift.speed_amp else None
    out = []
    for p in plans:
        if p.group == scenario.victim:
            c = conc[p.start_s :] * scenario.bench.max_concurrency
            p = replace(
                p,
                concurrency=c,
                input_scale=scale[p.start_s :],
                step_scale=None if slow is None else slow[p.start_s :],
            )
        out.append(p)
    return out


def _plans(scenario: Scenario, seed: int) -> list[_RunPlan]:
    return _drifted(scenario, _plans_fixed(scenario, seed))


def _plans_fixed(scenario: Scenario, seed: int) -> list[_RunPlan]:
    b = scenario.bench
    plans: list[_RunPlan] = []
    groups = [t.group for t in scenario.tenants]
    grow = 1.0 if scenario.drift is None else (1 + scenario.drift.concurrency_amp) / (1 - scenario.drift.input_len_amp)
    if scenario.bench_mode == "continuous":
        g = scenario.victim
        window = scenario.duration_s - RUN_LEAD_S - 30
        n = b.num_prompts or int(_max_requests(window, b) * grow)
        rng = np.random.default_rng([seed, groups.index(g), 0, 1])
        reqs = draw_requests(rng, n, b.input_len, b.output_len, b.range_ratio)
        plans.append(_RunPlan(g, scenario.phases[0].name, RUN_LEAD_S, window, reqs, [seed, groups.index(g), 0, 2]))
        return plans
    for pi, (phase, a, end) in enumerate(scenario.phase_bounds()):
        for t in scenario.tenants:
            if t.kind != "serving" or t.group not in phase.active:
                continue
            window = end - a - RUN_LEAD_S - 1
            n = b.num_prompts or int(_max_requests(window, b) * grow)
            rng = np.random.default_rng([seed, groups.index(t.group), pi, 1])
            reqs = draw_requests(rng, n, b.input_len, b.output_len, b.range_ratio)
            plans.append(
                _RunPlan(t.group, phase.name, a + RUN_LEAD_S, window, reqs, [seed, groups.index(t.group), pi, 2])
            )
    return plans


def _max_requests(window_s: float, b) -> int:
    # upper bound on what the client can send in the window (closed loop, ~1 request/s per 64 slots)
    return int(b.max_concurrency + window_s * b.max_concurrency / 20.0) + 8


def _run(plan: _RunPlan, press: dict[str, dict[str, np.ndarray]], scenario: Scenario) -> ServingResult:
    res = press.get(plan.group, {})
    p = Pressure({k: v[plan.start_s :] for k, v in res.items()})
    return simulate_serving(
        plan.requests,
        scenario.bench.max_concurrency,
        plan.window_s,
        p,
        np.random.default_rng(plan.jitter_seed),
        concurrency=plan.concurrency,
        input_scale=plan.input_scale,
        step_scale=plan.step_scale,
    )


def _pct(new: float, old: float) -> float:
    return round(100.0 * (new - old) / old, 3) if old else float("nan")


def _window_metrics(res: ServingResult, mask_s: np.ndarray) -> tuple[float, float]:
    """(decode tok/s, p99 ITL ms) over the seconds of the run where ``mask_s`` is True."""
    sec = np.minimum(res.step_end_s.astype(np.int64), len(mask_s) - 1)
    m = mask_s[sec]
    tok = float(res.step_decode[m].sum())
    secs = float(mask_s[: int(res.duration_s) + 1].sum()) or 1.0
    w = res.step_decode[m].astype(float)
    d = res.step_s[m] * 1000.0
    if w.sum() == 0:
        return 0.0, float("nan")
    order = np.argsort(d)
    cw = np.cumsum(w[order])
    p99 = float(d[order][np.searchsorted(cw, 0.99 * cw[-1])])
    return tok / secs, p99


# --------------------------------------------------------------------------------------------- simulate


def simulate(scenario: Scenario, seed: int = 0, *, bench: bool = True) -> SimResult:
    """Simulate ``scenario`` with ``seed`` (same inputs -> identical output).

    ``bench=False`` skips the serving engine (serving groups then load their devices from the schedule
    alone and no runs / effects are produced): for long telemetry-only runs (24 h in seconds).
    """
    press = pressures(scenario)
    plans = _plans(scenario, seed) if bench else []
    runs: list[BenchRun] = []
    results: list[ServingResult] = []
    for i, plan in enumerate(plans):
        res = _run(plan, press, scenario)
        results.append(res)
        start = scenario.start + timedelta(seconds=plan.start_s)
        runs.append(
            BenchRun(
                run_id=f"{scenario.name}-s{seed}-{plan.group}-{plan.phase}-{i:02d}",
                group=plan.group,
                phase=plan.phase,
                tool=scenario.bench.tool,
                model=scenario.bench.model,
                start=start,
                result=res,
                max_concurrency=scenario.bench.max_concurrency,
                num_prompts=res.n,
                input_len=scenario.bench.input_len,
                output_len=scenario.bench.output_len,
                range_ratio=scenario.bench.range_ratio,
                monotonic_start_s=UPTIME_AT_START_S + plan.start_s,
                node=scenario.topology.node,
            )
        )
        if scenario.bench_mode == "continuous":
            names = np.array([p.name for p in scenario.phases])
            ends = np.cumsum([p.duration_s for p in scenario.phases])
            idx = np.searchsorted(ends, plan.start_s + res.start_s, side="right")
            runs[-1].phase = scenario.name
            runs[-1].request_phase = names[np.minimum(idx, len(names) - 1)]
    truth = _ground_truth(scenario, seed, plans, results, press)
    state = physics.node_state(
        scenario, seed, press, [(p.group, p.start_s, r) for p, r in zip(plans, results, strict=True)]
    )
    return SimResult(scenario=scenario, seed=seed, runs=runs, ground_truth=truth, state=state)


def _ground_truth(
    scenario: Scenario,
    seed: int,
    plans: list[_RunPlan],
    results: list[ServingResult],
    press: dict[str, dict[str, np.ndarray]],
) -> dict[str, Any]:
    sched = scenario.schedule()
    effects: list[dict[str, Any]] = []
    phases: dict[str, Any] = {}
    for plan, res in zip(plans, results, strict=True):
        victim = plan.group
        antagonists = sorted({c.antagonist for c in scenario.couplings if c.victim == victim})
        base = summary(res)
        if scenario.bench_mode == "per_phase":
            entry = phases.setdefault(
                plan.phase,
                {"active": sorted(next(p.active for p in scenario.phases if p.name == plan.phase)), "runs": {}},
            )
            clean = summary(_run(plan, pressures(scenario, frozenset(antagonists)), scenario))
            entry["runs"][victim] = {
                "observed": {k: round(v, 3) for k, v in base.items()},
                "without_interference": {k: round(v, 3) for k, v in clean.items()},
                "true_effect": {
                    "throughput_change_pct": _pct(base["output_throughput"], clean["output_throughput"]),
                    "p99_itl_change_pct": _pct(base["p99_itl_ms"], clean["p99_itl_ms"]),
                },
            }
            active = next(p.active for p in scenario.phases if p.name == plan.phase)
            for a in antagonists:
                if a not in active:
                    continue
                without = summary(_run(plan, pressures(scenario, frozenset({a})), scenario))
                effects.append(
                    {
                        "victim": victim,
                        "antagonist": a,
                        "phase": plan.phase,
                        "resources": sorted(
                            {c.resource for c in scenario.couplings if c.victim == victim and c.antagonist == a}
                        ),
                        "throughput_change_pct": _pct(base["output_throughput"], without["output_throughput"]),
                        "p99_itl_change_pct": _pct(base["p99_itl_ms"], without["p99_itl_ms"]),
                    }
                )
        else:
            horizon = int(res.duration_s) + 1
            for a in antagonists:
                on = np.zeros(horizon, dtype=bool)
                s = sched[a][plan.start_s : plan.start_s + horizon]
                on[: len(s)] = s
                if not on.any():
                    continue
                without = _run(plan, pressures(scenario, frozenset({a})), scenario)
                tok1, p991 = _window_metrics(res, on)
                tok0, p990 = _window_metrics(without, on)
                effects.append(
                    {
                        "victim": victim,
                        "antagonist": a,
                        "phase": "while_on",
                        "resources": sorted(
                            {c.resource for c in scenario.couplings if c.victim == victim and c.antagonist == a}
                        ),
                        "throughput_change_pct": _pct(tok1, tok0),
                        "p99_itl_change_pct": _pct(p991, p990),
                    }
                )
            phases["continuous"] = {"runs": {victim: {"observed": {k: round(v, 3) for k, v in base.items()}}}}
    effects.sort(key=lambda e: (e["victim"] != scenario.victim, e["throughput_change_pct"]))
    co = sorted({t.group for t in scenario.tenants} - {scenario.victim})
    culprits = sorted({e["antagonist"] for e in effects if e["victim"] == scenario.victim})
    return {
        "scenario": scenario.name,
        "seed": seed,
        "description": scenario.description,
        "victim": scenario.victim,
        "culprits": culprits,
        "innocent": [g for g in co if g not in culprits and sched[g].any()],
        "decoys": [g for g in co if g not in culprits and sched[g].any() and _twin(scenario, g, culprits)],
        "effects": effects,
        "couplings": [
            {"antagonist": c.antagonist, "victim": c.victim, "resource": c.resource, "strength": c.strength}
            for c in scenario.couplings
        ],
        "phases": phases,
        "schedule": scenario.schedule_blocks(),
        "notes": (
            "effects: change of the victim's run metrics caused by one antagonist = observed run vs the same "
            "run (same requests, same jitter) simulated without that antagonist's couplings; for continuous "
            "designs the metrics are taken over the seconds the antagonist was on (decode tok/s, p99 ITL). "
            "phases.*.runs.*.true_effect: observed vs all couplings removed."
        ),
    }
