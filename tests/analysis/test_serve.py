"""`neighborscope serve`: the scheduler's jobs (one instance each, misfires coalesced) and what they run."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from analysis.alert_engine import read_state
from analysis.serve import Jobs, ServeOptions, build_scheduler
from telemetry.errors import ConfigError
from telemetry.store.base import open_store

FAKE_REPORT = ("import sys, pathlib; a = sys.argv; out = pathlib.Path(a[a.index('--out') + 1]); "
               "out.mkdir(parents=True, exist_ok=True); (out / 'ran.txt').write_text(' '.join(a[1:]))")


def _opts(tmp_path: Path, **kw: object) -> ServeOptions:
    return ServeOptions(store=str(tmp_path / "store"), state_dir=tmp_path / "alerts", report_out=tmp_path / "reports",
                        neighborscope=[sys.executable, "-c", FAKE_REPORT], **kw)  # type: ignore[arg-type]


def test_jobs_are_single_instance_and_coalesced(tmp_path: Path) -> None:
    sched = build_scheduler(Jobs(_opts(tmp_path, report_cron="30 5 * * *", alert_interval_s=60)))
    sched.start(paused=True)
    try:
        jobs = {j.id: j for j in sched.get_jobs()}
    finally:
        sched.shutdown(wait=False)
    assert set(jobs) == {"nightly", "alerts"}
    for j in jobs.values():
        assert j.max_instances == 1 and j.coalesce is True and j.misfire_grace_time == 3600
    assert str(jobs["nightly"].trigger).startswith("cron[")
    assert "minute='30'" in str(jobs["nightly"].trigger) and "hour='5'" in str(jobs["nightly"].trigger)
    assert jobs["alerts"].trigger.interval == timedelta(seconds=60)


def test_bad_cron_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--report-cron 'every night'"):
        build_scheduler(Jobs(_opts(tmp_path, report_cron="every night")))


def test_alert_job_evaluates_and_persists_state(tmp_path: Path) -> None:
    st = open_store(tmp_path / "store")
    now = datetime.now(UTC)
    st.write("agent", pl.DataFrame({"time": [now - timedelta(hours=1)], "node": ["n1"], "sampler": ["host"],
                                    "ok": [True]}))
    st.close()
    jobs = Jobs(_opts(tmp_path))
    jobs.alerts()
    (alert,) = read_state(tmp_path / "alerts").book.alerts.values()
    assert alert.labels["alertname"] == "TelemetryStale" and alert.state == "firing"


def test_nightly_job_runs_the_report_then_the_findings(tmp_path: Path) -> None:
    jobs = Jobs(_opts(tmp_path))
    jobs.nightly()
    ran = (tmp_path / "reports" / "ran.txt").read_text()
    assert ran.startswith("report --nightly --store")
    assert (tmp_path / "alerts" / "regressions.parquet").exists()
    assert (tmp_path / "alerts" / "state.json").exists()
    assert jobs.runs == {"nightly": 1, "alerts": 1}


def test_scheduler_runs_the_alert_job_at_start_and_only_once_at_a_time(tmp_path: Path) -> None:
    jobs = Jobs(_opts(tmp_path, alert_interval_s=3600))
    sched = build_scheduler(jobs)
    sched.start()
    try:
        deadline = time.monotonic() + 30
        while jobs.runs["alerts"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sched.shutdown(wait=True)
    assert jobs.runs["alerts"] == 1
