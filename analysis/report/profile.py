"""Thermal profile per node and per device, like seed 002's table: average and range of temperature, average
power, CPU peak, and a status (OK / WARM / HOT) against configurable limits. Pure: frames in, frames out.

The range is taken over 1-minute means of each device (so one noisy sample does not set it). ``cpu_peak_c`` comes
from a host ``cpu_temp_c`` column when the store has one (the schema has no CPU temperature yet: then it is null
and the CPU side of the status uses ``cpu_util_peak_pct`` only for display, never for the status).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

STATUSES = ("COOL", "OK", "WARM", "HOT")

PROFILE_COLUMNS = (
    "node", "devices", "gpu_avg_c", "gpu_min_c", "gpu_max_c", "power_avg_w", "power_total_avg_w",
    "cpu_peak_c", "cpu_util_peak_pct", "throttle_thermal_s", "status", "reason",
)
DEVICE_COLUMNS = (
    "node", "device", "group", "model", "gpu_avg_c", "gpu_min_c", "gpu_max_c", "power_avg_w",
    "throttle_thermal_s", "status", "reason",
)


@dataclass(frozen=True)
class ThermalLimits:
    """Where a node or device turns WARM or HOT (degC): a peak at or above the limit trips it. COOL: no limit
    tripped and the accelerators' average below ``gpu_cool_below_c`` (seed 002's table). The defaults are
    `analysis.thermal.ThermalLimits`' (seed 002: a 95 °C CPU peak is WARM, 90 °C is OK)."""

    gpu_cool_below_c: float = 70.0
    gpu_warm_c: float = 80.0
    gpu_hot_c: float = 88.0
    cpu_warm_c: float = 95.0
    cpu_hot_c: float = 100.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _status(gpu_max_c: float | None, cpu_peak_c: float | None, limits: ThermalLimits,
            gpu_avg_c: float | None = None) -> tuple[str, str]:
    """(status, plain-words reason) of one row."""
    checks = [
        ("GPU", gpu_max_c, limits.gpu_warm_c, limits.gpu_hot_c),
        ("CPU", cpu_peak_c, limits.cpu_warm_c, limits.cpu_hot_c),
    ]
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


def _minute_means(accel: pl.DataFrame) -> pl.DataFrame:
    return (
        accel.filter(pl.col("temp_c").is_not_null())
        .group_by("node", "device", pl.col("time").dt.truncate("1m"))
        .agg(pl.col("temp_c").mean())
    )


def _f(v: object) -> float | None:
    return None if v is None else round(float(v), 2)  # type: ignore[arg-type]


def device_thermal_profile(accel: pl.DataFrame, limits: ThermalLimits = ThermalLimits()) -> pl.DataFrame:
    """One row per (node, device): columns `DEVICE_COLUMNS` (degC, W, s)."""
    if accel.is_empty() or "temp_c" not in accel.columns:
        return pl.DataFrame(schema={c: pl.String for c in DEVICE_COLUMNS})
    acc = accel.with_columns(
        *(pl.lit(None, pl.String).alias(c) for c in ("group", "model") if c not in accel.columns),
        *(pl.lit(None, pl.Float64).alias(c) for c in ("power_w",) if c not in accel.columns),
        *(pl.lit(None, pl.Boolean).alias(c) for c in ("throttle_thermal",) if c not in accel.columns),
    )
    rng = _minute_means(acc).group_by("node", "device").agg(
        pl.col("temp_c").min().alias("gpu_min_c"), pl.col("temp_c").max().alias("gpu_max_c")
    )
    per = acc.group_by("node", "device").agg(
        pl.col("group").drop_nulls().first(),
        pl.col("model").drop_nulls().first(),
        pl.col("temp_c").mean().alias("gpu_avg_c"),
        pl.col("power_w").mean().alias("power_avg_w"),
        pl.col("throttle_thermal").fill_null(False).sum().cast(pl.Float64).alias("throttle_thermal_s"),
    ).join(rng, on=["node", "device"], how="left").sort("node", "device")
    rows = []
    for r in per.iter_rows(named=True):
        status, reason = _status(r["gpu_max_c"], None, limits, r["gpu_avg_c"])
        rows.append({**{k: r[k] for k in ("node", "device", "group", "model")},
                     **{k: _f(r[k]) for k in ("gpu_avg_c", "gpu_min_c", "gpu_max_c", "power_avg_w",
                                                "throttle_thermal_s")},
                     "status": status, "reason": reason})
    return pl.DataFrame(rows, schema=_device_schema())


def node_thermal_profile(accel: pl.DataFrame, host: pl.DataFrame | None = None,
                         limits: ThermalLimits = ThermalLimits()) -> pl.DataFrame:
    """One row per node: columns `PROFILE_COLUMNS`.

    ``gpu_*_c`` over every accelerator of the node (range over 1-minute device means), ``power_avg_w`` the mean
    per device, ``power_total_avg_w`` the mean of the node's summed accelerator power, ``cpu_peak_c`` the host's
    hottest CPU reading (null without a ``cpu_temp_c`` column), ``cpu_util_peak_pct`` the busiest second.
    """
    devices = device_thermal_profile(accel, limits)
    if devices.is_empty():
        return pl.DataFrame(schema=_profile_schema())
    acc = accel.filter(pl.col("temp_c").is_not_null())
    rng = _minute_means(acc).group_by("node").agg(
        pl.col("temp_c").min().alias("gpu_min_c"), pl.col("temp_c").max().alias("gpu_max_c"))
    power_col = pl.col("power_w") if "power_w" in accel.columns else pl.lit(None, pl.Float64)
    total = (
        accel.with_columns(power_col.alias("power_w"))
        .group_by("node", "time").agg(pl.col("power_w").sum().alias("p"), pl.col("power_w").count().alias("n"))
        .filter(pl.col("n") > 0)
        .group_by("node").agg(pl.col("p").mean().alias("power_total_avg_w"))
    )
    per = (
        devices.group_by("node").agg(pl.len().alias("devices"), pl.col("throttle_thermal_s").sum())
        .join(acc.group_by("node").agg(pl.col("temp_c").mean().alias("gpu_avg_c"),
                                       power_col.mean().alias("power_avg_w")), on="node", how="left")
        .join(rng, on="node", how="left").join(total, on="node", how="left")
    )
    cpu = _host_peaks(host)
    per = per.join(cpu, on="node", how="left") if cpu is not None else per.with_columns(
        pl.lit(None, pl.Float64).alias("cpu_peak_c"), pl.lit(None, pl.Float64).alias("cpu_util_peak_pct"))
    rows = []
    for r in per.sort("node").iter_rows(named=True):
        status, reason = _status(r["gpu_max_c"], r["cpu_peak_c"], limits, r["gpu_avg_c"])
        rows.append({"node": r["node"], "devices": int(r["devices"]),
                     **{k: _f(r[k]) for k in ("gpu_avg_c", "gpu_min_c", "gpu_max_c", "power_avg_w",
                                                "power_total_avg_w", "cpu_peak_c", "cpu_util_peak_pct",
                                                "throttle_thermal_s")},
                     "status": status, "reason": reason})
    return pl.DataFrame(rows, schema=_profile_schema())


def _host_peaks(host: pl.DataFrame | None) -> pl.DataFrame | None:
    if host is None or host.is_empty():
        return None
    temp = pl.col("cpu_temp_c").max() if "cpu_temp_c" in host.columns else pl.lit(None, pl.Float64)
    util = pl.col("cpu_util_pct").max() if "cpu_util_pct" in host.columns else pl.lit(None, pl.Float64)
    return host.group_by("node").agg(temp.cast(pl.Float64).alias("cpu_peak_c"),
                                     util.cast(pl.Float64).alias("cpu_util_peak_pct"))


def _device_schema() -> dict[str, pl.DataType]:
    s: dict[str, pl.DataType] = {c: pl.Float64() for c in DEVICE_COLUMNS}
    s.update({c: pl.String() for c in ("node", "device", "group", "model", "status", "reason")})
    return s


def _profile_schema() -> dict[str, pl.DataType]:
    s: dict[str, pl.DataType] = {c: pl.Float64() for c in PROFILE_COLUMNS}
    s.update({"node": pl.String(), "devices": pl.Int64(), "status": pl.String(), "reason": pl.String()})
    return s


def thermal_findings(nodes: pl.DataFrame, devices: pl.DataFrame, limits: ThermalLimits) -> list[str]:
    """Plain-words findings: nodes / devices over a limit, thermal throttling, peer outliers (robust z > 3.5)."""
    out: list[str] = []
    for r in nodes.filter(pl.col("status").is_in(["WARM", "HOT"])).iter_rows(named=True):
        out.append(f"Node {r['node']} is {r['status']}: {r['reason']}.")
    hot = devices.filter(pl.col("status").is_in(["WARM", "HOT"])).sort(
        pl.col("device").str.replace_all(r"(\d+)", "000000$1").str.replace_all(r"0+(\d{6})", "$1"))
    if hot.height:
        names = ", ".join(f"{r['device']} ({r['gpu_max_c']:.0f} °C)" for r in hot.head(8).iter_rows(named=True))
        more = f" and {hot.height - 8} more" if hot.height > 8 else ""
        out.append(f"{hot.height} accelerator(s) reached a limit: {names}{more}.")
    thr = devices.filter(pl.col("throttle_thermal_s") > 0).sort("throttle_thermal_s", descending=True)
    if thr.height:
        names = ", ".join(f"{r['device']} {r['throttle_thermal_s']:.0f} s" for r in thr.head(5).iter_rows(named=True))
        out.append(f"Thermal throttling on {thr.height} accelerator(s): {names}.")
    if devices.height >= 4:
        by = devices.filter(pl.col("gpu_avg_c").is_not_null())
        for (node, model), part in by.group_by("node", "model"):
            if part.height < 4:
                continue
            med = part["gpu_avg_c"].median()
            mad = (part["gpu_avg_c"] - med).abs().median()
            if not mad:
                continue
            z = 0.6745 * (part["gpu_avg_c"] - med) / mad
            for dev, zz, t in zip(part["device"], z, part["gpu_avg_c"], strict=True):
                if zz > 3.5:
                    out.append(f"{dev} on {node} runs hot for a {model}: {t:.1f} °C vs a peer median of {med:.1f} °C.")
    if not out and devices.height:
        out.append(f"All accelerators stayed below the warm limit ({limits.gpu_warm_c:.0f} °C) with no thermal throttling.")
    return out


def node_profile_from_thermal(profile: pl.DataFrame, host: pl.DataFrame | None) -> pl.DataFrame:
    """`analysis.thermal.thermal_profile` output in this module's `PROFILE_COLUMNS` (``throttle_thermal_s`` is
    null there: it gives a fraction, kept as ``throttled_thermal_frac``)."""
    cpu = _host_peaks(host)
    out = profile.select(
        "node", pl.col("devices").cast(pl.Int64), pl.col("temp_avg_c").alias("gpu_avg_c"),
        pl.col("temp_min_c").alias("gpu_min_c"), pl.col("temp_max_c").alias("gpu_max_c"), "power_avg_w",
        pl.col("power_total_w").alias("power_total_avg_w"), pl.col("cpu_temp_peak_c").alias("cpu_peak_c"),
        pl.lit(None, pl.Float64).alias("throttle_thermal_s"), "status", "reason",
        pl.col("throttled_thermal_frac"),
    )
    util = cpu.select("node", "cpu_util_peak_pct") if cpu is not None else None
    out = (out.join(util, on="node", how="left") if util is not None
           else out.with_columns(pl.lit(None, pl.Float64).alias("cpu_util_peak_pct")))
    return out.with_columns(pl.col(c).round(2) for c in ("gpu_avg_c", "gpu_min_c", "gpu_max_c", "power_avg_w",
                                                          "power_total_avg_w", "cpu_peak_c", "cpu_util_peak_pct"))
