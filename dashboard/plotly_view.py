"""Draw plotly figures in the dashboard with a small plotly.js bundle instead of Streamlit's full one.

``st.plotly_chart`` ships the whole of plotly.js (4.7 MB: 40-odd trace types, WebGL, maps) and the browser
evaluates all of it before the first chart appears: on a 2-core machine that is about a second of the main
thread, a third of a page load (benchmarks/dashboard_load.py). The dashboard draws four trace types, so `chart`
draws its figures through a small Streamlit component (``st.components.v2``, in the page itself, no iframe) with
a plotly.js bundle of just those (`BUNDLE_TRACES`; 1.3 MB, evaluated in 0.2 s where the full bundle takes 1.5 s
here); a figure with any other trace type (e.g. ``scattergl`` in a dense figure) goes to ``st.plotly_chart`` as before.

The bundle is built from the npm package plotly.js, of the same version as the plotly Python package's own bundle
(`BUNDLE_VERSION`, checked by a test), the way plotly.js builds its partial bundles (``dashboard/static/build``),
and vendored in ``dashboard/static/``, which Streamlit's static file serving serves (``--server.enableStaticServing``,
which ``neighborscope dashboard`` turns on). The component themes each figure from the page's Streamlit theme
(text colour and font, transparent background, faint grid), so charts stay readable in light and dark mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

STATIC = Path(__file__).resolve().parent / "static"
BUNDLE = "plotly-neighborscope.min.js"
BUNDLE_VERSION = "4.1.1"  # plotly.js of the vendored bundle; the same as plotly.py's (tests/dashboard)
BUNDLE_TRACES = frozenset({"scatter", "bar", "heatmap", "pie"})  # as registered in static/build/entry.js
DEFAULT_CONFIG = {"displaylogo": False, "responsive": True}

# The component's JavaScript: load the bundle once per page (a classic script, so the browser keeps its compiled
# code in the code cache), theme the figure from the page, then Plotly.react (which redraws in place when a mounted
# chart gets a new figure). Until the bundle runs, the chart's box keeps the figure's height, so nothing jumps.
JS = r"""
// the bundle is loaded once per page, as a classic script (the browser keeps its compiled code between visits)
function bundle(url) {
  if (!window.__neighborscopePlotly) window.__neighborscopePlotly = new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = url; s.async = true;
    s.onload = () => window.Plotly ? resolve(window.Plotly) : reject(new Error(url + ' did not define Plotly'));
    s.onerror = () => { window.__neighborscopePlotly = null; reject(new Error('could not load ' + url)); };
    document.head.appendChild(s);
  });
  return window.__neighborscopePlotly;
}
function rgba(host, colour, alpha) {
  const probe = document.createElement('span');
  probe.style.color = colour; probe.style.display = 'none'; host.appendChild(probe);
  const m = getComputedStyle(probe).color.match(/[\d.]+/g) || ['128', '128', '128'];
  probe.remove();
  return `rgba(${m[0]},${m[1]},${m[2]},${alpha})`;
}
function themed(layout, host) {
  const cs = getComputedStyle(host);
  const text = cs.getPropertyValue('--st-text-color').trim() || cs.color;
  const family = cs.getPropertyValue('--st-font').trim() || cs.fontFamily;
  const grid = rgba(host, text, 0.14), line = rgba(host, text, 0.35);
  const out = Object.assign({}, layout);
  delete out.template;
  out.font = Object.assign({ color: text, family }, layout.font || {});
  out.paper_bgcolor = layout.paper_bgcolor || 'rgba(0,0,0,0)';
  out.plot_bgcolor = layout.plot_bgcolor || 'rgba(0,0,0,0)';
  out.colorway = layout.colorway || ['#636efa', '#EF553B', '#00cc96', '#ab63fa', '#FFA15A', '#19d3f3', '#FF6692',
                                     '#B6E880', '#FF97FF', '#FECB52'];
  out.legend = Object.assign({ bgcolor: 'rgba(0,0,0,0)' }, layout.legend || {});
  out.hoverlabel = Object.assign({ font: { family } }, layout.hoverlabel || {});
  const axes = Object.keys(out).filter(k => /^[xy]axis\d*$/.test(k));
  for (const k of axes.length ? axes : ['xaxis', 'yaxis'])
    out[k] = Object.assign({ gridcolor: grid, linecolor: line, zerolinecolor: line, automargin: true }, out[k] || {});
  out.autosize = true;
  return out;
}
export default function (component) {
  const { data, parentElement } = component;
  const host = parentElement.host || parentElement;
  let el = parentElement.querySelector('.neighborscope-plotly');
  if (!el) {
    el = document.createElement('div');
    el.className = 'neighborscope-plotly';
    el.dataset.testid = 'nsPlotlyChart';
    el.style.width = '100%';
    parentElement.appendChild(el);
  }
  const fig = JSON.parse(data.figure);
  const layout = themed(fig.layout || {}, host);
  el.style.minHeight = (layout.height || 450) + 'px';
  bundle(data.url)
    .then(Plotly => Plotly.react(el, fig.data || [], layout, data.config))
    .catch(err => { el.textContent = 'The chart could not be drawn: ' + err.message; });
  return () => { if (window.Plotly) window.Plotly.purge(el); };
}
"""

# isolate_styles=False: plotly.js puts its stylesheet (modebar, hover labels) in the document's head, which a
# shadow root would not see
_component = st.components.v2.component("neighborscope_plotly", js=JS, isolate_styles=False)


def trace_types(fig: go.Figure) -> set[str]:
    return {t.type or "scatter" for t in fig.data}


def drawable(types: Iterable[str]) -> bool:
    """True when the vendored bundle holds every trace type of ``types``."""
    return set(types) <= BUNDLE_TRACES


def bundle_url() -> str:
    """Where the page loads the bundle: Streamlit's static serving, under the server's base path if it has one."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"{'/' + base if base else ''}/app/static/{BUNDLE}?v={BUNDLE_VERSION}"


def chart(fig: go.Figure, key: str | None = None, config: Mapping[str, object] | None = None) -> None:
    """Draw ``fig`` where ``st.plotly_chart`` would: with the small bundle when it holds the figure's trace types."""
    conf = {**DEFAULT_CONFIG, **(config or {})}
    if not drawable(trace_types(fig)):  # e.g. WebGL traces: only Streamlit's full bundle has them
        st.plotly_chart(fig, key=key, config=conf)
        return
    _component(key=key, data={"figure": fig.to_json(), "url": bundle_url(), "config": conf}, height="content")
