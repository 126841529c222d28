"""Prometheus exposition of the latest values, compared byte for byte."""

from __future__ import annotations

import httpx

from agents.metrics import LatestValues, prometheus_text, serve_metrics


def latest() -> LatestValues:
    lv = LatestValues("node1")
    lv.update({"accel": [{"time": 1, "device": "gpu0", "vendor": "nvidia", "power_w": 300.0, "throttle_power": True,
                          "temp_c": None}]})
    lv.update({"accel": [{"time": 2, "device": "gpu0", "vendor": "nvidia", "power_w": 310.5, "throttle_power": False}],
               "tenant": [{"time": 2, "group": "hive0", "cpu_pct": 12.5, "pids": "1 2"}]})
    return lv


def test_latest_values_are_exposed_as_gauges_with_tags_as_labels():
    assert prometheus_text(latest()).decode() == (
        "# HELP neighborscope_accel_power_w board power, instantaneous where the device gives it (W)\n"
        "# TYPE neighborscope_accel_power_w gauge\n"
        'neighborscope_accel_power_w{device="gpu0",group="",model="",node="node1",pci_bus="",vendor="nvidia"} 310.5\n'
        "# HELP neighborscope_accel_throttle_power clocks held down for power (cap or brake) (bool)\n"
        "# TYPE neighborscope_accel_throttle_power gauge\n"
        'neighborscope_accel_throttle_power{device="gpu0",group="",model="",node="node1",pci_bus="",vendor="nvidia"} 0.0\n'
        "# HELP neighborscope_tenant_cpu_pct CPU use summed over the group's processes (100 = one core) (%)\n"
        "# TYPE neighborscope_tenant_cpu_pct gauge\n"
        'neighborscope_tenant_cpu_pct{group="hive0",node="node1"} 12.5\n'
    )


def test_metrics_endpoint_serves_the_text():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_metrics(latest(), "127.0.0.1", port)
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'neighborscope_tenant_cpu_pct{group="hive0",node="node1"} 12.5' in body
    finally:
        server.shutdown()
