"""The report renders in headless Chromium (Debian's package, driven by Playwright) without console errors or
network requests, in light and dark colour schemes; screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


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


def _render(chromium_path: str, pages: list[tuple[Path, Path, str]]) -> list[tuple[list[str], list[str], int]]:
    """Open each (html, screenshot, colour scheme) in one browser; per page: console errors, network requests
    attempted (all blocked) and the number of plotly figures drawn."""
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            for html, shot, scheme in pages:
                errors: list[str] = []
                requests: list[str] = []
                page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
                page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.route("http*://**", lambda r, requests=requests: (requests.append(r.request.url), r.abort()))
                page.goto(html.as_uri())
                page.wait_for_function("window.Plotly !== undefined && document.readyState === 'complete'",
                                       timeout=60_000)
                page.wait_for_timeout(300)
                plots = page.evaluate("document.querySelectorAll('.js-plotly-plot .main-svg').length")
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=True)
                page.close()
                out.append((errors, requests, plots))
        finally:
            browser.close()
    return out


def test_report_renders_without_console_errors_or_network(chromium_path: str, sim_report, tmp_path: Path) -> None:
    from analysis.report import build_report, render
    from tests.analysis.report.test_summary import _empty_data

    empty = render(build_report(_empty_data()), tmp_path)["html"]
    results = _render(chromium_path, [(sim_report["html"], SHOTS / "report-light.png", "light"),
                                      (sim_report["html"], SHOTS / "report-dark.png", "dark"),
                                      (empty, SHOTS / "report-empty.png", "light")])
    for (errors, requests, _), name in zip(results, ("light", "dark", "empty"), strict=True):
        assert errors == [], name
        assert requests == [], name
    assert results[0][2] >= 8 and results[1][2] >= 8
    assert (SHOTS / "report-light.png").stat().st_size > 50_000
