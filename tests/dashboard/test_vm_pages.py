"""The dashboard on a real VictoriaMetrics: every page of `neighborscope dashboard --store vm://...` in real headless
Chromium (as tests/dashboard/test_browser.py does on the embedded store), over a demo-like store written through the
VictoriaMetrics store (simulated seed 000: telemetry, benchmark runs imported from AIPerf files, token artifacts).

The server runs as docs/victoriametrics.md asks (``-dedup.minScrapeInterval=1ms``), so the pages' downsampled views
are reduced by ``query_range`` on the server. Skipped without the binary or the browser, except in CI.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.ingest.importer import import_bench_files
from telemetry.sim import preset, simulate, write_output
from telemetry.store.factory import open_store
from tests.dashboard.test_browser import (
    ARTIFACTS,
    CHARTS,
    PAGES,
    chromium,  # noqa: F401 - fixture
    start_dashboard,
    stop,
    wait_rendered,
    watch_errors,
)
from tests.telemetry.store.conftest import VictoriaServer, victoria  # noqa: F401 - fixture

pytestmark = [pytest.mark.influx, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def vm_demo(victoria: VictoriaServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:  # noqa: F811
    """A store URL on the session's VictoriaMetrics holding the demo's data, and the topology file beside it."""
    root = tmp_path_factory.mktemp("vm-demo")
    url = f"vm://127.0.0.1:{victoria.port}/dash?queue={root / 'queue'}&artifacts={root / 'artifacts'}"
    res = simulate(preset("seed000", phase_s=120, num_prompts=0), seed=1)
    write_output(res, root / "sim", formats=["aiperf"])
    shutil.copy(root / "sim" / "topology.json", root / "topology.json")
    store = open_store(url)
    for name, frame in res.telemetry().items():
        store.write(name, frame)
    for run in res.runs:
        import_bench_files(
            store,
            [root / "sim" / "bench" / run.run_id / "profile_export.jsonl"],
            run_id=run.run_id,
            group=run.group,
            phase=run.phase,
            node=res.scenario.topology.node,
        )
    assert store.flush(120)
    assert store.remote.server_dedup()  # reduced on the server, not from raw samples
    store.close()
    return url, root / "topology.json"


@pytest.fixture(scope="module")
def vm_dashboard_url(vm_demo: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, topology = vm_demo
    dash = start_dashboard(url, tmp_path_factory.mktemp("vm-dash"), "--topology", str(topology))  # type: ignore
    yield dash.url
    stop(dash)


@pytest.mark.parametrize("path", [p for p in PAGES if p])
def test_page_renders_from_victoriametrics_in_chromium(chromium, vm_dashboard_url: str, path: str):  # noqa: F811
    heading, charts = PAGES[path]
    context = chromium.new_context(viewport={"width": 1440, "height": 2600})
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(f"{vm_dashboard_url}/{path}", wait_until="domcontentloaded")
        wait_rendered(page, charts)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"vm-{path}.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("Page not found").count() == 0
        assert page.locator("h1").first.inner_text().strip() == heading
        assert page.locator(CHARTS).count() == charts
        assert page.get_by_text("Loading ").count() == 0, "a chart's loading placeholder was never replaced"
        assert page.get_by_text("Time range:").count() >= 1
        assert page.get_by_text("cannot read the store").count() == 0
        assert not errors, errors
    finally:
        context.close()
