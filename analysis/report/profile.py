"""Presentation of the thermal profile in the nightly report: the plain-words findings list.

The profile itself (per node and per device, seed 002's table, with its `ThermalLimits`) is
`analysis.history.thermal.thermal_profile` / `analysis.history.thermal.device_thermal_profile`; this module only words it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis.history.changepoints import robust_z
from analysis.history.thermal import ThermalLimits


def thermal_finding_lines(nodes: pl.DataFrame, devices: pl.DataFrame, limits: ThermalLimits) -> list[str]:
    """Plain-words findings of the report's thermal section: nodes / devices over a limit, thermal throttling, peer
    outliers (robust z > 3.5 among the same model on a node).

    ``nodes`` / ``devices``: `analysis.history.thermal.thermal_profile` / `analysis.history.thermal.device_thermal_profile`."""
    out: list[str] = []
    for r in nodes.filter(pl.col("status").is_in(["WARM", "HOT"])).iter_rows(named=True):
        out.append(f"Node {r['node']} is {r['status']}: {r['reason']}.")
    hot = devices.filter(pl.col("status").is_in(["WARM", "HOT"])).sort(
        pl.col("device").str.replace_all(r"(\d+)", "000000$1").str.replace_all(r"0+(\d{6})", "$1")
    )
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
            z = robust_z(part["gpu_avg_c"].to_numpy())
            if not np.isfinite(z).all():  # MAD 0: no spread among the peers to judge by
                continue
            med = part["gpu_avg_c"].median()
            for dev, zz, t in zip(part["device"], z, part["gpu_avg_c"], strict=True):
                if zz > 3.5:
                    out.append(f"{dev} on {node} runs hot for a {model}: {t:.1f} °C vs a peer median of {med:.1f} °C.")
    if not out and devices.height:
        out.append(
            f"All accelerators stayed below the warm limit ({limits.gpu_warm_c:.0f} °C) with no thermal throttling."
        )
    return out
