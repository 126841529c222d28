"""The fleet table of the overview (pure: frames in, frame out): one row per node, the nodes in most trouble first.

From the per-device status (`dashboard.data.fleet_status`: last sample, values there, throttled share) and the
alert engine's alerts (`dashboard.alerts_view`), per node:

- ``quiet_since``: the node's newest sample when it is older than ``stale_after`` at the range's end (gone quiet);
- ``firing_alerts``: alerts firing with ``node=<node>``;
- ``stale_devices``: devices silent for more than ``stale_after`` while the node still reports;
- ``throttling_devices`` and ``throttled_pct``: devices throttled at any time in the range, the worst one's share;
- ``hottest`` / ``hottest_c``: the hottest device at its last sample;
- ``neighbour``: the worst noisy-neighbour finding (a firing one before a resolved one, critical first, newest
  first): victim, antagonist and the alert's summary.

Trouble order (`TROUBLE_ORDER`): gone quiet, then firing alerts, stale devices, worst throttled share, hottest
device; ``trouble`` says in words why a node is listed high.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

NEIGHBOUR_ALERTS = ("NoisyNeighborDegradation",)
TROUBLE_ORDER = ("quiet", "firing_alerts", "stale_devices", "throttled_pct", "hottest_c")
FLEET_SCHEMA = {
    "node": pl.String,
    "trouble": pl.String,
    "devices": pl.UInt32,
    "hottest": pl.String,
    "hottest_c": pl.Float64,
    "throttling_devices": pl.UInt32,
    "throttled_pct": pl.Float64,
    "stale_devices": pl.UInt32,
    "firing_alerts": pl.UInt32,
    "neighbour": pl.String,
    "telemetry": pl.String,
    "last_seen": pl.Datetime("ns", "UTC"),
    "quiet_since": pl.Datetime("ns", "UTC"),
}


def neighbour_findings(alerts: pl.DataFrame) -> pl.DataFrame:
    """node -> the worst noisy-neighbour alert as one line (victim ← antagonist: summary)."""
    schema = {"node": pl.String, "neighbour": pl.String}
    if alerts.height == 0 or "antagonist" not in alerts.columns:
        return pl.DataFrame(schema=schema)
    nn = alerts.filter(pl.col("alertname").is_in(NEIGHBOUR_ALERTS) & pl.col("node").is_not_null())
    if nn.height == 0:
        return pl.DataFrame(schema=schema)
    ranked = nn.sort(
        [(pl.col("status") == "firing"), (pl.col("severity") == "critical"), pl.col("starts_at")],
        descending=True,
        nulls_last=True,
    )
    text = pl.concat_str(
        [
            pl.when(pl.col("status") == "firing").then(pl.lit("")).otherwise(pl.lit("(resolved) ")),
            pl.col("victim").fill_null("?"),
            pl.lit(" slowed by "),
            pl.col("antagonist").fill_null("?"),
            pl.when(pl.col("summary").is_not_null()).then(pl.lit(": ") + pl.col("summary")).otherwise(pl.lit("")),
        ]
    )
    return ranked.group_by("node", maintain_order=True).first().select("node", text.alias("neighbour"))


def fleet_rows(
    status: pl.DataFrame,
    alerts: pl.DataFrame,
    end: datetime,
    stale_after: timedelta,
    others: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per node of ``status`` or ``others`` (columns `FLEET_SCHEMA`), sorted by `TROUBLE_ORDER`, most
    trouble first. ``others`` (`dashboard.data.node_frame`: node, last_seen, telemetry) adds the nodes that sent
    no accelerator rows (host-only, serving-only) with 0 accelerators, and says what every node sent."""
    others = others if others is not None and others.height else None
    if status.height == 0 and others is None:
        return pl.DataFrame(schema=FLEET_SCHEMA)
    node_last = pl.col("last_seen").max().over("node")
    per_device = status.with_columns(
        (pl.col("last_seen") < node_last - stale_after).alias("stale"),
        (pl.col("throttled_share").fill_null(0) > 0).alias("throttling"),
    )
    hottest = (
        per_device.filter(pl.col("temp_c").is_not_null())
        .sort("temp_c", descending=True)
        .group_by("node", maintain_order=True)
        .first()
        .select("node", pl.col("device").alias("hottest_device"), pl.col("temp_c").alias("hottest_c"))
    )
    nodes = per_device.group_by("node").agg(
        pl.len().cast(pl.UInt32).alias("devices"),
        pl.col("last_seen").max(),
        pl.col("stale").sum().cast(pl.UInt32).alias("stale_devices"),
        pl.col("throttling").sum().cast(pl.UInt32).alias("throttling_devices"),
        (pl.col("throttled_share").max().fill_null(0) * 100).alias("throttled_pct"),
    )
    firing = (
        alerts.filter((pl.col("status") == "firing") & pl.col("node").is_not_null())
        .group_by("node")
        .agg(pl.len().cast(pl.UInt32).alias("firing_alerts"))
        if alerts.height
        else pl.DataFrame(schema={"node": pl.String, "firing_alerts": pl.UInt32})
    )
    if others is not None:
        # a node's newest sample is its newest of any measurement (a node whose accelerators went quiet while its
        # host still reports keeps its stale devices, not "quiet"); nodes without accelerators get 0 devices
        accel_nodes = set(nodes["node"].to_list())
        extra = others.filter(~pl.col("node").is_in(list(accel_nodes))).select(
            "node",
            pl.lit(0, pl.UInt32).alias("devices"),
            pl.col("last_seen").cast(pl.Datetime("ns", "UTC")),
            pl.lit(0, pl.UInt32).alias("stale_devices"),
            pl.lit(0, pl.UInt32).alias("throttling_devices"),
            pl.lit(0.0).alias("throttled_pct"),
        )
        nodes = pl.concat([nodes.cast({"last_seen": pl.Datetime("ns", "UTC")}), extra], how="vertical_relaxed")
        seen = others.select(
            "node", pl.col("last_seen").cast(pl.Datetime("ns", "UTC")).alias("other_seen"), "telemetry"
        )
        nodes = (
            nodes.join(seen, on="node", how="left")
            .with_columns(
                pl.max_horizontal("last_seen", "other_seen").alias("last_seen"),
                pl.when(pl.col("devices") > 0)
                .then(pl.concat_str([pl.lit("accel"), pl.col("telemetry")], separator=", ", ignore_nulls=True))
                .otherwise(pl.col("telemetry"))
                .alias("telemetry"),
            )
            .drop("other_seen")
        )
    else:
        nodes = nodes.with_columns(pl.lit("accel").alias("telemetry"))
    end_ns = pl.lit(end).cast(pl.Datetime("ns", "UTC"))
    rows = (
        nodes.join(hottest, on="node", how="left")
        .join(firing, on="node", how="left")
        .join(neighbour_findings(alerts), on="node", how="left")
        .with_columns(
            pl.col("firing_alerts").fill_null(0),
            pl.when(end_ns - pl.col("last_seen") > stale_after).then(pl.col("last_seen")).alias("quiet_since"),
            pl.when(pl.col("hottest_device").is_not_null())
            .then(pl.format("{} · {} °C", pl.col("hottest_device"), pl.col("hottest_c").round(0).cast(pl.Int64)))
            .alias("hottest"),
        )
        .with_columns(pl.col("quiet_since").is_not_null().alias("quiet"))
    )
    reasons = (
        pl.concat_list(
            [
                pl.when(pl.col("quiet")).then(
                    pl.format("quiet since {}", pl.col("quiet_since").dt.strftime("%H:%M:%S"))
                ),
                pl.when(pl.col("firing_alerts") > 0).then(pl.format("{} alert(s) firing", pl.col("firing_alerts"))),
                pl.when((pl.col("stale_devices") > 0) & ~pl.col("quiet")).then(
                    pl.format("{} stale device(s)", pl.col("stale_devices"))
                ),
                pl.when(pl.col("throttling_devices") > 0).then(
                    pl.format(
                        "{} throttling (worst {} %)", pl.col("throttling_devices"), pl.col("throttled_pct").round(1)
                    )
                ),
            ]
        )
        .list.drop_nulls()
        .list.join("; ")
    )
    rows = rows.with_columns(pl.when(reasons == "").then(pl.lit("ok")).otherwise(reasons).alias("trouble"))
    return (
        rows.sort([*TROUBLE_ORDER, "node"], descending=[True] * len(TROUBLE_ORDER) + [False], nulls_last=True)
        .select(list(FLEET_SCHEMA))
        .cast(FLEET_SCHEMA)  # type: ignore[arg-type]
    )


def fleet_counts(rows: pl.DataFrame) -> dict[str, int]:
    """The overview's counters: nodes, accelerators, nodes in trouble, quiet nodes, firing alerts."""
    return {
        "nodes": rows.height,
        "accelerators": int(rows["devices"].sum() or 0),
        "in_trouble": rows.filter(pl.col("trouble") != "ok").height,
        "quiet": rows.filter(pl.col("quiet_since").is_not_null()).height,
        "firing": int(rows["firing_alerts"].sum() or 0),
    }
