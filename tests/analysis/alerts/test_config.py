"""alerts.toml: clear errors (file, key, what was expected), rule overrides, and the CLI across restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from analysis.alerts.engine import load_config, read_state
from telemetry.errors import ConfigError
from telemetry.store.factory import open_store
from tests.analysis.alerts.alert_receiver import RecordingReceiver

NEIGHBORSCOPE = [sys.executable, "-m", "telemetry.cli"]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "alerts.toml"
    p.write_text(text)
    return p


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    p = _write(tmp_path, '[[rule]]\nname = "X"\nkind = "perf_regression"\nthreshold = 3\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"{p}: rule[0].threshold: unknown key (got 3)"


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    p = _write(tmp_path, '[[rule]]\nname = "X"\nkind = "noisy_neighbour"\nenter_pct = "ten"\n')
    with pytest.raises(ConfigError, match=r"rule\[0\]\.enter_pct: Input should be a valid number.*'ten'"):
        load_config(p)


def test_bad_duration_and_bad_kind(tmp_path: Path) -> None:
    p = _write(tmp_path, '[[rule]]\nname = "X"\nkind = "thermal_temperature"\nfor = "5 minutes"\n')
    with pytest.raises(ConfigError, match=r"rule\[0\]\.for: expected a duration such as '5m'"):
        load_config(p)
    p = _write(tmp_path, '[[rule]]\nname = "X"\nkind = "cpu"\n')
    with pytest.raises(ConfigError, match=r"rule\[0\]\.kind: Input should be 'thermal_temperature'"):
        load_config(p)


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "[alerts\n")
    with pytest.raises(ConfigError, match=r"alerts\.toml: not valid TOML: .*line 1"):
        load_config(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_webhook_without_url_and_duplicate_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"notifier\[0\]\.url: a webhook notifier needs a url"):
        load_config(_write(tmp_path, '[[notifier]]\nkind = "webhook"\n'))
    with pytest.raises(ConfigError, match="duplicate rule name"):
        load_config(
            _write(tmp_path, '[[rule]]\nname="A"\nkind="perf_regression"\n[[rule]]\nname="A"\nkind="perf_regression"\n')
        )


def test_a_rule_of_the_same_name_replaces_the_builtin(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            '[[rule]]\nname = "GpuTemperatureHigh"\nkind = "thermal_temperature"\n'
            'threshold_c = 80\nfor = "10m"\n[[rule]]\nname = "Mine"\n'
            'kind = "stale_telemetry"\nintervals = 5\n',
        )
    )
    rules = {r.name: r for r in cfg.rules()}
    assert rules["GpuTemperatureHigh"].threshold_c == 80 and rules["GpuTemperatureHigh"].for_s == 600
    assert rules["Mine"].intervals == 5
    assert len(rules) == 8  # 7 built-ins (NoisyNeighbour, the live rule, among them) + Mine
    cfg = load_config(_write(tmp_path, "[alerts]\nbuiltin_rules = false\n"))
    assert cfg.rules() == []


def test_regression_and_thermal_tables_are_the_detectors_own_settings(tmp_path: Path) -> None:
    from analysis.history.regression import RegressionConfig
    from analysis.history.thermal import ThermalConfig

    p = _write(tmp_path, "[regression]\nmin_effect = 0.05\nfamily_correction = false\n[thermal]\npeer_z = 4.0\n")
    cfg = load_config(p)
    assert cfg.regression == RegressionConfig(min_effect=0.05, family_correction=False)
    assert cfg.thermal == ThermalConfig(peer_z=4.0)
    p = _write(tmp_path, "[regression]\nmin_efect = 0.05\n[thermal]\npeer = 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value).splitlines() == [
        f"{p}: regression.min_efect: unknown key (got 0.05)",
        f"{p}: thermal.peer: unknown key (got 1)",
    ]


def test_example_config_in_the_docs_is_valid() -> None:
    root = Path(__file__).resolve().parents[3]
    cfg = load_config(root / "examples" / "alerts.toml")
    assert {n.kind for n in cfg.notifier} == {"alertmanager", "webhook", "log"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NEIGHBORSCOPE, "alerts", *args], capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.slow
def test_cli_keeps_state_across_processes(tmp_path: Path) -> None:
    """Each `neighborscope alerts` is a fresh process: pending -> firing after `for`, one notification, resolved."""
    t0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    store = tmp_path / "store"
    st = open_store(store)
    times = [t0 + timedelta(seconds=10 * k) for k in range(-6, 19)]  # 11:59 .. 12:03, hot until 12:02:30
    st.write(
        "accel",
        pl.DataFrame(
            {
                "time": times,
                "node": ["n1"] * len(times),
                "device": ["gpu0"] * len(times),
                "temp_c": [92.0 if t < t0 + timedelta(seconds=150) else 60.0 for t in times],
            }
        ),
    )
    st.close()
    with RecordingReceiver() as rx:
        cfg = _write(
            tmp_path,
            f'[alerts]\nbuiltin_rules = false\n[[rule]]\nname = "Hot"\nkind = "thermal_temperature"'
            f'\nthreshold_c = 85\nfor = "2m"\n[[notifier]]\nkind = "webhook"\nurl = "{rx.url}/h"\n',
        )
        base = ["--config", str(cfg), "--store", str(store), "--json"]
        steps = [
            (t0, "pending"),
            (t0 + timedelta(minutes=1), None),
            (t0 + timedelta(minutes=2), "firing"),
            (t0 + timedelta(minutes=2, seconds=20), None),
            (t0 + timedelta(minutes=4), "resolved"),
        ]
        for when, expect in steps:
            res = _cli(*base, "--now", when.isoformat())
            assert res.returncode == 0, res.stderr
            moved = [json.loads(line)["to"] for line in res.stdout.splitlines()]
            assert moved == ([expect] if expect else [])
        assert [a["status"] for a in rx.alerts("/h")] == ["firing", "resolved"]
    listed = _cli("list", "--store", str(store), "--config", str(cfg))
    assert "resolved\tHot\twarning\tn1" in listed.stdout
    (alert,) = read_state(tmp_path / "alerts").book.alerts.values()
    assert alert.state == "resolved"


def test_cli_silence_ack_and_expire(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from analysis.alerts.cli import alerts

    runner = CliRunner()
    store = str(tmp_path / "store")

    def run(*args: str) -> str:
        res = runner.invoke(alerts, list(args), catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.stdout

    sid = run("silence", "-m", "node=n1", "--duration", "1h", "--comment", "planned", "--store", store).split()[1]
    assert sid in run("list", "--store", store)
    assert "expired" in run("expire", sid, "--store", store)
    with pytest.raises(ConfigError, match="LABEL=VALUE"):
        runner.invoke(alerts, ["silence", "-m", "node", "--store", store], catch_exceptions=False)
    assert "1 acknowledgement" in run(
        "ack", "--test", "*", "--group", "hive0", "--night", "2026-10-21", "--store", store
    )
