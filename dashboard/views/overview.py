"""Fleet overview: one row per node, the nodes in most trouble first; a click opens the node. Below, the device
heatmap of one node (the one in most trouble unless another is picked), refreshed in place."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import streamlit as st

from analysis import figures as charts
from analysis.figures.reduce import bucket_seconds
from dashboard import alerts_view, data, fleet, layout, plotly_view
from dashboard.alerts_view import firing_banner
from telemetry.errors import ConfigError

HEATMAP_BINS = 240
QUIET_WARNINGS = 5
FLEET_COLUMNS = {
    "node": st.column_config.TextColumn("node", help="Select a row to open the node's detail page."),
    "trouble": st.column_config.TextColumn("trouble", width="medium"),
    "hottest": st.column_config.TextColumn("hottest device", help="At its last sample."),
    "throttled_pct": st.column_config.NumberColumn("throttled (worst device, % of minutes)", format="%.1f"),
    "throttling_devices": st.column_config.NumberColumn("throttling devices"),
    "stale_devices": st.column_config.NumberColumn("stale devices"),
    "firing_alerts": st.column_config.NumberColumn("firing alerts"),
    "neighbour": st.column_config.TextColumn("worst neighbour finding", width="large"),
    "last_seen": st.column_config.DatetimeColumn("last sample (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "devices": st.column_config.NumberColumn("accelerators"),
    "telemetry": st.column_config.TextColumn(
        "sends", help="What the node reports: accel, host, tenant, serving (engine metrics), disk, net."
    ),
}

s, choice = layout.page_header(
    "Fleet overview",
    "Every node in one row, the nodes in most trouble first (gone quiet, firing alerts, stale devices, "
    "throttling, temperature); select a row to open the node. Below: one node's accelerators over the range.",
)
labels = {k: f"{v[0]} ({v[1]})" for k, v in data.HEATMAP_FIELDS.items()}


@st.fragment(run_every=timedelta(seconds=s.refresh_s))
def live() -> None:
    tr = layout.resolve_range(choice, s.store_url)
    layout.range_caption(tr, s.store_url)
    banner = st.container()
    with banner:
        firing_banner(s)
    if data.freshest(s.store_url) is None:
        layout.no_telemetry(s.store_url, "accelerator telemetry")
        return
    stale_after = timedelta(seconds=max(60, 3 * s.refresh_s))
    with st.spinner("Reading the fleet's newest samples …"):
        status = data.fleet_status(s.store_url, tr.start, tr.end)
        others = data.node_status(s.store_url, tr.start, tr.end)
    if status.height == 0 and others.height == 0:
        latest = data.freshest(s.store_url)
        st.warning(
            f"No telemetry between {layout.fmt_time(tr.start)} and {layout.fmt_time(tr.end)}; "
            f"the newest sample is from {layout.fmt_time(latest)}. Pick a longer range in the sidebar."
        )
        return
    try:
        alerts = alerts_view.load_state(s).alerts
    except (OSError, ConfigError):  # the banner above has said why the alert state could not be read
        alerts = alerts_view.alerts_frame([])
    rows = fleet.fleet_rows(status, alerts, tr.end, stale_after, others)
    fleet_table(rows, stale_after)
    node_section(rows, status, tr, stale_after)


def fleet_table(rows: pl.DataFrame, stale_after: timedelta) -> None:
    counts = fleet.fleet_counts(rows)
    c = st.columns(5)
    c[0].metric("Nodes", counts["nodes"])
    c[1].metric("Accelerators", counts["accelerators"])
    c[2].metric("Nodes needing attention", counts["in_trouble"])
    c[3].metric(
        "Nodes gone quiet", counts["quiet"], help=f"no sample for more than {stale_after.total_seconds():.0f} s"
    )
    c[4].metric("Alerts firing", counts["firing"])
    quiet = rows.filter(pl.col("quiet_since").is_not_null())
    for row in quiet.head(QUIET_WARNINGS).iter_rows(named=True):
        st.warning(
            f"No telemetry from node {row['node']} since {layout.fmt_time(row['last_seen'])} "
            f"({layout.fmt_age(row['last_seen'])})."
        )
    if quiet.height > QUIET_WARNINGS:
        st.caption(f"… and {quiet.height - QUIET_WARNINGS} more quiet nodes (first rows of the table).")
    st.subheader("Nodes, most trouble first")
    picked = st.dataframe(
        rows.select(list(FLEET_COLUMNS)).with_columns(pl.col(pl.String).fill_null("—")),
        hide_index=True,
        column_config=FLEET_COLUMNS,
        key="fleet_table",
        on_select="rerun",
        selection_mode="single-row",
        height=min(38 + 35 * rows.height, 420),
    )
    selected = picked.selection.rows if picked is not None else []
    if selected:
        st.switch_page("views/node_detail.py", query_params={"node": rows["node"][selected[0]]})


def device_flags(stale: list[str], throttled: dict[str, float]) -> dict[str, str]:
    """device -> "stale", "throttled 6%" or both (plain text: readable without an emoji font)."""
    flags = {d: "stale" for d in stale}
    for d, share in throttled.items():
        flags[d] = ", ".join(x for x in (flags.get(d), f"throttled {max(share * 100, 0.1):.2g}%") if x)
    return flags


def node_section(rows: pl.DataFrame, fleet_status: pl.DataFrame, tr: layout.TimeRange, stale_after: timedelta) -> None:
    nodes = rows.filter(pl.col("devices") > 0)["node"].to_list()  # the heatmap is of accelerators
    if not nodes:
        st.info(
            "No node sent accelerator telemetry in this range, so there is no device heatmap; the nodes above send "
            "host, tenant or serving-engine metrics (open one for its host CPU, pressure and engine latency)."
        )
        return
    c1, c2 = st.columns([1, 3])
    node = (
        c1.selectbox(
            "Heatmap of node", nodes, key="overview_node", help="The node in most trouble, unless you pick another."
        )
        or nodes[0]
    )
    field = c2.radio("Heatmap", list(labels), format_func=labels.get, horizontal=True, key="overview_field") or "temp_c"
    st.subheader(f"Node {node}")
    # the heatmap's place, holding a "loading" chart until the queries below are done (see charts.loading_figure)
    slot = st.empty()
    with slot:
        plotly_view.chart(
            charts.loading_figure(f"Loading {labels[field]} per device, {tr.label.lower()} …"),
            config={"displayModeBar": False},
        )
    # the node's devices as the fleet table saw them (no second read of the node's rows), groups from the heatmap
    status = fleet_status.filter(pl.col("node") == node).drop("node")
    every_s = bucket_seconds(tr.start, tr.end, HEATMAP_BINS)
    frame = data.accel_heatmap(s.store_url, node, tr.start, tr.end, every_s)
    node_last = status["last_seen"].max() if status.height else None
    ref = data.utc(node_last) if node_last is not None else tr.end  # type: ignore[arg-type]
    stale = status.filter(pl.col("last_seen") < ref - stale_after)["device"].to_list()
    shares = dict(status.filter(pl.col("throttled_share") > 0).select("device", "throttled_share").iter_rows())
    flags = device_flags(stale, shares)
    devs = status.select("device").join(frame.select("device", "group").unique("device"), on="device", how="left")
    topo, _ = data.topology(s, (node,))
    device_groups = layout.device_order(devs, topo)
    title, unit = data.HEATMAP_FIELDS[field]
    scale = 1e9 if field == "pcie_bytes_per_s" else 1.0
    unit = "GB/s" if field == "pcie_bytes_per_s" else unit
    fig = charts.heatmap_figure(
        frame, field, f"{title} per device, {every_s} s bins (mean)", unit, device_groups, flags, scale
    )
    with slot:
        plotly_view.chart(fig, key="heatmap")
    if flags:
        st.markdown("**Devices needing attention**")
        # a static table (st.table): at most a node's devices, and it draws without loading the data grid's
        # JavaScript, which would otherwise compete with the heatmap for the browser's first seconds
        show = (
            status.filter(pl.col("device").is_in(list(flags)))
            .with_columns(pl.col("device").replace_strict(flags, default="", return_dtype=pl.String).alias("flag"))
            .sort(
                pl.col("throttled_share").fill_null(0),  # most throttled first, then in the heatmap's order
                pl.col("device").replace_strict(
                    {d: i for i, d in enumerate(device_groups)}, default=len(device_groups), return_dtype=pl.Int64
                ),
                descending=[True, False],
            )
            .select(
                "device",
                "flag",
                pl.col("last_seen").dt.strftime("%Y-%m-%d %H:%M:%S").alias("last sample (UTC)"),
                pl.col("temp_c").round(1).cast(pl.String).alias("temp (°C)"),
                pl.col("power_w").round(0).cast(pl.Int64).cast(pl.String).alias("power (W)"),
                pl.col("util_pct").round(0).cast(pl.Int64).cast(pl.String).alias("util (%)"),
                (pl.col("throttled_share") * 100).round(1).cast(pl.String).alias("throttled (% of minutes)"),
            )
            .fill_null("—")
        )
        st.table(show, hide_index=True)
    quiet_since = rows.filter(pl.col("node") == node)["quiet_since"][0]
    if quiet_since is not None:
        st.warning(f"{node} has sent nothing since {layout.fmt_time(quiet_since)}: the heatmap ends there.")
    elif not flags:
        st.success(f"All {len(device_groups)} accelerators of {node} reported and none throttled in this range.")


live()
