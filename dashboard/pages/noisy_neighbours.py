"""Noisy neighbours: did co-tenants slow the victim down, by how much, and who is to blame?"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import streamlit as st

from dashboard import charts, data, interference, layout

s = layout.settings()
st.title("Noisy neighbours")
st.write("Pick a victim (a serving group) and its runs: how each phase changed its throughput and latency, which "
         "co-tenants are to blame, and the victim's latency next to their activity.")
if layout.store_problem(s.store_url):
    st.stop()
layout.range_choice()
runs = data.runs(s.store_url)
latest_run = runs["start"].max() if runs.height else None
if runs.height == 0 or "group" not in runs.columns:
    st.caption(f"🕒 **Time range:** the chosen runs · **Data freshness:** newest sample "
               f"{layout.fmt_time(data.freshest(s.store_url))} · store `{s.store_url}`")
    st.info("No benchmark runs in the store, so there is no victim to analyse yet. Import runs with "
            "`neighborscope import bench FILE --group hive0 --phase baseline` (one per phase), or run "
            "`neighborscope demo`.")
    st.stop()

groups = runs["group"].drop_nulls().unique(maintain_order=True).to_list()
c1, c2 = st.columns([1, 3])
victim = c1.selectbox("Victim", groups, key="nn_victim",
                      help="The group whose benchmark runs are analysed (e.g. hive0).") or groups[0]
vruns = runs.filter(pl.col("group") == victim).sort("start")
ids = vruns["run_id"].to_list()
picked = c2.multiselect("Runs (one per phase, or several)", ids, default=ids, key="nn_runs")
sel = vruns.filter(pl.col("run_id").is_in(picked)) if picked else vruns.head(0)
if sel.height == 0:
    st.info("Choose at least one run of the victim.")
    st.stop()
span_start = sel["start"].min()
span_end = sel["end"].max() if "end" in sel.columns and sel["end"].null_count() < sel.height else None
span_end = span_end or span_start + timedelta(hours=1)  # type: ignore[operator]
st.caption(f"🕒 **Time range:** {layout.fmt_time(span_start)} → {layout.fmt_time(span_end)} (the chosen runs) · "  # type: ignore[arg-type]
           f"**Data freshness:** newest run started {layout.fmt_time(latest_run)} ({layout.fmt_age(latest_run)}) · "  # type: ignore[arg-type]
           f"store `{s.store_url}`")

st.header("Phases")
phases = interference.phase_summary(sel)
st.dataframe(phases, hide_index=True, column_config={
    "output_tok_s": st.column_config.NumberColumn("output tok/s", format="%.1f"),
    "itl_ms_p99": st.column_config.NumberColumn("p99 ITL (ms)", format="%.1f"),
    "ttft_ms_p99": st.column_config.NumberColumn("p99 TTFT (ms)", format="%.0f"),
    "tpot_ms_mean": st.column_config.NumberColumn("mean TPOT (ms)", format="%.2f"),
})
st.caption("Change (Δ%) against the first phase. Confidence intervals and verdicts (degraded / equivalent / "
           "inconclusive) come from the degradation engine when it is installed.")

st.header("Ranked antagonists")
try:
    from analysis import attribution  # noqa: F401  (wired in when the attribution engine lands)
except ImportError:
    st.info("The attribution engine (`analysis.attribution`) is not installed in this build, so no antagonist is "
            "ranked yet. The charts below show the raw evidence: the victim's latency next to every co-tenant's "
            "activity.")
else:
    st.info("Attribution results appear here once `neighborscope analyze` has run for this victim.")

st.header("Victim latency against co-tenant activity")
frames = [t for r in sel["run_id"].to_list() if (t := data.tokens(s.store_url, r)) is not None]
tokens = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
window_s = st.select_slider("Window", options=[5, 10, 15, 30, 60, 120], value=10, key="nn_window",
                            format_func=lambda w: f"{w} s")
run_spans = sel.select("run_id", "phase", "group", "start", pl.col("end").fill_null(pl.col("start")))
vw = interference.victim_windows(tokens, run_spans, float(window_s)) if tokens.height else interference.victim_windows(
    pl.DataFrame(), run_spans, float(window_s))
node = sel["node"].drop_nulls()[0] if "node" in sel.columns and sel["node"].drop_nulls().len() else None
pad = timedelta(seconds=window_s)
tenant = data.series(s.store_url, "tenant", "cpu_pct", span_start - pad, span_end + pad,  # type: ignore[operator]
                     (("node", (node,)),) if node else (), ("group",), n_out=100_000)
activity = interference.activity_windows(tenant, float(window_s), victim)
events = data.run_events(s.store_url, span_start - pad, span_end + pad)  # type: ignore[operator]
spans = charts.bands(events, victim)
if vw.height == 0:
    st.info("These runs have no per-token data (summary-only imports), so there is no windowed latency to draw. "
            "Import the benchmark's detailed output (vLLM --save-detailed, AIPerf profile_export.jsonl) to get it.")
else:
    st.plotly_chart(charts.victim_vs_antagonists(vw, activity, victim, spans), key="nn-linked",
                    config={"displaylogo": False})
    idx = interference.simple_index(vw)
    pts = interference.index_vs_activity(idx, activity)
    st.plotly_chart(charts.index_scatter(pts, "antagonist CPU (%, 100 = one core)",
                                         "interference index (robust z of log p99 ITL)"),
                    key="nn-scatter", config={"displaylogo": False})
    st.caption("Interference index here: the window's log p99 ITL as a robust z-score against the first phase's "
               "windows (0 = as in the baseline). Points that climb with an antagonist's activity point at it.")
