"""Node detail: any accelerator metric for chosen devices, host CPU and tenant activity on one time axis,
benchmark runs as shaded bands; the shared resources a co-tenant can steal (pressure stalls, CFS throttling, memory
bandwidth, disk, network) and the serving engines' own latency; the node's topology (what its devices and tenants
share). A node without accelerators (CPU-only, serving-only) shows everything but the accelerator panel."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis import figures as charts
from dashboard import data, layout, plotly_view
from telemetry import topology as topo_schema
from telemetry.schema import ACCEL, HOST, TENANT

# a dozen traces in three stacked panels: 1,000 points each is still about one per pixel column of a wide
# screen, and the browser draws them in about half the time 2,000 take (benchmarks/dashboard_load.py)
POINTS_PER_TRACE = 1000
SHARE_TITLES = {
    "socket": "CPU socket",
    "pcie_switch": "PCIe switch",
    "numa_node": "NUMA node",
    "nic": "NIC",
    "disk": "disk",
    "cooling_zone": "cooling zone",
    "power_zone": "power zone",
    "groups": "groups (tenants)",
}

# panel -> ((measurement, field, trace tag or None, label), ...), unit, what it shows
RESOURCE_PANELS: dict[str, tuple[tuple[tuple[str, str, str | None, str], ...], str]] = {
    "Serving engines: p99 inter-token latency": ((("serving", "itl_ms_p99", "group", ""),), "ms"),
    "Serving engines: p99 time to first token": ((("serving", "ttft_ms_p99", "group", ""),), "ms"),
    "Serving engines: running and waiting requests": (
        (("serving", "requests_running", "group", "running "), ("serving", "requests_waiting", "group", "waiting ")),
        "requests",
    ),
    "Host pressure stalls (some)": (
        tuple(("host", f"{r}_pressure_some_us_per_s", None, r) for r in ("cpu", "mem", "io")),
        "µs stalled per s",
    ),
    "Tenant CPU pressure": ((("tenant", "cpu_pressure_some_us_per_s", "group", ""),), "µs stalled per s"),
    "Tenant memory pressure": ((("tenant", "mem_pressure_some_us_per_s", "group", ""),), "µs stalled per s"),
    "Tenant I/O pressure": ((("tenant", "io_pressure_some_us_per_s", "group", ""),), "µs stalled per s"),
    "Tenant CFS throttling": ((("tenant", "cpu_throttled_us_per_s", "group", ""),), "µs throttled per s"),
    "Tenant memory bandwidth (resctrl)": ((("tenant", "mbm_total_bytes_per_s", "group", ""),), "B/s"),
    "Disk busy": ((("host_disk", "busy_pct", "disk", ""),), "%"),
    "Network throughput": (
        (("host_net", "rx_bytes_per_s", "interface", "rx "), ("host_net", "tx_bytes_per_s", "interface", "tx ")),
        "B/s",
    ),
}
DEFAULT_RESOURCE_PANELS = ("Serving engines: p99 inter-token latency", "Host pressure stalls (some)")


def resource_panel(title: str, spec: tuple, node: str, tr: layout.TimeRange) -> dict:
    """One panel of `RESOURCE_PANELS`: each (measurement, field, tag) series of ``node``, stacked as traces."""
    series, unit = spec
    parts = []
    for measurement, field, tag, label in series:
        frame = data.series(
            s.store_url,
            measurement,
            field,
            tr.start,
            tr.end,
            (("node", (node,)),),
            (tag,) if tag else (),
            POINTS_PER_TRACE,
        )
        if frame.height == 0:
            continue
        name = pl.lit(label.strip() or field) if tag is None else pl.lit(label) + pl.col(tag).fill_null("?")
        parts.append(frame.select("time", name.alias("trace"), pl.col(field).cast(pl.Float64).alias("value")))
    frame = pl.concat(parts) if parts else pl.DataFrame(schema={"time": pl.Datetime("ns", "UTC"), "value": pl.Float64})
    return {"frame": frame, "y": "value", "by": "trace" if parts else None, "title": title, "unit": unit}


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
others = data.node_status(s.store_url, tr.start, tr.end)
if fleet_status.height == 0 and others.height == 0:
    slot.warning(
        f"No telemetry between {layout.fmt_time(tr.start)} and {layout.fmt_time(tr.end)}; the "
        f"newest sample is from {layout.fmt_time(data.freshest(s.store_url))}. Pick a longer range."
    )
    st.stop()

nodes = sorted({*fleet_status["node"].to_list(), *others["node"].to_list()}, key=layout.natural)
# ?node=NAME (the overview's rows link here so): select it, once per new value, then let the picker rule; the
# picked node goes back into the URL, so the address bar always names what the page shows
asked = st.query_params.get("node")
if asked in nodes and st.session_state.get("_node_asked") != asked:
    st.session_state["node"] = asked
    st.session_state["_node_asked"] = asked
elif asked and asked not in nodes:
    controls.warning(f"Node {asked!r} (from the address) has no telemetry in this range; showing {nodes[0]} instead.")
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
has_accel = node_devs.height > 0
if has_accel and not chosen:
    slot.info("Choose at least one group or device above to plot it.")
    st.stop()

unit = layout.axis_unit(metrics[metric].unit)
panels = []
if has_accel:
    panels.append(
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
    )
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
    if not has_accel:
        st.caption(f"{node} sent no accelerator telemetry in this range (a CPU-only or serving-only node).")
    elif panels[0]["frame"].height == 0:
        st.info(
            f"No {metric} samples from the chosen devices of {node} in this range (the device may not report "
            "it: absent values are never drawn as 0)."
        )
    if not has_accel and points == 0:
        st.caption(f"{node} sent no host or tenant telemetry either: its serving engines' metrics are below.")
    else:
        if host_frame.height == 0 or tenant_frame.height == 0:
            missing = " and ".join(w for w, f in (("host", host_frame), ("tenant", tenant_frame)) if f.height == 0)
            st.caption(f"No {missing} telemetry from {node} in this range (its panel is left out).")
        plotly_view.chart(fig, key="node-series")
        st.caption(
            f"{points:,} points drawn (at most {POINTS_PER_TRACE:,} per trace, min/max preserved; pick a "
            "shorter range for more detail)."
        )

st.subheader("Shared resources and serving engines")
have = data.fields_present(s.store_url, node, tr.start, tr.end)
options = {k: v for k, v in RESOURCE_PANELS.items() if any(f"{m}.{f}" in have for m, f, _, _ in v[0])}
if not options:
    st.caption(
        f"{node} sends no pressure-stall, disk, network or serving-engine metrics (agent samplers `host` with PSI, "
        "`tenants` with cgroup v2, `disk`, `net`, `serving`)."
    )
else:
    picked_panels = st.multiselect(
        "Panels",
        list(options),
        default=[k for k in options if k in DEFAULT_RESOURCE_PANELS] or list(options)[:1],
        key="node_resources",
        help="What a co-tenant can steal, read on the victim's side (stall time, throttling) and at the shared "
        "device (disk, NIC); and the serving engines' own latency (the victim's view).",
    )
    rpanels = [resource_panel(k, options[k], node, tr) for k in picked_panels]
    plotly_view.chart(charts.timeseries_panels(rpanels, spans), key="node-resources")

st.subheader("Topology")
if topo.height and node in topo["node"].to_list():
    topo = topo.filter(pl.col("node") == node)
hosted = topo.filter(pl.col("device").is_null())  # host-only groups (a CPU job): what they share, below
topo = topo.filter(pl.col("device").is_not_null())
if topo.height == 0 and hosted.height == 0:
    st.info(
        "No topology.json found (the simulator and the demo write one beside the store; pass "
        "`--topology PATH` to `neighborscope dashboard`). Devices seen: " + ", ".join(node_devs["device"].to_list())
    )
elif topo.height:
    st.caption(
        f"From `{source}`. Devices on one PCIe switch share its uplink; on one socket its root complex, cores and "
        "memory controllers; on one NUMA node its memory bandwidth; on one NIC the fabric; on one disk its I/O "
        "queue; a cooling zone an air path; a power zone a power budget."
    )
    shared = [k for k in topo_schema.SHARED if k in topo.columns and topo[k].null_count() < topo.height]
    by_place = (
        topo.group_by(shared)
        .agg(
            pl.col("device").sort().str.join(", ").alias("devices"),
            pl.col("group").unique().sort().str.join(", ").alias("groups"),
        )
        .sort(shared, nulls_last=True)
        if shared
        else topo.select(pl.col("device").sort().str.join(", ").alias("devices"))
    )
    # a few rows: a static table (st.table) draws without loading the data grid's JavaScript (st.dataframe)
    st.table(by_place.rename(SHARE_TITLES, strict=False).fill_null("—"), hide_index=True)
if hosted.height:
    places = [k for k in topo_schema.SHARED if hosted[k].null_count() < hosted.height]
    st.caption("Host-only tenants (no accelerator) and what they share:")
    st.table(hosted.select("group", *places).rename(SHARE_TITLES, strict=False).fill_null("—"), hide_index=True)
