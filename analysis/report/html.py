"""Assemble one self-contained HTML page from a `Report` (summary dict + figure frames).

Every sentence and table cell comes from ``report.summary`` (the content of ``summary.json``); figures are drawn by
`analysis.figures` (shared with the dashboard) from ``report.frames``. plotly.js is embedded inline once in ``<head>`` (no CDN), so the
file works offline. Tables carry ``data-*`` attributes with the raw values so tests can compare page and JSON.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

import plotly.graph_objects as go
import plotly.offline
import polars as pl

from analysis import figures as fg
from analysis.report.summary import Report

CSS = """
:root { color-scheme: light dark; --bg:#ffffff; --fg:#1f2937; --muted:#6b7280; --line:#e5e7eb; --card:#f9fafb;
  --ok:#047857; --watch:#b45309; --bad:#be123c; --accent:#2563eb; }
@media (prefers-color-scheme: dark) { :root { --bg:#0f172a; --fg:#e5e7eb; --muted:#9ca3af; --line:#334155;
  --card:#111c33; --ok:#34d399; --watch:#fbbf24; --bad:#fb7185; --accent:#60a5fa; } }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg); font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px; border-bottom:1px solid var(--line); padding-bottom:4px; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.meta, .note, figcaption { color: var(--muted); font-size: 13px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; font-size: 14px; }
.verdict { border:1px solid var(--line); background:var(--card); border-radius:10px; padding:14px 18px; margin-top:16px; }
.status { display:inline-block; font-weight:700; padding:2px 10px; border-radius:999px; border:2px solid currentColor; }
.status-OK { color:var(--ok); } .status-WATCH { color:var(--watch); } .status-ATTENTION { color:var(--bad); }
.status-NODATA { color:var(--muted); } .status-INCOMPLETE { color:var(--bad); }
.verdict ul { margin: 8px 0 0; padding-left: 20px; } .verdict li { margin: 3px 0; }
.topic { display:inline-block; min-width: 96px; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: right; vertical-align: top; }
th { color: var(--muted); font-weight: 600; } th:first-child, td:first-child, td.text, th.text { text-align: left; }
.chg { display:block; font-size: 12px; color: var(--muted); } .worse { color: var(--bad); } .better { color: var(--ok); }
.badge { font-weight:700; } .badge-OK, .badge-COOL { color: var(--ok); } .badge-WARM { color: var(--watch); } .badge-HOT { color: var(--bad); }
.empty { border:1px dashed var(--line); border-radius:8px; padding:12px 16px; color:var(--muted); }
figure { margin: 10px 0 18px; min-width: 0; }
/* two fixed columns, not auto-fit: plotly draws each chart while the page is parsed, when the right-hand chart is
   not in the grid yet; with auto-fit the left one was then one full-width column and kept that width (its SVG ran
   under the right chart). minmax(0, 1fr) lets a column shrink below a chart's drawn width. */
.grid { display:grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px 18px; }
@media (max-width: 960px) { .grid { grid-template-columns: minmax(0, 1fr); } }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
code { font-size: 12.5px; }
"""

THEME_JS = """
(function () {
  var mq = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  function apply() {
    var dark = mq && mq.matches;
    var color = dark ? '#cbd5e1' : '#374151';
    document.querySelectorAll('.js-plotly-plot').forEach(function (el) {
      if (window.Plotly) {
        Plotly.relayout(el, {'font.color': color});
        Plotly.Plots.resize(el);  // fit the chart to its cell now that the whole page is laid out
      }
    });
  }
  window.addEventListener('load', apply);
  if (mq && mq.addEventListener) { mq.addEventListener('change', apply); }
})();
"""

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _fig(fig: go.Figure, div_id: str, caption: str = "") -> str:
    body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure data-figure="{escape(div_id)}">{body}{cap}</figure>'


def _num(v: Any, nd: int = 1, unit: str = "") -> str:
    if v is None:
        return "n/a"
    text = f"{v:,.{nd}f}"
    return f"{text} {unit}".rstrip()


def _attr(v: Any) -> str:
    return "" if v is None else escape(str(v), quote=True)


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text[0].upper() + text[1:])}.</p>'


def _verdict(s: dict[str, Any]) -> str:
    v = s["verdict"]
    items = "".join(
        f'<li data-topic="{_attr(line["topic"])}"><span class="topic">{escape(line["topic"])}</span> '
        f'<span class="text">{escape(line["text"])}</span></li>'
        for line in v["lines"]
    )
    status_cls = v["status"].replace(" ", "")
    bad = s.get("unreadable_inputs") or []
    unreadable = (
        ""
        if not bad
        else '<table id="unreadable-inputs"><thead><tr><th class="text">input that could not be read</th>'
        '<th class="text">reason</th></tr></thead><tbody>'
        + "".join(
            f'<tr data-path="{_attr(b["path"])}"><td class="text"><code>{escape(b["path"])}</code></td>'
            f'<td class="text">{escape(b["reason"])}</td></tr>'
            for b in bad
        )
        + "</tbody></table>"
    )
    return (
        f'<section id="verdict" class="verdict" data-status="{_attr(v["status"])}">'
        f'<span class="status status-{status_cls}">{escape(v["status"])}</span> '
        f'<strong class="headline">{escape(v["headline"])}</strong><ul>{items}</ul>{unreadable}</section>'
    )


def _change_cell(ch: dict[str, Any] | None, higher_is_better: bool) -> str:
    if not ch or ch.get("pct") is None:
        return ""
    pct = ch["pct"]
    worse = (pct < 0) if higher_is_better else (pct > 0)
    cls = "worse" if worse and ch["verdict"].startswith("degraded") else ("better" if not worse else "")
    ci = "" if ch.get("ci_low_pct") is None else f" [{ch['ci_low_pct']:+.1f}, {ch['ci_high_pct']:+.1f}]"
    title = escape(f"{ch['verdict']}; interval: {ch['interval']}", quote=True)
    return f'<span class="chg {cls}" title="{title}">{pct:+.1f} %{escape(ci)}</span>'


def _phase_table(s: dict[str, Any]) -> str:
    rows = s["phases"]["rows"]
    if not rows:
        return _empty(s["phases"]["note"])
    metrics = s["phases"]["metrics"]
    head = "".join(f'<th data-metric="{m["key"]}">{escape(m["label"])} ({escape(m["unit"])})</th>' for m in metrics)
    body = []
    for r in rows:
        cells = []
        for m in metrics:
            val = r["metrics"].get(m["key"])
            ch = r["changes"].get(m["key"])
            cells.append(
                f'<td data-metric="{m["key"]}" data-value="{_attr(val)}" '
                f'data-change="{_attr(ch["pct"] if ch else None)}" '
                f'data-ci-low="{_attr(ch["ci_low_pct"] if ch else None)}" data-ci-high="{_attr(ch["ci_high_pct"] if ch else None)}">'
                f"{_num(val, 2)}{_change_cell(ch, m['higher_is_better'])}</td>"
            )
        body.append(
            f'<tr data-group="{_attr(r["group"])}" data-phase="{_attr(r["phase"])}">'
            f'<td class="text">{escape(r["group"])}</td><td class="text">{escape(r["phase"])}</td>'
            f'<td data-runs="{r["runs"]}">{r["runs"]}</td><td>{r["requests"]:,}</td>{"".join(cells)}</tr>'
        )
    return (
        f'<table id="phase-table"><thead><tr><th class="text">group</th><th class="text">phase</th><th>runs</th>'
        f"<th>requests</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        '<p class="note">Each cell: the phase value (mean over its runs), then the change vs the group\'s '
        "baseline phase and its 95 % interval in brackets where one can be computed (hover for the method and "
        "verdict). Red: degraded beyond the threshold; green: better.</p>"
        + "".join(f'<p class="note">{escape(n)}</p>' for n in s["phases"].get("method_notes") or [])
    )


def _effect(v: float | None, lo: float | None, hi: float | None) -> str:
    if v is None:
        return "n/a"
    ci = "" if lo is None else f'<span class="chg">[{lo:+.1f}, {hi:+.1f}]</span>'
    return f"{v:+.1f} %{ci}"


def _live(a: dict[str, Any]) -> str:
    """A mark after the victim's name when the row comes from live traffic (the serving engine's metrics)."""
    return (
        ' <span class="chg" title="live traffic: the serving engine\'s own metrics">(live)</span>'
        if (a.get("source") == "live")
        else ""
    )


def _antagonists(s: dict[str, Any]) -> str:
    items = s["antagonists"]["items"]
    if not items:
        return _empty(f"No attribution: {s['antagonists']['note']}")
    body = []
    for a in items:
        q = "n/a" if a.get("q") is None else f"{a['q']:.3f}"
        sig = "yes" if a["significant"] else "no"
        body.append(
            f'<tr data-victim="{_attr(a["victim"])}" data-antagonist="{_attr(a["antagonist"])}" '
            f'data-significant="{sig}"><td>{a["rank"]}</td><td class="text">{escape(a["victim"])}{_live(a)}</td>'
            f'<td class="text"><strong>{escape(a["antagonist"])}</strong></td>'
            f'<td class="text">{escape(a.get("resource") or "not identified")}</td>'
            f"<td>{_effect(a['throughput_effect_pct'], a['throughput_ci_low_pct'], a['throughput_ci_high_pct'])}</td>"
            f"<td>{_effect(a['itl_p99_effect_pct'], a['itl_p99_ci_low_pct'], a['itl_p99_ci_high_pct'])}</td>"
            f'<td>{escape(q)}</td><td class="text">{sig}</td>'
            f'<td class="text">{escape(a["design"])}, {escape(a["confidence"])}</td>'
            f'<td class="text">{escape("; ".join(a["evidence"]) or "—")}</td></tr>'
        )
    notes = s["antagonists"].get("method_notes") or []
    method = (
        (
            "<details><summary>Method notes</summary><ul>"
            + "".join(f"<li>{escape(n)}</li>" for n in notes)
            + "</ul></details>"
        )
        if notes
        else ""
    )
    return (
        '<table id="antagonist-table"><thead><tr><th>rank</th><th class="text">victim</th>'
        '<th class="text">antagonist</th><th class="text">resource</th><th>throughput effect [95 % CI]</th>'
        '<th>p99 ITL effect [95 % CI]</th><th>q</th><th class="text">significant</th>'
        '<th class="text">design, confidence</th><th class="text">evidence</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        '<p class="note">Effects: change of the victim at the antagonist\'s busiest vs idle. Interventional = '
        "the antagonist was switched on and off by a randomised schedule; correlational = observed only.</p>" + method
    )


def _profile_table(rows: list[dict[str, Any]], table_id: str, label: str) -> str:
    body = []
    for r in rows:
        extra = (
            f'<td class="text">{escape(r.get("group") or "")}</td><td class="text">{escape(r.get("model") or "")}</td>'
            if label == "device"
            else f"<td>{r['devices']}</td>"
        )
        cpu = (
            ""
            if label == "device"
            else f'<td data-col="cpu_peak_c">{_num(r["cpu_peak_c"], 0, "°C")}</td>'
            f"<td>{_num(r['cpu_util_peak_pct'], 0, '%')}</td><td>{_num(r['power_total_avg_w'], 1, 'W')}</td>"
        )
        rng = "n/a" if r["gpu_min_c"] is None else f"{r['gpu_min_c']:.0f}–{r['gpu_max_c']:.0f} °C"
        body.append(
            f'<tr data-{label}="{_attr(r[label])}" data-status="{_attr(r["status"])}">'
            f'<td class="text">{escape(str(r[label] or f"{label} unknown"))}</td>{extra}<td data-col="gpu_avg_c">{_num(r["gpu_avg_c"], 0, "°C")}</td>'
            f'<td>{escape(rng)}</td><td data-col="power_avg_w">{_num(r["power_avg_w"], 1, "W")}</td>{cpu}'
            f"<td>{_throttle(r)}</td>"
            f'<td class="text" title="{_attr(r["reason"])}"><span class="badge badge-{_attr(r["status"])}">{escape(r["status"])}</span></td></tr>'
        )
    extra_h = '<th class="text">group</th><th class="text">model</th>' if label == "device" else "<th>accelerators</th>"
    cpu_h = "" if label == "device" else "<th>CPU peak</th><th>CPU util peak</th><th>Power total avg</th>"
    return (
        f'<table id="{table_id}"><thead><tr><th class="text">{label}</th>{extra_h}<th>GPU avg</th>'
        f'<th>GPU range</th><th>Power avg</th>{cpu_h}<th>thermal throttling</th><th class="text">status</th></tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )


def _throttle(r: dict[str, Any]) -> str:
    if r.get("throttled_thermal_frac") is not None:
        return _num(100 * r["throttled_thermal_frac"], 1, "% of samples")
    return _num(r.get("throttle_thermal_s"), 0, "device·s")


def _thermal(s: dict[str, Any], frames: dict[str, pl.DataFrame]) -> str:
    t = s["thermal"]
    if not t["nodes"]:
        return _empty(t["note"])
    lim = t["limits"]
    parts = [
        '<ul class="findings">' + "".join(f"<li>{escape(f)}</li>" for f in t["findings"]) + "</ul>",
        "<h3>Thermal profile per node</h3>",
        _profile_table(t["nodes"], "thermal-profile", "node"),
        f'<p class="note">Limits: GPU cool below an average of {lim["gpu_cool_below_c"]:.0f} °C, warm at a peak of {lim["gpu_warm_c"]:.0f} °C, hot at {lim["gpu_hot_c"]:.0f} °C; '
        f"CPU warm at {lim['cpu_warm_c']:.0f} °C, hot at {lim['cpu_hot_c']:.0f} °C. CPU peak needs a host cpu_temp_c "
        f'reading ("n/a" without one). Source: {escape(s["sources"]["thermal"])}.</p>',
        f"<details><summary>Per-accelerator profile ({len(t['devices'])} accelerators)</summary>"
        f"{_profile_table(t['devices'], 'thermal-devices', 'device')}</details>",
        _fig(fg.thermal_profile_bars(frames["thermal_devices"], lim, label="device"), "fig-thermal-devices"),
        _fig(fg.device_heatmap(frames["accel"], "temp_c"), "fig-heat-temp"),
        _fig(fg.device_heatmap(frames["accel"], "power_w"), "fig-heat-power"),
        '<div class="grid">'
        + _fig(fg.group_timeseries(frames["accel"], "temp_c"), "fig-group-temp")
        + _fig(fg.group_timeseries(frames["accel"], "power_w"), "fig-group-power")
        + "</div>",
    ]
    return "".join(parts)


def _history(s: dict[str, Any], frames: dict[str, pl.DataFrame]) -> str:
    h = s["history"]
    if not h["points"]:
        return _empty(h["note"])
    cps = h["change_points"]
    cp = (
        (
            "<ul>"
            + "".join(
                f"<li>{escape(c['group'])} {escape(c['phase'])} {escape(c['metric'])}: change point at "
                f"{escape(c['time'] or '')}</li>"
                for c in cps
            )
            + "</ul>"
        )
        if cps
        else f'<p class="note">{escape(s["regressions"]["note"])}</p>'
    )
    return (
        f'<p class="meta">{h["runs"]} run(s) over the last {h["days"]:g} days.</p>{cp}<div class="grid">'
        + _fig(fg.history_lines(frames["history"], frames["change_points"], "output_tok_s"), "fig-history-tput")
        + _fig(fg.history_lines(frames["history"], frames["change_points"], "itl_ms_p99"), "fig-history-p99")
        + "</div>"
    )


def _runs(s: dict[str, Any]) -> str:
    runs = s["runs"]
    md = s["metadata"]
    meta = (
        f'<table id="report-metadata"><tbody>'
        f'<tr><th class="text">window</th><td class="text">{escape(s["window"]["start"] or "")} to {escape(s["window"]["end"] or "")}</td></tr>'
        f'<tr><th class="text">generated</th><td class="text">{escape(s["generated_at"])}</td></tr>'
        f'<tr><th class="text">store</th><td class="text"><code>{escape(s["store"] or "")}</code></td></tr>'
        f'<tr><th class="text">nodes</th><td class="text">{escape(", ".join(md["nodes"]) or "none")}</td></tr>'
        f'<tr><th class="text">accelerators</th><td class="text">{md["accelerators"]} ({escape(", ".join(md["vendors"]) or "n/a")})</td></tr>'
        f'<tr><th class="text">sources</th><td class="text">{escape("; ".join(f"{k}: {v}" for k, v in s["sources"].items()))}</td></tr>'
        f'<tr><th class="text">thresholds</th><td class="text">throughput {s["options"]["delta_throughput_pct"]:g} %, '
        f"latency {s['options']['delta_latency_pct']:g} %, windows {s['options']['window_s']} s</td></tr>"
        "</tbody></table>"
    )
    if not runs:
        return meta + _empty("no benchmark runs in this window")
    body = "".join(
        f'<tr data-run="{_attr(r["run_id"])}"><td class="text"><code>{escape(r["run_id"] or "")}</code></td>'
        f'<td class="text">{escape(r["group"])}</td><td class="text">{escape(r["phase"])}</td>'
        f'<td class="text">{escape(str(r["tool"] or ""))} {escape(str(r["tool_version"] or ""))}</td>'
        f'<td class="text">{escape(str(r["model"] or "n/a"))}</td>{_tokens_cell(r)}{_concurrency_cell(r)}'
        f'<td class="text">{escape(str(r["start"] or ""))}</td>'
        f"<td>{_num(r['duration_s'], 1, 's')}</td><td>{_num(r['completed'], 0)}</td><td>{_num(r['output_tok_s'], 2)}</td>"
        f'<td class="text">{escape(str(r["timing"] or ""))}</td></tr>'
        for r in runs
    )
    return meta + (
        '<table id="runs-table"><thead><tr><th class="text">run</th><th class="text">group</th>'
        '<th class="text">phase</th><th class="text">tool</th><th class="text">model</th><th>ISL/OSL (tokens)</th>'
        '<th>concurrency</th><th class="text">start (UTC)</th><th>duration</th><th>requests</th>'
        f'<th>output (tok/s)</th><th class="text">timing</th></tr></thead><tbody>{body}</tbody></table>'
    )


MEASURED = "measured from the run's requests (the tool's file does not give the setting)"


def _tokens_cell(r: dict[str, Any]) -> str:
    """ISL/OSL: the tool's setting, or ≈ the mean per completed request (marked, with a tooltip)."""
    if r.get("isl") is None and r.get("osl") is None:
        return '<td data-col="isl_osl">n/a</td>'
    text = f"{'n/a' if r.get('isl') is None else r['isl']:,}/{'n/a' if r.get('osl') is None else r['osl']:,}"
    if r.get("tokens_source") == "measured":
        return (
            f'<td data-col="isl_osl" data-source="measured" title="mean per request, {escape(MEASURED)}">'
            f"≈{escape(text)}</td>"
        )
    return f'<td data-col="isl_osl" data-source="config">{escape(text)}</td>'


def _concurrency_cell(r: dict[str, Any]) -> str:
    """Concurrency: the tool's setting, or ≈ the requests in flight for most of the run (marked, with a tooltip)."""
    if r.get("concurrency") is None:
        return '<td data-col="concurrency">n/a</td>'
    if r.get("concurrency_source") == "measured":
        return (
            f'<td data-col="concurrency" data-source="measured" title="requests in flight for most of the run, '
            f'{escape(MEASURED)}">≈{r["concurrency"]}</td>'
        )
    return f'<td data-col="concurrency" data-source="config">{r["concurrency"]}</td>'


def _attribution(s: dict[str, Any], frames: dict[str, pl.DataFrame]) -> str:
    out = [_antagonists(s)]
    items = s["antagonists"]["items"]
    for shown, a in enumerate(items[:4]):
        out.append(
            _fig(
                fg.evidence_timeline(frames["victim_p99"], frames["activity"], a["victim"], a["antagonist"]),
                f"fig-evidence-{shown}",
                f"{a['victim']}'s p99 ITL per {s['antagonists']['window_s']} s window (left axis, ms; first and "
                f"last 30 s of each run left out) against {a['antagonist']}'s activity (right axis: "
                "summed board power, or CPU for host-only tenants).",
            )
        )
    return "".join(out)


def _prefill(s: dict[str, Any], frames: dict[str, pl.DataFrame]) -> str:
    """Prefill vs decode: the antagonists on TTFT windows (the ITL / decode side is the table above) and the
    TTFT knee of each victim (a figure, and its verdict in words)."""
    from analysis.figures.knee import knee_figure
    from analysis.knee import Knee

    pd = s.get("prefill_decode") or {"ttft_antagonists": [], "knees": [], "note": "not computed"}
    out = []
    items = pd["ttft_antagonists"]
    if items:
        rows = []
        for a in items:
            q = "n/a" if a.get("q") is None else f"{a['q']:.3f}"
            sig = "yes" if a["significant"] else "no"
            rows.append(
                f'<tr data-ttft-victim="{_attr(a["victim"])}" data-ttft-antagonist="{_attr(a["antagonist"])}" '
                f'data-ttft-significant="{sig}"><td>{a["rank"]}</td><td class="text">{escape(a["victim"])}{_live(a)}</td>'
                f'<td class="text"><strong>{escape(a["antagonist"])}</strong></td>'
                f'<td class="text">{escape(a.get("resource") or "not identified")}</td>'
                f"<td>{_effect(a['ttft_p99_effect_pct'], a['ttft_p99_ci_low_pct'], a['ttft_p99_ci_high_pct'])}</td>"
                f'<td>{escape(q)}</td><td class="text">{sig}</td>'
                f'<td class="text">{escape(a["design"])}, {escape(a["confidence"])}</td>'
                f'<td class="text">{escape("; ".join(a["evidence"]) or "—")}</td></tr>'
            )
        out.append(
            '<table id="ttft-antagonist-table"><thead><tr><th>rank</th><th class="text">victim</th>'
            '<th class="text">antagonist</th><th class="text">resource</th><th>p99 TTFT effect [95 % CI]</th>'
            '<th>q</th><th class="text">significant</th><th class="text">design, confidence</th>'
            f'<th class="text">evidence</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="note">Attribution on TTFT windows (prefill): in disaggregated serving the prefill pool\'s '
            "neighbour shows here, the decode pool's in the ITL table above.</p>"
        )
    else:
        out.append(_empty(f"No attribution on TTFT windows: {pd['note']}"))
    for i, k in enumerate(pd["knees"]):
        victim = k["victim"]
        fields = {f: k[f] for f in Knee.__dataclass_fields__ if f in k}
        knee = Knee(**fields)
        win = frames.get(f"knee:{victim}")
        line = f'<p class="knee" data-victim="{_attr(victim)}">{escape(victim)}: {escape(k["summary"])}</p>'
        out.append(line)
        if win is not None:
            out.append(
                _fig(
                    knee_figure(win, knee, f"{victim}: TTFT against load"),
                    f"fig-knee-{i}",
                    f"{victim}'s TTFT per window against its load (running requests x mean input tokens); the "
                    "two-segment fit and the knee's 95 % interval where there is a knee.",
                )
            )
    return "".join(out)


def render_html(report: Report) -> str:
    """The whole page as one string (plotly.js inline, no network access needed)."""
    s, fr = report.summary, report.frames
    phases_figs = ""
    if s["phases"]["rows"]:
        phases_figs = (
            '<div class="grid">'
            + _fig(fg.phase_change_bars(fr["phases"], "itl_ms_p99"), "fig-phase-p99")
            + _fig(fg.phase_change_bars(fr["phases"], "output_tok_s"), "fig-phase-tput")
            + "</div>"
        )
    body = (
        f'<header><h1>{escape(s["title"])}</h1><p class="meta">Window {escape(s["window"]["start"] or "")} to '
        f"{escape(s['window']['end'] or '')} · generated {escape(s['generated_at'])} · store "
        f"<code>{escape(s['store'] or '')}</code></p>"
        '<nav><a href="#verdict">Verdict</a><a href="#phases">Phases</a><a href="#attribution">Attribution</a>'
        '<a href="#prefill">Prefill vs decode</a><a href="#thermal">Thermal</a><a href="#history">History</a><a href="#runs">Runs</a></nav></header>'
        + _verdict(s)
        + f'<section id="phases"><h2>Phase table</h2>{_phase_table(s)}{phases_figs}</section>'
        + f'<section id="attribution"><h2>Who is to blame</h2>{_attribution(s, fr)}</section>'
        + f'<section id="prefill"><h2>Prefill vs decode</h2>{_prefill(s, fr)}</section>'
        + f'<section id="thermal"><h2>Thermal and power</h2>{_thermal(s, fr)}</section>'
        + f'<section id="history"><h2>History</h2>{_history(s, fr)}</section>'
        + f'<section id="runs"><h2>Runs and metadata</h2>{_runs(s)}</section>'
    )
    summary_json = json.dumps(s, sort_keys=True).replace("</", "<\\/")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(s['title'])} · {escape(s['window']['end'] or '')}</title><style>{CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body><main>{body}</main>"
        f'<script type="application/json" id="summary-json">{summary_json}</script>'
        f"<script>{THEME_JS}</script></body></html>"
    )
