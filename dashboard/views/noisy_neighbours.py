"""Noisy neighbours: did co-tenants slow the victim down, by how much, and who is to blame?"""

from __future__ import annotations

import time
from datetime import timedelta

import polars as pl
import streamlit as st

from analysis import figures as charts
from dashboard import data, interference, layout, plotly_view

EXPECTED_S = 8.0  # what the progress bar fills towards (seed 000's three runs take 5-7 s on 2 busy cores)

s, _ = layout.page_header(
    "Noisy neighbours",
    "Pick a victim (a serving group) and its runs: how each phase changed its throughput and latency, which "
    "co-tenants are to blame and through what, and the victim's latency next to their activity.",
)
runs = data.runs(s.store_url)
latest_run = runs["start"].max() if runs.height else None
if runs.height == 0 or "group" not in runs.columns:
    st.caption(
        f"**Time range:** the chosen runs · **Data freshness:** newest sample "
        f"{layout.fmt_time(data.freshest(s.store_url))} · store `{s.store_url}`"
    )
    st.info(
        "No benchmark runs in the store, so there is no victim to analyse yet. Import runs with "
        "`neighborscope import bench FILE --group hive0 --phase baseline` (one per phase), or run "
        "`neighborscope demo`."
    )
    st.stop()

groups = runs["group"].drop_nulls().unique(maintain_order=True).to_list()
c1, c2 = st.columns([1, 3])
victim = (
    c1.selectbox("Victim", groups, key="nn_victim", help="The group whose benchmark runs are analysed (e.g. hive0).")
    or groups[0]
)
vruns = runs.filter(pl.col("group") == victim).sort("start")
ids = vruns["run_id"].to_list()
picked = c2.multiselect(
    "Runs (one or more per phase; the first phase is the baseline)", ids, default=ids, key="nn_runs"
)
sel = vruns.filter(pl.col("run_id").is_in(picked)) if picked else vruns.head(0)
if sel.height == 0:
    st.info("Choose at least one run of the victim.")
    st.stop()
span_start = sel["start"].min()
span_end = sel["end"].max() if "end" in sel.columns and sel["end"].null_count() < sel.height else None
span_end = span_end or span_start + timedelta(hours=1)  # type: ignore[operator]
st.caption(
    f"**Time range:** {layout.fmt_time(span_start)} → {layout.fmt_time(span_end)} (the chosen runs) · "  # type: ignore[arg-type]
    f"**Data freshness:** newest run started {layout.fmt_time(latest_run)} ({layout.fmt_age(latest_run)}) · "  # type: ignore[arg-type]
    f"store `{s.store_url}`"
)

# what the page knows at once: the chosen runs and their summaries; the analysis runs in the background
# (data.analysis_job, shared and kept 5 minutes) while a progress line counts the seconds
summary_cols = [
    c for c in ("run_id", "phase", "start", "output_tok_s", "itl_ms_p99", "ttft_ms_p99") if c in sel.columns
]
with st.expander(f"The {sel.height} chosen run(s) of {victim}", expanded=False):
    st.dataframe(
        sel.select(summary_cols),
        hide_index=True,
        column_config={
            "start": st.column_config.DatetimeColumn("start (UTC)"),
            **{c: st.column_config.NumberColumn(c, format="%.2f") for c in summary_cols[3:]},
        },
    )
job = data.analysis_job(s, victim, tuple(sorted(picked)))
# a result computed before (by anyone, in the last 5 minutes) is drawn at once; else a progress line counts the
# seconds while the script waits for the background thread (each update reaches the browser as it is made; a
# widget changed meanwhile stops this run, and the analysis goes on for the next one)
bar = st.empty()
while not job.future.done():
    bar.progress(
        min(job.elapsed_s() / EXPECTED_S, 0.95),
        text=f"Analysing {sel.height} run(s) of {victim}: phase comparisons with bootstrap intervals, "
        f"telemetry on the window grid, attribution … {job.elapsed_s():.0f} s (kept 5 minutes for "
        "every visitor)",
    )
    time.sleep(0.2)
bar.empty()
result, problem = job.future.result()

st.header("Phases")
if result is None:
    st.info(problem or "The analysis could not run.")
    st.stop()
phases = result.phases.filter(pl.col("group") == victim)
if phases.height:
    metric_names = phases["metric"].unique(maintain_order=True).to_list()
    metric = st.selectbox(
        "Metric",
        metric_names,
        index=metric_names.index("itl_ms_p99") if "itl_ms_p99" in metric_names else 0,
        key="nn_metric",
    )
    plotly_view.chart(interference.phase_chart(phases, metric), key="nn-phases")
    st.dataframe(interference.phase_table(phases), hide_index=True, column_config=interference.PHASE_TABLE_COLUMNS)
else:
    st.info("No phase table for these runs. " + " ".join(n for n in result.notes if "phase" in n))

st.header("Ranked antagonists")
if result.antagonists.height == 0:
    st.info(
        "No antagonist ranked for these runs. "
        + " ".join(n for n in result.notes if "attribution" in n or "suspect" in n or "per-token" in n)
    )
else:
    st.dataframe(
        interference.antagonist_table(result.antagonists),
        hide_index=True,
        column_config=interference.ANTAGONIST_TABLE_COLUMNS,
    )
if result.notes:
    with st.expander("How this was computed (notes)"):
        for note in result.notes:
            st.markdown(f"- {note}")

st.header("Victim latency against co-tenant activity")
if result.attribution is None or result.attribution.index.height == 0:
    st.info(
        "No windowed latency to draw: the attribution did not run on these runs (summary-only imports have no "
        "per-request data; import the benchmark's detailed output, vLLM --save-detailed or AIPerf "
        "profile_export.jsonl, and the node's telemetry)."
    )
else:
    linked = interference.linked(result.attribution)
    events = data.run_events(s.store_url, span_start - timedelta(minutes=1), span_end + timedelta(minutes=1))  # type: ignore[operator]
    spans = charts.bands(events, victim)
    # one colour per antagonist, the same in both charts (and never one of the victim's own traces)
    colors = charts.antagonist_colors(
        [
            *result.antagonists["antagonist"].to_list(),
            *linked.activity["antagonist"].unique(maintain_order=True).to_list(),
        ]
    )
    plotly_view.chart(
        charts.victim_vs_antagonists(
            linked.victim, linked.activity, victim, spans, activity_title=linked.activity_title, colors=colors
        ),
        key="nn-linked",
    )
    plotly_view.chart(
        charts.index_scatter(linked.scatter, linked.activity_title, linked.index_title, colors=colors), key="nn-scatter"
    )
    st.caption(linked.index_note)
