"""Simulated ``serving`` rows (an engine's scraped histograms, one row per 5 s interval) of a victim next to a
co-tenant switched on and off at random, and the co-tenant's ``tenant`` CPU rows: a test double for an engine and
a neighbour that the tests cannot run. Seeded; the ground truth (which intervals the co-tenant was on) is returned.

The victim's p99 ITL grows with its own batch (requests running), its p99 TTFT with concurrency x input length
(with a knee at ``knee_load``); while the co-tenant is on, the p99 ITL is ``1 + itl_effect`` times slower and the
p99 TTFT ``1 + ttft_effect`` times slower (a decode neighbour moves ITL, a prefill neighbour TTFT).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STEP_S = 5.0


@dataclass(frozen=True)
class Scenario:
    serving: pl.DataFrame
    tenant: pl.DataFrame
    run_events: pl.DataFrame
    on: np.ndarray
    start: datetime
    end: datetime


def scenario(
    *,
    minutes: float = 45,
    itl_effect: float = 0.0,
    ttft_effect: float = 0.0,
    seed: int = 0,
    start: datetime = T0,
    victim: str = "hive0",
    antagonist: str = "batch1",
    node: str = "n1",
    knee_load: float | None = None,
    antagonist_on: bool = True,
    noise: float = 0.04,
    requests_x: float = 1.0,
) -> Scenario:
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 / STEP_S)
    t = [start + timedelta(seconds=STEP_S * (i + 1)) for i in range(n)]
    # the co-tenant: random on / off blocks of 1 to 4 minutes (12 to 48 intervals)
    on = np.zeros(n)
    i, state = 0, 0
    while i < n:
        length = int(rng.integers(12, 49))
        on[i : i + length] = state
        i += length
        state = 1 - state
    if not antagonist_on:
        on[:] = 0.0
    # the victim's own load: a slow wave in the batch and in input lengths
    phase = np.arange(n) * STEP_S / 600.0 * 2 * np.pi
    running = np.clip(8 + 4 * np.sin(phase) + rng.normal(0, 0.5, n), 1, None)
    prompt_mean = np.clip(1000 + 600 * np.sin(phase / 1.7 + 1.0) + rng.normal(0, 40, n), 100, None)
    load = running * prompt_mean
    req_s = running / 2.5 * requests_x  # requests_x: shorter requests, more of them (more TTFT observations)
    gen_tok_s = running * 25 / (1 + itl_effect * on)
    itl_p50 = (20 + 0.8 * running) * (1 + itl_effect * on) * np.exp(rng.normal(0, noise, n))
    itl_p99 = (35 + 1.5 * running) * (1 + itl_effect * on) * np.exp(rng.normal(0, noise, n))
    ttft_base = 80 + 0.004 * load
    if knee_load is not None:
        ttft_base = ttft_base + 0.08 * np.maximum(0.0, load - knee_load)
    ttft_p99 = ttft_base * (1 + ttft_effect * on) * np.exp(rng.normal(0, noise, n))
    ttft_p50 = ttft_p99 / 2.0
    ttft_count = rng.poisson(req_s * STEP_S)
    serving = pl.DataFrame(
        {
            "time": t,
            "node": node,
            "group": victim,
            "engine": "vllm",
            "model": "m",
            "requests_per_s": req_s,
            "prompt_tokens_per_s": req_s * prompt_mean,
            "generation_tokens_per_s": gen_tok_s,
            "requests_running": running,
            "requests_waiting": np.zeros(n),
            "kv_cache_usage_pct": running * 4.0,
            "prompt_tokens_mean": prompt_mean,
            "ttft_ms_p50": ttft_p50,
            "ttft_ms_p90": ttft_p99 * 0.8,
            "ttft_ms_p99": ttft_p99,
            "ttft_count": ttft_count,
            "itl_ms_p50": itl_p50,
            "itl_ms_p90": itl_p99 * 0.8,
            "itl_ms_p99": itl_p99,
            "itl_count": np.round(gen_tok_s * STEP_S).astype(np.int64),
            "interval_s": np.full(n, STEP_S),
            "up": np.ones(n, dtype=bool),
            "counter_reset": np.zeros(n, dtype=bool),
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
    tenant = pl.DataFrame(
        {
            "time": t,
            "node": node,
            "group": antagonist,
            "cpu_pct": 800.0 * on + rng.uniform(0, 5, n),
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
    switches = np.flatnonzero(np.diff(np.concatenate([[0.0], on])) != 0)
    run_events = pl.DataFrame(
        {
            "time": [t[k] - timedelta(seconds=STEP_S) for k in switches],
            "node": node,
            "run_id": "stress",
            "group": antagonist,
            "phase": "stress",
            "event": ["switch_on" if on[k] else "switch_off" for k in switches],
        },
        schema={
            "time": pl.Datetime("ns", "UTC"),
            "node": pl.String,
            "run_id": pl.String,
            "group": pl.String,
            "phase": pl.String,
            "event": pl.String,
        },
    )
    return Scenario(serving, tenant, run_events, on, start, start + timedelta(minutes=minutes))
