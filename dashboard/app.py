"""The neighborscope SRE dashboard (Streamlit). Start it with ``neighborscope dashboard``.

Pages live in ``dashboard/pages/``; this script only sets the page frame and the navigation.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="neighborscope", page_icon="📡", layout="wide")

navigation = st.navigation(
    [
        st.Page(PAGES / "overview.py", title="Fleet overview", icon="🌡️", url_path="overview", default=True),
        st.Page(PAGES / "node_detail.py", title="Node detail", icon="📈", url_path="node"),
        st.Page(PAGES / "noisy_neighbours.py", title="Noisy neighbours", icon="🔊", url_path="noisy-neighbours"),
        st.Page(PAGES / "runs.py", title="Runs & history", icon="🏁", url_path="runs"),
        st.Page(PAGES / "alerts.py", title="Alerts", icon="🚨", url_path="alerts"),
    ]
)
st.sidebar.caption("neighborscope: do co-tenants slow each other down?")
navigation.run()
