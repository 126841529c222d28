"""Acceptance: 30 simulated nights through the whole alert path (store -> nightly findings -> rules -> a real
webhook receiver). A 7 % throughput regression injected on night 20 and +0.02 °C/W on one GPU on night 25 are
each detected on the right night (±1) and nothing else alerts; an A/A history raises nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from analysis.alerts.engine import AlertsConfig, evaluate_once, refresh_nightly
from telemetry.config import model_from_dict
from telemetry.store.factory import open_store
from tests.analysis.alerts.alert_receiver import RecordingReceiver
from tests.analysis.history.history_sim import HistorySpec, night_start, write_history


def _replay(tmp_path: Path, spec: HistorySpec) -> dict[tuple[str, str, str], int]:
    """Night by night: refresh the findings after the night's run, evaluate; first firing night per alert."""
    store = open_store(tmp_path / "store")
    write_history(store, spec)
    state = tmp_path / "alerts"
    first: dict[tuple[str, str, str], int] = {}
    with RecordingReceiver() as rx:
        cfg = model_from_dict(
            AlertsConfig,
            {"alerts": {"history_days": 40}, "notifier": [{"kind": "webhook", "url": f"{rx.url}/hook"}]},
            "test",
        )
        for k in range(spec.nights):
            now = night_start(spec, k) + timedelta(hours=2)
            refresh_nightly(store, cfg, state, now)
            evaluate_once(cfg, store, state, now)
            for payload in rx.bodies("/hook"):
                for a in payload["alerts"]:
                    if a["status"] == "firing":
                        key = (a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["victim"])
                        first.setdefault(key, k)
    store.close()
    return first


@pytest.mark.slow
def test_injected_regressions_are_found_on_their_nights_and_nothing_else(tmp_path: Path) -> None:
    spec = HistorySpec(
        nights=30,
        seed=0,
        regression_night=20,
        regression_pct=7.0,
        thermal_night=25,
        thermal_device="gpu3",
        thermal_c_per_w=0.02,
    )
    first = _replay(tmp_path, spec)
    assert set(first) == {
        ("PerfRegression", "warning", "hive0"),  # suspected (rerun requested)
        ("PerfRegression", "critical", "hive0"),  # confirmed
        ("ThermalRegression", "warning", "gpu3"),
        ("ThermalRegression", "critical", "gpu3"),
    }
    assert abs(first[("PerfRegression", "warning", "hive0")] - 20) <= 1
    assert abs(first[("PerfRegression", "critical", "hive0")] - 20) <= 1
    assert abs(first[("ThermalRegression", "warning", "gpu3")] - 25) <= 1
    assert abs(first[("ThermalRegression", "critical", "gpu3")] - 25) <= 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_aa_history_raises_no_alert(tmp_path: Path, seed: int) -> None:
    assert _replay(tmp_path, HistorySpec(nights=30, seed=seed)) == {}
