"""The collector's own ``/metrics`` follows the Prometheus naming rules: the real ``promtool check metrics``
(Debian package ``prometheus``) finds no problem in what a real collector serves, with the embedded store
and with InfluxDB (whose local queue adds the store gauges and counter)."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from telemetry.batch import make_batch
from tests.conftest import in_ci
from tests.telemetry.collector.test_http_ingest import accel_frame, post
from tests.telemetry.store import conftest as influx_servers

# the real influxd fixtures of the store tests
influxd, influx_db, influx_url = influx_servers.influxd, influx_servers.influx_db, influx_servers.influx_url


def promtool_problems(exposition: str) -> list[str]:
    """What ``promtool check metrics`` says about a Prometheus text exposition (empty: no problem).
    Skips when promtool is absent; fails in CI (``CI=true``), where the ``prometheus`` package is installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        msg = "promtool is not installed (apt-get install prometheus)"
        if in_ci():
            pytest.fail(f"CI: {msg}")
        pytest.skip(msg)
    done = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    problems = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    assert (done.returncode == 0) == (not problems), (done.returncode, problems)
    return problems


def types(exposition: str) -> dict[str, str]:
    """``{metric: type}`` from the ``# TYPE`` lines."""
    return {p[2]: p[3] for ln in exposition.splitlines() if (p := ln.split())[:2] == ["#", "TYPE"]}


def test_promtool_finds_the_naming_problems_it_is_asked_about():
    bad = "# HELP x_ms latency\n# TYPE x_ms gauge\nx_ms 1\n# HELP y_total y\n# TYPE y_total gauge\ny_total 1\n"
    problems = promtool_problems(bad)
    assert any("x_ms" in p and "abbreviated units" in p for p in problems), problems
    assert any("y_total" in p and '"_total"' in p for p in problems), problems


def test_collector_metrics_pass_promtool(collector):
    assert post(collector, make_batch("node1", "b", 0, {"accel": accel_frame()})).status_code == 200
    assert post(collector, make_batch("node2", "b", 0, {"accel": accel_frame()})).status_code == 403
    r = httpx.post(
        f"{collector.url}/write?db=x&p=token-node1", content="cpu,host=a usage_idle=99.5 1700000000000000000"
    )
    assert r.status_code == 204, r.text
    text = httpx.get(f"{collector.url}/metrics", timeout=10).text
    assert {
        "neighborscope_collector_batches_total": "counter",
        "neighborscope_collector_rows_total": "counter",
        "neighborscope_collector_field_values_total": "counter",
        "neighborscope_collector_rejects_total": "counter",
        "neighborscope_collector_lp_lines_total": "counter",
        "neighborscope_collector_store_write_seconds": "histogram",
    }.items() <= types(text).items()
    assert promtool_problems(text) == []


@pytest.mark.influx
def test_collector_metrics_with_the_influxdb_queue_pass_promtool(collector_factory, influx_url):
    collector = collector_factory(store=influx_url)
    assert post(collector, make_batch("node1", "b", 0, {"accel": accel_frame()})).status_code == 200
    text = httpx.get(f"{collector.url}/metrics", timeout=10).text
    assert {
        "neighborscope_store_queued_batches": "gauge",
        "neighborscope_store_queued_bytes": "gauge",
        "neighborscope_store_rejected_lines_total": "counter",  # cumulative: a counter, not a gauge
    }.items() <= types(text).items()
    assert "neighborscope_store_rejected_lines_total 0.0" in text
    assert promtool_problems(text) == []
