"""The stress runner with real processes: the simulated plan end to end, failures recorded (not fatal),
randomized switching, and co-tenant process groups stopped."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from analysis.stress.plan import Plan, load_plan, schedule
from analysis.stress.runner import run_plan
from telemetry.config import model_from_dict
from telemetry.store.factory import open_store

ROOT = Path(__file__).resolve().parents[3]
PY = sys.executable


def _events(store: Path) -> pl.DataFrame:
    st = open_store(store)
    try:
        return st.query("run_event").sort("time")
    finally:
        st.close()


def _meta(ev: pl.DataFrame) -> list[dict]:
    return [json.loads(m) for m in ev["metadata_json"].to_list()]


@pytest.mark.slow
def test_simulated_plan_runs_end_to_end_without_hardware(tmp_path: Path) -> None:
    """The example plan (one repetition): co-tenant switched around the contended phase, victim imported."""
    plan = load_plan(ROOT / "examples" / "plans" / "simulated.toml")
    plan = plan.model_copy(update={"plan": plan.plan.model_copy(update={"repetitions": 1})})
    store = tmp_path / "store"
    report = run_plan(plan, store=str(store), workdir=tmp_path / "work", echo=lambda m: None)
    assert report.failures == 0
    assert [(s.phase, s.exit_code) for s in report.steps] == [("baseline", 0), ("plus_cpuhog", 0)]
    ev = _events(store)
    switches = ev.filter(pl.col("event").is_in(["switch_on", "switch_off"]))
    assert switches.select("event", "tenant", "phase").rows() == [
        ("switch_on", "cpuhog", "plus_cpuhog"),
        ("switch_off", "cpuhog", "end"),
    ]
    assert set(switches["node"].to_list()) == {"sim0"}
    summaries = ev.filter(pl.col("event") == "summary")
    assert sorted(summaries.select("phase", "group", "node").rows()) == [
        ("baseline", "hive0", "sim0"),
        ("plus_cpuhog", "hive0", "sim0"),
    ]
    assert report.manifest is not None and json.loads(report.manifest.read_text())["failures"] == 0


def _plan(tmp_path: Path, **over: object) -> Plan:
    doc: dict = {
        "plan": {"name": "t", "node": "n1", "design": "phases", "repetitions": 1},
        "victim": {"group": "hive0", "command": [PY, "-c", "pass"]},
        "cotenant": [{"group": "idle", "command": ["sleep", "300"], "grace": 2}],
        "phase": [{"name": "baseline"}, {"name": "busy", "cotenants": ["idle"]}],
    }
    for k, v in over.items():
        doc[k] = {**doc[k], **v} if isinstance(v, dict) else v
    return model_from_dict(Plan, doc, "test")


@pytest.mark.slow
def test_failing_commands_are_recorded_and_the_plan_goes_on(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        victim={"command": "exit 4", "shell": True},
        cotenant=[
            {"group": "missing", "command": ["/nonexistent/load"]},
            {"group": "crashy", "command": [PY, "-c", "import sys; sys.exit(3)"]},
        ],
        phase=[{"name": "both", "cotenants": ["missing", "crashy"]}, {"name": "baseline"}],
    )
    store = tmp_path / "store"
    report = run_plan(plan, store=str(store), workdir=tmp_path / "work", echo=lambda m: None)
    assert [s.phase for s in report.steps] == ["both", "baseline"]
    assert [s.exit_code for s in report.steps] == [4, 4]
    notes = " ".join(report.steps[0].notes)
    assert "co-tenant missing: cannot start '/nonexistent/load'" in notes
    assert "co-tenant crashy exited early with code 3" in notes
    assert report.failures == 4  # missing, crashy, and the victim twice
    ev = _events(store)
    failed = ev.filter(pl.col("event") == "switch_off")
    by_tenant = {r["tenant"]: r for r in failed.iter_rows(named=True)}
    assert by_tenant["missing"]["exit_code"] == 127
    assert by_tenant["crashy"]["exit_code"] == 3
    assert all(m["failed"] for m in _meta(failed))
    ends = ev.filter(pl.col("event") == "end")
    assert ends["exit_code"].to_list() == [4, 4]


@pytest.mark.slow
def test_randomized_design_switches_per_block_as_scheduled(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        plan={"design": "randomized", "blocks": 4, "block": 1.0, "seed": 5},
        victim={"command": [PY, "-c", "import time; time.sleep(6)"]},
        cotenant=[
            {"group": "a", "command": ["sleep", "300"], "grace": 2},
            {"group": "b", "command": ["sleep", "300"], "grace": 2},
        ],
        phase=[],
    )
    (step,) = schedule(plan, "x")
    store = tmp_path / "store"
    report = run_plan(plan, store=str(store), workdir=tmp_path / "work", echo=lambda m: None)
    assert report.failures == 0
    ev = _events(store).filter(pl.col("event").is_in(["switch_on", "switch_off"]))
    on: set[str] = set()
    state_at: dict[int, frozenset[str]] = {}
    for row, meta in zip(ev.iter_rows(named=True), _meta(ev), strict=True):
        (on.add if row["event"] == "switch_on" else on.discard)(row["tenant"])
        if meta.get("block") is not None:
            state_at[meta["block"]] = frozenset(on)
    state: frozenset[str] = frozenset()
    for k, expected in enumerate(step.blocks):
        state = state_at.get(k, state)  # a block with no switch keeps the previous state
        assert state == expected, f"block {k}"
    assert on == set()
    assert {r["phase"] for r in ev.iter_rows(named=True)} == {"randomized"}


@pytest.mark.slow
def test_cotenant_children_stop_with_their_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    plan = _plan(
        tmp_path,
        cotenant=[{"group": "idle", "shell": True, "grace": 2, "command": f"sleep 300 & echo $! > {pid_file}; wait"}],
        phase=[{"name": "busy", "cotenants": ["idle"]}],
    )
    run_plan(plan, store=str(tmp_path / "store"), workdir=tmp_path / "work", echo=lambda m: None)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"co-tenant child {child} still running after the plan")


@pytest.mark.slow
def test_stop_after_schedule_stops_the_victim_when_the_last_block_ends(tmp_path: Path) -> None:
    """A randomized plan's victim with ``stop_after_schedule`` runs as long as the schedule, not as long as it
    would: the benchmark gets SIGINT at the end of the last block, and that stop is not a failure."""
    import signal

    marker = tmp_path / "stopped"
    victim = (
        "import signal, sys, time, pathlib\n"
        f"stop = lambda n, _: (pathlib.Path({str(marker)!r}).write_text(str(n)), sys.exit(3))\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(120)\n"
    )
    plan = _plan(
        tmp_path,
        plan={"design": "randomized", "blocks": 4, "block": 2.5, "p_on": 0.5, "seed": 1},
        victim={"command": [PY, "-c", victim], "stop_after_schedule": True, "grace": 10},
        phase=[],
    )
    t0 = time.monotonic()
    report = run_plan(plan, store=str(tmp_path / "store"), workdir=tmp_path / "work", echo=lambda m: None)
    assert time.monotonic() - t0 < 60  # not the 120 s the victim would take
    (step,) = report.steps
    assert report.failures == 0 and step.exit_code == 0, step
    assert any("stopped at the end of the schedule" in n for n in step.notes), step.notes
    assert int(marker.read_text()) == signal.SIGINT  # the benchmark got it; the wrapper then ended and recorded it


def test_stop_after_schedule_needs_the_randomized_design(tmp_path: Path) -> None:
    from telemetry.errors import ConfigError

    with pytest.raises(ConfigError, match="only for the 'randomized' design"):
        _plan(tmp_path, victim={"stop_after_schedule": True})
