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

TITLES = {
    "overview": "Fleet overview",
    "node_detail": "Node detail",
    "noisy_neighbours": "Noisy neighbours",
    "runs": "Runs & history",
    "alerts": "Alerts",
}
# plotly charts each page draws on the demo data
DEMO_CHARTS = {"overview": 1, "node_detail": 2, "noisy_neighbours": 4, "runs": 2, "alerts": 0}


def run_page(
    page: str, store: Path, monkeypatch: pytest.MonkeyPatch, query: dict[str, str] | None = None, **env: str
) -> AppTest:
    monkeypatch.setenv("NEIGHBORSCOPE_STORE", str(store))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page(PAGES[page])
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def plotly_specs(at: AppTest) -> list[dict]:
    """Every plotly figure on the page: drawn by `dashboard.plotly_view`'s component (small plotly.js bundles)
    or, for figures those bundles cannot draw, by st.plotly_chart."""
    import json

    drawn = [
        json.loads(json.loads(e.proto.json)["figure"])
        for e in at.get("bidi_component")
        if e.proto.component_name == "neighborscope_plotly"
    ]
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
    assert texts(at, "subheader") == ["Nodes, most trouble first", "Node ionx-sixtyfour-01"]
    assert any("(all data)" in c for c in texts(at, "caption"))


def test_overview_flags_a_node_gone_quiet_and_its_stale_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = ParquetStore(tmp_path / "store")
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    quiet = [
        {"time": t0 + timedelta(seconds=i), "node": "quiet", "device": d, "group": "g", "temp_c": 50.0}
        for i in range(60)
        for d in ("d0", "d1")
    ]
    busy = [
        {
            "time": t0 + timedelta(seconds=i),
            "node": "busy",
            "device": "d0",
            "group": "g",
            "temp_c": 60.0,
            "throttle_thermal": i > 500,
        }
        for i in range(600)
    ]
    busy += [
        {"time": t0 + timedelta(seconds=i), "node": "busy", "device": "d1", "group": "g", "temp_c": 60.0}
        for i in range(100)
    ]
    store.write("accel", pl.DataFrame(quiet + busy, infer_schema_length=None))
    at = run_page("overview", tmp_path / "store", monkeypatch)
    assert not at.exception
    assert any("No telemetry from node quiet since 2026-03-02 09:00:59" in w for w in texts(at, "warning"))
    fleet = at.dataframe[0].value
    assert list(fleet["node"]) == ["quiet", "busy"]  # gone quiet first
    assert list(fleet["trouble"]) == ["quiet since 09:00:59", "1 stale device(s); 1 throttling (worst 20.0 %)"]
    assert at.selectbox(key="overview_node").value == "quiet"  # the heatmap shows the node in most trouble
    at.selectbox(key="overview_node").set_value("busy").run()
    flagged = at.table[0].value  # busy's devices needing attention
    assert dict(zip(flagged["device"], flagged["flag"], strict=True)) == {"d0": "throttled 20%", "d1": "stale"}


def test_overview_lists_every_node_of_a_fleet_most_trouble_first(
    small_fleet_store: Path, monkeypatch: pytest.MonkeyPatch
):
    at = run_page("overview", small_fleet_store, monkeypatch)
    assert not at.exception
    fleet = at.dataframe[0].value
    assert len(fleet) == 12
    assert list(fleet["node"][:3]) == ["node-011", "node-007", "node-003"]
    assert "hive0 slowed by tt" in fleet["neighbour"][1]
    assert [m.value for m in at.metric][:5] == ["12", "408", "3", "1", "1"]
    assert len(plotly_specs(at)) == 1  # one heatmap (of node-011), not one per node
    assert texts(at, "subheader")[-1] == "Node node-011"


def test_node_detail_opens_the_node_named_in_the_address(small_fleet_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("node_detail", small_fleet_store, monkeypatch, query={"node": "node-007"})
    assert not at.exception
    assert at.selectbox(key="node").value == "node-007"
    at.selectbox(key="node").set_value("node-003").run()
    assert at.query_params["node"] == "node-003"  # the address follows the picker


def test_node_detail_says_when_the_addressed_node_is_unknown(small_fleet_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("node_detail", small_fleet_store, monkeypatch, query={"node": "node-999"})
    assert not at.exception
    assert any("node-999" in w for w in texts(at, "warning"))


def test_node_detail_lists_topology_by_switch(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("node_detail", demo_store, monkeypatch)
    topo = at.table[0].value
    assert set(topo["PCIe switch"]) == {f"sw{k}" for k in range(8)}


def test_node_detail_without_topology_says_where_to_put_it(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
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


def test_alerts_page_shows_firing_alerts_and_silences(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    from datetime import UTC, datetime

    from analysis.alerts.engine import EngineState, write_state
    from analysis.alerts.rules import Alert, AlertBook, Silence

    def at(h: int) -> datetime:
        return datetime(2026, 3, 2, h, tzinfo=UTC)

    firing = Alert(
        labels={
            "alertname": "NoisyNeighborDegradation",
            "severity": "critical",
            "node": "n1",
            "victim": "hive0",
            "antagonist": "tt",
        },
        annotations={"summary": "hive0 p99 ITL +12 % while tt is on"},
        state="firing",
        active_at=at(9),
        last_active_at=at(9),
        fired_at=at(9),
    )
    resolved = Alert(
        labels={"alertname": "ThermalRegression", "severity": "warning", "node": "n1"},
        annotations={"summary": "gpu3 +4 °C/W"},
        state="resolved",
        active_at=at(1),
        last_active_at=at(2),
        fired_at=at(1),
        resolved_at=at(2),
    )
    silence = Silence(
        matchers={"node": "n1"}, starts_at=at(8), ends_at=at(12), created_by="sre", comment="planned stress test"
    )
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
    phases, ranked = at.dataframe[1].value, at.dataframe[2].value  # after the chosen runs
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


def write_alert_state(path: Path) -> None:
    """A firing alert on n1 / gpu3, a resolved one on n2 and one on n1 / gpu5."""
    from analysis.alerts.engine import EngineState, write_state
    from analysis.alerts.rules import Alert, AlertBook

    at = lambda h: datetime(2026, 3, 2, h, tzinfo=UTC)  # noqa: E731
    alerts = [
        Alert(
            labels={"alertname": "ThermalRegression", "severity": "critical", "node": "n1", "device": "gpu3"},
            annotations={"summary": "gpu3 +4 °C/W"},
            state="firing",
            active_at=at(9),
            last_active_at=at(9),
            fired_at=at(9),
        ),
        Alert(
            labels={"alertname": "ThermalRegression", "severity": "warning", "node": "n1", "device": "gpu5"},
            annotations={"summary": "gpu5 +3 °C/W"},
            state="resolved",
            active_at=at(1),
            last_active_at=at(2),
            fired_at=at(1),
            resolved_at=at(2),
        ),
        Alert(
            labels={"alertname": "PerfRegression", "severity": "critical", "node": "n2"},
            annotations={"summary": "tok/s -8 %"},
            state="resolved",
            active_at=at(3),
            last_active_at=at(4),
            fired_at=at(3),
            resolved_at=at(4),
        ),
    ]
    write_state(path, EngineState(AlertBook({a.fingerprint: a for a in alerts}, at(9)), []))


def test_alerts_page_never_shows_none_for_an_alert_still_firing(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    write_alert_state(tmp_path / "alerts")
    at = run_page("alerts", demo_store, monkeypatch, NEIGHBORSCOPE_ALERT_STATE=str(tmp_path / "alerts"))
    firing, resolved = at.dataframe[0].value, at.dataframe[1].value
    assert "ends_at" not in firing.columns  # still firing: no "ended" column at all
    assert list(resolved["ends_at"]) == ["2026-03-02 04:00:00", "2026-03-02 02:00:00"]


@pytest.mark.parametrize(
    ("query", "firing", "resolved"),
    [
        ({"node": "n1"}, ["ThermalRegression"], ["gpu5"]),
        ({"node": "n1", "device": "gpu5"}, [], ["gpu5"]),
        ({"node": "n2"}, [], ["PerfRegression"]),
    ],
)
def test_alerts_page_shows_only_the_node_and_device_in_its_address(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, query, firing, resolved
):
    write_alert_state(tmp_path / "alerts")
    at = run_page("alerts", demo_store, monkeypatch, query=query, NEIGHBORSCOPE_ALERT_STATE=str(tmp_path / "alerts"))
    assert not at.exception
    frames = [d.value for d in at.dataframe]
    shown_firing = list(frames[0]["alertname"]) if firing else []
    assert shown_firing == firing
    column = "alertname" if query == {"node": "n2"} else "device"
    assert list(frames[-1 if not firing else 1][column]) == resolved
    assert any("Showing the alerts of" in i for i in texts(at, "info"))


def test_runs_page_finds_the_report_the_demo_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "store").mkdir()
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("<html><body><h1>nightly</h1></body></html>")
    at = run_page("runs", tmp_path / "store", monkeypatch)
    assert at.selectbox(key="report_pick").value == "index.html"


def test_runs_bars_are_labelled_with_plain_numbers(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("runs", demo_store, monkeypatch)
    bars = plotly_specs(at)[0]
    labels = [t for trace in bars["data"] for t in trace["text"]]
    assert labels and not [t for t in labels if "e+" in t or "e-" in t]
    e2e = [trace for trace in bars["data"] if trace["xaxis"] == "x6" or trace.get("xaxis") == "x6"]
    assert all("," in t for trace in e2e for t in trace["text"])  # tens of thousands of ms: 71,520


def test_history_labels_show_only_what_is_known(demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("runs", demo_store, monkeypatch)
    series = at.selectbox(key="history_series").options
    assert series and not [s for s in series if "?" in s or "|" in s]
    assert any(s.endswith("aiperf · baseline") for s in series)


def test_noisy_neighbours_gives_each_antagonist_one_colour_in_both_charts(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch
):
    at = run_page("noisy_neighbours", demo_store, monkeypatch)
    over_time, scatter = plotly_specs(at)[1:3]  # after the phase chart

    def colours(spec: dict) -> dict[str, str]:
        return {
            t["name"]: (t.get("marker") or {}).get("color")
            for t in spec["data"]
            if t.get("name") not in ("p99 ITL", "tokens/s")
        }

    assert colours(scatter) and colours(scatter) == {
        n: c for n, c in colours(over_time).items() if n in colours(scatter)
    }
    assert len(set(colours(scatter).values())) == len(colours(scatter))


def test_noisy_neighbours_shows_the_chosen_runs_and_no_leftover_progress(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch
):
    at = run_page("noisy_neighbours", demo_store, monkeypatch)
    assert at.expander and "chosen run(s) of hive0" in at.expander[0].label
    assert not at.get("progress")  # the progress line is gone once the result is drawn
    assert texts(at, "header")[0] == "Phases"


@pytest.mark.parametrize("page", ["node_detail", "noisy_neighbours"])
def test_run_band_labels_sit_above_the_plot_area(page: str, demo_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page(page, demo_store, monkeypatch)
    spec = plotly_specs(at)[0 if page == "node_detail" else 1]
    bands = [a for a in spec["layout"]["annotations"] if " · " in a.get("text", "")]
    assert bands
    assert all(a["y"] == 1 and a["yanchor"] == "bottom" and a["yshift"] > 0 for a in bands)


def test_a_store_that_does_not_exist_is_named_and_never_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    missing = tmp_path / "stor"  # mistyped
    at = run_page("overview", missing, monkeypatch)
    assert not at.exception, at.exception
    errors = texts(at, "error")
    assert len(errors) == 1 and f"cannot read the store {missing}" in errors[0] and "does not exist" in errors[0]
    assert not missing.exists(), "the dashboard only reads: it must not create a store"


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node with accelerators, a CPU-only node with pressure-stall and cgroup metrics, and a serving-only node
    (an engine's own metrics scraped by the agent's `serving` sampler), 10 minutes at 1 Hz."""
    from telemetry.schema import conform

    root = tmp_path_factory.mktemp("mixed") / "store"
    store = ParquetStore(root)
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    times = [t0 + timedelta(seconds=i) for i in range(600)]
    n = len(times)
    wave = np.sin(np.arange(n) / 30.0)

    def put(measurement: str, **cols: object) -> None:
        frame = {"time": times, **{k: v if isinstance(v, list | np.ndarray) else [v] * n for k, v in cols.items()}}
        store.write(measurement, conform(pl.DataFrame(frame), measurement))

    put("accel", node="gpu-box", device="gpu0", group="hive0", temp_c=60 + 5 * wave)
    put("host", node="gpu-box", cpu_util_pct=20.0)
    put(
        "host",
        node="cpu-box",
        cpu_util_pct=50 + 10 * wave,
        cpu_pressure_some_us_per_s=2e5 + 1e5 * wave,
        mem_pressure_some_us_per_s=1e3,
        io_pressure_some_us_per_s=5e4,
    )
    for group, base in (("victim", 1e4), ("batch", 3e5)):
        put("tenant", node="cpu-box", group=group, cpu_pct=100.0, cpu_pressure_some_us_per_s=base * (1.5 + wave))
    put("host_disk", node="cpu-box", disk="nvme0n1", busy_pct=30 + 20 * wave, read_bytes_per_s=1e8)
    put(
        "serving",
        node="engine-box",
        group="llm",
        engine="vllm",
        model="qwen",
        itl_ms_p99=40 + 10 * wave,
        ttft_ms_p99=300.0,
        requests_running=8.0,
        requests_waiting=1.0,
    )
    return root


def test_nodes_without_accelerators_are_in_the_fleet_table(mixed_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("overview", mixed_store, monkeypatch)
    assert not at.exception
    table = at.dataframe[0].value
    sends = dict(zip(table["node"], table["telemetry"], strict=True))
    assert sends == {"gpu-box": "accel, host", "cpu-box": "host, tenant, host_disk", "engine-box": "serving"}
    assert dict(zip(table["node"], table["devices"], strict=True))["engine-box"] == 0


def test_node_detail_of_a_cpu_only_node_draws_host_pressure_and_tenants(
    mixed_store: Path, monkeypatch: pytest.MonkeyPatch
):
    at = run_page("node_detail", mixed_store, monkeypatch, query={"node": "cpu-box"})
    assert not at.exception
    assert any("sent no accelerator telemetry" in c for c in texts(at, "caption"))
    specs = plotly_specs(at)
    assert len(specs) == 2  # host CPU + tenants, then the shared-resource panels
    resources = specs[1]
    names = {t["name"] for t in resources["data"]}
    assert {"cpu", "mem", "io"} <= names  # host PSI, one trace per resource
    panels = at.multiselect(key="node_resources")
    assert "Host pressure stalls (some)" in panels.value
    assert {"Tenant CPU pressure", "Disk busy"} <= set(panels.options)
    assert "Serving engines: p99 inter-token latency" not in panels.options  # nothing scraped on this node
    panels.set_value(["Tenant CPU pressure", "Disk busy"]).run()
    names = {t["name"] for t in plotly_specs(at)[1]["data"]}
    assert names == {"victim", "batch", "nvme0n1"}


def test_node_detail_of_a_serving_only_node_draws_engine_latency(mixed_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("node_detail", mixed_store, monkeypatch, query={"node": "engine-box"})
    assert not at.exception
    specs = plotly_specs(at)
    assert len(specs) == 1  # no accelerator, host or tenant rows: only the engine panel
    assert {t["name"] for t in specs[0]["data"]} == {"llm"}
    assert "p99 inter-token latency" in json_text(specs[0])


def json_text(spec: dict) -> str:
    import json

    return json.dumps(spec)


@pytest.fixture(scope="module")
def live_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """45 minutes of a victim's serving-engine metrics (no benchmark runs) beside a co-tenant whose CPU bursts raise
    the victim's ITL (the alert tests' serving simulation)."""
    from telemetry.store.factory import open_store
    from tests.analysis.alerts.serving_sim import scenario

    root = tmp_path_factory.mktemp("live") / "store"
    sim = scenario(minutes=45, itl_effect=0.3, seed=1, knee_load=15_000)
    store = open_store(root)
    try:
        store.write("serving", sim.serving)
        store.write("tenant", sim.tenant)
    finally:
        store.close()
    return root


def test_noisy_neighbours_analyses_live_traffic_from_the_alert_link(live_store: Path, monkeypatch: pytest.MonkeyPatch):
    """The NoisyNeighbour alert links to /noisy-neighbours?node=&victim=&from=&until=: the page analyses that victim's
    serving metrics over that range, ranks the co-tenant on ITL and TTFT separately, and draws the TTFT knee."""
    at = run_page(
        "noisy_neighbours",
        live_store,
        monkeypatch,
        query={"victim": "hive0", "node": "n1", "from": "2026-03-02T09:00:00Z", "until": "2026-03-02T09:45:00Z"},
    )
    assert not at.exception, at.exception
    assert "Phases" not in texts(at, "header")  # live traffic has no phases
    assert {"Ranked antagonists", "Victim latency against co-tenant activity", "TTFT knee"} <= set(texts(at, "header"))
    decode, prefill = (d.value for d in at.dataframe)  # the ITL tab's table, then the TTFT tab's
    assert decode["antagonist"][0] == "batch1"  # through "unknown": this store holds no host telemetry
    assert len(prefill) >= 1
    assert any("from the address" in c for c in texts(at, "caption"))
    knee = plotly_specs(at)[-1]
    assert "TTFT knee" in json_text(knee)


def test_noisy_neighbours_says_why_a_bad_address_range_is_ignored(live_store: Path, monkeypatch: pytest.MonkeyPatch):
    at = run_page("noisy_neighbours", live_store, monkeypatch, query={"victim": "hive0", "from": "yesterday"})
    assert not at.exception
    assert any("does not parse" in w for w in texts(at, "warning"))
