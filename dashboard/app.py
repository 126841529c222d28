"""The neighborscope SRE dashboard (Streamlit). Start it with ``neighborscope dashboard``.

Pages live in ``dashboard/views/``; this script only sets the page frame, the sign-in gate (``--login``) and the
navigation. (Not ``pages/``: Streamlit also registers a ``pages/`` folder beside the main script as pages of its
own, so the first visit to a deep link after a restart showed "Page not found".)
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import streamlit as st
from PIL import Image, ImageDraw
from streamlit.errors import StreamlitAPIException

_started = time.perf_counter()

PAGES = Path(__file__).resolve().parent / "views"


@st.cache_resource(show_spinner=False)
def favicon() -> Image.Image:
    """The tab icon, drawn here: a ``:material/…`` page icon is fetched from fonts.gstatic.com, which an offline
    or firewalled dashboard cannot reach (a console error on every page)."""
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for r, width in ((28, 5), (18, 5)):
        draw.arc((32 - r, 32 - r, 32 + r, 32 + r), 200, 340, fill=(59, 130, 246, 255), width=width)
    draw.ellipse((24, 24, 40, 40), fill=(249, 115, 22, 255))
    return img


st.set_page_config(page_title="neighborscope", page_icon=favicon(), layout="wide")


def sign_in_gate() -> None:
    """``--login``: nothing but the sign-in until the visitor has signed in with the OIDC provider
    (Streamlit's `st.login`, configured by ``[auth]`` in .streamlit/secrets.toml; checked by `dashboard.login`
    before the server starts). A failure to reach the provider is one sentence, never a traceback."""
    if st.user.get("is_logged_in", False):
        st.sidebar.caption(f"signed in as {st.user.get('email') or st.user.get('name') or st.user.get('sub')}")
        st.sidebar.button("Log out", on_click=st.logout)
        return
    st.title("neighborscope")
    st.write("Sign in to see the dashboard (OIDC sign-in, configured by the operator; see docs/dashboard.md).")
    if st.button("Log in", type="primary"):
        try:
            st.login()
        except StreamlitAPIException as exc:  # e.g. Authlib missing, [auth] incomplete: the message, no paths
            logging.getLogger("neighborscope.dashboard").error("sign-in failed: %s", exc)
            st.error(
                "Sign-in is not available: the dashboard's OIDC configuration is incomplete. The operator "
                "can see why in the dashboard's log."
            )
    st.stop()


if os.environ.get("NEIGHBORSCOPE_DASHBOARD_LOGIN") == "1":
    sign_in_gate()

# every page has its own path (/overview, /node-detail, ...); "/" is a hidden page that forwards to the overview,
# keeping the query string (Streamlit serves its default page at "/" only, so /overview would be "Page not found")
OVERVIEW = st.Page(PAGES / "overview.py", title="Fleet overview", icon=":material/thermostat:", url_path="overview")
NODE_DETAIL = st.Page(
    PAGES / "node_detail.py", title="Node detail", icon=":material/monitoring:", url_path="node-detail"
)


def home() -> None:
    st.switch_page(OVERVIEW, query_params=st.query_params.to_dict())


def old_node_path() -> None:
    st.switch_page(NODE_DETAIL, query_params=st.query_params.to_dict())


navigation = st.navigation(
    [
        st.Page(home, title="neighborscope", url_path="home", default=True, visibility="hidden"),
        OVERVIEW,
        NODE_DETAIL,
        st.Page(
            PAGES / "noisy_neighbours.py",
            title="Noisy neighbours",
            icon=":material/campaign:",
            url_path="noisy-neighbours",
        ),
        st.Page(PAGES / "runs.py", title="Runs & history", icon=":material/compare_arrows:", url_path="runs"),
        st.Page(PAGES / "alerts.py", title="Alerts", icon=":material/notifications_active:", url_path="alerts"),
        # bookmarks of the earlier path of the node page
        st.Page(old_node_path, title="Node detail", url_path="node", visibility="hidden"),
    ]
)
st.sidebar.caption("neighborscope: do co-tenants slow each other down?")
navigation.run()
logging.getLogger("neighborscope.dashboard").debug("%s ran in %.3f s", navigation.title, time.perf_counter() - _started)
