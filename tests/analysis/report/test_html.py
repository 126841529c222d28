"""The page is rendered from summary.json: what it says is what the JSON says; plotly.js is inline once."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.analysis.report.pagetext import read_page


def _load(paths: dict[str, Path]) -> tuple[dict, str]:
    return json.loads(paths["summary"].read_text()), paths["html"].read_text(encoding="utf-8")


def test_verdict_on_the_page_is_the_verdict_in_summary_json(sim_report) -> None:
    summary, html = _load(sim_report)
    page = read_page(html)
    assert page.status == summary["verdict"]["status"]
    assert page.verdict == [(line["topic"], line["text"]) for line in summary["verdict"]["lines"]]


def test_phase_table_on_the_page_matches_summary_json(sim_report) -> None:
    summary, html = _load(sim_report)
    page = read_page(html)
    rows = summary["phases"]["rows"]
    assert rows, "the simulated window has benchmark runs"
    assert set(page.phase_cells) == {(r["group"], r["phase"]) for r in rows}
    for r in rows:
        cells = page.phase_cells[(r["group"], r["phase"])]
        for key, value in r["metrics"].items():
            shown = cells[key]["data-value"]
            assert (shown == "" and value is None) or math.isclose(float(shown), value)
            change = (r["changes"].get(key) or {}).get("pct")
            shown = cells[key]["data-change"]
            assert (shown == "" and change is None) or math.isclose(float(shown), change)


def test_antagonists_and_thermal_status_on_the_page_match_summary_json(sim_report) -> None:
    summary, html = _load(sim_report)
    page = read_page(html)
    items = summary["antagonists"]["items"]
    assert items
    assert page.antagonists == [(a["victim"], a["antagonist"], "yes" if a["significant"] else "no") for a in items]
    assert page.thermal_nodes == [(r["node"], r["status"]) for r in summary["thermal"]["nodes"]]


def test_summary_json_is_embedded_verbatim(sim_report) -> None:
    summary, html = _load(sim_report)
    start = html.index('<script type="application/json" id="summary-json">') + len(
        '<script type="application/json" id="summary-json">'
    )
    embedded = json.loads(html[start : html.index("</script>", start)].replace("<\\/", "</"))
    assert embedded == summary


def test_plotly_js_is_inline_once_and_nothing_is_fetched(sim_report) -> None:
    _, html = _load(sim_report)
    page = read_page(html)
    assert page.plotly_bundles == 1
    assert page.script_srcs == []
    assert "<link" not in html


def test_every_section_is_present(sim_report) -> None:
    _, html = _load(sim_report)
    for section in ("verdict", "phases", "attribution", "thermal", "history", "runs"):
        assert f'id="{section}"' in html
    assert 'id="thermal-profile"' in html and 'id="runs-table"' in html


def test_prefill_vs_decode_on_the_page_matches_summary_json(sim_report) -> None:
    summary, html = _load(sim_report)
    page = read_page(html)
    pd = summary["prefill_decode"]
    assert 'id="prefill"' in html
    assert page.ttft_antagonists == [
        (a["victim"], a["antagonist"], "yes" if a["significant"] else "no") for a in pd["ttft_antagonists"]
    ]
    assert page.knee_victims == [k["victim"] for k in pd["knees"]]
    for i, k in enumerate(pd["knees"]):
        assert f'id="fig-knee-{i}"' in html
        assert k["summary"].startswith("TTFT knee at load") == k["found"]
