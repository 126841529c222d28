"""Calibration of attribution on simulated nodes: false alarms under drift, decoys, power, and each new resource.

Runs the real analysis (`analysis.analyze.analyze_frames`, the path `neighborscope analyze` takes once the data
is in a store) on the simulator's presets, many seeds each, and compares what it flags with the ground truth:

- ``null_drift`` (``--null`` seeds, default 200): co-tenants that share a socket, NUMA node, disk, NIC or the
  host's memory with the victim switch on and off in long blocks while the victim's own load drifts, and nothing
  is coupled. **False-alarm rate** = share of runs with any co-tenant significant (target: <= 5 %), with its
  exact (Clopper-Pearson) binomial 95 % interval.
- ``interference_drift`` (``--interference`` seeds, default 100): the same plus one true antagonist through a
  resource (``seed % 5``: memory_bandwidth, memory, storage_io, network, cpu) and a decoy of its kind beside it
  with no coupling. **Power** = share of runs whose true antagonist is significant through the right resource
  (``exact``: the resource named alone; ``named``: among the ones attribution could not tell apart); **decoy
  rate** = share with the decoy significant; **other false alarms** = share with any other co-tenant significant.
- The single-antagonist presets of the new resources (``--per-resource`` seeds each, default 5; two phases of
  ``--phase-s`` seconds): found (significant), through the right resource, median q.

Each scenario is simulated (seeded: the seed draws the design, the drift and the noise) and analysed in a worker
process (``--jobs``); nothing is written to disk unless ``--json PATH`` is given. A drift run is 18 min of the
34-accelerator node at 1 Hz and ~1,300 requests (~0.6 M tokens); it costs ~0.75 s of CPU to simulate and analyse
(measured: 65 runs, 48 s CPU), so the default 200 + 100 + 25 runs need ~4 CPU-minutes: about 2 minutes on 2 idle
cores with ``--jobs 2`` (11.5 min wall on this shared 2-core machine at load average 13-30). The report prints
the wall time, the CPU time and the load average.

    .venv/bin/python benchmarks/calibration.py                       # 200 null, 100 interference, 5 per resource
    .venv/bin/python benchmarks/calibration.py --null 50 --interference 20 --per-resource 2 --jobs 2
    .venv/bin/python benchmarks/calibration.py --json calibration.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NEW_RESOURCE_PRESETS = (
    "memory_bandwidth_antagonist",
    "memory_pressure_antagonist",
    "storage_antagonist",
    "network_antagonist",
    "cpu_quota_antagonist",
)


# ------------------------------------------------------------------------------------------------ one run


def analysis_inputs(res: Any) -> dict[str, Any]:
    """A simulation as the frames `analysis.analyze.analyze_frames` takes (runs, requests, tokens, telemetry)."""
    from analysis.analyze import TelemetryFrames
    from telemetry.schema import DISK, NET, RDMA
    from telemetry.topology import topology_frame
    from tests.analysis.simdata import run_frames

    runs, requests, tokens = run_frames(res)
    tel = res.telemetry()
    # every measurement the analysis takes: TelemetryFrames' fields by their name or their measurement's
    # (``disk`` takes the ``host_disk`` measurement, ``net`` ``host_net``)
    aliases = {"disk": DISK.name, "net": NET.name, "rdma": RDMA.name}
    frames = {}
    for f in dataclasses.fields(TelemetryFrames):
        key = f.name if f.name in tel else aliases.get(f.name)
        if key in tel and f.name not in ("run_events", "topology"):
            frames[f.name] = tel[key]
    telemetry = TelemetryFrames(
        **frames, run_events=tel["run_event"], topology=topology_frame(res.scenario.topology.to_dict())
    )
    return {"runs": runs, "requests": requests, "tokens": tokens, "telemetry": telemetry}


def run_one(scenario: str, seed: int, phase_s: int | None, n_shifts: int | None) -> dict[str, Any]:
    """Simulate ``scenario`` with ``seed``, analyse it, and say what was flagged against the truth."""
    from analysis.analyze import AnalysisOptions, analyze_frames
    from telemetry.sim import preset, simulate

    t0, c0 = time.perf_counter(), time.process_time()
    sc = preset(scenario, phase_s=phase_s, num_prompts=0, seed=seed)
    res = simulate(sc, seed)
    inputs = analysis_inputs(res)
    t1, c1 = time.perf_counter(), time.process_time()
    opts = AnalysisOptions(seed=seed) if n_shifts is None else AnalysisOptions(seed=seed, n_shifts=n_shifts)
    out = analyze_frames(
        inputs["runs"],
        inputs["requests"],
        inputs["tokens"],
        victim=sc.victim,
        telemetry=inputs["telemetry"],
        options=opts,
    )
    t2, c2 = time.perf_counter(), time.process_time()
    truth = res.ground_truth
    culprits = truth["culprits"]
    true_resources = sorted({c["resource"] for c in truth["couplings"] if c["victim"] == sc.victim})
    decoys = truth["decoys"]
    rows = [
        {
            "antagonist": r["antagonist"],
            "resource": r["resource"],
            "effect_pct": r["effect_pct"],
            "p_value": r["p_value"],
            "q_value": r["q_value"],
            "significant": bool(r["significant"]),
        }
        for r in out.antagonists.iter_rows(named=True)
    ]
    flagged = [r for r in rows if r["significant"]]
    hit = [r for r in flagged if set(_members(r["antagonist"])) & set(culprits)]
    named = [r for r in hit if set(_names(r["resource"])) & set(true_resources)]
    exact = [r for r in hit if _names(r["resource"]) == true_resources]
    return {
        "scenario": scenario,
        "seed": seed,
        "culprits": culprits,
        "true_resources": true_resources,
        "decoys": decoys,
        "suspects": rows,
        "flagged": [r["antagonist"] for r in flagged],
        "any_flag": bool(flagged),
        "found": bool(hit),
        "found_named": bool(named),
        "found_exact": bool(exact),
        "decoy_flagged": any(set(_members(r["antagonist"])) & set(decoys) for r in flagged),
        "other_flagged": any(not set(_members(r["antagonist"])) & set(culprits + decoys) for r in flagged),
        "culprit_q": min((r["q_value"] for r in rows if set(_members(r["antagonist"])) & set(culprits)), default=None),
        "simulate_s": round(t1 - t0, 3),
        "analyze_s": round(t2 - t1, 3),
        "simulate_cpu_s": round(c1 - c0, 3),
        "analyze_cpu_s": round(c2 - c1, 3),
    }


def _members(antagonist: str) -> list[str]:
    """A merged suspect ("furiosa+tt") stands for each of its members."""
    return antagonist.split("+")


def _names(resource: str | None) -> list[str]:
    """The resources a ``resource`` cell names ("memory_bandwidth or cpu" names both)."""
    return sorted(x.strip() for x in (resource or "").split(" or ") if x.strip())


# ------------------------------------------------------------------------------------------------ summary


def binomial_ci(k: int, n: int, level: float = 0.95) -> tuple[float | None, float | None]:
    """Exact (Clopper-Pearson) interval of a proportion ``k / n``."""
    from scipy.stats import beta

    if n == 0:
        return None, None
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def rate(results: list[dict[str, Any]], key: str) -> dict[str, Any]:
    k = sum(bool(r[key]) for r in results)
    n = len(results)
    lo, hi = binomial_ci(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "ci_low": lo, "ci_high": hi}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    null = [r for r in results if r["scenario"] == "null_drift"]
    inter = [r for r in results if r["scenario"] == "interference_drift"]
    out: dict[str, Any] = {
        "false_alarm": rate(null, "any_flag"),
        "power_exact": rate(inter, "found_exact"),
        "power_named": rate(inter, "found_named"),
        "found_any_resource": rate(inter, "found"),
        "decoy": rate(inter, "decoy_flagged"),
        "other_false_alarm": rate(inter, "other_flagged"),
        "interference_by_resource": {},
        "presets": {},
    }
    for res in sorted({r["true_resources"][0] for r in inter if r["true_resources"]}):
        sub = [r for r in inter if r["true_resources"] == [res]]
        out["interference_by_resource"][res] = {
            "power_exact": rate(sub, "found_exact"),
            "power_named": rate(sub, "found_named"),
            "decoy": rate(sub, "decoy_flagged"),
        }
    for name in NEW_RESOURCE_PRESETS:
        sub = [r for r in results if r["scenario"] == name]
        if not sub:
            continue
        qs = sorted(r["culprit_q"] for r in sub if r["culprit_q"] is not None)
        out["presets"][name] = {
            "resource": sub[0]["true_resources"][0] if sub[0]["true_resources"] else None,
            "found": rate(sub, "found"),
            "found_exact": rate(sub, "found_exact"),
            "found_named": rate(sub, "found_named"),
            "median_q": qs[len(qs) // 2] if qs else None,
            "named_as": sorted(
                {
                    s["resource"]
                    for r in sub
                    for s in r["suspects"]
                    if set(s["antagonist"].split("+")) & set(r["culprits"])
                }
            ),
        }
    out["cpu_s"] = {
        "simulate": round(sum(r["simulate_cpu_s"] for r in results), 1),
        "analyze": round(sum(r["analyze_cpu_s"] for r in results), 1),
    }
    return out


def _pct(d: dict[str, Any]) -> str:
    if not d["n"]:
        return "-"
    return f"{100 * d['rate']:.1f} % ({d['k']}/{d['n']}) [{100 * d['ci_low']:.1f}, {100 * d['ci_high']:.1f}]"


def report(summary: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    head = Table("measure", "rate (k/n) [95 % CI]", title="attribution calibration (simulated, drift presets)")
    head.add_row("false alarms, null_drift (target <= 5 %)", _pct(summary["false_alarm"]))
    head.add_row("power, interference_drift (right resource alone)", _pct(summary["power_exact"]))
    head.add_row("power, right resource among those named", _pct(summary["power_named"]))
    head.add_row("true antagonist significant (any resource)", _pct(summary["found_any_resource"]))
    head.add_row("decoy beside the antagonist flagged", _pct(summary["decoy"]))
    head.add_row("other co-tenant flagged (interference runs)", _pct(summary["other_false_alarm"]))
    console.print(head)
    if summary["interference_by_resource"]:
        tab = Table("resource", "power (exact)", "power (named)", "decoy", title="interference_drift by resource")
        for res, d in summary["interference_by_resource"].items():
            tab.add_row(res, _pct(d["power_exact"]), _pct(d["power_named"]), _pct(d["decoy"]))
        console.print(tab)
    if summary["presets"]:
        tab = Table("preset", "resource", "found", "right resource", "median q", "named as", title="new resources")
        for name, d in summary["presets"].items():
            mq = "-" if d["median_q"] is None else f"{d['median_q']:.3g}"
            tab.add_row(name, d["resource"], _pct(d["found"]), _pct(d["found_exact"]), mq, ", ".join(d["named_as"]))
        console.print(tab)


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--null", type=int, default=200, help="null_drift seeds (default 200)")
    ap.add_argument("--interference", type=int, default=100, help="interference_drift seeds (default 100)")
    ap.add_argument("--per-resource", type=int, default=5, help="seeds per new-resource preset (default 5)")
    ap.add_argument("--phase-s", type=int, default=240, help="phase seconds of the new-resource presets")
    ap.add_argument("--block-s", type=int, default=0, help="mean block of the drift presets (0: the preset's, 90 s)")
    ap.add_argument("--first-seed", type=int, default=1000, help="seeds run first-seed .. first-seed + N - 1")
    ap.add_argument("--n-shifts", type=int, default=None, help="permutations of the test (default: the analysis')")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default 2)")
    ap.add_argument("--json", type=Path, default=None, help="write every run and the summary here ('-': stdout)")
    args = ap.parse_args(argv)
    for name in ("null", "interference", "per_resource", "jobs"):
        if getattr(args, name) < 0 or (name == "jobs" and args.jobs < 1):
            ap.error(f"--{name.replace('_', '-')} must be {'>= 1' if name == 'jobs' else '>= 0'}")

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    to_stderr = args.json is not None and str(args.json) == "-"
    console = Console(stderr=to_stderr)
    if not console.is_terminal:
        console = Console(stderr=to_stderr, width=150)
    block = args.block_s or None
    tasks = [("null_drift", args.first_seed + i, block) for i in range(args.null)]
    tasks += [("interference_drift", args.first_seed + i, block) for i in range(args.interference)]
    tasks += [(p, args.first_seed + i, args.phase_s) for p in NEW_RESOURCE_PRESETS for i in range(args.per_resource)]
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    started = time.perf_counter()
    with (
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress,
        ProcessPoolExecutor(max_workers=args.jobs) as pool,
    ):
        bar = progress.add_task("simulate + analyse", total=len(tasks))
        futures = {pool.submit(run_one, name, seed, ph, args.n_shifts): (name, seed) for name, seed, ph in tasks}
        for fut in as_completed(futures):
            name, seed = futures[fut]
            try:
                results.append(fut.result())
            except Exception as exc:  # a run that fails is reported, the others still count
                failures.append(f"{name} seed {seed}: {type(exc).__name__}: {exc}")
            progress.advance(bar)
    wall = time.perf_counter() - started
    results.sort(key=lambda r: (r["scenario"], r["seed"]))
    summary = summarise(results)
    summary["wall_s"] = round(wall, 1)
    summary["jobs"] = args.jobs
    summary["load_average"] = list(os.getloadavg())
    report(summary, console)
    console.print(
        f"{len(results)} runs in {wall:.0f} s with {args.jobs} worker(s) (CPU: simulate "
        f"{summary['cpu_s']['simulate']} s, analyse {summary['cpu_s']['analyze']} s; load average "
        f"{summary['load_average'][0]:.1f})"
    )
    for f in failures:
        console.print(f"[red]failed:[/] {f}")
    if args.json is not None:
        doc = json.dumps({"summary": summary, "failures": failures, "runs": results}, indent=1, default=str)
        if str(args.json) == "-":
            sys.stdout.write(doc + "\n")
        else:
            args.json.write_text(doc + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
