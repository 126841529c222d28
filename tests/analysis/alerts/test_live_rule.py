"""The live ``NoisyNeighbour`` rule on frames: simulated serving rows of a victim next to a co-tenant switched on and
off at random (a test double for an engine and a neighbour: `serving_sim`), through the live analysis, into the
pure rule: fires with the co-tenant hurting, not without; resolves with hysteresis; gated on q. Then
``alerts --refresh`` on a store. (A real engine and Alertmanager: helper C2's end-to-end test.)"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from analysis.alerts.cli import alerts as alerts_app
from analysis.alerts.engine import live_alert_frame
from analysis.alerts.rules import LIVE_SCHEMA, AlertBook, AlertInputs, Rule, builtin_rules, candidates, evaluate
from analysis.live import live_attribution
from telemetry.store.factory import open_store
from tests.analysis.alerts.serving_sim import scenario

SHIFTS = 199


def _live_rule(**kw: object) -> Rule:
    base = {r.name: r for r in builtin_rules()}["NoisyNeighbour"]
    return base.model_copy(update=kw)


def _frame(
    itl_effect: float = 0.0, ttft_effect: float = 0.0, seed: int = 1, on: bool = True, requests_x: float = 1.0
) -> pl.DataFrame:
    s = scenario(minutes=30, itl_effect=itl_effect, ttft_effect=ttft_effect, seed=seed, antagonist_on=on,
                 requests_x=requests_x)  # fmt: skip
    la = live_attribution(s.serving, "hive0", node="n1", start=s.start, end=s.end, tenant=s.tenant, n_shifts=SHIFTS)
    return live_alert_frame(la, "NoisyNeighbour")


def _row(**kw: object) -> pl.DataFrame:
    row = {"rule": "NoisyNeighbour", "node": "n1", "victim": "hive0", "antagonist": "batch1", "resource": "cpu",
           "metric": "itl", "effect_pct": 30.0, "ci_low_pct": 25.0, "ci_high_pct": 35.0, "q": 0.01,
           "design": "correlational", "confidence": "medium", "evidence": "cpu: saturated cores",
           "range_from": None, "range_until": None}  # fmt: skip
    row.update(kw)
    return pl.DataFrame([row], schema=LIVE_SCHEMA)


@pytest.fixture(scope="module")
def hurting() -> pl.DataFrame:
    return _frame(itl_effect=0.3)


def test_a_decode_neighbour_fires_on_itl_naming_the_cotenant_with_a_dashboard_link(hurting: pl.DataFrame) -> None:
    rule = _live_rule()
    inputs = AlertInputs(live=hurting, dashboard_url="http://dash.local:8501/?page=alerts")
    active = [c for c in candidates(rule, inputs, hurting["range_until"][0]) if c.active]
    assert [(c.labels["victim"], c.labels["antagonist"], c.labels["metric"], c.labels["node"]) for c in active] == [
        ("hive0", "batch1", "itl", "n1")
    ]
    (c,) = active
    ann = c.annotations
    assert 20 < float(ann["effect"]) < 40 and float(ann["ci_low"]) > 10
    assert float(ann["q_value"]) < 0.05
    assert "p99 inter-token latency" in ann["summary"] and "batch1" in ann["summary"]
    url = urlsplit(ann["dashboard_url"])
    assert (url.netloc, url.path) == ("dash.local:8501", "/noisy-neighbours")
    qs = parse_qs(url.query)
    assert qs["node"] == ["n1"] and qs["victim"] == ["hive0"]
    assert qs["from"] == ["2026-03-02T09:00:00Z"] and qs["until"] == ["2026-03-02T09:30:00Z"]
    assert c.labels["resource"] == ann["summary"].split(" through ")[1].split(",")[0]


def test_the_alert_is_pending_for_its_for_then_firing(hurting: pl.DataFrame) -> None:
    rule = _live_rule()
    now = hurting["range_until"][0]
    book, states = AlertBook(), []
    for minute in range(3):
        book, _ = evaluate([rule], book, AlertInputs(live=hurting), now + timedelta(minutes=minute))
        states.append(sorted(a.state for a in book.alerts.values()))
    assert states == [["pending"], ["pending"], ["firing"]]


def test_a_neighbour_that_does_not_hurt_does_not_fire() -> None:
    frame = _frame(itl_effect=0.0, seed=2)
    assert frame.height  # the co-tenant was tested ...
    rule = _live_rule()
    assert not [c for c in candidates(rule, AlertInputs(live=frame), frame["range_until"][0]) if c.active]


def test_an_idle_neighbour_gives_no_candidate_at_all() -> None:
    frame = _frame(itl_effect=0.3, on=False)  # A/A: the co-tenant never switched on
    assert frame.height == 0


def test_a_prefill_neighbour_fires_on_ttft_not_itl() -> None:
    # 13 requests/s: 10 s TTFT windows hold >= 100 requests each (at 3/s a 30 min range gives 30 windows of 60 s,
    # too few to separate a co-tenant switched every 1-4 min from the victim's own load)
    frame = _frame(ttft_effect=0.5, seed=4, requests_x=4.0)
    active = [c for c in candidates(_live_rule(), AlertInputs(live=frame), frame["range_until"][0]) if c.active]
    assert [c.labels["metric"] for c in active] == ["ttft"]
    assert "time to first token" in active[0].annotations["summary"]


def test_q_gate_a_large_effect_with_a_high_q_does_not_fire() -> None:
    rule = _live_rule()
    (c,) = candidates(rule, AlertInputs(live=_row(q=0.375)), _row()["range_until"][0])
    assert not c.active
    (c,) = candidates(rule, AlertInputs(live=_row(q=0.01)), None)  # type: ignore[arg-type]
    assert c.active
    (c,) = candidates(rule, AlertInputs(live=_row(q=None)), None)  # type: ignore[arg-type]
    assert not c.active  # no q: significance unknown, no alert


def test_the_interval_lower_bound_must_exceed_the_configured_effect() -> None:
    rule = _live_rule(enter_pct=10.0)
    (c,) = candidates(rule, AlertInputs(live=_row(effect_pct=14.0, ci_low_pct=8.0, ci_high_pct=20.0)), None)  # type: ignore[arg-type]
    assert not c.active and c.hold


def test_resolves_only_after_clear_after_consecutive_clear_evaluations() -> None:
    rule = _live_rule(for_s=0.0, clear_after=3)
    t0 = pl.datetime(2026, 3, 2, 10, 0, time_zone="UTC")
    now = pl.select(t0).item()
    book, _ = evaluate([rule], AlertBook(), AlertInputs(live=_row()), now)
    assert [a.state for a in book.alerts.values()] == ["firing"]
    clear = AlertInputs(live=_row(effect_pct=2.0, ci_low_pct=-1.0, ci_high_pct=4.0, q=0.6))
    hold = AlertInputs(live=_row(effect_pct=7.0, ci_low_pct=3.0, ci_high_pct=11.0, q=0.2))
    states = []
    for minute, inputs in enumerate([clear, clear, hold, clear, clear, clear], 1):
        book, _ = evaluate([rule], book, inputs, now + timedelta(minutes=minute))
        (a,) = book.alerts.values()
        states.append(a.state)
    # two clear evaluations keep it firing; one above exit_pct (5 %) resets the count; three in a row resolve it
    assert states == ["firing", "firing", "firing", "firing", "firing", "resolved"]


def test_a_vanished_candidate_counts_as_clear() -> None:
    rule = _live_rule(for_s=0.0, clear_after=2)
    now = pl.select(pl.datetime(2026, 3, 2, 10, 0, time_zone="UTC")).item()
    book, _ = evaluate([rule], AlertBook(), AlertInputs(live=_row()), now)
    book, _ = evaluate([rule], book, AlertInputs(), now + timedelta(minutes=1))
    assert [a.state for a in book.alerts.values()] == ["firing"]
    book, _ = evaluate([rule], book, AlertInputs(), now + timedelta(minutes=2))
    assert [a.state for a in book.alerts.values()] == ["resolved"]


def test_clear_count_survives_a_restart() -> None:
    rule = _live_rule(for_s=0.0, clear_after=3)
    now = pl.select(pl.datetime(2026, 3, 2, 10, 0, time_zone="UTC")).item()
    book, _ = evaluate([rule], AlertBook(), AlertInputs(live=_row()), now)
    book, _ = evaluate([rule], book, AlertInputs(), now + timedelta(minutes=1))
    book = AlertBook.from_dict(json.loads(json.dumps(book.to_dict())))
    (a,) = book.alerts.values()
    assert a.clear_count == 1


def test_nightly_degradation_rule_is_gated_on_q() -> None:
    rule = {r.name: r for r in builtin_rules()}["NoisyNeighborDegradation"]
    frame = pl.DataFrame(
        {
            "node": ["n1", "n1"],
            "victim": ["hive0", "hive0"],
            "antagonist": ["tt", "hive1"],
            "resource": ["pcie"] * 2,
            "metric": ["output_tok_s"] * 2,
            "effect_pct": [14.6, 14.6],
            "ci_low_pct": [11.0, 11.0],
            "ci_high_pct": [18.0, 18.0],
            "q": [0.375, 0.01],
        }
    )
    got = {c.labels["antagonist"]: c.active for c in candidates(rule, AlertInputs(degradation=frame), None)}  # type: ignore[arg-type]
    assert got == {"tt": False, "hive1": True}


def test_rule_keys_in_alerts_toml(tmp_path: Path) -> None:
    from analysis.alerts.engine import load_config

    p = tmp_path / "alerts.toml"
    p.write_text(
        '[[rule]]\nname = "NoisyNeighbour"\nkind = "noisy_neighbour_live"\nlookback = "45m"\nfdr = 0.01\n'
        'clear_after = 5\nmetrics = ["ttft"]\nenter_pct = 20\n'
    )
    rule = {r.name: r for r in load_config(p).rules()}["NoisyNeighbour"]
    assert (rule.lookback_s, rule.fdr, rule.clear_after, rule.metrics, rule.enter_pct) == (
        2700.0,
        0.01,
        5,
        ["ttft"],
        20,
    )


# ------------------------------------------------------------------------------------------------ the CLI


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(alerts_app)
    return app


def test_alerts_refresh_on_a_store_fires_the_live_rule(tmp_path: Path) -> None:
    s = scenario(minutes=30, itl_effect=0.3, seed=1)
    st = open_store(tmp_path / "store")
    try:
        st.write("serving", s.serving)
        st.write("tenant", s.tenant)
    finally:
        st.close()
    log = tmp_path / "alerts.log"
    cfg = tmp_path / "alerts.toml"
    cfg.write_text(
        f'[alerts]\ndashboard_url = "http://dash.local"\nstate_dir = "{tmp_path / "state"}"\n\n'
        '[[rule]]\nname = "NoisyNeighbour"\nkind = "noisy_neighbour_live"\nfor = "0s"\nshifts = 199\n\n'
        f'[[notifier]]\nkind = "log"\npath = "{log}"\n'
    )
    now = s.end.isoformat()
    res = CliRunner().invoke(
        _app(),
        ["alerts", "--config", str(cfg), "--store", str(tmp_path / "store"), "--refresh", "--now", now, "--json"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    fired = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    live = [f for f in fired if f["alertname"] == "NoisyNeighbour"]
    assert [(f["to"], f["labels"]["antagonist"], f["labels"]["metric"]) for f in live] == [("firing", "batch1", "itl")]
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(a["labels"]["alertname"] == "NoisyNeighbour" for a in sent)
    assert "/noisy-neighbours?node=n1&victim=hive0" in sent[0]["annotations"]["dashboard_url"]


def test_a_rule_window_s_sets_the_live_analysis_window(tmp_path: Path) -> None:
    from datetime import datetime

    from analysis.alerts.engine import refresh_live

    s = scenario(minutes=30, itl_effect=0.3, seed=1)
    st = open_store(tmp_path / "store")
    try:
        st.write("serving", s.serving)
        st.write("tenant", s.tenant)
        adaptive = refresh_live(st, [_live_rule(shifts=99)], s.end)
        fixed = refresh_live(st, [_live_rule(shifts=99, window_s=30.0)], s.end)
    finally:
        st.close()
    assert adaptive.filter(pl.col("metric") == "itl")["antagonist"].to_list() == ["batch1"]
    assert fixed.height and isinstance(fixed["range_until"][0], datetime)
    assert not adaptive.select("effect_pct").equals(fixed.select("effect_pct"))  # another grid, another estimate
