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
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# url path -> (heading, plotly charts expected on the demo data); "/" forwards to /overview
PAGES = {
    "": ("Fleet overview", 1),
    "overview": ("Fleet overview", 1),
    "node-detail": ("Node detail", 2),  # the node's series, then its shared resources (pressure stalls, ...)
    "noisy-neighbours": ("Noisy neighbours", 4),  # phases, latency vs activity, index scatter, TTFT knee
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
        browser = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
            headless=True,
        )
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


def start_dashboard(
    store: Path, workdir: Path, *extra: str, timeout_s: float = 60.0, port: int | None = None
) -> DashboardProcess:
    """`neighborscope dashboard` on a free loopback port (or ``port``); returns once /_stcore/health says ok."""
    port = port or free_port()
    log = workdir / f"dashboard-{port}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "telemetry.cli", "dashboard", "--store", str(store), "--port", str(port), *extra],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
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
DRAWN = (
    'n => [...document.querySelectorAll("' + CHARTS + "\")].filter(c => c.querySelector('.main-svg') && "
    "![...c.querySelectorAll('.annotation-text')].some(a => a.textContent.startsWith('Loading '))).length >= n"
)
# luminance (0 dark .. 1 light) of the first y-axis tick label of the page's first chart, and of the page behind it
TICK_AND_PAGE_LUMINANCE = """() => { const t = document.querySelector('g.ytick text'); if (!t) return null;
    const lum = c => { const [r, g, b] = c.match(/[\\d.]+/g).map(Number); return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; };
    return [lum(getComputedStyle(t).fill), lum(getComputedStyle(document.querySelector("[data-testid='stApp']")).backgroundColor)]; }"""


# every chart's SVG inside its own box, and no two chart boxes overlapping (the report's side-by-side charts once
# spanned the full width under their neighbour): a list of problems, empty when the layout is sound
OVERLAPS = (
    """() => {
    const boxes = [...document.querySelectorAll(\""""
    + CHARTS
    + """\")].map(c => ({
        box: c.getBoundingClientRect(), svgs: [...c.querySelectorAll('svg.main-svg')].map(s => s.getBoundingClientRect())}));
    const problems = [];
    boxes.forEach((b, i) => b.svgs.forEach(s => {
        if (s.width && (s.left < b.box.left - 2 || s.right > b.box.right + 2 || s.top < b.box.top - 2 || s.bottom > b.box.bottom + 2))
            problems.push(`chart ${i}: its SVG (${s.left}..${s.right}, ${s.top}..${s.bottom}) leaves its box (${b.box.left}..${b.box.right}, ${b.box.top}..${b.box.bottom})`);
    }));
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i].box, b = boxes[j].box;
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 2 && h > 2) problems.push(`charts ${i} and ${j} overlap by ${w} x ${h} px`);
    }
    return problems; }"""
)
# run-band labels ("phase · run id") of the page's first chart: how far each one's bottom is above the top of the
# plot area it labels (negative: it sits on the traces)
BAND_LABELS_ABOVE = (
    """() => { const chart = document.querySelector(\""""
    + CHARTS
    + """\");
    const area = chart.querySelector('.draglayer .xy .nsewdrag').getBoundingClientRect();
    return [...chart.querySelectorAll('g.annotation')].filter(a => a.textContent.includes(' · '))
        .map(a => area.top - a.getBoundingClientRect().bottom); }"""
)


# Streamlit's frontend finds the server's base path by asking <page path>/_stcore/health and /host-config first and
# the root next: on a deep link (/overview) the first two answer 404, by design, and the browser logs them
BASE_PATH_PROBES = ("/_stcore/health", "/_stcore/host-config")


def watch_errors(page) -> list[str]:
    """Page errors and console errors (but Streamlit's base-path probes), collected as they happen."""
    errors: list[str] = []

    def console(msg) -> None:
        url = (msg.location or {}).get("url", "")
        if msg.type == "error" and not ("status of 404" in msg.text and url.endswith(BASE_PATH_PROBES)):
            errors.append(f"console: {msg.text} ({url})")

    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", console)
    return errors


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
    errors = watch_errors(page)
    scripts: list[str] = []
    page.on("request", lambda req: scripts.append(req.url) if req.resource_type == "script" else None)
    try:
        page.goto(f"{dashboard_url}/{path}", wait_until="domcontentloaded")
        if path == "":
            page.wait_for_url("**/overview", timeout=60_000)  # "/" forwards to the overview's own address
        wait_rendered(page, charts)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"demo-{path or 'root'}-{scheme}.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("Page not found").count() == 0
        assert page.locator("h1").first.inner_text().strip() == heading
        assert page.locator(CHARTS).count() == charts
        assert page.get_by_text("Loading ").count() == 0, "a chart's loading placeholder was never replaced"
        assert page.evaluate(OVERLAPS) == []
        if charts:
            # drawn with a small plotly.js bundle: Streamlit's 4.7 MB one (its PlotlyChart chunk) is never fetched
            assert any("/app/static/plotly-" in u for u in scripts), scripts
            assert not any("PlotlyChart" in u for u in scripts), [u for u in scripts if "PlotlyChart" in u]
            # themed from the page: tick labels stand out from the light and the dark theme's background
            tick, background = page.evaluate(TICK_AND_PAGE_LUMINANCE)
            assert abs(tick - background) > 0.3, (tick, background)
            assert (background > 0.5) == (scheme == "light")
        if path == "node-detail":
            above = page.evaluate(BAND_LABELS_ABOVE)
            assert above and min(above) >= 0, above  # run-band labels never sit on the traces
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
        page.wait_for_url("**/overview", timeout=60_000)  # "/" forwards to the overview
        wait_rendered(page, 0)
        page.get_by_text("No accelerator telemetry in the store").wait_for(timeout=60_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "overview-empty.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("No accelerator telemetry in the store").count() == 1
        context.close()
    finally:
        stop(dash)


@pytest.mark.parametrize(
    ("path", "heading", "lands_on"),
    [
        ("overview", "Fleet overview", "/overview"),
        ("node-detail", "Node detail", "/node-detail"),
        ("node", "Node detail", "/node-detail"),  # the earlier address of the node page still leads there
    ],
)
def test_a_deep_link_opened_first_after_a_restart_finds_its_page(
    chromium, demo_store: Path, tmp_path: Path, path: str, heading: str, lands_on: str
):
    """A bookmarked page is the first one a fresh dashboard server sees: no "Page not found" (Streamlit serves its
    default page at "/" only, and used to register a `pages/` folder beside the script without our paths)."""
    dash = start_dashboard(demo_store, tmp_path)
    try:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{dash.url}/{path}", wait_until="domcontentloaded")
        wait_rendered(page, 1)
        page.wait_for_function("h => document.querySelector('h1')?.textContent.trim() === h", arg=heading)
        assert page.get_by_text("Page not found").count() == 0
        assert page.url.split("?")[0].endswith(lands_on)
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
        page.goto(f"{dashboard_url}/node-detail", wait_until="domcontentloaded")
        wait_rendered(page, 2)  # the node's series, then its shared-resource panels
        panel_title = "(document.querySelector('.annotation-text')?.textContent ?? '')"
        assert page.evaluate(panel_title).startswith("util_pct of ")
        page.locator("[data-testid='stSelectbox']").filter(has_text="Accelerator metric").click()
        page.get_by_role("option", name="temp_c (°C)").click()
        page.wait_for_function(f"() => {panel_title}.startsWith('temp_c of ')", timeout=60_000)
        wait_rendered(page, 2)
        assert page.locator(CHARTS).count() == 2
        assert page.locator("[data-testid='stPlotlyChart']").count() == 0
        assert not errors, errors
    finally:
        context.close()


@pytest.fixture(scope="module")
def fleet_dashboard_url(small_fleet_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dash = start_dashboard(small_fleet_store, tmp_path_factory.mktemp("fleet-dash"))
    yield dash.url
    stop(dash)


@pytest.mark.parametrize("path", [p for p in PAGES if p])
def test_every_page_renders_on_a_fleet(chromium, fleet_dashboard_url: str, path: str):
    """The same pages on a 12-node fleet (no benchmark runs there: the run pages explain themselves)."""
    context = chromium.new_context(viewport={"width": 1440, "height": 2200})
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(f"{fleet_dashboard_url}/{path}", wait_until="domcontentloaded")
        wait_rendered(page, 1 if path in ("overview", "node-detail") else 0)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"fleet-{path}.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator("h1").first.inner_text().strip() == PAGES[path][0]
        assert page.evaluate(OVERLAPS) == []
        assert not errors, errors
    finally:
        context.close()


def test_a_click_on_a_fleet_row_opens_that_node(chromium, fleet_dashboard_url: str):
    """The overview lists node-011 (gone quiet) first; selecting its row opens /node-detail?node=node-011 with the
    node picked, and the alerts page of a node shows that node's alerts only."""
    context = chromium.new_context(viewport={"width": 1440, "height": 1400})
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(f"{fleet_dashboard_url}/overview", wait_until="domcontentloaded")
        wait_rendered(page, 1)
        grid = page.locator("[data-testid='stDataFrame']").first
        grid.wait_for()
        box = grid.bounding_box()
        assert box is not None
        # the data grid is a canvas: its first column holds the row-selection boxes; rows are 35 px under a
        # 35 px header
        page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)
        page.wait_for_url("**/node-detail?node=node-011", timeout=60_000)
        wait_rendered(page, 1)
        picked = page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").first
        assert picked.locator("[data-testid='stWidgetLabel']").inner_text().strip() == "Node"
        assert picked.locator("input").input_value() == "node-011"
        page.goto(f"{fleet_dashboard_url}/alerts?node=node-007", wait_until="domcontentloaded")
        wait_rendered(page, 0)
        assert page.get_by_text("Showing the alerts of node node-007 only (1 of 2)").count() == 1
        assert not errors, errors
    finally:
        context.close()


# ---- --login: the whole OIDC sign-in, against a real provider on loopback ------------------------------------


def oidc_provider_or_reason() -> str | None:
    import importlib.util

    if importlib.util.find_spec("oidc_provider_mock") is None:
        return "the oidc-provider-mock package is not installed (pip install oidc-provider-mock)"
    if importlib.util.find_spec("authlib") is None:
        return "Authlib is not installed (pip install 'streamlit[auth]')"
    return None


@pytest.fixture
def oidc_provider(tmp_path: Path) -> Iterator[str]:
    """oidc-provider-mock (an OpenID Connect provider built on Authlib, from PyPI) on a free loopback port: any
    client id / secret is accepted; its sign-in form asks for the subject, which becomes the user's email."""
    reason = oidc_provider_or_reason()
    if reason:
        if in_ci():
            pytest.fail(f"CI must run the sign-in test: {reason}")
        pytest.skip(reason)
    port = free_port()
    log = tmp_path / "oidc.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the OIDC provider did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_login_signs_in_through_the_oidc_provider_and_out_again(
    chromium, oidc_provider: str, demo_store: Path, tmp_path: Path
):
    port = free_port()
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "test-cookie-secret-0123456789abcdef"\n'
        'client_id = "neighborscope-dashboard"\n'
        'client_secret = "test-client-secret"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n'
    )
    dash = start_dashboard(demo_store, tmp_path, "--login", port=port)
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors = watch_errors(page)
    try:
        # a deep link before signing in: the sign-in page, nothing of the fleet
        page.goto(f"{dash.url}/node-detail", wait_until="domcontentloaded")
        wait_rendered(page, 0)
        assert page.locator("h1").first.inner_text().strip() == "neighborscope"
        assert page.locator(CHARTS).count() == 0 and page.get_by_text("Node detail").count() == 0
        assert not errors, errors
        page.get_by_role("button", name="Log in").click()
        # the provider's own sign-in form (its page's own console errors are the provider's: pico.css from a CDN)
        page.wait_for_url(f"{oidc_provider}/oauth2/authorize**", timeout=30_000)
        page.locator("input[name='sub']").fill("sre@example.com")
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url(f"{dash.url}/**", timeout=30_000)
        errors.clear()
        wait_rendered(page, 1)
        page.wait_for_function(
            "() => document.querySelector('h1')?.textContent.trim() === 'Fleet overview'", timeout=60_000
        )
        assert page.get_by_text("signed in as sre@example.com").count() == 1
        assert page.locator("[data-testid='stException']").count() == 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "login-signed-in.png"), full_page=True)
        assert not errors, errors
        page.get_by_role("button", name="Log out").click()
        # RP-initiated logout: the provider ends its session too, then sends the browser back to the dashboard
        page.wait_for_url(f"{oidc_provider}/oauth2/end_session**", timeout=30_000)
        page.get_by_role("button", name="End session").click()
        page.wait_for_url(f"{dash.url}/**", timeout=30_000)
        errors.clear()
        page.wait_for_function(
            "() => document.querySelector('h1')?.textContent.trim() === 'neighborscope'", timeout=60_000
        )
        page.get_by_role("button", name="Log in").wait_for(timeout=60_000)
        assert page.locator(CHARTS).count() == 0
        assert not errors, errors
    finally:
        context.close()
        stop(dash)


def test_noisy_neighbours_shows_the_runs_and_a_progress_line_before_the_analysis(
    chromium, demo_store: Path, tmp_path: Path
):
    """A fresh server on a store never analysed (nothing derived kept: earlier tests' analyses keep theirs in the
    shared demo store, which makes a rerun quick) has no analysis yet: the chosen runs and a progress line come
    first (not a lone spinner), then the charts replace the progress line."""
    fresh = tmp_path / "store"
    shutil.copytree(demo_store, fresh, ignore=shutil.ignore_patterns("derived"))
    dash = start_dashboard(fresh, tmp_path)
    context = chromium.new_context(viewport={"width": 1440, "height": 1600})
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(f"{dash.url}/noisy-neighbours", wait_until="domcontentloaded")
        page.wait_for_selector("[data-testid='stProgress']", timeout=60_000)
        assert page.locator("[data-testid='stExpander']").filter(has_text="chosen run(s) of hive0").count() == 1
        assert page.locator(CHARTS).count() == 0
        wait_rendered(page, 4)  # phases, latency vs activity, index scatter, TTFT knee
        page.wait_for_selector("[data-testid='stProgress']", state="detached", timeout=60_000)
        assert page.locator(CHARTS).count() == 4
        assert not errors, errors
    finally:
        context.close()
        stop(dash)
