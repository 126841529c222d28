"""The neighborscope SRE dashboard (Streamlit). Start it with ``neighborscope dashboard``.

Pages live in ``dashboard/views/``; this script only sets the page frame and the navigation. (Not ``pages/``:
Streamlit also registers a ``pages/`` folder beside the main script as pages of its own, so the first visit to a
deep link such as ``/node`` after a restart showed "Page not found".)
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import streamlit as st

_started = time.perf_counter()

PAGES = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="neighborscope", page_icon=":material/sensors:", layout="wide")

if os.environ.get("NEIGHBORSCOPE_DASHBOARD_LOGIN") == "1":
    # opt-in login (`neighborscope dashboard --login`): Streamlit's OIDC, configured in .streamlit/secrets.toml [auth]
    if not st.user.get("is_logged_in", False):
        st.title("neighborscope")
        st.write("Sign in to see the dashboard (OIDC login, configured by the operator; see docs/dashboard.md).")
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()
    st.sidebar.caption(f"signed in as {st.user.get('email') or st.user.get('name') or 'user'}")
    st.sidebar.button("Log out", on_click=st.logout)

navigation = st.navigation(
    [
        st.Page(PAGES / "overview.py", title="Fleet overview", icon=":material/thermostat:", url_path="overview", default=True),
        st.Page(PAGES / "node_detail.py", title="Node detail", icon=":material/monitoring:", url_path="node"),
        st.Page(PAGES / "noisy_neighbours.py", title="Noisy neighbours", icon=":material/campaign:", url_path="noisy-neighbours"),
        st.Page(PAGES / "runs.py", title="Runs & history", icon=":material/compare_arrows:", url_path="runs"),
        st.Page(PAGES / "alerts.py", title="Alerts", icon=":material/notifications_active:", url_path="alerts"),
    ]
)
st.sidebar.caption("neighborscope: do co-tenants slow each other down?")
navigation.run()
logging.getLogger("neighborscope.dashboard").debug("%s ran in %.3f s", navigation.title,
                                                   time.perf_counter() - _started)
