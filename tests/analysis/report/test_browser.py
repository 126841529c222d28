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
                page.wait_for_function(
                    "window.Plotly !== undefined && document.readyState === 'complete'", timeout=60_000
                )
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
    results = _render(
        chromium_path,
        [
            (sim_report["html"], SHOTS / "report-light.png", "light"),
            (sim_report["html"], SHOTS / "report-dark.png", "dark"),
            (empty, SHOTS / "report-empty.png", "light"),
        ],
    )
    for (errors, requests, _), name in zip(results, ("light", "dark", "empty"), strict=True):
        assert errors == [], name
        assert requests == [], name
    assert results[0][2] >= 8 and results[1][2] >= 8
    assert (SHOTS / "report-light.png").stat().st_size > 50_000


WIDTHS = (1280, 1600, 1920)

# Per side-by-side grid: each chart's cell and the boxes of every SVG layer drawn in it (page pixels).
_GRID_BOXES = """() => Array.from(document.querySelectorAll('.grid')).map(grid =>
  Array.from(grid.querySelectorAll(':scope > figure')).map(fig => {
    const box = r => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom});
    return {id: fig.dataset.figure, cell: box(fig.getBoundingClientRect()),
            svgs: Array.from(fig.querySelectorAll('svg.main-svg')).map(s => box(s.getBoundingClientRect()))};
  }))"""

# Per bar of a phase-change chart: its trace (group), category (phase) and the value its drawn end stands for on
# the chart's y axis (plotly's own pixel -> value mapping of the axis it drew), and one pixel in axis units.
_DRAWN_BARS = """(id) => {
  const gd = document.getElementById(id); const ya = gd._fullLayout.yaxis; const out = [];
  gd.querySelectorAll('.barlayer .trace').forEach((tr, t) => {
    const trace = gd._fullData[t];
    tr.querySelectorAll('.point path').forEach((p, i) => {
      const m = /M([\\d.e+-]+),([\\d.e+-]+)V([\\d.e+-]+)H([\\d.e+-]+)V/.exec(p.getAttribute('d') || '');
      if (!m) { return; }
      out.push({group: trace.name, phase: trace.x[i], base: ya.p2c(+m[2]), end: ya.p2c(+m[3]),
                px: Math.abs(ya.p2c(0) - ya.p2c(1))});
    });
  });
  return out;
}"""


def _layout_check(chromium_path: str, html: Path) -> list[tuple[int, str, list[str], list, dict]]:
    """Open ``html`` at each width in light and dark: (width, scheme, console errors, grid boxes, drawn bars)."""
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            for width in WIDTHS:
                for scheme in ("light", "dark"):
                    errors: list[str] = []
                    page = browser.new_page(viewport={"width": width, "height": 1000}, color_scheme=scheme)
                    page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
                    page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                    page.route("http*://**", lambda r: r.abort())
                    page.goto(html.as_uri())
                    page.wait_for_function(
                        "window.Plotly !== undefined && document.readyState === 'complete'", timeout=60_000
                    )
                    page.wait_for_timeout(400)
                    bars = {fid: page.evaluate(_DRAWN_BARS, fid) for fid in ("fig-phase-p99", "fig-phase-tput")}
                    out.append((width, scheme, errors, page.evaluate(_GRID_BOXES), bars))
                    if width == 1600:
                        page.screenshot(path=str(SHOTS / f"report-1600-{scheme}.png"), full_page=True)
                    page.close()
        finally:
            browser.close()
    return out


def test_side_by_side_charts_stay_in_their_cells_and_bars_show_the_data(chromium_path: str, sim_report) -> None:
    import json

    summary = json.loads(sim_report["summary"].read_text())
    changes = {
        (r["group"], r["phase"], k): ch["pct"]
        for r in summary["phases"]["rows"]
        for k, ch in r["changes"].items()
        if ch and ch.get("pct") is not None
    }
    for width, scheme, errors, grids, bars in _layout_check(chromium_path, sim_report["html"]):
        where = f"{width} px, {scheme}"
        assert errors == [], where
        assert len(grids) == 3 and all(len(cells) == 2 for cells in grids), where  # phases, thermal, history
        for left, right in grids:
            assert left["cell"]["right"] <= right["cell"]["left"], f"{where}: {left['id']} overlaps {right['id']}"
            for fig in (left, right):
                assert fig["svgs"], f"{where}: {fig['id']} drew nothing"
                for svg in fig["svgs"]:
                    assert fig["cell"]["left"] - 1 <= svg["left"] and svg["right"] <= fig["cell"]["right"] + 1, (
                        f"{where}: {fig['id']}'s SVG spans {svg['left']:.0f}-{svg['right']:.0f} px, its cell "
                        f"{fig['cell']['left']:.0f}-{fig['cell']['right']:.0f} px"
                    )
        for fid, metric in (("fig-phase-p99", "itl_ms_p99"), ("fig-phase-tput", "output_tok_s")):
            want = {(g, p): v for (g, p, k), v in changes.items() if k == metric}
            drawn = {(b["group"], b["phase"]): b for b in bars[fid]}
            assert set(drawn) == set(want), f"{where}: {fid}"
            for key, b in drawn.items():
                assert abs(b["base"]) <= 2 * b["px"], f"{where}: {fid} {key} does not start at 0"
                assert abs(b["end"] - want[key]) <= 2 * b["px"], (
                    f"{where}: {fid} {key} is drawn at {b['end']:+.2f} %, the data say {want[key]:+.2f} %"
                )
