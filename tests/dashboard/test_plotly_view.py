"""dashboard.plotly_view: figures drawn with a plotly.js bundle of the dashboard's trace types, or by Streamlit."""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs_version
from streamlit.testing.v1 import AppTest

from analysis import figures as charts
from dashboard.plotly_view import BUNDLE, BUNDLE_TRACES, BUNDLE_VERSION, STATIC, drawable, trace_types


def test_the_dashboards_trace_types_are_drawable():
    assert drawable({"scatter"})
    assert drawable({"scatter", "bar", "heatmap"})
    assert drawable(set())  # a "loading" placeholder has no trace


def test_webgl_and_other_traces_are_left_to_streamlit():
    assert not drawable({"scattergl"})
    assert not drawable({"scatter", "choropleth"})


def test_trace_types_of_figures():
    assert trace_types(go.Figure(go.Scatter(x=[1], y=[1]))) == {"scatter"}
    assert trace_types(charts.loading_figure("Loading …")) == set()


def test_the_vendored_bundle_is_the_plotly_js_of_the_plotly_package():
    """plotly.py builds and validates the figures against its own plotly.js: the vendored bundle must be that same
    version (rebuild it with dashboard/static/build when plotly is upgraded) and hold BUNDLE_TRACES."""
    text = (STATIC / BUNDLE).read_text(encoding="utf-8")
    head = text[:400]
    match = re.search(r"plotly\.js \(neighborscope - minified\) v(\S+): traces ([\w, ]+)", head)
    assert match, head
    assert match.group(1) == BUNDLE_VERSION
    assert get_plotlyjs_version() == BUNDLE_VERSION
    assert set(match.group(2).split(", ")) == BUNDLE_TRACES
    assert "MIT license" in head
    entry = (STATIC / "build" / "entry.js").read_text(encoding="utf-8")
    assert set(re.findall(r"plotly\.js/lib/(\w+)'", entry)) - {"core", "calendars"} == BUNDLE_TRACES - {"scatter"}


def script(body: str) -> AppTest:
    at = AppTest.from_string(
        "import plotly.graph_objects as go\nfrom dashboard import plotly_view\n" + body, default_timeout=30
    )
    at.run()
    assert not at.exception, at.exception
    return at


def component_data(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.json) for e in at.get("bidi_component")]


def test_chart_sends_the_figure_and_the_bundle_to_the_component():
    at = script("plotly_view.chart(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), key='h')")
    (data,) = component_data(at)
    assert data["url"] == f"/app/static/{BUNDLE}?v={BUNDLE_VERSION}"
    assert json.loads(data["figure"])["data"][0]["type"] == "heatmap"
    assert data["config"]["displaylogo"] is False
    assert not at.get("plotly_chart")


def test_a_webgl_figure_falls_back_to_streamlits_own_chart():
    at = script("plotly_view.chart(go.Figure(go.Scattergl(x=[1, 2], y=[1, 2])))")
    assert len(at.get("plotly_chart")) == 1
    assert not component_data(at)


def test_the_bundle_url_follows_the_servers_base_path():
    from streamlit import config

    old = config.get_option("server.baseUrlPath")
    config.set_option("server.baseUrlPath", "/sre/dash/")
    try:
        at = script("plotly_view.chart(go.Figure())")
        assert component_data(at)[0]["url"].startswith(f"/sre/dash/app/static/{BUNDLE}")
    finally:
        config.set_option("server.baseUrlPath", old)
