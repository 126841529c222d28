"""`neighborscope simulate`: write a simulated node's telemetry, benchmark files and ground truth."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from telemetry.console import output_console
from telemetry.errors import ConfigError


def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write (created if missing)."),
    scenario: str = typer.Option("seed000", "--scenario", "-s", help="Preset scenario name."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical output."),
    phase_s: int = typer.Option(
        0, "--phase-s", help="Seconds per phase (randomized: per block; drift presets: mean block); 0 = preset."
    ),
    num_prompts: int = typer.Option(
        -1, "--num-prompts", help="Prompts per run; -1 = preset (640), 0 = until phase end."
    ),
    formats: str = typer.Option(
        "vllm,aiperf,sglang",
        "--formats",
        help="Benchmark files per run: vllm, aiperf, sglang, sglang_jsonl (comma-separated).",
    ),
    tokens: bool = typer.Option(False, "--tokens/--no-tokens", help="Also write tokens.parquet (one row per token)."),
    bench_groups: str = typer.Option(
        "", "--bench-groups", help="Write benchmark files only for these groups' runs (comma-separated)."
    ),
    no_bench: bool = typer.Option(
        False, "--no-bench", help="Telemetry only: skip the serving engine (fast, long runs)."
    ),
) -> None:
    """Simulate the 34-accelerator node of seed 000 (or another preset) and write its data.

    OUT/telemetry/{accel,host,host_core,tenant,host_disk,host_net,rdma,run_event}.parquet: 1 Hz telemetry in the
    schema (pressure stalls, cgroup CPU / memory / I/O, resctrl memory bandwidth, disks, NICs, RDMA ports included).

    OUT/bench/<run_id>/: each benchmark run as vLLM --save-detailed JSON, AIPerf profile_export.jsonl, SGLang summary.

    OUT/bench_request.parquet, OUT/ground_truth.json (who hurts whom, through what, by how much), OUT/topology.json.

    Presets: seed000 (default), pcie_antagonist, cpu_antagonist, thermal_neighbour, decoy, no_interference, aa,
    randomized; memory_bandwidth_antagonist, memory_pressure_antagonist, storage_antagonist, network_antagonist,
    cpu_quota_antagonist; null_drift, interference_drift (the victim's load drifts while co-tenants switch in long
    blocks; --seed draws the design, --phase-s sets the mean block).

    Example: neighborscope simulate --seed 1 --scenario seed000 --phase-s 120 --num-prompts 80 --out /tmp/sim
    """
    from telemetry.sim import PRESETS, preset, write_output
    from telemetry.sim import simulate as run_sim

    if scenario not in PRESETS:
        raise ConfigError(f"unknown scenario {scenario!r}; presets: {', '.join(PRESETS)}")
    sc = preset(scenario, phase_s=phase_s or None, num_prompts=None if num_prompts < 0 else num_prompts, seed=seed)
    t = time.perf_counter()
    res = run_sim(sc, seed, bench=not no_bench)
    groups = [g.strip() for g in bench_groups.split(",") if g.strip()] or None
    written = write_output(
        res, out, formats=[f.strip() for f in formats.split(",") if f.strip()], tokens=tokens, groups=groups
    )
    elapsed = time.perf_counter() - t
    con = output_console()
    con.print(
        f"[bold]{sc.name}[/] seed {seed}: {len(sc.phases)} phase(s), {res.duration_s} s of "
        f"{len(sc.topology.devices)} accelerators at 1 Hz, {len(res.runs)} benchmark run(s) in {elapsed:.1f} s"
    )
    if res.runs:
        tab = Table("run", "phase", "requests", "out tok/s", "median ITL ms", "p99 ITL ms", "median TTFT ms")
        for run in res.runs:
            s = run.summary()
            tab.add_row(
                run.run_id,
                run.phase,
                str(run.result.n),
                f"{s['output_throughput']:.1f}",
                f"{s['median_itl_ms']:.1f}",
                f"{s['p99_itl_ms']:.1f}",
                f"{s['median_ttft_ms']:.0f}",
            )
        con.print(tab)
    gt = res.ground_truth
    eff = [e for e in gt["effects"] if e["victim"] == gt["victim"]]
    if eff:
        tab = Table(
            "victim", "antagonist", "phase", "through", "tok/s change %", "p99 ITL change %", title="ground truth"
        )
        for e in eff:
            tab.add_row(
                e["victim"],
                e["antagonist"],
                e["phase"],
                ",".join(e["resources"]),
                f"{e['throughput_change_pct']:+.2f}",
                f"{e['p99_itl_change_pct']:+.2f}",
            )
        con.print(tab)
    else:
        con.print(f"ground truth: no co-tenant affects {gt['victim']}")
    n = sum(len(v) for v in written.values())
    con.print(f"wrote {n} files under {out}")
