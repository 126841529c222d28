"""Regression detection across nights: one history per (node, test, group, metric), on log scale.

Method (analysis-methods.md §3 and §6c):

- **History.** Every benchmark run's summary (the ``run_event`` ``summary`` rows the importer writes) becomes one
  value per metric; the runs of one night (a night = the 24 h from ``night_offset_h`` after midnight UTC, noon by
  default, so a run at 01:00 belongs to the evening before) are averaged on log scale into one point with its
  run-to-run spread. ``test`` names what was measured: the run's ``extra["test"]`` when the plan set it, else
  ``tool|model|c<concurrency>|<isl>/<osl>|<phase>``.
- **Noise.** ``noise`` = robust night-to-night standard deviation (1.4826 · MAD of successive differences / √2: a
  single step does not inflate it). ``min_magnitude`` = max(log(1 + ``min_effect``), ``noise_mult`` · noise).
- **Change points.** `analysis.history.changepoints.change_points` (Otava split + merge) on the log series with
  ``window_len``, ``max_pvalue`` and that ``min_magnitude``; at least two nights on each side, so a change point
  is by construction *persistent* (confirmed).
- **Same night.** Last night against the trailing stable segment (the nights since the last change point): a
  one-point t-test (prediction interval). Beyond ``min_magnitude`` in the bad direction with p < ``suspect_pvalue``
  divided by the number of histories of the node (Bonferroni over what is tested that night):
  **suspected** (warning) and a rerun is requested. **Confirmed** (critical) when a change point appears (the
  change persisted into the next night) or when the night's rerun (a later run the same night) agrees.
- **Acknowledged** change points (`Acknowledgement`, kept in a JSON file by ``neighborscope alerts ack``) do not
  re-alert: their status is ``acknowledged``.

Every function is pure (frames in, frames out) except `load_acks` / `save_acks` / `store_history`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from analysis.history.changepoints import change_points
from telemetry.errors import ConfigError

Status = Literal["ok", "suspected", "confirmed", "acknowledged", "improved", "insufficient"]

#: metrics followed by default (canonical names of `analysis.ingest.model`); ``True`` = higher is better
DEFAULT_METRICS: dict[str, bool] = {
    "output_tok_s": True,
    "total_tok_s": True,
    "requests_per_s": True,
    "ttft_ms_p99": False,
    "ttft_ms_p50": False,
    "itl_ms_p99": False,
    "tpot_ms_mean": False,
    "e2e_ms_p99": False,
}

KEY = ("node", "test", "group", "metric")

HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "node": pl.String(),
    "test": pl.String(),
    "group": pl.String(),
    "metric": pl.String(),
    "night": pl.Date(),
    "value": pl.Float64(),
    "log_value": pl.Float64(),
    "n_runs": pl.Int64(),
    "log_sd": pl.Float64(),
    "run_log_values": pl.List(pl.Float64()),
    "higher_is_better": pl.Boolean(),
}

STATUS_SCHEMA: dict[str, pl.DataType] = {
    "node": pl.String(),
    "test": pl.String(),
    "group": pl.String(),
    "metric": pl.String(),
    "night": pl.Date(),
    "status": pl.String(),
    "change_night": pl.Date(),
    "effect_pct": pl.Float64(),
    "ci_low_pct": pl.Float64(),
    "ci_high_pct": pl.Float64(),
    "p": pl.Float64(),
    "noise_pct": pl.Float64(),
    "min_magnitude_pct": pl.Float64(),
    "rerun_requested": pl.Boolean(),
    "evidence": pl.String(),
    "n_nights": pl.Int64(),
}

CHANGE_POINT_SCHEMA: dict[str, pl.DataType] = {
    "node": pl.String(),
    "test": pl.String(),
    "group": pl.String(),
    "metric": pl.String(),
    "night": pl.Date(),
    "index": pl.Int64(),
    "effect_pct": pl.Float64(),
    "ci_low_pct": pl.Float64(),
    "ci_high_pct": pl.Float64(),
    "p": pl.Float64(),
    "direction": pl.String(),
    "n_before": pl.Int64(),
    "n_after": pl.Int64(),
    "acknowledged": pl.Boolean(),
}


class RegressionConfig(BaseModel):
    """Detector settings, and alerts.toml's ``[regression]`` table (`analysis.alerts.engine.AlertsConfig`).
    ``min_effect`` is the practical threshold δ (a fraction: 0.03 = 3 %)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_len: int = 30
    max_pvalue: float = 0.001
    suspect_pvalue: float = 0.001
    family_correction: bool = True
    min_effect: float = 0.03
    noise_mult: float = 2.0
    min_history: int = 5
    night_offset_h: float = 12.0
    metrics: dict[str, bool] = Field(default_factory=lambda: dict(DEFAULT_METRICS))
    scale: Literal["log", "linear"] = "log"
    min_segment: int = 3


@dataclass(frozen=True)
class Acknowledgement:
    """A change point a human has triaged: it does not alert again. ``night`` is the change point's night."""

    test: str
    group: str
    metric: str
    night: date
    node: str = ""
    by: str = ""
    comment: str = ""

    def matches(self, node: str, test: str, group: str, metric: str, night: date | None) -> bool:
        return (
            night is not None
            and (not self.node or self.node == node)
            and (self.test in ("*", test))
            and (self.group in ("*", group))
            and (self.metric in ("*", metric))
            and abs((self.night - night).days) <= 1
        )


# ---------------------------------------------------------------------------------------------------------------
# Runs -> nightly history


def bench_test_name(meta: Mapping[str, Any]) -> str:
    """What a run measured: ``extra["test"]`` when set, else ``tool|model|c<concurrency>|<isl>/<osl>|<phase>``."""
    extra = meta.get("extra") or {}
    if isinstance(extra, Mapping) and extra.get("test"):
        return str(extra["test"])
    parts = [
        str(meta.get("tool") or "?"),
        str(meta.get("model") or "?"),
        f"c{meta.get('concurrency')}" if meta.get("concurrency") is not None else "c?",
        f"{meta.get('isl') or '?'}/{meta.get('osl') or '?'}",
        str(meta.get("phase") or ""),
    ]
    return "|".join(parts)


def run_metrics(run_events: pl.DataFrame, metrics: Iterable[str] | None = None) -> pl.DataFrame:
    """Long frame of run summary metrics: ``time, node, group, phase, test, run_id, metric, value``.

    ``run_events``: rows of the ``run_event`` measurement; only ``event == "summary"`` rows with a
    ``metadata_json`` (`analysis.ingest.model.Run.to_json`) are read. Non-positive values are dropped (log scale).
    """
    wanted = list(metrics) if metrics is not None else list(DEFAULT_METRICS)
    rows: list[dict[str, Any]] = []
    if run_events.height:
        summ = run_events.filter(pl.col("event") == "summary") if "event" in run_events.columns else run_events
        for t, node, group, text in summ.select("time", "node", "group", "metadata_json").iter_rows():
            if not text:
                continue
            try:
                meta = json.loads(text)
            except json.JSONDecodeError:
                continue
            summary = meta.get("summary") or {}
            test = bench_test_name(meta)
            for m in wanted:
                v = summary.get(m)
                if v is None or not math.isfinite(float(v)) or float(v) <= 0:
                    continue
                rows.append(
                    {
                        "time": t,
                        "node": meta.get("node") or node or "",
                        "group": meta.get("group") or group or "",
                        "phase": meta.get("phase") or "",
                        "test": test,
                        "run_id": meta.get("run_id") or "",
                        "metric": m,
                        "value": float(v),
                    }
                )
    schema = {
        "time": pl.Datetime("ns", "UTC"), "node": pl.String(), "group": pl.String(), "phase": pl.String(),
        "test": pl.String(), "run_id": pl.String(), "metric": pl.String(), "value": pl.Float64(),
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def night_of(times: pl.Expr, night_offset_h: float = 12.0) -> pl.Expr:
    """The night a timestamp belongs to: its date after subtracting ``night_offset_h`` hours (UTC)."""
    return (times - pl.duration(seconds=int(night_offset_h * 3600))).dt.date()


def nightly_history(runs: pl.DataFrame, config: RegressionConfig | None = None) -> pl.DataFrame:
    """One point per (node, test, group, metric, night) from `run_metrics` output (columns: `HISTORY_SCHEMA`).

    ``value`` is the geometric mean of the night's runs (arithmetic on ``scale="linear"``), ``run_log_values`` the
    night's runs on the detector scale in time order (the first is the scheduled run, later ones are reruns).
    """
    cfg = config or RegressionConfig()
    if runs.height == 0:
        return pl.DataFrame(schema=HISTORY_SCHEMA)
    log = cfg.scale == "log"
    v = pl.col("value").log() if log else pl.col("value")
    hib = pl.col("metric").replace_strict(dict(cfg.metrics), default=True, return_dtype=pl.Boolean)
    out = (
        runs.sort("time")
        .with_columns(night_of(pl.col("time"), cfg.night_offset_h).alias("night"), v.alias("_x"))
        .group_by([*KEY, "night"], maintain_order=True)
        .agg(
            pl.col("_x").mean().alias("log_value"),
            pl.len().cast(pl.Int64).alias("n_runs"),
            pl.col("_x").std().alias("log_sd"),
            pl.col("_x").alias("run_log_values"),
        )
        .with_columns(
            (pl.col("log_value").exp() if log else pl.col("log_value")).alias("value"),
            hib.alias("higher_is_better"),
        )
        .sort([*KEY, "night"])
    )
    return out.select(list(HISTORY_SCHEMA)).cast(HISTORY_SCHEMA)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# One series


@dataclass(frozen=True)
class SeriesVerdict:
    """The state of one series as of its last point. Effects are on the detector scale (log or linear)."""

    status: Status
    change_index: int | None = None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    noise: float | None = None
    min_magnitude: float | None = None
    rerun_requested: bool = False
    evidence: str = ""


def series_noise(x: np.ndarray) -> float:
    """Robust night-to-night standard deviation: 1.4826 · MAD(diff) / √2 (a step shift does not inflate it)."""
    if len(x) < 3:
        return float("nan")
    d = np.diff(x)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def _bad(magnitude: float, higher_is_better: bool) -> bool:
    return magnitude < 0 if higher_is_better else magnitude > 0


def shift_pvalue(base: np.ndarray, new: np.ndarray) -> float:
    """Two-sided p of "the ``new`` points come from the level of ``base``", with ``base``'s variance (a prediction
    test: t = diff / (s_base · sqrt(1/m + 1/n)), df = n - 1). Fit for 1-3 new points, where Welch has no df."""
    nb, m = len(base), len(new)
    if nb < 2 or m < 1:
        return 1.0
    s2 = float(np.var(base, ddof=1))
    diff = float(np.mean(new) - np.mean(base))
    if s2 <= 0:
        return 0.0 if abs(diff) > 1e-15 else 1.0
    t = diff / math.sqrt(s2 * (1.0 / m + 1.0 / nb))
    return float(2.0 * stats.t.sf(abs(t), nb - 1))


def _shift_ci(base: np.ndarray, new: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    nb, m = len(base), len(new)
    diff = float(np.mean(new) - np.mean(base))
    if nb < 2:
        return diff, diff
    half = float(stats.t.ppf(0.5 + level / 2, nb - 1)) * math.sqrt(float(np.var(base, ddof=1)) * (1 / m + 1 / nb))
    return diff - half, diff + half


def _welch_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    diff = float(np.mean(b) - np.mean(a))
    if len(a) < 2:
        return diff, diff
    va = float(np.var(a, ddof=1))
    if len(b) < 2:
        se2, df = va * (1 + 1 / len(a)), len(a) - 1
    else:
        vb = float(np.var(b, ddof=1))
        se2 = va / len(a) + vb / len(b)
        den = (va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1)
        df = se2**2 / den if den > 0 else len(a) + len(b) - 2
    half = float(stats.t.ppf(0.5 + level / 2, df) * math.sqrt(se2)) if se2 > 0 else 0.0
    return diff - half, diff + half


def assess_series(
    x: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool,
    min_magnitude_floor: float,
    config: RegressionConfig | None = None,
    runs_last: Sequence[float] | None = None,
    acknowledged: Sequence[int] = (),
    family_size: int = 1,
) -> SeriesVerdict:
    """The verdict on series ``x`` (detector scale) as of its last point; see the module docstring.

    ``family_size``: how many series are tested together the same night (the histories of a node): the same-night
    threshold is ``suspect_pvalue / family_size`` (Bonferroni), so a node with many metrics or devices does not
    raise a chance 3.5-sigma night every few weeks.

    ``min_magnitude_floor`` is the practical threshold on the detector scale (log(1 + δ) for log histories);
    ``runs_last`` the last night's individual runs (first = scheduled run, later = reruns); ``acknowledged`` the
    indices of change points a human acknowledged.
    """
    cfg = config or RegressionConfig()
    suspect_p = cfg.suspect_pvalue / max(1, family_size)
    arr = np.asarray(x, dtype=np.float64)
    n = len(arr)
    if n < cfg.min_history:
        return SeriesVerdict("insufficient", evidence=f"{n} night(s) < min_history {cfg.min_history}")
    noise = series_noise(arr)
    min_mag = max(min_magnitude_floor, cfg.noise_mult * noise) if math.isfinite(noise) else min_magnitude_floor
    cps = change_points(
        arr, window_len=cfg.window_len, max_pvalue=cfg.max_pvalue, min_magnitude=min_mag, min_size=cfg.min_segment
    )
    last_cp = cps[-1] if cps else None
    acked = set(acknowledged)

    def _ack(i: int) -> bool:
        return any(abs(a - i) <= 1 for a in acked)

    # persistence: a suspected night followed by one that moved the same way (m = 2), or three nights that all
    # moved the same bad way (m = 3), against the stable segment before them
    for m in (3, 2):
        base_start = max([c.index for c in cps if c.index <= n - m - 3], default=0)
        base, new = arr[base_start : n - m], arr[n - m :]
        if len(base) < 3:
            continue
        dev = new - np.mean(base)
        if not all(abs(d) >= min_mag and _bad(float(d), higher_is_better) for d in dev):
            continue
        p = shift_pvalue(base, new)
        first_p = shift_pvalue(base, new[:1])
        if (m == 3 and p < cfg.max_pvalue) or (m == 2 and first_p < suspect_p):
            lo, hi = _shift_ci(base, new)
            mag = float(np.mean(dev))
            if _ack(n - m):
                return SeriesVerdict(
                    "acknowledged", n - m, mag, lo, hi, p, noise, min_mag, evidence="change acknowledged"
                )
            why = (
                f"the last {m} nights all moved (t-test against the {len(base)} before, p={p:.2g})"
                if m == 3
                else f"suspected night (p={first_p:.2g}) and the next night moved the same way"
            )
            return SeriesVerdict("confirmed", n - m, mag, lo, hi, p, noise, min_mag, False, why)
    # same night: last point against the trailing stable segment
    start = max([c.index for c in cps if c.index <= n - 4], default=0)
    seg = arr[start : n - 1]
    if len(seg) >= 3:
        p = shift_pvalue(seg, arr[n - 1 :])
        mag = float(arr[-1] - np.mean(seg))
        if p < suspect_p and abs(mag) >= min_mag and _bad(mag, higher_is_better) and not _ack(n - 1):
            lo, hi = _shift_ci(seg, arr[n - 1 :])
            reruns = np.asarray(runs_last[1:] if runs_last is not None else [], dtype=np.float64)
            if len(reruns):
                rp = shift_pvalue(seg, reruns)
                rmag = float(np.mean(reruns) - np.mean(seg))
                if rp < suspect_p and abs(rmag) >= min_mag and _bad(rmag, higher_is_better):
                    return SeriesVerdict(
                        "confirmed",
                        n - 1,
                        mag,
                        lo,
                        hi,
                        p,
                        noise,
                        min_mag,
                        False,
                        f"last night and its rerun both moved (rerun p={rp:.2g})",
                    )
                return SeriesVerdict(
                    "suspected",
                    n - 1,
                    mag,
                    lo,
                    hi,
                    p,
                    noise,
                    min_mag,
                    False,
                    f"last night moved but its rerun did not (rerun p={rp:.2g})",
                )
            return SeriesVerdict(
                "suspected",
                n - 1,
                mag,
                lo,
                hi,
                p,
                noise,
                min_mag,
                True,
                f"last night vs the {len(seg)} nights before (one-point t-test, p={p:.2g})",
            )
    if last_cp is None:
        return SeriesVerdict("ok", None, None, None, None, None, noise, min_mag)
    lo_i = cps[-2].index if len(cps) > 1 else 0
    lo, hi = _welch_ci(arr[lo_i : last_cp.index], arr[last_cp.index :])
    if not _bad(last_cp.magnitude, higher_is_better):
        return SeriesVerdict("improved", last_cp.index, last_cp.magnitude, lo, hi, last_cp.pvalue, noise, min_mag)
    if _ack(last_cp.index):
        return SeriesVerdict(
            "acknowledged",
            last_cp.index,
            last_cp.magnitude,
            lo,
            hi,
            last_cp.pvalue,
            noise,
            min_mag,
            evidence="change point acknowledged",
        )
    return SeriesVerdict(
        "confirmed",
        last_cp.index,
        last_cp.magnitude,
        lo,
        hi,
        last_cp.pvalue,
        noise,
        min_mag,
        evidence=f"change point persisted {last_cp.n_after} nights (t-test p={last_cp.pvalue:.2g})",
    )


# ---------------------------------------------------------------------------------------------------------------
# Histories -> frames for the report / alerts


def _pct(v: float | None, log: bool) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return (math.exp(v) - 1.0) * 100.0 if log else v


def _floor(cfg: RegressionConfig) -> float:
    return math.log1p(cfg.min_effect) if cfg.scale == "log" else cfg.min_effect


def _acked_indices(acks: Sequence[Acknowledgement], key: tuple[str, ...], nights: Sequence[date]) -> list[int]:
    node, test, group, metric = key
    return [i for i, nt in enumerate(nights) for a in acks if a.matches(node, test, group, metric, nt)]


def _verdict_row(key: tuple[str, ...], nights: list[date], v: SeriesVerdict, log: bool) -> dict[str, Any]:
    node, test, group, metric = key
    return {
        "node": node, "test": test, "group": group, "metric": metric, "night": nights[-1], "status": v.status,
        "change_night": nights[v.change_index] if v.change_index is not None else None,
        "effect_pct": _pct(v.effect, log), "ci_low_pct": _pct(v.ci_low, log), "ci_high_pct": _pct(v.ci_high, log),
        "p": v.p, "noise_pct": _pct(v.noise, log) if v.noise is not None else None,
        "min_magnitude_pct": _pct(v.min_magnitude, log), "rerun_requested": v.rerun_requested,
        "evidence": v.evidence, "n_nights": len(nights),
    }  # fmt: skip


def _family_sizes(history: pl.DataFrame, cfg: RegressionConfig) -> dict[str, int]:
    """Histories per node (the same-night Bonferroni family); 1 each when ``family_correction`` is off."""
    if history.height == 0:
        return {}
    counts = history.group_by("node").agg(pl.struct(["test", "group", "metric"]).n_unique().alias("n"))
    return {node: (int(n) if cfg.family_correction else 1) for node, n in counts.iter_rows()}


def regression_status(
    history: pl.DataFrame,
    config: RegressionConfig | None = None,
    acks: Sequence[Acknowledgement] = (),
    as_of: date | None = None,
) -> pl.DataFrame:
    """One row per (node, test, group, metric): its status as of its last night (or ``as_of``); `STATUS_SCHEMA`.

    ``effect_pct`` / ``ci_*_pct`` are percent changes for log histories (-7.0 = 7 % lower), raw differences for
    linear ones. Only ``suspected`` and ``confirmed`` rows alert.
    """
    cfg = config or RegressionConfig()
    log = cfg.scale == "log"
    rows: list[dict[str, Any]] = []
    h = history if as_of is None else history.filter(pl.col("night") <= as_of)
    family = _family_sizes(h, cfg)
    for key, part in h.sort("night").group_by(list(KEY), maintain_order=True):
        nights = part["night"].to_list()
        x = part["log_value"].to_numpy()
        v = assess_series(x, higher_is_better=bool(part["higher_is_better"][0]), min_magnitude_floor=_floor(cfg),
                          config=cfg, runs_last=part["run_log_values"][-1].to_list(),
                          acknowledged=_acked_indices(acks, tuple(key), nights), family_size=family[key[0]])  # fmt: skip
        rows.append(_verdict_row(tuple(key), nights, v, log))
    return pl.DataFrame(rows, schema=STATUS_SCHEMA)


def regression_backtest(
    history: pl.DataFrame, config: RegressionConfig | None = None, acks: Sequence[Acknowledgement] = ()
) -> pl.DataFrame:
    """`regression_status` as it would have been on every night (one row per key per night): when was it seen."""
    cfg = config or RegressionConfig()
    log = cfg.scale == "log"
    rows: list[dict[str, Any]] = []
    family = _family_sizes(history, cfg)
    for key, part in history.sort("night").group_by(list(KEY), maintain_order=True):
        nights = part["night"].to_list()
        x = part["log_value"].to_numpy()
        runs = part["run_log_values"].to_list()
        hib = bool(part["higher_is_better"][0])
        acked = _acked_indices(acks, tuple(key), nights)
        for k in range(len(nights)):
            v = assess_series(x[: k + 1], higher_is_better=hib, min_magnitude_floor=_floor(cfg), config=cfg,
                              runs_last=runs[k], acknowledged=[a for a in acked if a <= k],
                              family_size=family[key[0]])  # fmt: skip
            rows.append(_verdict_row(tuple(key), nights[: k + 1], v, log))
    return pl.DataFrame(rows, schema=STATUS_SCHEMA)


def change_point_frame(
    history: pl.DataFrame, config: RegressionConfig | None = None, acks: Sequence[Acknowledgement] = ()
) -> pl.DataFrame:
    """Every change point of every history (`CHANGE_POINT_SCHEMA`): the night the new level starts, its effect
    with a 95 % CI, p, direction (``regression`` / ``improvement``) and whether it was acknowledged."""
    cfg = config or RegressionConfig()
    log = cfg.scale == "log"
    rows: list[dict[str, Any]] = []
    for key, part in history.sort("night").group_by(list(KEY), maintain_order=True):
        nights = part["night"].to_list()
        x = part["log_value"].to_numpy()
        if len(x) < cfg.min_history:
            continue
        noise = series_noise(x)
        min_mag = max(_floor(cfg), cfg.noise_mult * noise) if math.isfinite(noise) else _floor(cfg)
        cps = change_points(
            x, window_len=cfg.window_len, max_pvalue=cfg.max_pvalue, min_magnitude=min_mag, min_size=cfg.min_segment
        )
        bounds = [0, *(c.index for c in cps), len(x)]
        hib = bool(part["higher_is_better"][0])
        node, test, group, metric = key
        for i, cp in enumerate(cps):
            lo, hi = _welch_ci(x[bounds[i] : cp.index], x[cp.index : bounds[i + 2]])
            rows.append({
                "node": node, "test": test, "group": group, "metric": metric, "night": nights[cp.index],
                "index": cp.index, "effect_pct": _pct(cp.magnitude, log), "ci_low_pct": _pct(lo, log),
                "ci_high_pct": _pct(hi, log), "p": cp.pvalue,
                "direction": "regression" if _bad(cp.magnitude, hib) else "improvement",
                "n_before": cp.n_before, "n_after": cp.n_after,
                "acknowledged": any(a.matches(node, test, group, metric, nights[cp.index]) for a in acks),
            })  # fmt: skip
    return pl.DataFrame(rows, schema=CHANGE_POINT_SCHEMA)


def first_detections(backtest: pl.DataFrame, statuses: Sequence[str] = ("suspected", "confirmed")) -> pl.DataFrame:
    """First night each (key, status) was raised in a `regression_backtest`: columns key, status, night."""
    return (
        backtest.filter(pl.col("status").is_in(list(statuses)))
        .group_by([*KEY, "status"])
        .agg(pl.col("night").min())
        .sort([*KEY, "night"])
    )


# ---------------------------------------------------------------------------------------------------------------
# I/O: acknowledgements and the store


def load_acks(path: Path | str) -> list[Acknowledgement]:
    """Acknowledgements from a JSON file (a list of objects with test, group, metric, night[, node, by, comment])."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        raw = json.loads(p.read_text())
        return [Acknowledgement(**{**a, "night": date.fromisoformat(a["night"])}) for a in raw]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{p}: not a list of acknowledgements (test, group, metric, night): {exc}") from None


def save_acks(path: Path | str, acks: Sequence[Acknowledgement]) -> None:
    """Write acknowledgements atomically (temp file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps([{**asdict(a), "night": a.night.isoformat()} for a in acks], indent=2) + "\n")
    os.replace(tmp, p)


def store_history(
    store: Any, config: RegressionConfig | None = None, days: int = 90, now: datetime | None = None
) -> pl.DataFrame:
    """`nightly_history` of the runs the store holds for the last ``days`` days."""
    cfg = config or RegressionConfig()
    end = now or datetime.now(UTC)
    ev = store.query(
        "run_event", start=end - timedelta(days=days), end=end + timedelta(minutes=1), tags={"event": "summary"}
    )
    return nightly_history(run_metrics(ev, cfg.metrics), cfg)
