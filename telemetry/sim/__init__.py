"""The node simulator: a seeded, physically plausible 34-accelerator inference node (seed 000).

Public API (everything else lives in `telemetry.sim.*`)::

    from telemetry.sim import preset, simulate, write_output

    sc = preset("seed000", phase_s=120, num_prompts=80)   # or Scenario(...) by hand
    res = simulate(sc, seed=1)                             # SimResult
    res.telemetry()            # TELEMETRY_MEASUREMENTS (accel, host, host_core, tenant, disk, net, rdma,
                               # run_event) -> pl.DataFrame
    for t0, frames in res.iter_telemetry(chunk_s=10): ...  # time-ordered chunks (live streaming)
    res.runs                   # [BenchRun]: run_id, group, phase, tool, start, end, result (ServingResult)
    res.bench_requests()       # bench_request frame of every request (time = wall-clock start)
    res.ground_truth           # dict, written as ground_truth.json
    write_vllm_detailed(res.runs[0], "run.json"); write_aiperf_jsonl(...); write_sglang_summary(...)
    write_output(res, "out/")  # the files `neighborscope simulate` writes

Scenario vocabulary, presets and ground truth: `telemetry.sim.scenario` and `telemetry.sim.engine`;
the serving model: `telemetry.sim.serving`; physics and vendor gaps: `telemetry.sim.physics`;
file formats: `telemetry.sim.formats`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

from telemetry.errors import ConfigError
from telemetry.schema import DISK, NET, RDMA
from telemetry.sim.engine import BenchRun, SimResult, simulate
from telemetry.sim.formats import (
    aiperf_records,
    sglang_jsonl_line,
    sglang_summary,
    vllm_detailed,
    write_aiperf_jsonl,
    write_sglang_jsonl,
    write_sglang_summary,
    write_vllm_detailed,
)
from telemetry.sim.scenario import (
    PRESETS,
    BenchConfig,
    Coupling,
    Device,
    HostGroup,
    LoadDrift,
    Phase,
    Scenario,
    Tenant,
    Topology,
    preset,
    seed000_topology,
)
from telemetry.sim.serving import ServingResult

__all__ = [
    "BENCH_FORMATS",
    "PRESETS",
    "TELEMETRY_MEASUREMENTS",
    "BenchConfig",
    "BenchRun",
    "Coupling",
    "Device",
    "HostGroup",
    "LoadDrift",
    "Phase",
    "Scenario",
    "ServingResult",
    "SimResult",
    "Tenant",
    "Topology",
    "aiperf_records",
    "iter_telemetry",
    "preset",
    "seed000_topology",
    "sglang_jsonl_line",
    "sglang_summary",
    "simulate",
    "vllm_detailed",
    "write_aiperf_jsonl",
    "write_output",
    "write_sglang_jsonl",
    "write_sglang_summary",
    "write_vllm_detailed",
]

TELEMETRY_MEASUREMENTS = ("accel", "host", "host_core", "tenant", DISK.name, NET.name, RDMA.name, "run_event")
# format name -> file name inside bench/<run_id>/
BENCH_FORMATS = {
    "vllm": "vllm_detailed.json",
    "aiperf": "profile_export.jsonl",
    "sglang": "sglang_summary.txt",
    "sglang_jsonl": "sglang_output.jsonl",
}


def iter_telemetry(result: SimResult, chunk_s: int = 60) -> Iterator[tuple[int, dict[str, pl.DataFrame]]]:
    """Yield ``(t0, frames)`` per ``chunk_s`` seconds of ``result``, in time order (see `SimResult.telemetry`)."""
    return result.iter_telemetry(chunk_s)


def write_output(
    result: SimResult,
    out: Path | str,
    formats: Iterable[str] = ("vllm", "aiperf", "sglang"),
    tokens: bool = False,
    groups: Iterable[str] | None = None,
) -> dict[str, list[Path]]:
    """Write a simulation to directory ``out`` and return the paths written, by kind.

    Layout::

        out/topology.json  scenario.json  ground_truth.json
        out/telemetry/<measurement>.parquet       every one of TELEMETRY_MEASUREMENTS
        out/bench_request.parquet                 every request (bench_request schema, wall-clock times)
        out/tokens.parquet                        (tokens=True) run_id, request_index, token_index, time, itl_ms
        out/bench/<run_id>/vllm_detailed.json     per run, one file per format in ``formats``
                          /profile_export.jsonl  /sglang_summary.txt  /sglang_output.jsonl

    ``groups``: write benchmark files only for these groups' runs (default: every run); telemetry,
    ``bench_request.parquet`` and ground truth always cover everything.
    """
    fmts = list(formats)
    unknown = [f for f in fmts if f not in BENCH_FORMATS]
    if unknown:
        raise ConfigError(f"unknown bench format(s) {unknown}; known: {', '.join(BENCH_FORMATS)}")
    root = Path(out)
    (root / "telemetry").mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"meta": [], "telemetry": [], "bench": []}
    sc = result.scenario
    for name, doc in (
        ("topology.json", sc.topology.to_dict()),
        ("scenario.json", sc.to_dict()),
        ("ground_truth.json", result.ground_truth),
    ):
        p = root / name
        p.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        written["meta"].append(p)
    frames = result.telemetry()
    for name in TELEMETRY_MEASUREMENTS:
        p = root / "telemetry" / f"{name}.parquet"
        frames[name].write_parquet(p, compression="zstd")
        written["telemetry"].append(p)
    p = root / "bench_request.parquet"
    result.bench_requests().write_parquet(p, compression="zstd")
    written["bench"].append(p)
    if tokens and result.runs:
        p = root / "tokens.parquet"
        pl.concat([r.tokens_frame() for r in result.runs]).write_parquet(p, compression="zstd")
        written["bench"].append(p)
    writers = {
        "vllm": write_vllm_detailed,
        "aiperf": write_aiperf_jsonl,
        "sglang": write_sglang_summary,
        "sglang_jsonl": write_sglang_jsonl,
    }
    wanted = None if groups is None else set(groups)
    for run in result.runs:
        if wanted is not None and run.group not in wanted:
            continue
        d = root / "bench" / run.run_id
        d.mkdir(parents=True, exist_ok=True)
        for f in fmts:
            p = d / BENCH_FORMATS[f]
            if p.exists() and f == "sglang_jsonl":
                p.unlink()
            writers[f](run, p)
            written["bench"].append(p)
    return written
