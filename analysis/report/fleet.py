"""The nightly report of a fleet: one report per node, drawn one node at a time in worker processes, and an index.

    from analysis.report.fleet import write_fleet_report
    out = write_fleet_report("store/dir", store, start, end, "reports/2026-03-03")
    # reports/2026-03-03/index.html (every node's verdict, linked), summary.json, <node>/index.html, <node>/summary.json

The night's runs are listed once (`analysis.nightly.plan_night`); each worker reads one node's telemetry, runs and
artifacts (`read_report_data(node=...)`), analyses its victims with the runs handed over, and writes that node's
report (the same page as a one-node store's). No process holds more than one node's rows. Nodes without a benchmark
run in the window are not reported (the index says how many nodes were).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from analysis.nightly import NodeDone, NodeJob, plan_night, run_night
from analysis.report.summary import ReportOptions

FLEET_SCHEMA_VERSION = 1
NO_NODE = "no-node"  # the directory of runs that name no node


def node_dir(node: str) -> str:
    """A node's report directory under the fleet's: its name, made safe for a path."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in node).strip(".")
    return safe or NO_NODE


def several_nodes(jobs: list[NodeJob]) -> bool:
    """The fleet report is for a window whose runs are on more than one node."""
    return len(jobs) > 1


def report_node(
    store: Any,
    job: NodeJob,
    *,
    start: datetime,
    end: datetime,
    out: str,
    options: ReportOptions,
    store_name: str = "",
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Worker: one node's report under ``out/<node>/``; returns its line of the index."""
    from analysis.report import render
    from analysis.report.data import read_report_data
    from analysis.report.summary import build_report, degradation_thresholds

    data = read_report_data(
        store,
        start,
        end,
        history_days=options.history_days,
        store_name=store_name,
        victims=list(job.victims),
        thresholds=degradation_thresholds(options),
        seed=options.seed,
        node=job.node or None,
        run_list=list(job.runs),
    )
    data.notes[:0] = notes or []
    report = build_report(data, options)
    sub = node_dir(job.node)
    render(report, Path(out) / sub)
    s = report.summary
    return {
        "node": job.node,
        "path": f"{sub}/index.html",
        "status": s["verdict"]["status"],
        "headline": s["verdict"]["headline"],
        "victims": list(job.victims),
        "runs": len(job.runs),
        "unreadable_inputs": s["unreadable_inputs"],
    }


def write_fleet_report(
    store_url: str,
    store: Any,
    start: datetime,
    end: datetime,
    out: Path | str,
    *,
    options: ReportOptions | None = None,
    workers: int | None = None,
    jobs: list[NodeJob] | None = None,
    on_node: Callable[[NodeDone, int], None] | None = None,
    store_name: str = "",
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Every node's report (`report_node`) in ``workers`` processes, then ``out/summary.json`` and
    ``out/index.html`` over them. ``jobs``: the plan when already made (`plan_night`); ``on_node(done, total)`` is
    called as each node is done (progress). Returns {"html", "summary", "nodes"} (each node's index line; a node
    whose report failed has its ``error``)."""
    o = options or ReportOptions()
    plan = jobs if jobs is not None else plan_night(store, start, end, o.victims)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    kw = dict(start=start, end=end, out=str(root), options=o, store_name=store_name, notes=notes)
    for done in run_night(store_url, plan, report_node, workers=workers, **kw):
        if done.error is not None:
            rows.append({"node": done.node, "status": "FAILED", "headline": done.error, "path": None})
        else:
            rows.append(done.value)
        if on_node is not None:
            on_node(done, len(plan))
    rows.sort(key=lambda r: r["node"])
    summary = {
        "schema_version": FLEET_SCHEMA_VERSION,
        "title": "neighborscope nightly report (fleet)",
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "store": store_name,
        "nodes": rows,
        "counts": _counts(rows),
        "notes": [*(notes or []), "nodes without a benchmark run in the window are not reported"],
    }
    path = root / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    page = root / "index.html"
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(render_index(summary), encoding="utf-8")
    tmp.replace(page)
    return {"html": page, "summary": path, "nodes": rows}


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return dict(sorted(out.items()))


_ORDER = {"FAILED": 0, "ATTENTION": 1, "INCOMPLETE": 2, "WATCH": 3, "NO DATA": 4, "OK": 5}


def render_index(summary: dict[str, Any]) -> str:
    """The fleet's index page: one line per node (worst first), its verdict and a link to its report."""
    rows = sorted(summary["nodes"], key=lambda r: (_ORDER.get(r["status"], 9), r["node"]))
    lines = []
    for r in rows:
        name = escape(r["node"] or "(no node)")
        link = f'<a href="{escape(r["path"])}">{name}</a>' if r.get("path") else name
        lines.append(
            f'<tr class="{escape(r["status"].lower().replace(" ", "-"))}"><td>{link}</td>'
            f"<td>{escape(r['status'])}</td><td>{escape(r['headline'])}</td></tr>"
        )
    counts = ", ".join(f"{n} {escape(k)}" for k, n in summary["counts"].items()) or "no nodes"
    w = summary["window"]
    notes = "".join(f"<li>{escape(n)}</li>" for n in summary["notes"])
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(summary['title'])}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}"
        "tr.attention td,tr.failed td{background:#fde2e1}tr.watch td,tr.incomplete td{background:#fff4d6}"
        "</style></head><body>"
        f"<h1>{escape(summary['title'])}</h1>"
        f"<p>{escape(w['start'])} .. {escape(w['end'])}; {len(rows)} node(s): {counts}.</p>"
        "<table><thead><tr><th>node</th><th>verdict</th><th>summary</th></tr></thead><tbody>"
        + "".join(lines)
        + f"</tbody></table><ul>{notes}</ul></body></html>\n"
    )
