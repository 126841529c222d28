"""Alerts: what is firing now, what fired recently, and the silences in force."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import alerts_view, layout

s, choice = layout.page_header(
    "Alerts",
    "Noisy-neighbour degradation, performance regressions and thermal regressions raised by "
    "`neighborscope alerts`, with their labels and annotations, and the silences in force.",
)
tr = layout.resolve_range(choice, s.store_url)
layout.range_caption(tr, s.store_url)
state = alerts_view.load_state(s)
if state.source is None:
    st.info(
        "No alert state found: the alert engine has not run against this store yet (start "
        "`neighborscope alerts`, or pass `--alert-state FILE` to `neighborscope dashboard`)."
    )
else:
    st.caption(f"Alert state read from `{state.source}`.")

alerts = state.alerts
# ?node=NAME&device=NAME (links from the other pages): only that node's / device's alerts
scope = {k: v for k in ("node", "device") if (v := st.query_params.get(k))}
if scope:
    for key, value in scope.items():
        alerts = alerts.filter(pl.col(key) == value)
    where = ", ".join(f"{k} {v}" for k, v in scope.items())
    st.info(f"Showing the alerts of {where} only ({alerts.height} of {state.alerts.height}).")
    if st.button("Show every alert", key="alerts_all"):
        for key in scope:
            del st.query_params[key]
        st.rerun()
alerts = alerts.with_columns(pl.col(pl.String).fill_null("—"))  # a label that does not apply: a dash, not "None"
firing = alerts.filter(pl.col("status") == "firing").drop("ends_at")  # still firing: no end to show
recent = alerts.filter(pl.col("status") != "firing").with_columns(
    pl.when(pl.col("ends_at").is_null())
    .then(pl.lit("—"))
    .otherwise(pl.col("ends_at").dt.strftime("%Y-%m-%d %H:%M:%S"))
    .alias("ends_at")
)
c = st.columns(3)
c[0].metric("Firing", firing.height)
c[1].metric("Critical", firing.filter(pl.col("severity") == "critical").height)
c[2].metric("Silences", state.silences.height)
columns = {
    "starts_at": st.column_config.DatetimeColumn("since (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "ends_at": st.column_config.TextColumn("ended (UTC)"),
    "labels": st.column_config.TextColumn("labels", width="large"),
    "annotations": st.column_config.TextColumn("annotations", width="large"),
}
st.header("Firing now")
if firing.height:
    st.dataframe(firing.drop("status"), hide_index=True, column_config=columns)
else:
    st.success("Nothing is firing.")
st.header("Recently resolved")
if recent.height:
    st.dataframe(recent, hide_index=True, column_config=columns)
else:
    st.caption("No resolved alerts on record.")
st.header("Silences")
if state.silences.height:
    st.dataframe(
        state.silences,
        hide_index=True,
        column_config={
            "starts_at": st.column_config.DatetimeColumn("from (UTC)"),
            "ends_at": st.column_config.DatetimeColumn("until (UTC)"),
        },
    )
else:
    st.caption(
        "No silences (silence planned interference experiments in Alertmanager, or with "
        "`neighborscope alerts silence`)."
    )
