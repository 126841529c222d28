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
    st.info("No alert state found: the alert engine has not run against this store yet (start "
            "`neighborscope alerts`, or pass `--alert-state FILE` to `neighborscope dashboard`).")
else:
    st.caption(f"Alert state read from `{state.source}`.")

alerts = state.alerts
firing = alerts.filter(pl.col("status") == "firing")
recent = alerts.filter(pl.col("status") != "firing")
c = st.columns(3)
c[0].metric("Firing", firing.height)
c[1].metric("Critical", firing.filter(pl.col("severity") == "critical").height)
c[2].metric("Silences", state.silences.height)
columns = {
    "starts_at": st.column_config.DatetimeColumn("since (UTC)"),
    "ends_at": st.column_config.DatetimeColumn("ended (UTC)"),
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
    st.dataframe(state.silences, hide_index=True, column_config={
        "starts_at": st.column_config.DatetimeColumn("from (UTC)"),
        "ends_at": st.column_config.DatetimeColumn("until (UTC)"),
    })
else:
    st.caption("No silences (silence planned interference experiments in Alertmanager, or with "
               "`neighborscope alerts silence`).")
