"""Simulated node data as analysis frames (the simulator's output, reshaped; no store)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from telemetry.sim import SimResult, preset, simulate
from telemetry.topology import topology_frame


@dataclass
class SimFrames:
    result: SimResult
    runs: pl.DataFrame
    requests: pl.DataFrame
    tokens: pl.DataFrame
    telemetry: dict[str, pl.DataFrame]
    topology: pl.DataFrame
    truth: dict[str, Any]


def run_frames(res: SimResult) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A simulation's benchmark runs as `analysis.analyze.analyze_frames` takes them: runs (`RUNS_SCHEMA`),
    requests, tokens (also used by benchmarks/calibration.py)."""
    from analysis.degradation import RUNS_SCHEMA

    runs = pl.DataFrame(
        [
            {
                "run_id": r.run_id,
                "group": r.group,
                "phase": r.phase,
                "node": r.node,
                "start": r.start,
                "end": r.end,
                "timing": "wall_clock",
            }
            for r in res.runs
        ],
        schema_overrides={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")},
    ).with_columns(pl.col("start").cast(pl.Datetime("ns", "UTC")), pl.col("end").cast(pl.Datetime("ns", "UTC")))
    runs = runs.with_columns(pl.lit(None, dtype=dt).alias(c) for c, dt in RUNS_SCHEMA.items() if c not in runs.columns)
    req = pl.concat([r.requests_frame() for r in res.runs]).select(
        "run_id",
        "request_index",
        "time",
        "ttft_ms",
        "e2e_ms",
        "tpot_ms",
        "input_tokens",
        "output_tokens",
        pl.col("error"),
        pl.col("timing"),
    )
    tok = pl.concat([r.tokens_frame() for r in res.runs])
    return runs, req, tok


def sim_frames(
    scenario: str, seed: int = 0, phase_s: int = 240, num_prompts: int = 0, telemetry: bool = True
) -> SimFrames:
    """Run a preset with short phases and return the frames `analysis.analyze.analyze_frames` takes."""
    sc = preset(scenario, phase_s=phase_s, num_prompts=num_prompts, seed=seed)
    res = simulate(sc, seed)
    runs, req, tok = run_frames(res)
    topo = topology_frame(json.loads(json.dumps(sc.topology.to_dict())))
    extra = [t for t in sc.tenants if t.group not in topo["group"].to_list() and t.socket is not None]
    if extra:
        topo = topology_frame(
            {"devices": sc.topology.to_dict()["devices"], "groups": {t.group: {"socket": str(t.socket)} for t in extra}}
        )
    return SimFrames(res, runs, req, tok, res.telemetry() if telemetry else {}, topo, res.ground_truth)
