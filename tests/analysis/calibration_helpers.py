"""Calibration of attribution on simulated null and interference scenarios (the simulator's ``null_drift`` and
``interference_drift`` presets: co-tenants switch on and off in long blocks while the victim's own load drifts).

`attribution_outcome` simulates one seed, aligns every measurement the records read (accel, host, host_core,
tenant, host_disk, host_net, rdma) and runs `analysis.attribution.attribute` directly (no store, no
`analysis.analyze`), then scores what was flagged against the ground truth. `false_alarm_rate` runs many null
seeds. ``benchmarks/calibration.py`` is the full harness (through `analysis.analyze.analyze_frames`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl
from scipy.stats import beta

from analysis.align import align
from analysis.attribution import Attribution, attribute
from telemetry.sim import preset, simulate
from telemetry.topology import topology_frame


@dataclass(frozen=True)
class Outcome:
    """What attribution flagged in one simulated scenario, against its ground truth."""

    scenario: str
    seed: int
    flagged: tuple[str, ...]  # significant antagonists (merged ones as "a+b")
    resources: dict[str, str]  # antagonist -> resource named
    culprits: tuple[str, ...]
    true_resources: tuple[str, ...]
    decoys: tuple[str, ...]

    @property
    def any_flag(self) -> bool:
        return bool(self.flagged)

    def _hits(self, names: Iterable[str]) -> list[str]:
        want = set(names)
        return [a for a in self.flagged if set(a.split("+")) & want]

    @property
    def found(self) -> bool:
        return bool(self._hits(self.culprits))

    @property
    def found_resource(self) -> bool:
        """The culprit is flagged and its true resource is among those named (``"a or b"`` names both)."""
        return any(
            set(self.true_resources) & {r.strip() for r in self.resources[a].split(" or ")}
            for a in self._hits(self.culprits)
        )

    @property
    def decoy_flagged(self) -> bool:
        return bool(self._hits(self.decoys))


def _frames(scenario: str, seed: int, phase_s: int | None) -> tuple[Any, dict[str, Any]]:
    sc = preset(scenario, phase_s=phase_s, num_prompts=0, seed=seed)
    res = simulate(sc, seed)
    runs = pl.DataFrame(
        [
            {"run_id": r.run_id, "group": r.group, "phase": r.phase, "start": r.start, "end": r.end}
            for r in res.runs
            if r.group == sc.victim
        ],
        schema_overrides={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")},
    ).with_columns(pl.col("start").cast(pl.Datetime("ns", "UTC")), pl.col("end").cast(pl.Datetime("ns", "UTC")))
    v_runs = [r for r in res.runs if r.group == sc.victim]
    req = pl.concat([r.requests_frame() for r in v_runs], how="vertical_relaxed")
    tok = pl.concat([r.tokens_frame() for r in v_runs], how="vertical_relaxed")
    tel = res.telemetry()
    topo = topology_frame(json.loads(json.dumps(sc.topology.to_dict())))
    return res, {"runs": runs, "requests": req, "tokens": tok, "telemetry": tel, "topology": topo}


def simulated_attribution(
    scenario: str,
    seed: int,
    *,
    phase_s: int | None = None,
    n_shifts: int = 499,
    metric: str = "itl",
    baseline_phase: str | None = None,
) -> tuple[Any, Attribution]:
    """Simulate ``scenario`` with ``seed`` and attribute the victim's slowdown from every measurement the
    records read: (the simulation, `Attribution`)."""
    res, f = _frames(scenario, seed, phase_s)
    tel = f["telemetry"]
    grid = align(
        f["requests"],
        f["tokens"],
        f["runs"],
        accel=tel.get("accel"),
        host=tel.get("host"),
        host_core=tel.get("host_core"),
        tenant=tel.get("tenant"),
        disk=tel.get("host_disk"),
        net=tel.get("host_net"),
        rdma=tel.get("rdma"),
    )
    events = tel.get("run_event")
    out = attribute(
        grid,
        res.scenario.victim,
        baseline_phase=baseline_phase,
        topology=f["topology"],
        run_events=events if events is not None and events.height else None,
        n_shifts=n_shifts,
        seed=seed,
        metric=metric,  # type: ignore[arg-type]
    )
    return res, out


def attribution_outcome(
    scenario: str, seed: int, *, phase_s: int | None = None, n_shifts: int = 499, metric: str = "itl"
) -> Outcome:
    """Simulate ``scenario`` with ``seed``, attribute the victim's slowdown, and score it against the truth."""
    res, out = simulated_attribution(scenario, seed, phase_s=phase_s, n_shifts=n_shifts, metric=metric)
    sc = res.scenario
    ant = out.antagonists.filter(pl.col("significant"))
    truth = res.ground_truth
    culprits = tuple(truth["culprits"])
    true_res = tuple(sorted({c["resource"] for c in truth["couplings"] if c["victim"] == sc.victim}))
    co = sorted({t.group for t in sc.tenants} - {sc.victim})
    decoys = tuple(
        g
        for g in co
        if g not in culprits and any(c != g and c.rsplit("_", 1)[0] == g.rsplit("_", 1)[0] for c in culprits)
    )
    return Outcome(
        scenario,
        seed,
        tuple(ant["antagonist"].to_list()),
        dict(zip(ant["antagonist"].to_list(), ant["resource"].to_list(), strict=True)),
        culprits,
        true_res,
        decoys,
    )


def binomial_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a proportion ``k / n``."""
    if n == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def false_alarm_rate(seeds: Iterable[int], **kw: Any) -> tuple[int, int, list[Outcome]]:
    """(runs with any co-tenant flagged, runs, outcomes) over ``null_drift`` seeds."""
    outs = [attribution_outcome("null_drift", s, **kw) for s in seeds]
    return sum(o.any_flag for o in outs), len(outs), outs


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.analysis.calibration_helpers --null 200 --interference 50 [--start S]``: one line per
    run, then the false-alarm rate, power and decoy rate with exact 95 % intervals."""
    import argparse
    import time

    ap = argparse.ArgumentParser()
    ap.add_argument("--null", type=int, default=200)
    ap.add_argument("--interference", type=int, default=0)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--shifts", type=int, default=499)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    null, inter = [], []
    for s in range(a.start, a.start + a.null):
        o = attribution_outcome("null_drift", s, n_shifts=a.shifts)
        null.append(o)
        print("null", s, o.flagged, o.resources, flush=True)
    for s in range(a.start, a.start + a.interference):
        o = attribution_outcome("interference_drift", s, n_shifts=a.shifts)
        inter.append(o)
        print("interference", s, o.culprits, o.true_resources, o.flagged, o.resources, flush=True)

    def line(name: str, k: int, n: int) -> str:
        lo, hi = binomial_ci(k, n)
        return f"{name}: {k}/{n} = {k / n if n else math.nan:.3f} (95 % CI {lo:.3f}-{hi:.3f})"

    print(line("false alarms (null_drift, any co-tenant flagged)", sum(o.any_flag for o in null), len(null)))
    if inter:
        print(line("power (culprit flagged)", sum(o.found for o in inter), len(inter)))
        print(line("power through the right resource", sum(o.found_resource for o in inter), len(inter)))
        print(line("decoy flagged", sum(o.decoy_flagged for o in inter), len(inter)))
        others = sum(any(not set(f.split("+")) & set(o.culprits + o.decoys) for f in o.flagged) for o in inter)
        print(line("other co-tenant flagged", others, len(inter)))
    print(f"{len(null) + len(inter)} runs in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
