"""How long the dashboard takes to render, in real headless Chromium: 24 h of one 34-accelerator node at 1 Hz, the
demo's store, or a fleet of N nodes.

    .venv/bin/python benchmarks/dashboard_load.py [--store DIR] [--nodes N] [--repeat 5] [--pages P,...] [--json out.json]

1. Builds (once, then reuses) an embedded store, unless ``--store`` names one that holds accel data (e.g. the demo's,
   ``neighborscope-demo/store``):

   - default: 24 h of simulated seed-000 telemetry: 34 accelerators, host, 64 host cores and 4 tenants at 1 Hz
     (2.9 M accel rows), compacted as the collector leaves it;
   - ``--nodes N`` (N > 1): a fleet of N seed-000-shaped nodes (34 accelerators each), 1 h at 1 Hz, written by the
     synthetic fleet writer (`tests/dashboard/fleet_store.py`: numpy, seeded, one file per 5 minutes of every node
     in time order, as the collector writes them; 500 nodes = 61 M accel rows, 2.2 GB, about 5 minutes to write;
     the simulator would take hours), with trouble planted on known nodes and an alert state beside the store.
2. Starts ``neighborscope dashboard`` on a free port over it and opens each page of ``--pages`` (default: the Fleet
   overview and the Node detail page; also ``noisy_neighbours``, ``runs``, ``alerts``), range "Last 24 hours", in
   Debian's chromium through Playwright.
3. Time to rendered = from navigation start until the script has finished (``data-test-script-state=notRunning``)
   and every plotly chart has drawn its SVG (the "Loading …" placeholder that holds a chart's place while its
   queries run does not count). Reported per page:

   - ``cold``: the first visit after the server started (empty query caches, empty browser cache);
   - ``expired``: a new tab of the same browser profile after the query cache TTL passed (queries run again;
     what a returning user opening the dashboard sees);
   - ``warm``: a new tab within the TTL (reduced results served from ``st.cache_data``);
   - ``in app``: a click on the page's sidebar link from the other page, in the same tab (how an SRE moves
     between pages; plotly.js is already loaded there);
   - ``first content`` (noisy neighbours): until the chosen runs are on the page (the analysis then runs in the
     background behind a progress line).

   It also times the server-side reductions alone (no Streamlit), and prints the 1-minute load average, since
   a busy 2-core machine stretches every figure. Target: under 3 s per page.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dashboard.test_browser import CHARTS, CHROMIUM, CHROMIUM_ARGS, DRAWN, start_dashboard, stop  # noqa: E402

# page -> (url path, plotly charts drawn on it)
ALL_PAGES = {
    "overview": ("overview", 1),
    "node_detail": ("node-detail", 1),
    "noisy_neighbours": ("noisy-neighbours", 4),
    "runs": ("runs", 2),
    "alerts": ("alerts", 0),
}
PAGES = {k: ALL_PAGES[k] for k in ("overview", "node_detail")}
# sidebar link text and a selector only the page's own chart has (the overview's heatmap, node detail's lines)
IN_APP = {"overview": ("Fleet overview", ".heatmaplayer .hm"), "node_detail": ("Node detail", ".scatterlayer .trace")}
FIRST_CONTENT = {"noisy_neighbours": "[data-testid='stExpander']"}
FIRST_CONTENT_S: list[float] = []
SCRIPT_DONE: list[float] = []  # seconds until the script finished, per load (the rest is the browser drawing)
DEFAULT_STORE = ROOT / "neighborscope-demo" / "bench-24h" / "store"


def fleet_store_path(nodes: int) -> Path:
    return ROOT / "neighborscope-demo" / f"bench-fleet{nodes}" / "store"


def build_fleet(path: Path, nodes: int) -> None:
    """1 h at 1 Hz of ``nodes`` nodes (`tests.dashboard.fleet_store`), ending now."""
    from tests.dashboard.fleet_store import build_fleet_store

    t = time.perf_counter()
    build_fleet_store(path.parent, nodes=nodes, seconds=3600)
    print(
        f"built {path}: {nodes} nodes x 34 accelerators x 3600 s ({nodes * 34 * 3600:,} accel rows) in "
        f"{time.perf_counter() - t:.1f} s",
        flush=True,
    )


def build_store(path: Path, hours: int = 24, seed: int = 0) -> None:
    """24 h (three 8 h phases of seed 000) of telemetry only, written in hourly chunks then compacted."""
    from telemetry.sim import preset, simulate
    from telemetry.store.parquet import ParquetStore

    t = time.perf_counter()
    sc = preset("seed000", phase_s=hours * 3600 // 3)
    res = simulate(sc, seed=seed, bench=False)
    store = ParquetStore(path)
    rows = 0
    for _t0, frames in res.iter_telemetry(chunk_s=3600):
        for name, frame in frames.items():
            store.write(name, frame)
            rows += frame.height if name == "accel" else 0
    store.compact(min_files=2)
    store._lease().delete_due(force=True)  # the merged files now, not after the readers' grace period
    (path.parent / "topology.json").write_text(json.dumps(sc.topology.to_dict(), indent=2))
    print(f"built {path}: {rows:,} accel rows in {time.perf_counter() - t:.1f} s", flush=True)


def server_side(store_path: Path) -> dict[str, float]:
    """Seconds the reductions behind each page take on their own (no Streamlit, no browser)."""
    from analysis.figures.reduce import bucket_seconds
    from dashboard.data import Reader, fleet_frame
    from telemetry.store.parquet import ParquetStore

    r = Reader(ParquetStore(store_path))
    _, last = r.extent("accel")  # type: ignore[misc]
    start = last - timedelta(hours=24)
    out = {}
    t = time.perf_counter()
    status = fleet_frame(r, start, last)
    out["overview_fleet_table_s"] = time.perf_counter() - t
    node = status["node"][0]
    t = time.perf_counter()
    every = bucket_seconds(start, last, 240)
    r.buckets(
        "accel",
        ["temp_c", "power_w", "util_pct", "pcie_rx_bytes_per_s", "pcie_tx_bytes_per_s"],
        every,
        start,
        last,
        {"node": node},
        by=["device"],
    )
    out["overview_heatmap_s"] = time.perf_counter() - t
    t = time.perf_counter()
    devs = [f"gpu{i}" for i in range(8)]
    r.series("accel", "util_pct", start, last, {"node": node, "device": devs}, ["device"])
    r.series("host", "cpu_util_pct", start, last, {"node": node})
    r.series("tenant", "cpu_pct", start, last, {"node": node}, ["group"])
    out["node_detail_series_s"] = time.perf_counter() - t
    return out


def rendered_in(context, url: str, charts: int) -> float:  # a Playwright BrowserContext
    page = context.new_page()
    try:
        t = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=120_000)
        page.wait_for_selector("h1", timeout=120_000)
        marker = next((m for name, m in FIRST_CONTENT.items() if url.endswith(ALL_PAGES[name][0])), None)
        if marker:
            page.wait_for_selector(marker, timeout=120_000)
            FIRST_CONTENT_S.append(time.perf_counter() - t)
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
        SCRIPT_DONE.append(time.perf_counter() - t)
        if charts:
            page.wait_for_function(DRAWN, arg=charts, timeout=120_000)
        elapsed = time.perf_counter() - t
        if page.locator("[data-testid='stException']").count():
            raise RuntimeError(f"{url}: Streamlit exception on the page")
        return elapsed
    finally:
        page.close()


def switched_in(context, url: str, name: str, other: str, repeat: int) -> list[float]:
    """Seconds from a click on ``name``'s sidebar link, on the page ``other`` already drawn, until ``name``'s
    chart is drawn: how an SRE moves between pages (plotly.js is already loaded in the tab)."""
    page = context.new_page()
    try:
        page.goto(url + PAGES[other][0], wait_until="commit")
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
        page.wait_for_function(DRAWN, arg=1, timeout=120_000)
        out = []
        for _ in range(repeat):
            for target in (name, other):
                title, marker = IN_APP[target]
                t = time.perf_counter()
                page.locator("[data-testid='stSidebarNav'] a", has_text=title).click()
                page.wait_for_selector(f":is({CHARTS}) {marker}", timeout=120_000)
                page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
                page.wait_for_function(DRAWN, arg=1, timeout=120_000)
                if target == name:
                    out.append(time.perf_counter() - t)
        if page.locator("[data-testid='stException']").count():
            raise RuntimeError(f"{url}: Streamlit exception on the page")
        return out
    finally:
        page.close()


HELLO = """import plotly.graph_objects as go
import streamlit as st

st.title("Hello")
st.plotly_chart(go.Figure(go.Scatter(x=[1, 2], y=[1, 2])))
"""


def baseline(workdir: Path, repeat: int = 3) -> float:
    """Median render time of a trivial one-chart Streamlit page, measured the same way (the machine's floor)."""
    import socket
    import subprocess

    import httpx
    from playwright.sync_api import sync_playwright

    app = workdir / "hello_app.py"
    app.write_text(HELLO)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).text == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            times = [rendered_in(context, f"http://127.0.0.1:{port}/", 1) for _ in range(repeat + 1)][1:]
            browser.close()
        del SCRIPT_DONE[:]
        return statistics.median(times)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--nodes", type=int, default=1, help="a fleet store of N nodes (1 h at 1 Hz) instead of one node")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pages", default="overview,node_detail", help=f"comma-separated, of {', '.join(ALL_PAGES)}")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    pages = {p: ALL_PAGES[p] for p in args.pages.split(",")}
    store = args.store or (fleet_store_path(args.nodes) if args.nodes > 1 else DEFAULT_STORE)
    if not (store / "accel").is_dir() and args.nodes > 1:
        build_fleet(store, args.nodes)
    elif not (store / "accel").is_dir():
        build_store(store)
    from playwright.sync_api import sync_playwright

    from dashboard.data import CACHE_TTL_S

    result: dict[str, object] = {"store": str(store), "server_side": server_side(store)}
    print("server-side reductions:", {k: round(v, 3) for k, v in result["server_side"].items()}, flush=True)
    workdir = store.parent
    result["baseline_hello_s"] = baseline(workdir)
    print(
        f"baseline: a one-chart hello-world Streamlit page renders in {result['baseline_hello_s']:.2f} s here now "
        "(the floor this machine sets)",
        flush=True,
    )
    dash = start_dashboard(store, workdir, "--refresh-s", "600")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            for name, (path, charts) in pages.items():
                url = f"{dash.url}/{path}"
                # one browser profile per page, as a returning user has: the first visit fetches the app's
                # JavaScript, later visits find it in the browser cache
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                del FIRST_CONTENT_S[:]
                cold = rendered_in(context, url, charts)
                warm = [rendered_in(context, url, charts) for _ in range(args.repeat)]
                expired = []
                for _ in range(max(1, args.repeat // 2)):
                    time.sleep(CACHE_TTL_S + 1)
                    expired.append(rendered_in(context, url, charts))
                script = statistics.median(SCRIPT_DONE[-(1 + len(warm) + len(expired)) :])
                entry: dict[str, object] = {
                    "script_done_median_s": script,
                    "cold_s": cold,
                    "expired_median_s": statistics.median(expired),
                    "warm_median_s": statistics.median(warm),
                    "warm_all_s": warm,
                    "expired_all_s": expired,
                }
                line = (
                    f"{name:16s} cold {cold:5.2f} s · after cache expiry {statistics.median(expired):5.2f} s · "
                    f"warm {statistics.median(warm):5.2f} s (median of {len(warm)}); script done after "
                    f"{script:5.2f} s (median)"
                )
                if FIRST_CONTENT_S:
                    entry["first_content_cold_s"] = FIRST_CONTENT_S[0]
                    line += f"; first content (cold) after {FIRST_CONTENT_S[0]:5.2f} s"
                if name in IN_APP:
                    other = next(k for k in IN_APP if k != name)
                    in_app = switched_in(context, f"{dash.url}/", name, other, args.repeat)
                    entry |= {"in_app_median_s": statistics.median(in_app), "in_app_all_s": in_app}
                    line += f"; from the other page in the same tab {statistics.median(in_app):5.2f} s"
                context.close()
                result[name] = entry
                print(line, flush=True)
            browser.close()
    finally:
        stop(dash)
    result["load_average_1m"] = os.getloadavg()[0]
    result["cpus"] = os.cpu_count()
    print(f"load average {result['load_average_1m']:.2f} on {result['cpus']} CPUs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
