"""Thermal regressions: a per-device temperature model, its change points, peer outliers and throttling.

Method (analysis-methods.md §6c):

- **Model.** Per device and period (a night, or any window): ordinary least squares
  ``temp_c ≈ a + b · power_w (+ c · inlet_c) (+ d · neighbour_power_w)``. ``b`` is the device's thermal
  resistance in °C/W; ``inlet_c`` enters where the frame has it (a column joined from an inlet sensor) and
  ``neighbour_power_w`` (the other devices of the node at the same tick) where the node has several devices and it
  varies. A covariate that does not vary in the period is left out (the intercept absorbs it).
- **Residual.** Each night's mean of ``temp_c`` minus a *reference* model (the median coefficients of the device's
  first ``reference_nights`` nights): a device that runs hotter at the same power, inlet and neighbours.
- **Change points.** `analysis.history.regression.assess_series` (Otava split + merge, same-night check with a Bonferroni
  family of the node's devices × 2 metrics) on the nightly °C/W and on the residual, on linear scale, with floors
  ``min_c_per_w`` and ``min_residual_c``.
- **Peers.** Among devices of the same model on a node, the robust z (0.6745 · (x - median) / MAD) of each night's
  °C/W; |z| > ``peer_z`` is an outlier.
- **Throttling.** Fraction of samples with ``throttle_thermal`` (and ``throttle_power``) set.

`thermal_profile` is the per-node table of seed 002 (average and range of temperature, average power per device and
in total, CPU peak, CPU utilisation peak, thermal throttling, and a COOL / OK / WARM / HOT status with a plain-words
reason against `ThermalLimits`); `device_thermal_profile` the same per accelerator. The nightly report
(`analysis.report`) shows both as they are.

All functions are pure: frames (the ``accel`` measurement, optionally ``host``) in, frames out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from analysis.history.changepoints import robust_z
from analysis.history.regression import RegressionConfig, assess_series, change_points, night_of, series_noise

DEVICE_KEY = ("node", "device", "model")

FIT_SCHEMA: dict[str, pl.DataType] = {
    "node": pl.String(),
    "device": pl.String(),
    "model": pl.String(),
    "night": pl.Date(),
    "n": pl.Int64(),
    "a_c": pl.Float64(),
    "c_per_w": pl.Float64(),
    "inlet_coef": pl.Float64(),
    "neighbour_c_per_kw": pl.Float64(),
    "r2": pl.Float64(),
    "resid_sd_c": pl.Float64(),
    "temp_mean_c": pl.Float64(),
    "power_mean_w": pl.Float64(),
    "inlet_mean_c": pl.Float64(),
    "neighbour_power_mean_kw": pl.Float64(),
    "throttled_thermal_frac": pl.Float64(),
    "throttled_power_frac": pl.Float64(),
}

FINDING_SCHEMA: dict[str, pl.DataType] = {
    "node": pl.String(),
    "device": pl.String(),
    "model": pl.String(),
    "night": pl.Date(),
    "metric": pl.String(),
    "status": pl.String(),
    "change_night": pl.Date(),
    "effect": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "p": pl.Float64(),
    "value": pl.Float64(),
    "noise": pl.Float64(),
    "peer_z": pl.Float64(),
    "throttled_thermal_frac": pl.Float64(),
    "rerun_requested": pl.Boolean(),
    "evidence": pl.String(),
}

PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "node": pl.String(),
    "devices": pl.Int64(),
    "gpu_avg_c": pl.Float64(),
    "gpu_min_c": pl.Float64(),
    "gpu_max_c": pl.Float64(),
    "power_avg_w": pl.Float64(),
    "power_total_avg_w": pl.Float64(),
    "cpu_peak_c": pl.Float64(),
    "cpu_util_peak_pct": pl.Float64(),
    "throttle_thermal_s": pl.Float64(),
    "throttled_thermal_frac": pl.Float64(),
    "status": pl.String(),
    "reason": pl.String(),
}

DEVICE_PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "node": pl.String(),
    "device": pl.String(),
    "group": pl.String(),
    "model": pl.String(),
    "gpu_avg_c": pl.Float64(),
    "gpu_min_c": pl.Float64(),
    "gpu_max_c": pl.Float64(),
    "power_avg_w": pl.Float64(),
    "throttle_thermal_s": pl.Float64(),
    "throttled_thermal_frac": pl.Float64(),
    "status": pl.String(),
    "reason": pl.String(),
}


@dataclass(frozen=True)
class ThermalConfig:
    """Thermal detector settings: floors in °C/W and °C; ``reference_nights`` for the residual model."""

    min_c_per_w: float = 0.01
    min_residual_c: float = 3.0
    peer_z: float = 3.5
    reference_nights: int = 7
    night_offset_h: float = 12.0
    max_pvalue: float = 0.001
    suspect_pvalue: float = 0.001
    noise_mult: float = 2.0
    window_len: int = 30
    min_history: int = 5
    min_power_spread_w: float = 20.0

    def regression_config(self) -> RegressionConfig:
        return RegressionConfig(
            window_len=self.window_len, max_pvalue=self.max_pvalue, suspect_pvalue=self.suspect_pvalue,
            noise_mult=self.noise_mult, min_history=self.min_history, night_offset_h=self.night_offset_h,
            scale="linear",
        )  # fmt: skip


@dataclass(frozen=True)
class ThermalLimits:
    """Status limits of `thermal_profile` / `device_thermal_profile` (°C): a peak at or above a limit trips it (the
    accelerators' peak is the hottest 1-minute device mean, the CPU's the hottest ``host.cpu_temp_c`` reading).
    COOL: no limit tripped and the accelerators' average below ``gpu_cool_below_c``. Seed 002: a 95 °C CPU peak
    is WARM, 90 °C is OK. A node's status is the worse of its accelerators' and its CPU's."""

    gpu_cool_below_c: float = 70.0
    gpu_warm_c: float = 80.0
    gpu_hot_c: float = 88.0
    cpu_warm_c: float = 95.0
    cpu_hot_c: float = 100.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# Fits


def with_neighbour_power(accel: pl.DataFrame) -> pl.DataFrame:
    """Add ``neighbour_power_w``: the summed ``power_w`` of the node's other devices at the same tick."""
    total = pl.col("power_w").fill_null(0.0).sum().over(["node", "time"])
    return accel.with_columns((total - pl.col("power_w").fill_null(0.0)).alias("neighbour_power_w"))


def _ols(temp: np.ndarray, cols: dict[str, np.ndarray]) -> tuple[dict[str, float], float, float]:
    names = list(cols)
    x = np.column_stack([np.ones(len(temp)), *(cols[c] for c in names)])
    coef, *_ = np.linalg.lstsq(x, temp, rcond=None)
    resid = temp - x @ coef
    ss_tot = float(np.sum((temp - temp.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    sd = float(np.std(resid, ddof=min(len(temp) - 1, x.shape[1]))) if len(temp) > x.shape[1] else float("nan")
    return {"a_c": float(coef[0]), **{c: float(v) for c, v in zip(names, coef[1:], strict=True)}}, r2, sd


def _design(part: pl.DataFrame, min_power_spread_w: float) -> dict[str, np.ndarray] | None:
    p = part["power_w"].to_numpy()
    if len(p) < 5 or np.ptp(p) < min_power_spread_w:
        return None
    cols = {"c_per_w": p}
    if "inlet_c" in part.columns:
        inlet = part["inlet_c"].to_numpy()
        if np.all(np.isfinite(inlet)) and np.ptp(inlet) > 0.5:
            cols["inlet_coef"] = inlet
    if "neighbour_power_w" in part.columns:
        nb = part["neighbour_power_w"].to_numpy()
        if np.ptp(nb) >= min_power_spread_w and abs(np.corrcoef(nb, p)[0, 1]) < 0.9:
            cols["neighbour_c_per_kw"] = nb / 1000.0
    return cols


def thermal_fits(accel: pl.DataFrame, config: ThermalConfig | None = None) -> pl.DataFrame:
    """Per (node, device, model, night): the model fit (`FIT_SCHEMA`) and the night's throttled fractions.

    ``accel`` needs ``time, node, device, model, temp_c, power_w``; ``inlet_c`` and ``throttle_*`` are used when
    present. A night whose power barely varied (< ``min_power_spread_w``) gets null coefficients.
    """
    cfg = config or ThermalConfig()
    if accel.height == 0:
        return pl.DataFrame(schema=FIT_SCHEMA)
    frame = with_neighbour_power(accel.filter(pl.col("temp_c").is_not_null() & pl.col("power_w").is_not_null()))
    frame = frame.with_columns(night_of(pl.col("time"), cfg.night_offset_h).alias("night"))
    for c in ("throttle_thermal", "throttle_power"):
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Boolean).alias(c))
    rows: list[dict[str, Any]] = []
    for (node, device, model, night), part in frame.sort("time").group_by([*DEVICE_KEY, "night"], maintain_order=True):
        temp = part["temp_c"].to_numpy()
        row: dict[str, Any] = {
            "node": node, "device": device, "model": model, "night": night, "n": part.height,
            "temp_mean_c": float(temp.mean()), "power_mean_w": float(part["power_w"].mean()),  # type: ignore[arg-type]
            "throttled_thermal_frac": part["throttle_thermal"].cast(pl.Float64).mean(),
            "throttled_power_frac": part["throttle_power"].cast(pl.Float64).mean(),
            "inlet_mean_c": part["inlet_c"].mean() if "inlet_c" in part.columns else None,
            "neighbour_power_mean_kw": part["neighbour_power_w"].mean() / 1000.0,  # type: ignore[operator]
        }  # fmt: skip
        cols = _design(part, cfg.min_power_spread_w)
        if cols is not None:
            coef, r2, sd = _ols(temp, cols)
            row.update(coef, r2=r2, resid_sd_c=sd)
        rows.append(row)
    return pl.DataFrame(rows, schema=FIT_SCHEMA).sort([*DEVICE_KEY, "night"])


def nightly_residuals(fits: pl.DataFrame, config: ThermalConfig | None = None) -> pl.DataFrame:
    """Per (node, device, model, night): ``residual_c`` = the night's mean temperature minus a *reference* model's
    prediction at the night's mean power (and inlet / neighbour power where fitted). The reference coefficients are
    the medians of the device's per-night fits over its first ``reference_nights`` nights (the model is linear, so
    the mean residual needs only the night's means: computed from `thermal_fits` alone)."""
    cfg = config or ThermalConfig()
    schema = {"node": pl.String(), "device": pl.String(), "model": pl.String(), "night": pl.Date(),
              "residual_c": pl.Float64()}  # fmt: skip
    f = fits.filter(pl.col("c_per_w").is_not_null())
    if f.height == 0:
        return pl.DataFrame(schema=schema)
    parts = []
    for _, part in f.sort("night").group_by(list(DEVICE_KEY), maintain_order=True):
        ref = part.head(cfg.reference_nights)
        pred = pl.lit(ref["a_c"].median()) + pl.lit(ref["c_per_w"].median()) * pl.col("power_mean_w")
        for coef, mean in (("inlet_coef", "inlet_mean_c"), ("neighbour_c_per_kw", "neighbour_power_mean_kw")):
            if ref[coef].null_count() == 0:
                pred = pred + pl.lit(ref[coef].median()) * pl.col(mean).fill_null(pl.col(mean).mean())
        parts.append(part.select(*DEVICE_KEY, "night", (pl.col("temp_mean_c") - pred).alias("residual_c")))
    return pl.concat(parts).cast(schema)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Findings


def peer_outliers(fits: pl.DataFrame, column: str = "c_per_w", z: float = 3.5) -> pl.DataFrame:
    """Robust z of ``column`` among the devices of the same model on a node, per night; ``outlier`` when |z| > z.

    Columns: node, device, model, night, <column>, peer_z, outlier. Groups of fewer than 3 devices get null z.
    """
    f = fits.filter(pl.col(column).is_not_null())
    parts = []
    for _, part in f.group_by(["node", "model", "night"], maintain_order=True):
        zs = robust_z(part[column].to_numpy()) if part.height >= 3 else np.full(part.height, np.nan)
        parts.append(part.select(*DEVICE_KEY, "night", column).with_columns(pl.Series("peer_z", zs)))
    schema = {"node": pl.String(), "device": pl.String(), "model": pl.String(), "night": pl.Date(),
              column: pl.Float64(), "peer_z": pl.Float64()}  # fmt: skip
    out = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    out = out.with_columns(pl.col("peer_z").fill_nan(None))
    return out.with_columns((pl.col("peer_z").abs() > z).fill_null(False).alias("outlier")).sort([*DEVICE_KEY, "night"])


def throttle_fraction(accel: pl.DataFrame, by: Sequence[str] = DEVICE_KEY) -> pl.DataFrame:
    """Fraction of samples throttled for temperature / power, per ``by``: ``throttled_thermal_frac``,
    ``throttled_power_frac`` (null where the device does not report the flag), ``n``."""
    cols = []
    for c, name in (("throttle_thermal", "throttled_thermal_frac"), ("throttle_power", "throttled_power_frac")):
        cols.append(pl.col(c).cast(pl.Float64).mean().alias(name) if c in accel.columns
                    else pl.lit(None, dtype=pl.Float64).alias(name))  # fmt: skip
    return accel.group_by(list(by)).agg(*cols, pl.len().cast(pl.Int64).alias("n")).sort(list(by))


def _assess(
    key: tuple,
    nights: list[date],
    values: np.ndarray,
    metric: str,
    floor: float,
    cfg: ThermalConfig,
    extra: dict[str, Any],
    family: int = 1,
) -> dict[str, Any]:
    v = assess_series(
        values, higher_is_better=False, min_magnitude_floor=floor, config=cfg.regression_config(), family_size=family
    )
    node, device, model = key
    return {
        "node": node, "device": device, "model": model, "night": nights[-1], "metric": metric, "status": v.status,
        "change_night": nights[v.change_index] if v.change_index is not None else None,
        "effect": v.effect, "ci_low": v.ci_low, "ci_high": v.ci_high, "p": v.p, "value": float(values[-1]),
        "noise": v.noise, "rerun_requested": v.rerun_requested, "evidence": v.evidence, **extra,
    }  # fmt: skip


def thermal_findings(
    fits: pl.DataFrame,
    residuals: pl.DataFrame | None = None,
    config: ThermalConfig | None = None,
    as_of: date | None = None,
) -> pl.DataFrame:
    """Per device and metric (``c_per_w``, ``residual_c``): the verdict as of the last night (`FINDING_SCHEMA`):
    status ok / suspected / confirmed / insufficient, the change's night, effect (°C/W or °C) with its 95 % CI and
    p, the last night's value, the device's peer z (°C/W) and throttled fraction that night."""
    cfg = config or ThermalConfig()
    f = fits if as_of is None else fits.filter(pl.col("night") <= as_of)
    peers = peer_outliers(f, z=cfg.peer_z).select(*DEVICE_KEY, "night", "peer_z")
    f = f.join(peers, on=[*DEVICE_KEY, "night"], how="left")
    # same-night Bonferroni family: the node's devices x the two metrics
    family = {n: 2 * int(k) for n, k in f.group_by("node").agg(pl.col("device").n_unique()).iter_rows()}
    rows: list[dict[str, Any]] = []
    for key, part in (
        f.filter(pl.col("c_per_w").is_not_null()).sort("night").group_by(list(DEVICE_KEY), maintain_order=True)
    ):
        extra = {"peer_z": part["peer_z"][-1], "throttled_thermal_frac": part["throttled_thermal_frac"][-1]}
        rows.append(_assess(tuple(key), part["night"].to_list(), part["c_per_w"].to_numpy(), "c_per_w",
                            cfg.min_c_per_w, cfg, extra, family.get(key[0], 1)))  # fmt: skip
    if residuals is not None and residuals.height:
        r = residuals if as_of is None else residuals.filter(pl.col("night") <= as_of)
        r = r.join(
            f.select(*DEVICE_KEY, "night", "peer_z", "throttled_thermal_frac"), on=[*DEVICE_KEY, "night"], how="left"
        )
        for key, part in r.sort("night").group_by(list(DEVICE_KEY), maintain_order=True):
            extra = {"peer_z": part["peer_z"][-1], "throttled_thermal_frac": part["throttled_thermal_frac"][-1]}
            rows.append(_assess(tuple(key), part["night"].to_list(), part["residual_c"].to_numpy(), "residual_c",
                                cfg.min_residual_c, cfg, extra, family.get(key[0], 1)))  # fmt: skip
    return pl.DataFrame(rows, schema=FINDING_SCHEMA).sort([*DEVICE_KEY, "metric"])


def thermal_backtest(
    fits: pl.DataFrame, residuals: pl.DataFrame | None = None, config: ThermalConfig | None = None
) -> pl.DataFrame:
    """`thermal_findings` as it would have been on every night (rows of every night stacked)."""
    nights = sorted(fits["night"].unique().to_list())
    parts = [thermal_findings(fits, residuals, config, as_of=n) for n in nights]
    return pl.concat(parts) if parts else pl.DataFrame(schema=FINDING_SCHEMA)


def thermal_change_points(
    fits: pl.DataFrame, residuals: pl.DataFrame | None = None, config: ThermalConfig | None = None
) -> pl.DataFrame:
    """Every change point of the nightly °C/W and residual series: node, device, model, metric, night, effect, p."""
    cfg = config or ThermalConfig()
    series: list[tuple[str, pl.DataFrame, str, float]] = [("c_per_w", fits.filter(pl.col("c_per_w").is_not_null()),
                                                           "c_per_w", cfg.min_c_per_w)]  # fmt: skip
    if residuals is not None:
        series.append(("residual_c", residuals, "residual_c", cfg.min_residual_c))
    rows: list[dict[str, Any]] = []
    for metric, frame, col, floor in series:
        for (node, device, model), part in frame.sort("night").group_by(list(DEVICE_KEY), maintain_order=True):
            x = part[col].to_numpy()
            if len(x) < cfg.min_history:
                continue
            noise = series_noise(x)
            mm = max(floor, cfg.noise_mult * noise) if math.isfinite(noise) else floor
            nights = part["night"].to_list()
            for cp in change_points(x, window_len=cfg.window_len, max_pvalue=cfg.max_pvalue, min_magnitude=mm):
                rows.append({"node": node, "device": device, "model": model, "metric": metric,
                             "night": nights[cp.index], "effect": cp.magnitude, "p": cp.pvalue,
                             "before": cp.mean_before, "after": cp.mean_after})  # fmt: skip
    schema = {"node": pl.String(), "device": pl.String(), "model": pl.String(), "metric": pl.String(),
              "night": pl.Date(), "effect": pl.Float64(), "p": pl.Float64(), "before": pl.Float64(),
              "after": pl.Float64()}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


# ---------------------------------------------------------------------------------------------------------------
# The per-node profile table (seed 002)


def _status(
    gpu_avg_c: float | None, gpu_max_c: float | None, cpu_peak_c: float | None, limits: ThermalLimits
) -> tuple[str, str]:
    """(status, plain-words reason) of one node or device: every limit it tripped, worst first wins."""
    checks = (("GPU", gpu_max_c, limits.gpu_warm_c, limits.gpu_hot_c),
              ("CPU", cpu_peak_c, limits.cpu_warm_c, limits.cpu_hot_c))  # fmt: skip
    status, reasons = "OK", []
    for name, value, warm, hot in checks:
        if value is None:
            continue
        if value >= hot:
            status = "HOT"
            reasons.append(f"{name} peak {value:.0f} °C ≥ hot limit {hot:.0f} °C")
        elif value >= warm:
            status = "HOT" if status == "HOT" else "WARM"
            reasons.append(f"{name} peak {value:.0f} °C ≥ warm limit {warm:.0f} °C")
    if status == "OK" and gpu_avg_c is not None and gpu_avg_c < limits.gpu_cool_below_c:
        return "COOL", f"GPU average {gpu_avg_c:.0f} °C < {limits.gpu_cool_below_c:.0f} °C"
    return status, "; ".join(reasons) or "within limits"


def _profile_input(accel: pl.DataFrame) -> pl.DataFrame:
    """``accel`` with the optional columns the profile reads (null where the frame has none)."""
    optional = {"group": pl.String(), "model": pl.String(), "power_w": pl.Float64(), "throttle_thermal": pl.Boolean()}
    return accel.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in optional.items() if c not in accel.columns)


def _device_stats(acc: pl.DataFrame) -> pl.DataFrame:
    """Per (node, device): group, model, gpu_avg_c, gpu_min_c / gpu_max_c (over the device's 1-minute means of
    ``temp_c``, so one noisy sample does not set the range), power_avg_w, throttle_thermal_s (flagged samples x the
    device's median sampling step; 1 s when it has a single sample), throttled_thermal_frac, n_throttle (samples
    with a flag)."""
    minute = (acc.filter(pl.col("temp_c").is_not_null())
              .group_by("node", "device", pl.col("time").dt.truncate("1m")).agg(pl.col("temp_c").mean())
              .group_by("node", "device").agg(pl.col("temp_c").min().alias("gpu_min_c"),
                                              pl.col("temp_c").max().alias("gpu_max_c")))  # fmt: skip
    step_s = pl.col("time").sort().diff().dt.total_microseconds().median().fill_null(1_000_000) / 1e6
    flag = pl.col("throttle_thermal").cast(pl.Float64)
    return (
        acc.group_by("node", "device")
        .agg(
            pl.col("group").drop_nulls().first(),
            pl.col("model").drop_nulls().first(),
            pl.col("temp_c").mean().alias("gpu_avg_c"),
            pl.col("power_w").mean().alias("power_avg_w"),
            (flag.fill_null(0.0).sum() * step_s).alias("throttle_thermal_s"),
            flag.mean().alias("throttled_thermal_frac"),
            flag.count().alias("n_throttle"),
        )
        .join(minute, on=["node", "device"], how="left")
        .sort("node", "device")
    )


def _with_status(frame: pl.DataFrame, cpu: str | None, limits: ThermalLimits) -> pl.DataFrame:
    rows = frame.select("gpu_avg_c", "gpu_max_c", pl.col(cpu) if cpu else pl.lit(None, pl.Float64)).rows()
    status = [_status(avg, peak, c, limits) for avg, peak, c in rows]
    return frame.with_columns(pl.Series("status", [s[0] for s in status], dtype=pl.String),
                              pl.Series("reason", [s[1] for s in status], dtype=pl.String))  # fmt: skip


def _rounded(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    out = frame.select(list(schema)).cast(schema)  # type: ignore[arg-type]
    return out.with_columns(pl.col(c).round(4 if c == "throttled_thermal_frac" else 2)
                            for c, t in schema.items() if t == pl.Float64())  # fmt: skip


def device_thermal_profile(accel: pl.DataFrame, limits: ThermalLimits | None = None) -> pl.DataFrame:
    """Per (node, device) (`DEVICE_PROFILE_SCHEMA`): average and range of temperature (range over 1-minute means),
    average power, thermal throttling in seconds and as a fraction of samples (null without the flag), and a
    status COOL / OK / WARM / HOT with its reason (see `ThermalLimits`; no CPU side)."""
    lim = limits or ThermalLimits()
    if accel.is_empty() or "temp_c" not in accel.columns:
        return pl.DataFrame(schema=DEVICE_PROFILE_SCHEMA)
    per = _device_stats(_profile_input(accel))
    per = per.with_columns(pl.when(pl.col("n_throttle") > 0).then(pl.col("throttle_thermal_s"))
                           .alias("throttle_thermal_s"))  # fmt: skip
    return _rounded(_with_status(per, None, lim), DEVICE_PROFILE_SCHEMA)


def thermal_profile(
    accel: pl.DataFrame, host: pl.DataFrame | None = None, limits: ThermalLimits | None = None
) -> pl.DataFrame:
    """Per node (`PROFILE_SCHEMA`), seed 002's table: average of accelerator temperature over every sample and its
    range over the devices' 1-minute means, average power per device (``power_avg_w``) and the node's total (the
    sum of its devices' averages, ``power_total_avg_w``), CPU peak (the hottest ``host.cpu_temp_c`` reading, null
    where the frame has none), CPU utilisation peak, thermal throttling (device-seconds and fraction of samples)
    and a status COOL / OK / WARM / HOT with its reason (see `ThermalLimits`). Values rounded to 0.01."""
    lim = limits or ThermalLimits()
    if accel.is_empty() or "temp_c" not in accel.columns:
        return pl.DataFrame(schema=PROFILE_SCHEMA)
    acc = _profile_input(accel)
    flag = pl.col("throttle_thermal").cast(pl.Float64)
    per = (
        _device_stats(acc).group_by("node").agg(
            pl.len().cast(pl.Int64).alias("devices"),
            pl.col("gpu_min_c").min(), pl.col("gpu_max_c").max(),
            pl.when(pl.col("power_avg_w").count() > 0).then(pl.col("power_avg_w").sum()).alias("power_total_avg_w"),
            pl.when(pl.col("n_throttle").sum() > 0).then(pl.col("throttle_thermal_s").sum()).alias("throttle_thermal_s"),
        )
        .join(acc.group_by("node").agg(pl.col("temp_c").mean().alias("gpu_avg_c"),
                                       pl.col("power_w").mean().alias("power_avg_w"),
                                       flag.mean().alias("throttled_thermal_frac")), on="node", how="left")
    )  # fmt: skip
    if host is not None and host.height:
        temp = pl.col("cpu_temp_c").max() if "cpu_temp_c" in host.columns else pl.lit(None, pl.Float64)
        util = pl.col("cpu_util_pct").max() if "cpu_util_pct" in host.columns else pl.lit(None, pl.Float64)
        cpu = host.group_by("node").agg(temp.cast(pl.Float64).alias("cpu_peak_c"),
                                        util.cast(pl.Float64).alias("cpu_util_peak_pct"))  # fmt: skip
        per = per.join(cpu, on="node", how="left")
    else:
        per = per.with_columns(pl.lit(None, pl.Float64).alias("cpu_peak_c"),
                               pl.lit(None, pl.Float64).alias("cpu_util_peak_pct"))  # fmt: skip
    return _rounded(_with_status(per, "cpu_peak_c", lim), PROFILE_SCHEMA).sort("node")


def thermal_summary(
    accel: pl.DataFrame,
    host: pl.DataFrame | None = None,
    config: ThermalConfig | None = None,
    limits: ThermalLimits | None = None,
) -> dict[str, pl.DataFrame]:
    """Every thermal frame of a window of ``accel`` (and ``host``) for a report: ``fits`` (per device and night),
    ``residuals``, ``findings`` (status per device and metric), ``change_points``, ``peers`` (robust z of °C/W),
    ``throttle`` (fractions per device), ``profile`` (per node, seed 002's table: `thermal_profile`) and
    ``device_profile`` (`device_thermal_profile`)."""
    cfg = config or ThermalConfig()
    fits = thermal_fits(accel, cfg)
    res = nightly_residuals(fits, cfg)
    return {
        "fits": fits,
        "residuals": res,
        "findings": thermal_findings(fits, res, cfg),
        "change_points": thermal_change_points(fits, res, cfg),
        "peers": peer_outliers(fits, z=cfg.peer_z),
        "throttle": throttle_fraction(accel) if accel.height else pl.DataFrame(),
        "profile": thermal_profile(accel, host, limits),
        "device_profile": device_thermal_profile(accel, limits),
    }
