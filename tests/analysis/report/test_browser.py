"""The report renders in headless Chromium (Debian's package, driven by Playwright) without console errors or
network requests, in light and dark colour schemes; screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[3]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    reason = "Debian's chromium is not installed (apt-get install -y chromium)"
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the playwright package is not installed; CI must run the browser tests")
        pytest.skip("the playwright package is not installed (pip install playwright)")
    return path


def _render(chromium_path: str, html: Path, shot: Path, scheme: str) -> tuple[list[str], list[str], int]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def block(route) -> None:
                requests.append(route.request.url)
                route.abort()

            page.route("http*://**", block)
            page.goto(html.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=60_000)
            page.wait_for_timeout(300)
            plots = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return errors, requests, plots


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_report_renders_without_console_errors_or_network(chromium_path: str, sim_report, scheme: str) -> None:
    shot = ROOT / "test-artifacts" / f"report-{scheme}.png"
    errors, requests, plots = _render(chromium_path, sim_report["html"], shot, scheme)
    assert errors == []
    assert requests == []
    assert plots >= 8
    assert shot.stat().st_size > 50_000


def test_empty_report_renders_without_console_errors(chromium_path: str, tmp_path: Path) -> None:
    from analysis.report import build_report, render
    from tests.analysis.report.test_summary import _empty_data

    paths = render(build_report(_empty_data()), tmp_path)
    errors, requests, _ = _render_no_plots(chromium_path, paths["html"], ROOT / "test-artifacts" / "report-empty.png")
    assert errors == [] and requests == []


def _render_no_plots(chromium_path: str, html: Path, shot: Path) -> tuple[list[str], list[str], int]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("http*://**", lambda route: (requests.append(route.request.url), route.abort()))
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            page.wait_for_function("window.Plotly !== undefined")
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return errors, requests, 0
