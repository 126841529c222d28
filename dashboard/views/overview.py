"""Fleet overview: every node and accelerator at a glance, refreshed in place."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import polars as pl
import streamlit as st

from analysis import figures as charts
from analysis.figures.reduce import bucket_seconds
from dashboard import data, layout, plotly_view
from dashboard.alerts_view import firing_banner

HEATMAP_BINS = 240

s, choice = layout.page_header(
    "Fleet overview",
    "Temperature, power, PCIe traffic and utilisation of every accelerator, grouped by hive / tenant.",
)
labels = {k: f"{v[0]} ({v[1]})" for k, v in data.HEATMAP_FIELDS.items()}
field = st.radio("Heatmap", list(labels), format_func=labels.get, horizontal=True, key="overview_field") or "temp_c"


@st.fragment(run_every=timedelta(seconds=s.refresh_s))
def live() -> None:
    tr = layout.resolve_range(choice, s.store_url)
    layout.range_caption(tr, s.store_url)
    banner = st.container()
    # the heatmap's place, holding a "loading" chart until the queries below are done (see charts.loading_figure)
    slot = st.empty()
    with slot:
        plotly_view.chart(charts.loading_figure(f"Loading {labels[field]} per device, {tr.label.lower()} …"),
                          config={"displayModeBar": False})
    with banner:
        firing_banner(s)
    if data.freshest(s.store_url) is None:
        with slot.container():
            layout.no_telemetry(s.store_url, "accelerator telemetry")
        return
    devices = data.devices(s.store_url, tr.start, tr.end)
    if devices.height == 0:
        latest = data.freshest(s.store_url)
        slot.warning(f"No accelerator telemetry between {layout.fmt_time(tr.start)} and {layout.fmt_time(tr.end)}; "
                     f"the newest sample is from {layout.fmt_time(latest)}. Pick a longer range in the sidebar.")
        return
    topo, _ = data.topology(s)
    every_s = bucket_seconds(tr.start, tr.end, HEATMAP_BINS)
    stale_after = timedelta(seconds=max(60, 3 * s.refresh_s))
    for i, ((node,), devs) in enumerate(devices.partition_by("node", as_dict=True, maintain_order=True).items()):
        with slot.container() if i == 0 else contextlib.nullcontext():
            node_devices(str(node), devs, topo, tr, every_s, stale_after, field)


def device_flags(stale: list[str], throttled: dict[str, float]) -> dict[str, str]:
    """device -> "stale", "throttled 6%" or both (plain text: readable without an emoji font)."""
    flags = {d: "stale" for d in stale}
    for d, share in throttled.items():
        flags[d] = ", ".join(x for x in (flags.get(d), f"throttled {max(share * 100, 0.1):.2g}%") if x)
    return flags


def node_devices(node: str, devs: pl.DataFrame, topo: pl.DataFrame, tr: layout.TimeRange, every_s: int,
                 stale_after: timedelta, field: str) -> None:
    status = data.device_status(s.store_url, node, tr.start, tr.end)
    node_last = status["last_seen"].max() if status.height else None
    st.subheader(f"Node {node}")
    if node_last is not None and tr.end - data.utc(node_last) > stale_after:  # type: ignore[operator]
        st.warning(f"No telemetry from node {node} since {layout.fmt_time(node_last)} "  # type: ignore[arg-type]
                   f"({layout.fmt_age(node_last)}).")  # type: ignore[arg-type]
    ref = data.utc(node_last) if node_last is not None else tr.end  # type: ignore[arg-type]
    stale = status.filter(pl.col("last_seen") < ref - stale_after)["device"].to_list()
    shares = dict(status.filter(pl.col("throttled_share") > 0).select("device", "throttled_share").iter_rows())
    throttling = list(shares)
    flags = device_flags(stale, shares)
    device_groups = layout.device_order(devs, topo)
    hottest = status.sort("temp_c", descending=True, nulls_last=True).head(1)
    c = st.columns(5)
    c[0].metric("Accelerators", len(device_groups))
    c[1].metric("Throttling in range", len(throttling))
    c[2].metric("Stale", len(stale), help=f"no sample for more than {stale_after.total_seconds():.0f} s")
    c[3].metric("Hottest now", f"{hottest['temp_c'][0]:.0f} °C ({hottest['device'][0]})"
                if hottest.height and hottest["temp_c"][0] is not None else "—")
    total_w = status["power_w"].sum() if status.height else None
    c[4].metric("Board power now", f"{total_w / 1000:.2f} kW" if total_w else "—")
    frame = data.accel_heatmap(s.store_url, node, tr.start, tr.end, every_s)
    title, unit = data.HEATMAP_FIELDS[field]
    scale = 1e9 if field == "pcie_bytes_per_s" else 1.0
    unit = "GB/s" if field == "pcie_bytes_per_s" else unit
    fig = charts.heatmap_figure(frame, field, f"{title} per device, {every_s} s bins (mean)", unit,
                                device_groups, flags, scale)
    plotly_view.chart(fig, key=f"heatmap-{node}")
    if flags:
        st.markdown("**Devices needing attention**")
        # a static table (st.table): at most a node's devices, and it draws without loading the data grid's
        # JavaScript, which would otherwise compete with the heatmap for the browser's first seconds
        show = (
            status.filter(pl.col("device").is_in(list(flags)))
            .with_columns(pl.col("device").replace_strict(flags, default="", return_dtype=pl.String).alias("flag"))
            .sort(pl.col("throttled_share").fill_null(0),  # most throttled first, then in the heatmap's order
                  pl.col("device").replace_strict({d: i for i, d in enumerate(device_groups)}, default=len(device_groups),
                                                  return_dtype=pl.Int64), descending=[True, False])
            .select(
                "device", "flag",
                pl.col("last_seen").dt.strftime("%Y-%m-%d %H:%M:%S").alias("last sample (UTC)"),
                pl.col("temp_c").round(1).cast(pl.String).alias("temp (°C)"),
                pl.col("power_w").round(0).cast(pl.Int64).cast(pl.String).alias("power (W)"),
                pl.col("util_pct").round(0).cast(pl.Int64).cast(pl.String).alias("util (%)"),
                (pl.col("throttled_share") * 100).round(1).cast(pl.String).alias("throttled (% of range)"),
            )
            .fill_null("—")
        )
        st.table(show, hide_index=True)
    else:
        st.success(f"All {len(device_groups)} accelerators of {node} reported and none throttled in this range.")


live()
