"""Every page under `streamlit.testing.v1.AppTest`, on the demo store and on an empty store."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from analysis.figures.reduce import MAX_POINTS_PER_TRACE
from telemetry.store.parquet import ParquetStore
from tests.dashboard.conftest import APP, PAGES

TITLES = {"overview": "Fleet overview", "node_detail": "Node detail", "noisy_neighbours": "Noisy neighbours",
          "runs": "Runs & history", "alerts": "Alerts"}
# plotly charts each page draws on the demo data
DEMO_CHARTS = {"overview": 1, "node_detail": 1, "noisy_neighbours": 3, "runs": 2, "alerts": 0}


def run_page(page: str, store: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> AppTest:
    monkeypatch.setenv("NEIGHBORSCOPE_STORE", str(store))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page(PAGES[page])
    at.run()
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def plotly_specs(at: AppTest) -> list[dict]:
    """Every plotly figure on the page: drawn by `dashboard.plotly_view`'s component (small plotly.js bundles)
    or, for figures those bundles cannot draw, by st.plotly_chart."""
    import json

    drawn = [json.loads(json.loads(e.proto.json)["figure"]) for e in at.get("bidi_component")
             if e.proto.component_name == "neighborscope_plotly"]
    return drawn + [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def trace_len(values: object) -> int:
    if isinstance(values, dict) and "bdata" in values:
        return len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return len(values) if isinstance(values, list) else 0


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_demo_data_without_exception(page: str, demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page(page, demo_store, monkeypatch)
    assert not at.exception, at.exception
    assert texts(at, "title") == [TITLES[page]]
    assert len(plotly_specs(at)) == DEMO_CHARTS[page]
    assert any("Time range" in c and "freshness" in c for c in texts(at, "caption"))


@pytest.mark.parametrize("page", list(PAGES))
def test_page_on_empty_store_shows_an_empty_state(page: str, empty_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page(page, empty_store, monkeypatch)
    assert not at.exception, at.exception
    assert texts(at, "title") == [TITLES[page]]
    assert at.info, "an empty store must explain itself"
    assert not plotly_specs(at) or page == "runs"


@pytest.mark.parametrize("page", ["overview", "node_detail"])
def test_every_trace_sent_to_the_browser_is_reduced(page: str, demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page(page, demo_store, monkeypatch)
    for spec in plotly_specs(at):
        for trace in spec["data"]:
            assert trace_len(trace.get("x", [])) <= MAX_POINTS_PER_TRACE * 2


def test_node_detail_shades_runs_and_labels_every_axis(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("node_detail", demo_store, monkeypatch)
    spec = plotly_specs(at)[0]
    assert {t["type"] for t in spec["data"]} == {"scatter"}  # few points: SVG (see analysis.figures.line_trace)
    assert any(s.get("type") == "rect" for s in spec["layout"].get("shapes", []))
    assert all(spec["layout"][k]["title"]["text"] for k in spec["layout"] if k.startswith("yaxis"))


def test_overview_outlines_groups_and_labels_units(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("overview", demo_store, monkeypatch)
    spec = plotly_specs(at)[0]
    assert spec["data"][0]["type"] == "heatmap"
    groups = {a["text"].strip() for a in spec["layout"]["annotations"]}
    assert {"hive0", "hive1", "tt", "furiosa"} <= groups
    assert spec["data"][0]["colorbar"]["title"]["text"] == "°C"
    assert len(spec["data"][0]["y"]) == 34


def test_overview_fragment_refreshes_in_place(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("overview", demo_store, monkeypatch)
    at.run()  # AppTest ticks a run_every fragment once per run
    assert not at.exception
    assert len(plotly_specs(at)) == 1


def test_overview_heatmap_switches_metric(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("overview", demo_store, monkeypatch)
    at.radio(key="overview_field").set_value("pcie_bytes_per_s").run()
    assert not at.exception
    assert plotly_specs(at)[0]["data"][0]["colorbar"]["title"]["text"] == "GB/s"


def test_overview_all_data_range_covers_the_whole_store(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("overview", demo_store, monkeypatch)
    at.sidebar.selectbox(key="range").set_value("All data").run()
    assert not at.exception
    assert texts(at, "subheader") == ["Node ionx-sixtyfour-01"]
    assert any("(all data)" in c for c in texts(at, "caption"))


def test_overview_flags_a_node_gone_quiet_and_its_stale_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = ParquetStore(tmp_path / "store")
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    quiet = [{"time": t0 + timedelta(seconds=i), "node": "quiet", "device": d, "group": "g", "temp_c": 50.0}
             for i in range(60) for d in ("d0", "d1")]
    busy = [{"time": t0 + timedelta(seconds=i), "node": "busy", "device": "d0", "group": "g", "temp_c": 60.0,
             "throttle_thermal": i > 500} for i in range(600)]
    busy += [{"time": t0 + timedelta(seconds=i), "node": "busy", "device": "d1", "group": "g", "temp_c": 60.0}
             for i in range(100)]
    store.write("accel", pl.DataFrame(quiet + busy, infer_schema_length=None))
    at = run_page("overview", tmp_path / "store", monkeypatch)
    assert not at.exception
    assert any("No telemetry from node quiet since 2026-03-02 09:00:59" in w for w in texts(at, "warning"))
    flagged = at.table[0].value  # busy comes first (sorted); its attention table
    assert dict(zip(flagged["device"], flagged["flag"], strict=True)) == {"d0": "throttled 16%", "d1": "stale"}


def test_node_detail_lists_topology_by_switch(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("node_detail", demo_store, monkeypatch)
    topo = at.table[0].value
    assert set(topo["PCIe switch"]) == {f"sw{k}" for k in range(8)}


def test_node_detail_without_topology_says_where_to_put_it(demo_store: Path, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path):
    at = run_page("node_detail", demo_store, monkeypatch, NEIGHBORSCOPE_TOPOLOGY=str(tmp_path / "missing.json"))
    assert any("topology.json" in t for t in texts(at, "info"))


def test_runs_page_compares_phases_against_the_first(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("runs", demo_store, monkeypatch)
    delta = at.dataframe[1].value
    assert delta["output_tok_s Δ%"][0] == 0


def test_runs_page_lists_nightly_reports(demo_store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "2026-03-02.html").write_text("<html><body><h1>nightly</h1></body></html>")
    at = run_page("runs", demo_store, monkeypatch, NEIGHBORSCOPE_REPORTS=str(reports))
    assert at.selectbox(key="report_pick").value == "2026-03-02.html"


def test_alerts_page_shows_firing_alerts_and_silences(demo_store: Path, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path):
    from datetime import UTC, datetime

    from analysis.alerts.engine import EngineState, write_state
    from analysis.alerts.rules import Alert, AlertBook, Silence

    def at(h: int) -> datetime:
        return datetime(2026, 3, 2, h, tzinfo=UTC)

    firing = Alert(labels={"alertname": "NoisyNeighborDegradation", "severity": "critical", "node": "n1",
                           "victim": "hive0", "antagonist": "tt"},
                   annotations={"summary": "hive0 p99 ITL +12 % while tt is on"}, state="firing", active_at=at(9),
                   last_active_at=at(9), fired_at=at(9))
    resolved = Alert(labels={"alertname": "ThermalRegression", "severity": "warning", "node": "n1"},
                     annotations={"summary": "gpu3 +4 °C/W"}, state="resolved", active_at=at(1), last_active_at=at(2),
                     fired_at=at(1), resolved_at=at(2))
    silence = Silence(matchers={"node": "n1"}, starts_at=at(8), ends_at=at(12), created_by="sre",
                      comment="planned stress test")
    state = tmp_path / "alerts"
    write_state(state, EngineState(AlertBook({a.fingerprint: a for a in (firing, resolved)}, at(9)), [silence]))
    app = run_page("alerts", demo_store, monkeypatch, NEIGHBORSCOPE_ALERT_STATE=str(state))
    assert not app.exception
    assert [m.value for m in app.metric] == ["1", "1", "1"]
    assert app.dataframe[0].value["alertname"].to_list() == ["NoisyNeighborDegradation"]
    app.switch_page(PAGES["overview"]).run()
    assert any("NoisyNeighborDegradation" in e for e in texts(app, "error"))


def test_noisy_neighbours_ranks_antagonists_with_evidence(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("noisy_neighbours", demo_store, monkeypatch)
    phases, ranked = at.dataframe[0].value, at.dataframe[1].value
    assert {"dual_hive", "full_stress"} <= set(phases["phase"])
    assert "verdict" in phases.columns
    assert any("tt" in a for a in ranked["antagonist"])
    assert all(isinstance(e, str) and e for e in ranked["evidence"])
    linked = plotly_specs(at)[1]
    assert {t["name"] for t in linked["data"]} >= {"p99 ITL", "tokens/s"}


def test_opt_in_login_gates_every_page_until_the_user_signs_in(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NEIGHBORSCOPE_STORE", str(demo_store))
    monkeypatch.setenv("NEIGHBORSCOPE_DASHBOARD_LOGIN", "1")
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["neighborscope"]
    assert [b.label for b in at.button] == ["Log in"]
    assert not plotly_specs(at)  # no page ran: nothing of the fleet is shown before login


def test_without_login_the_pages_open_directly(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NEIGHBORSCOPE_DASHBOARD_LOGIN", "0")
    at = run_page("overview", demo_store, monkeypatch)
    assert not at.exception
    assert "Log in" not in [b.label for b in at.button]
