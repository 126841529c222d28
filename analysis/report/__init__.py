"""The nightly report: ``summary.json`` (the single source) and one self-contained HTML page rendered from it.

    from analysis.report import write_report
    paths = write_report(store, start, end, "out/")      # {"html": out/index.html, "summary": out/summary.json}

Its figures are drawn by `analysis.figures`, the builders the dashboard draws with too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from analysis.history.thermal import ThermalLimits
from analysis.report.data import ReportData, read_report_data
from analysis.report.summary import Report, ReportOptions, build_report, degradation_thresholds

__all__ = [
    "Report",
    "ReportData",
    "ReportOptions",
    "ThermalLimits",
    "build_report",
    "read_report_data",
    "render",
    "write_report",
]


def render(report: Report, out: Path | str) -> dict[str, Path]:
    """Write ``summary.json`` first, then ``index.html`` rendered from the same summary; returns both paths."""
    from analysis.report.html import render_html

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    summary = root / "summary.json"
    tmp = summary.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report.summary, indent=2, sort_keys=True) + "\n")
    tmp.replace(summary)
    page = root / "index.html"
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(render_html(report), encoding="utf-8")
    tmp.replace(page)
    return {"html": page, "summary": summary}


def write_report(
    store: Any,
    start: datetime,
    end: datetime,
    out: Path | str,
    *,
    options: ReportOptions | None = None,
    step: Callable[[str], None] | None = None,
    store_name: str = "",
    notes: list[str] | None = None,
) -> dict[str, Path]:
    """Read ``[start, end)`` from ``store``, build the summary, write ``summary.json`` and ``index.html``."""
    o = options or ReportOptions()
    tell = step or (lambda _m: None)
    data = read_report_data(
        store,
        start,
        end,
        history_days=o.history_days,
        step=tell,
        store_name=store_name,
        victims=list(o.victims) if o.victims is not None else None,
        thresholds=degradation_thresholds(o),
        seed=o.seed,
    )
    data.notes[:0] = notes or []
    report = build_report(data, o, step=tell)
    tell("rendering HTML")
    return render(report, out)
