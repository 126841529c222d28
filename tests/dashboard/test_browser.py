"""End to end in real headless Chromium: `neighborscope dashboard` on a free port over the demo store.

Opens each page in a light and a dark browser, checks there is no Streamlit exception block, the page heading and
the number of rendered plotly charts, and saves full-page screenshots under ``test-artifacts/dashboard/``.
Needs Debian's ``chromium`` (installed by ``.ci/run``) and the ``playwright`` Python package (no
``playwright install``: the system browser is used). Skipped without them, except under CI (env ``CI``): there a
missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import in_ci

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = os.environ.get("NEIGHBORSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# url path -> (heading, plotly charts expected on the demo data); the overview is the default page, at /
PAGES = {
    "": ("Fleet overview", 1),
    "node": ("Node detail", 1),
    "noisy-neighbours": ("Noisy neighbours", 3),
    "runs": ("Runs & history", 2),
    "alerts": ("Alerts", 0),
}


def browser_or_reason() -> str | None:
    """None when Chromium and Playwright are usable, else why not."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"Debian's chromium is not installed ({CHROMIUM} missing; apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no 'playwright install')"
    return None


@pytest.fixture(scope="module")
def chromium():
    reason = browser_or_reason()
    if reason:
        if in_ci():
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                    args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DashboardProcess:
    url: str
    proc: subprocess.Popen
    log: Path


def start_dashboard(store: Path, workdir: Path, *extra: str, timeout_s: float = 60.0) -> DashboardProcess:
    """`neighborscope dashboard` on a free loopback port; returns once /_stcore/health says ok."""
    port = free_port()
    log = workdir / f"dashboard-{port}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "telemetry.cli", "dashboard", "--store", str(store), "--port", str(port), *extra],
            stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                return DashboardProcess(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(DashboardProcess(url, proc, log))
    raise RuntimeError(f"dashboard did not answer in {timeout_s} s: {log.read_text()[-3000:]}")


def stop(dash: DashboardProcess) -> None:
    """SIGTERM to the dashboard's process group (it was started in its own session), SIGKILL if it lingers."""
    if dash.proc.poll() is None:
        os.killpg(dash.proc.pid, signal.SIGTERM)
        try:
            dash.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(dash.proc.pid, signal.SIGKILL)
            dash.proc.wait(5)


@pytest.fixture(scope="module")
def dashboard_url(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dash = start_dashboard(demo_store, tmp_path_factory.mktemp("dash"))
    yield dash.url
    stop(dash)


# a plotly chart: dashboard.plotly_view's (small plotly.js bundles), or st.plotly_chart's for what those cannot draw
CHARTS = "[data-testid='nsPlotlyChart'], [data-testid='stPlotlyChart']"
# n real charts drawn: a chart's SVG is there and it is not the "Loading …" placeholder a page shows at the chart's
# place while its queries run (analysis.figures.loading_figure)
DRAWN = ("n => [...document.querySelectorAll(\"" + CHARTS + "\")].filter(c => c.querySelector('.main-svg') && "
         "![...c.querySelectorAll('.annotation-text')].some(a => a.textContent.startsWith('Loading '))).length >= n")
# luminance (0 dark .. 1 light) of the first y-axis tick label of the page's first chart, and of the page behind it
TICK_AND_PAGE_LUMINANCE = """() => { const t = document.querySelector('g.ytick text'); if (!t) return null;
    const lum = c => { const [r, g, b] = c.match(/[\\d.]+/g).map(Number); return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; };
    return [lum(getComputedStyle(t).fill), lum(getComputedStyle(document.querySelector("[data-testid='stApp']")).backgroundColor)]; }"""


def wait_rendered(page, charts: int, timeout_ms: int = 60_000) -> None:
    """Until the script ran to the end and every plotly chart has drawn its SVG."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout_ms)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)
    if charts:
        page.wait_for_function(DRAWN, arg=charts, timeout=timeout_ms)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", list(PAGES))
def test_page_renders_in_chromium(chromium, dashboard_url: str, path: str, scheme: str):
    heading, charts = PAGES[path]
    # tall enough for a whole page: Streamlit scrolls an inner container, which full_page does not unroll
    context = chromium.new_context(viewport={"width": 1440, "height": 2600}, color_scheme=scheme)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    scripts: list[str] = []
    page.on("request", lambda req: scripts.append(req.url) if req.resource_type == "script" else None)
    try:
        page.goto(f"{dashboard_url}/{path}", wait_until="domcontentloaded")
        wait_rendered(page, charts)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{path or 'overview'}-{scheme}.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("Page not found").count() == 0
        assert page.locator("h1").first.inner_text().strip() == heading
        assert page.locator(CHARTS).count() == charts
        assert page.get_by_text("Loading ").count() == 0, "a chart's loading placeholder was never replaced"
        if charts:
            # drawn with a small plotly.js bundle: Streamlit's 4.7 MB one (its PlotlyChart chunk) is never fetched
            assert any("/app/static/plotly-" in u for u in scripts), scripts
            assert not any("PlotlyChart" in u for u in scripts), [u for u in scripts if "PlotlyChart" in u]
            # themed from the page: tick labels stand out from the light and the dark theme's background
            tick, background = page.evaluate(TICK_AND_PAGE_LUMINANCE)
            assert abs(tick - background) > 0.3, (tick, background)
            assert (background > 0.5) == (scheme == "light")
        assert page.get_by_text("Time range:").count() >= 1
        assert not errors, errors
    finally:
        context.close()


def test_dashboard_on_an_empty_store_explains_itself(chromium, tmp_path: Path):
    (tmp_path / "store").mkdir()
    dash = start_dashboard(tmp_path / "store", tmp_path)
    try:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(dash.url, wait_until="domcontentloaded")
        wait_rendered(page, 0)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "overview-empty.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("No accelerator telemetry in the store").count() == 1
        context.close()
    finally:
        stop(dash)


def test_a_deep_link_opened_first_after_a_restart_finds_its_page(chromium, demo_store: Path, tmp_path: Path):
    """A bookmarked /node is the first page a fresh dashboard server sees: no "Page not found" (Streamlit used to
    register a `pages/` folder beside the script as pages of its own, without our url paths)."""
    dash = start_dashboard(demo_store, tmp_path)
    try:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{dash.url}/node", wait_until="domcontentloaded")
        wait_rendered(page, 1)
        assert page.get_by_text("Page not found").count() == 0
        assert page.locator("h1").first.inner_text().strip() == "Node detail"
        context.close()
    finally:
        stop(dash)


def test_changing_the_node_metric_redraws_the_chart(chromium, dashboard_url: str):
    """A rerun hands the chart component a new figure: it is drawn (with the bundle already in the page) where the
    old one was, and no second chart, nor Streamlit's own plotly chart, appears."""
    context = chromium.new_context(viewport={"width": 1440, "height": 1600})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{dashboard_url}/node", wait_until="domcontentloaded")
        wait_rendered(page, 1)
        panel_title = "(document.querySelector('.annotation-text')?.textContent ?? '')"
        assert page.evaluate(panel_title).startswith("util_pct of ")
        page.locator("[data-testid='stSelectbox']").filter(has_text="Accelerator metric").click()
        page.get_by_role("option", name="temp_c (°C)").click()
        page.wait_for_function(f"() => {panel_title}.startsWith('temp_c of ')", timeout=60_000)
        wait_rendered(page, 1)
        assert page.locator(CHARTS).count() == 1
        assert page.locator("[data-testid='stPlotlyChart']").count() == 0
        assert not errors, errors
    finally:
        context.close()
