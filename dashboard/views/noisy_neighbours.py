"""Noisy neighbours: did co-tenants slow the victim down, by how much, and who is to blame?"""

from __future__ import annotations

import time
from datetime import timedelta

import polars as pl
import streamlit as st

from analysis import figures as charts
from analysis.figures.knee import knee_figure
from analysis.knee import with_load
from dashboard import data, interference, layout, plotly_view

EXPECTED_S = 8.0  # what the progress bar fills towards (seed 000's three runs take 5-7 s on 2 busy cores)

s, choice = layout.page_header(
    "Noisy neighbours",
    "Pick a victim and its benchmark runs, or a serving group and a time range of live traffic (its engine's own "
    "metrics): how its latency changed, which co-tenants are to blame and through what, separately for decode (ITL) "
    "and prefill (TTFT), and the victim's latency next to their activity.",
)
runs = data.runs(s.store_url)
latest_run = runs["start"].max() if runs.height else None
qp = st.query_params
live_range = layout.query_range(qp.get("from"), qp.get("until")) or layout.resolve_range(choice, s.store_url)
serving_groups = data.groups_with(s.store_url, "serving", live_range.start, live_range.end)
bench_groups = runs["group"].drop_nulls().unique(maintain_order=True).to_list() if "group" in runs.columns else []
SOURCES = {"bench": "Benchmark runs", "live": "Live traffic (serving-engine metrics)"}
sources = [k for k, have in (("bench", bench_groups), ("live", serving_groups)) if have]
if not sources:
    st.caption(
        f"**Time range:** the chosen runs, or {live_range.label.lower()} of live traffic · **Data freshness:** "
        f"newest sample {layout.fmt_time(data.freshest(s.store_url))} · store `{s.store_url}`"
    )
    st.info(
        "No benchmark runs and no serving-engine metrics in the store, so there is no victim to analyse yet. Import "
        "runs with `neighborscope import bench FILE --group hive0 --phase baseline` (one per phase), point the agent "
        "at your vLLM / SGLang metrics (`[[serving]]` in the agent config, see docs/serving.md), or run "
        "`neighborscope demo`."
    )
    st.stop()
asked_live = bool(qp.get("from") or qp.get("until")) or (qp.get("victim") in serving_groups and not bench_groups)
default_source = "live" if "live" in sources and (asked_live or "bench" not in sources) else sources[0]
source = (
    st.radio(
        "Source",
        sources,
        index=sources.index(default_source),
        format_func=SOURCES.get,
        horizontal=True,
        key="nn_source",
        help="Benchmark runs: the phases you imported. Live traffic: the serving engine's own histograms (TTFT, ITL) "
        "over the time range, scraped by the agent; correlational unless a randomised stress schedule covers it.",
    )
    if len(sources) > 1
    else sources[0]
)
if source == "live":
    c1, c2 = st.columns([1, 3])
    asked = qp.get("victim")
    victim = (
        c1.selectbox(
            "Victim",
            serving_groups,
            index=serving_groups.index(asked) if asked in serving_groups else 0,
            key="nn_live_victim",
            help="The group whose serving engine's metrics are analysed.",
        )
        or serving_groups[0]
    )
    node = qp.get("node") or None
    c2.caption(
        f"**Time range:** {layout.fmt_time(live_range.start)} → {layout.fmt_time(live_range.end)} "
        f"({live_range.label.lower()}) · node {node or 'any'} · **Data freshness:** newest sample "
        f"{layout.fmt_time(data.freshest(s.store_url))} · store `{s.store_url}`"
    )
    job = data.live_analysis_job(s, victim, node, live_range.start, live_range.end)
    span_start, span_end = live_range.start, live_range.end
    label = f"the live traffic of {victim}"
else:
    groups = bench_groups
    asked = qp.get("victim")
    c1, c2 = st.columns([1, 3])
    victim = (
        c1.selectbox(
            "Victim",
            groups,
            index=groups.index(asked) if asked in groups else 0,
            key="nn_victim",
            help="The group whose benchmark runs are analysed (e.g. hive0).",
        )
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
    label = f"{sel.height} run(s) of {victim}"
# a result computed before (by anyone, in the last 5 minutes) is drawn at once; else a progress line counts the
# seconds while the script waits for the background thread (each update reaches the browser as it is made; a
# widget changed meanwhile stops this run, and the analysis goes on for the next one)
bar = st.empty()
while not job.future.done():
    bar.progress(
        min(job.elapsed_s() / EXPECTED_S, 0.95),
        text=f"Analysing {label}: phase comparisons with bootstrap intervals, telemetry on the window grid, "
        f"attribution on ITL and TTFT windows … {job.elapsed_s():.0f} s (kept 5 minutes for every visitor)",
    )
    time.sleep(0.2)
bar.empty()
result, problem = job.future.result()

if result is None:
    st.info(problem or "The analysis could not run.")
    st.stop()
if source == "bench":
    st.header("Phases")
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
st.caption(
    "Decode (inter-token latency windows) and prefill (time-to-first-token windows) separately: in disaggregated "
    "serving a prefill pool's neighbour shows in TTFT, a decode pool's in ITL."
)
for tab, metric_key in zip(st.tabs(["Decode: ITL", "Prefill: TTFT"]), ("itl", "ttft"), strict=True):
    with tab:
        ranked = result.antagonists_of(metric_key)
        if ranked.height == 0:
            st.info(
                f"No antagonist ranked on {metric_key.upper()} windows. "
                + " ".join(n for n in result.notes if "attribution" in n or "suspect" in n or "per-token" in n)
            )
        else:
            st.dataframe(
                interference.antagonist_table(ranked),
                hide_index=True,
                column_config=interference.ANTAGONIST_TABLE_COLUMNS,
                key=f"nn-antagonists-{metric_key}",
            )
if result.notes:
    with st.expander("How this was computed (notes)"):
        for note in result.notes:
            st.markdown(f"- {note}")

st.header("Victim latency against co-tenant activity")
if result.attribution is None or result.attribution.index.height == 0:
    st.info(
        "No windowed latency to draw: the attribution did not run (summary-only benchmark imports have no "
        "per-request data: import the benchmark's detailed output, vLLM --save-detailed or AIPerf "
        "profile_export.jsonl, and the node's telemetry; live traffic needs the engine's histograms over enough "
        "windows)."
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

if result.knee is not None and result.windows is not None:
    st.header("TTFT knee")
    st.caption(
        "From the victim's windows: the load (concurrency x input length) beyond which TTFT rises sharply "
        "(seed 004: TTFT rose sharply when batch x input exceeded thresholds), with its 95 % interval."
    )
    plotly_view.chart(knee_figure(with_load(result.windows), result.knee), key="nn-knee")
    st.caption(result.knee.summary())
