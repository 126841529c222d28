"""A seeded many-night history of one node, for the regression / thermal detectors and their acceptance test.

Not the node simulator (`telemetry.sim`, one session at 1 Hz): this writes what the nightly detectors read,
for any number of nights, fast. Each night (at ``run_hour`` UTC) one benchmark run (``runs_per_night``; extra runs
are reruns two hours later) stores a ``run_event`` summary row in the importer's form (`analysis.ingest.model.Run`
JSON), and every device writes ``accel`` rows every ``sample_s`` seconds for the hour of the run:

- throughput metrics ``output_tok_s`` / ``total_tok_s`` / ``requests_per_s`` and latencies ``tpot_ms_mean`` /
  ``itl_ms_p99`` / ``ttft_ms_p99`` with log-normal run-to-run noise (``noise_pct``; TTFT p99 ×3);
- from ``regression_night`` on, throughput × (1 - ``regression_pct`` / 100) and the decode latencies ÷ that;
- temperature = inlet (24 °C ± 0.7 per night, not measured) + r · power + 0.002 °C/W · neighbours' power + noise,
  r ≈ 0.08 °C/W per device (± 2 % per night); from ``thermal_night`` on, ``thermal_device`` gets
  r + ``thermal_c_per_w``.

`write_history` puts it into a store. Ground truth is what the arguments say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from analysis.ingest.model import Run, run_event_frame
from telemetry.schema import conform


@dataclass(frozen=True)
class HistorySpec:
    """What to simulate (defaults: the acceptance scenario without injections, i.e. an A/A history)."""

    nights: int = 30
    seed: int = 0
    first_night: date = date(2026, 10, 1)
    node: str = "sim0"
    devices: int = 8
    run_hour: int = 1
    runs_per_night: int = 1
    noise_pct: float = 1.0
    regression_night: int | None = None
    regression_pct: float = 7.0
    thermal_night: int | None = None
    thermal_device: str = "gpu3"
    thermal_c_per_w: float = 0.02
    sample_s: int = 10
    run_s: int = 3600


def _summary(rng: np.random.Generator, factor: float, noise: float) -> dict[str, float]:
    def ln(base: float, scale: float = 1.0) -> float:
        return float(base * np.exp(rng.normal(0, noise * scale)))

    out_tok = ln(5200.0 * factor)
    return {
        "output_tok_s": out_tok,
        "total_tok_s": out_tok * 5.0 * float(np.exp(rng.normal(0, noise * 0.3))),
        "requests_per_s": ln(20.3 * factor),
        "tpot_ms_mean": ln(24.0 / factor),
        "itl_ms_p99": ln(61.0 / factor, 1.5),
        "ttft_ms_p99": ln(850.0, 3.0),
        "completed": 640.0,
        "failed": 0.0,
        "duration_s": 3600.0,
    }


def simulate_history(spec: HistorySpec | None = None) -> dict[str, pl.DataFrame]:
    """``{"run_event": ..., "accel": ...}`` frames of the whole history (schema form)."""
    s = spec or HistorySpec()
    rng = np.random.default_rng([s.seed, 0x4E17])
    devices = [f"gpu{i}" for i in range(s.devices)]
    r_dev = 0.08 + rng.normal(0, 0.004, s.devices)
    runs: list[pl.DataFrame] = []
    accel: list[pl.DataFrame] = []
    n_samples = s.run_s // s.sample_s
    for k in range(s.nights):
        night = s.first_night + timedelta(days=k)
        t0 = datetime(night.year, night.month, night.day, tzinfo=UTC) + timedelta(days=1, hours=s.run_hour)
        factor = 1.0 - s.regression_pct / 100.0 if s.regression_night is not None and k >= s.regression_night else 1.0
        for j in range(s.runs_per_night):
            start = t0 + timedelta(hours=2 * j)
            run = Run(run_id=f"nightly-{night.isoformat()}-{j}", tool="vllm", source="history_sim",
                      summary=_summary(rng, factor, s.noise_pct / 100.0), start=start,
                      end=start + timedelta(seconds=s.run_s), timing="summary_only", node=s.node, group="hive0",
                      phase="baseline", model="sim-model", concurrency=16, isl=1024, osl=256)  # fmt: skip
            runs.append(run_event_frame(run))
        # telemetry of the night's (first) run
        times = [t0 + timedelta(seconds=s.sample_s * i) for i in range(n_samples)]
        x = np.linspace(0, 1, n_samples)
        load = np.clip(0.55 + 0.35 * np.sin(2 * np.pi * (x * rng.uniform(1.5, 3.0) + rng.uniform())), 0.05, 1.0)
        power = 120.0 + 480.0 * load[None, :] * rng.uniform(0.85, 1.0, (s.devices, 1))
        power = power + rng.normal(0, 8.0, power.shape)
        inlet = 24.0 + rng.normal(0, 0.7)
        r = r_dev * (1 + rng.normal(0, 0.02, s.devices))
        if s.thermal_night is not None and k >= s.thermal_night and s.thermal_device in devices:
            r[devices.index(s.thermal_device)] += s.thermal_c_per_w
        neighbours = power.sum(axis=0)[None, :] - power
        temp = inlet + r[:, None] * power + 0.002 * neighbours + rng.normal(0, 0.5, power.shape)
        accel.append(pl.DataFrame({
            "time": times * s.devices,
            "node": [s.node] * (s.devices * n_samples),
            "device": np.repeat(devices, n_samples),
            "vendor": ["nvidia"] * (s.devices * n_samples),
            "model": ["H100"] * (s.devices * n_samples),
            "group": np.repeat(["hive0" if i < s.devices // 2 else "hive1" for i in range(s.devices)], n_samples),
            "temp_c": temp.ravel(),
            "power_w": power.ravel(),
            "throttle_thermal": (temp > 87.0).ravel(),
            "throttle_power": np.zeros(power.size, dtype=bool),
        }))  # fmt: skip
    return {"run_event": pl.concat(runs), "accel": conform(pl.concat(accel), "accel")}


def write_history(store: Any, spec: HistorySpec | None = None) -> dict[str, int]:
    """Simulate and write into ``store``; returns rows per measurement."""
    frames = simulate_history(spec)
    return {name: store.write(name, frame) for name, frame in frames.items()}


def night_start(spec: HistorySpec, k: int) -> datetime:
    """When night ``k``'s first run starts (UTC)."""
    night = spec.first_night + timedelta(days=k)
    return datetime(night.year, night.month, night.day, tzinfo=UTC) + timedelta(days=1, hours=spec.run_hour)
