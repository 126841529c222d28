"""The overview and node-detail pages on a real InfluxDB 1.x (server-side GROUP BY time reductions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry.sim import preset, simulate
from telemetry.store.influx import InfluxConfig, InfluxStore
from tests.dashboard.test_pages import plotly_specs, run_page
from tests.telemetry.store.conftest import influx_db, influx_url, influxd  # noqa: F401 - fixtures

pytestmark = pytest.mark.influx


@pytest.fixture
def influx_demo(influx_url: str) -> str:  # noqa: F811
    res = simulate(preset("seed000", phase_s=60, num_prompts=8), seed=2, bench=False)
    store = InfluxStore(InfluxConfig.from_url(influx_url))
    for name, frame in res.telemetry().items():
        store.write(name, frame)
    store.close()
    return influx_url


@pytest.mark.parametrize("page", ["overview", "node_detail"])
def test_page_renders_from_influxdb(page: str, influx_demo: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    at = run_page(page, influx_demo, monkeypatch, NEIGHBORSCOPE_TOPOLOGY=str(tmp_path / "none.json"))
    assert not at.exception, at.exception
    specs = plotly_specs(at)
    assert len(specs) == (1 if page == "overview" else 2)  # node detail: its series, then its pressure stalls
    if page == "overview":
        assert len(specs[0]["data"][0]["y"]) == 34
    else:
        assert {t["type"] for t in specs[0]["data"]} <= {"scatter", "scattergl"}
        assert specs[0]["data"], "no trace drawn"
