"""Simulator speed: 24 h of the 34-accelerator seed-000 node at 1 Hz, and the seed-000 benchmark runs.

    python benchmarks/simulator.py [--hours 24] [--chunk-s 3600]

Target (foundation issue): 24 h x 34 accelerators in a few seconds (telemetry only, `bench=False`).
Reports: state (physics arrays), all frames at once, the same streamed in chunks, and the full
calibrated seed-000 scenario with its 5 benchmark runs and counterfactual ground truth.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from telemetry.sim import preset, simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--chunk-s", type=int, default=3600)
    args = ap.parse_args()
    seconds = int(args.hours * 3600)
    tab = Table("step", "seconds", "rows")

    t = time.perf_counter()
    res = simulate(preset("seed000", phase_s=seconds // 3), seed=0, bench=False)
    t_state = time.perf_counter() - t
    tab.add_row("node state (physics)", f"{t_state:.2f}", "")

    t = time.perf_counter()
    frames = res.telemetry()
    t_frames = time.perf_counter() - t
    rows = sum(f.height for f in frames.values())
    tab.add_row("all frames at once", f"{t_frames:.2f}", f"{rows:,} ({frames['accel'].height:,} accel)")
    del frames

    t = time.perf_counter()
    rows = sum(f.height for _, fr in res.iter_telemetry(args.chunk_s) for f in fr.values())
    tab.add_row(f"streamed in {args.chunk_s} s chunks", f"{time.perf_counter() - t:.2f}", f"{rows:,}")

    t = time.perf_counter()
    full = simulate(preset("seed000"), seed=0)
    tab.add_row(
        "seed000 (3 x 780 s, 5 runs x 640 prompts + ground truth)",
        f"{time.perf_counter() - t:.2f}",
        f"{sum(r.result.n for r in full.runs)} requests",
    )
    Console().print(f"{args.hours:g} h of {len(res.scenario.topology.devices)} accelerators at 1 Hz")
    Console().print(tab)


if __name__ == "__main__":
    main()
