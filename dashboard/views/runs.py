"""Runs & history: benchmark runs side by side, nightly history with change points, the nightly reports."""

from __future__ import annotations

import polars as pl
import streamlit as st
import streamlit.components.v1 as components

from analysis import figures as charts
from dashboard import data, history, layout, plotly_view

METRICS = {
    "output_tok_s": "output throughput (tokens/s)",
    "itl_ms_p99": "p99 inter-token latency (ms)",
    "tpot_ms_p50": "median TPOT (ms)",
    "ttft_ms_p50": "median TTFT (ms)",
    "ttft_ms_p99": "p99 TTFT (ms)",
    "e2e_ms_p50": "median end-to-end latency (ms)",
}

s, _ = layout.page_header(
    "Runs & history",
    "Benchmark runs compared side by side (e.g. baseline vs dual hive vs full stress), the nightly history "
    "with its change points, and the nightly HTML reports.",
)
runs = data.runs(s.store_url)
latest_run = runs["start"].max() if runs.height else None
st.caption(
    f"**Time range:** every stored run ({runs.height}) · **Data freshness:** newest run started "
    f"{layout.fmt_time(latest_run)} ({layout.fmt_age(latest_run)}) · store `{s.store_url}`"
)  # type: ignore[arg-type]

st.header("Benchmark runs")
if runs.height == 0:
    st.info(
        "No benchmark runs in the store yet. Import one with `neighborscope import bench FILE --group hive0 "
        "--phase baseline`, or wrap a benchmark with `neighborscope run -- …`."
    )
else:
    shown = [c for c in ("run_id", "group", "phase", "tool", "start", "completed", *METRICS) if c in runs.columns]
    st.dataframe(
        runs.select(shown),
        hide_index=True,
        column_config={
            "start": st.column_config.DatetimeColumn("start (UTC)"),
            **{m: st.column_config.NumberColumn(label, format="%.2f") for m, label in METRICS.items()},
        },
    )
    groups = runs["group"].unique(maintain_order=True).drop_nulls().to_list() if "group" in runs.columns else []
    group = st.selectbox("Compare the runs of", ["(all groups)", *groups], index=1 if groups else 0, key="runs_group")
    pool = runs if group == "(all groups)" else runs.filter(pl.col("group") == group)
    ids = pool["run_id"].to_list()
    picked = st.multiselect("Runs side by side (the first is the reference)", ids, default=ids[:4], key="runs_pick")
    if picked:
        sel = pool.filter(pl.col("run_id").is_in(picked)).with_columns(
            pl.concat_str([pl.col("phase").fill_null(""), pl.lit(" · "), pl.col("run_id")]).alias("label")
        )
        sel = sel.sort(pl.col("run_id").replace_strict({r: i for i, r in enumerate(picked)}, default=0))
        metrics = {m: t for m, t in METRICS.items() if m in sel.columns}
        if metrics:
            plotly_view.chart(charts.runs_side_by_side(sel, metrics), key="runs-bars")
            ref = sel.row(0, named=True)
            delta = sel.select(
                "label",
                *[((pl.col(m) / ref[m] - 1) * 100).round(2).alias(f"{m} Δ%") for m in metrics if ref.get(m)],
            )
            st.markdown(f"**Change against {ref['label']}** (percent; + is higher)")
            st.dataframe(delta, hide_index=True)
        else:
            st.info("These runs carry no summary metrics (summary-only imports without per-request data).")

st.header("Nightly history")
hist = history.load(s)
if hist.points.height == 0:
    st.info(
        "No nightly history yet: it fills in once the nightly job (`neighborscope report --nightly`, "
        "`neighborscope alerts`) has stored results. Until then the runs above show what there is."
    )
    if runs.height and "output_tok_s" in runs.columns and "start" in runs.columns:
        plotly_view.chart(
            charts.history_figure(
                runs.rename({"start": "time"}).drop_nulls("time"),
                "output_tok_s",
                "tokens/s",
                by="group",
                title="Output throughput of every stored run",
            ),
            key="runs-history",
        )
else:
    series_names = hist.points["series"].unique(maintain_order=True).to_list()
    pick = st.selectbox("Series", series_names, key="history_series")
    pts = hist.points.filter(pl.col("series") == pick)
    cps = hist.change_points.filter(pl.col("series") == pick)["time"].to_list() if hist.change_points.height else []
    unit = pts["unit"][0] if "unit" in pts.columns and pts.height else ""
    if pts.height < 2:
        st.info(
            f"Only {pts.height} night of history for this series so far: change points need several nights "
            "on each side (see `analysis.history.regression`)."
        )
    plotly_view.chart(charts.history_figure(pts, "value", unit, change_points=cps, title=pick), key="history")
    if hist.change_points.height:
        st.markdown("**Change points**")
        st.dataframe(hist.change_points.filter(pl.col("series") == pick), hide_index=True)

st.header("Nightly reports")
reports = data.find_reports_dir(s)
files = sorted(reports.glob("**/*.html"), reverse=True) if reports else []
if not files:
    st.info(
        "No nightly HTML reports found (looked in "
        + (f"`{reports}`" if reports else "`reports/` and `report/` in and beside the store; set `--reports DIR`")
        + ")."
    )
else:
    st.caption(f"{len(files)} report(s) in `{reports}`.")
    name = st.selectbox("Report", [str(f.relative_to(reports)) for f in files], key="report_pick")  # type: ignore[arg-type]
    path = reports / name  # type: ignore[operator]
    html = path.read_text(errors="replace")
    st.download_button("Download this report", html, file_name=path.name, mime="text/html")
    with st.expander("Show the report here", expanded=False):
        components.html(html, height=800, scrolling=True)
