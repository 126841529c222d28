"""Node detail: any accelerator metric for chosen devices, host CPU and tenant activity on one time axis,
benchmark runs as shaded bands, and the node's topology (PCIe switches, sockets, cooling zones)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis import figures as charts
from dashboard import data, layout, plotly_view
from telemetry.schema import ACCEL, HOST, TENANT

# a dozen traces in three stacked panels: 1,000 points each is still about one per pixel column of a wide
# screen, and the browser draws them in about half the time 2,000 take (benchmarks/dashboard_load.py)
POINTS_PER_TRACE = 1000

s, choice = layout.page_header(
    "Node detail",
    "Pick a metric and devices: the accelerators, the host CPU and the co-tenants share one time axis; "
    "the chosen groups' benchmark runs are shaded.",
)
# the controls' place, then the chart's, holding a "loading" chart from the start: the browser fetches and
# starts plotly.js (see charts.loading_figure) while the controls and the series are still being read
controls = st.container()
slot = st.empty()
with slot:
    plotly_view.chart(
        charts.loading_figure("Loading the node's accelerators, host CPU and tenants …", height=3 * 260 + 80),
        config={"displayModeBar": False},
    )
with controls:
    tr = layout.resolve_range(choice, s.store_url)
    layout.range_caption(tr, s.store_url)
if data.freshest(s.store_url) is None:
    with slot.container():
        layout.no_telemetry(s.store_url)
    st.stop()

fleet_status = data.fleet_status(s.store_url, tr.start, tr.end)  # cached, shared with the overview
if fleet_status.height == 0:
    slot.warning(
        f"No accelerator telemetry between {layout.fmt_time(tr.start)} and {layout.fmt_time(tr.end)}; the "
        f"newest sample is from {layout.fmt_time(data.freshest(s.store_url))}. Pick a longer range."
    )
    st.stop()

nodes = sorted(fleet_status["node"].unique().to_list(), key=layout.natural)
# ?node=NAME (the overview's rows link here so): select it, once per new value, then let the picker rule; the
# picked node goes back into the URL, so the address bar always names what the page shows
asked = st.query_params.get("node")
if asked in nodes and st.session_state.get("_node_asked") != asked:
    st.session_state["node"] = asked
    st.session_state["_node_asked"] = asked
elif asked and asked not in nodes:
    controls.warning(
        f"Node {asked!r} (from the address) has no accelerator telemetry in this range; showing {nodes[0]} instead."
    )
c1, c2, c3 = controls.columns([1, 1, 2])
node = c1.selectbox("Node", nodes, key="node") or nodes[0]
if st.query_params.get("node") != node:
    st.query_params["node"] = node
    st.session_state["_node_asked"] = node
metrics = {f.name: f for f in ACCEL.fields if f.kind in ("float", "int", "bool")}
metric = (
    c2.selectbox(
        "Accelerator metric",
        list(metrics),
        index=list(metrics).index("util_pct"),
        key="node_metric",
        format_func=lambda m: f"{m} ({layout.axis_unit(metrics[m].unit)})",
        help="Fields of the accel measurement; the unit is the last part of the name.",
    )
    or "util_pct"
)
node_devs = data.devices(s.store_url, tr.start, tr.end, node)
topo, source = data.topology(s, (node,))
ordered = layout.device_order(node_devs, topo)
groups = [g for g in dict.fromkeys(ordered.values()) if g]
default_group = groups[:1]
chosen_groups = c3.multiselect("Devices of group(s)", groups, default=default_group, key="node_groups")
extra = controls.multiselect("…and these devices", node_devs["device"].to_list(), key="node_devices")
chosen = sorted(set(node_devs.filter(pl.col("group").is_in(chosen_groups))["device"].to_list()) | set(extra))
show_bands = controls.toggle("Shade benchmark runs", value=True, key="node_bands")
if not chosen:
    slot.info("Choose at least one group or device above to plot it.")
    st.stop()

unit = layout.axis_unit(metrics[metric].unit)
panels = [
    {
        "frame": data.series(
            s.store_url,
            "accel",
            metric,
            tr.start,
            tr.end,
            (("node", (node,)), ("device", tuple(chosen))),
            ("device",),
            POINTS_PER_TRACE,
        ),
        "y": metric,
        "by": "device",
        "title": f"{metric} of {len(chosen)} device(s)",
        "unit": unit,
    }
]
host_frame = data.series(
    s.store_url, "host", "cpu_util_pct", tr.start, tr.end, (("node", (node,)),), (), POINTS_PER_TRACE
)
panels.append(
    {
        "frame": host_frame,
        "y": "cpu_util_pct",
        "by": None,
        "title": "host CPU utilisation",
        "unit": layout.axis_unit(HOST.field_index["cpu_util_pct"].unit),
    }
)
tenant_frame = data.series(
    s.store_url, "tenant", "cpu_pct", tr.start, tr.end, (("node", (node,)),), ("group",), POINTS_PER_TRACE
)
panels.append(
    {
        "frame": tenant_frame,
        "y": "cpu_pct",
        "by": "group",
        "title": "tenant CPU (100 % = one core)",
        "unit": layout.axis_unit(TENANT.field_index["cpu_pct"].unit),
    }
)
events = data.run_events(s.store_url, tr.start, tr.end)
events = events.filter(pl.col("node") == node) if events.height else events
spans = charts.bands(events, chosen_groups or None) if show_bands else []
fig = charts.timeseries_panels(panels, spans)  # leaves out a panel with no samples (the caption below says so)
points = sum(p["frame"].height for p in panels)
with slot.container():
    if panels[0]["frame"].height == 0:
        st.info(
            f"No {metric} samples from the chosen devices of {node} in this range (the device may not report "
            "it: absent values are never drawn as 0)."
        )
    if host_frame.height == 0 or tenant_frame.height == 0:
        missing = " and ".join(w for w, f in (("host", host_frame), ("tenant", tenant_frame)) if f.height == 0)
        st.caption(f"No {missing} telemetry from {node} in this range (its panel is left out).")
    plotly_view.chart(fig, key="node-series")
    st.caption(
        f"{points:,} points drawn (at most {POINTS_PER_TRACE:,} per trace, min/max preserved; pick a "
        "shorter range for more detail)."
    )

st.subheader("Topology")
topo = topo.filter(pl.col("device").is_not_null())  # host-only groups (a CPU job) have no row to place here
topo = topo.filter(pl.col("node") == node) if topo.height and node in topo["node"].to_list() else topo
if topo.height == 0:
    st.info(
        "No topology.json found (the simulator and the demo write one beside the store; pass "
        "`--topology PATH` to `neighborscope dashboard`). Devices seen: " + ", ".join(node_devs["device"].to_list())
    )
else:
    st.caption(
        f"From `{source}`. Devices on one PCIe switch share its uplink; devices on one socket share its "
        "root complex and CPU cores; a cooling zone shares an air path."
    )
    by_switch = (
        topo.group_by("socket", "pcie_switch", "cooling_zone")
        .agg(
            pl.col("device").sort().str.join(", ").alias("devices"),
            pl.col("group").unique().sort().str.join(", ").alias("groups"),
        )
        .sort("socket", "pcie_switch")
    )
    # a few rows: a static table (st.table) draws without loading the data grid's JavaScript (st.dataframe)
    st.table(
        by_switch.rename(
            {
                "socket": "CPU socket",
                "pcie_switch": "PCIe switch",
                "cooling_zone": "cooling zone",
                "groups": "groups (tenants)",
            }
        ),
        hide_index=True,
    )
