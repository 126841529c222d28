"""`neighborscope serve`: the scheduler's jobs (one instance each, misfires coalesced) and what they run."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from analysis.alerts.engine import read_state
from analysis.serve import Jobs, ServeOptions, build_scheduler
from telemetry.errors import ConfigError
from telemetry.store.factory import open_store

ROOT = Path(__file__).resolve().parents[2]

FAKE_REPORT = (
    "import sys, pathlib; a = sys.argv; out = pathlib.Path(a[a.index('--out') + 1]); "
    "out.mkdir(parents=True, exist_ok=True); (out / 'ran.txt').write_text(' '.join(a[1:]))"
)


def _opts(tmp_path: Path, **kw: object) -> ServeOptions:
    return ServeOptions(
        store=str(tmp_path / "store"),
        state_dir=tmp_path / "alerts",
        report_out=tmp_path / "reports",
        neighborscope=[sys.executable, "-c", FAKE_REPORT],
        **kw,
    )  # type: ignore[arg-type]


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
    st.write(
        "agent", pl.DataFrame({"time": [now - timedelta(hours=1)], "node": ["n1"], "sampler": ["host"], "ok": [True]})
    )
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


RERUN = """
import sys
from datetime import timedelta
sys.path.insert(0, sys.argv[2])  # the repository root: tests/ is not installed
from tests.analysis.history.history_sim import HistorySpec, night_start
from analysis.ingest.model import Run, write_run
from telemetry.store.factory import open_store
st = open_store(sys.argv[1])
start = night_start(HistorySpec(), 20) + timedelta(hours=2)
summary = {"output_tok_s": 5200 * 0.93, "total_tok_s": 26000 * 0.93, "requests_per_s": 20.3 * 0.93,
           "tpot_ms_mean": 24 / 0.93, "itl_ms_p99": 61 / 0.93, "ttft_ms_p99": 850.0}
write_run(st, Run(run_id="rerun", tool="vllm", source="rerun", summary=summary, start=start, node="sim0",
                  group="hive0", phase="baseline", model="sim-model", concurrency=16, isl=1024, osl=256))
st.close()
"""


def test_a_suspected_regression_triggers_the_rerun_command_which_confirms_it(tmp_path: Path) -> None:
    import polars as pl

    from tests.analysis.history.history_sim import HistorySpec, write_history

    st = open_store(tmp_path / "store")
    write_history(st, HistorySpec(nights=21, regression_night=20, sample_s=600))
    st.close()
    script = tmp_path / "rerun.py"
    script.write_text(RERUN)
    jobs = Jobs(_opts(tmp_path, rerun_command=f"{sys.executable} {script} {tmp_path / 'store'} {ROOT}"))
    jobs.nightly()
    status = pl.read_parquet(tmp_path / "alerts" / "regressions.parquet")
    tput = status.filter(pl.col("metric") == "output_tok_s").row(0, named=True)
    assert tput["status"] == "confirmed" and "rerun" in tput["evidence"]
    firing = [a for a in read_state(tmp_path / "alerts").book.alerts.values() if a.state == "firing"]
    assert [(a.labels["alertname"], a.labels["severity"]) for a in firing] == [("PerfRegression", "critical")]


def test_alert_job_runs_the_live_noisy_neighbour_rule_on_serving_data(tmp_path: Path) -> None:
    from tests.analysis.alerts.serving_sim import scenario

    now = datetime.now(UTC).replace(microsecond=0)
    s = scenario(minutes=30, itl_effect=0.3, seed=1, start=now - timedelta(minutes=30))
    st = open_store(tmp_path / "store")
    st.write("serving", s.serving)
    st.write("tenant", s.tenant)
    st.close()
    cfg = tmp_path / "alerts.toml"
    cfg.write_text(
        '[alerts]\ndashboard_url = "http://dash.local"\n\n'
        '[[rule]]\nname = "NoisyNeighbour"\nkind = "noisy_neighbour_live"\nfor = "0s"\nshifts = 199\n'
    )
    jobs = Jobs(_opts(tmp_path, alerts_config=cfg))
    jobs.alerts()
    live = [a for a in read_state(tmp_path / "alerts").book.alerts.values() if a.name == "NoisyNeighbour"]
    assert [(a.state, a.labels["victim"], a.labels["antagonist"], a.labels["metric"]) for a in live] == [
        ("firing", "hive0", "batch1", "itl")
    ]
    assert live[0].annotations["dashboard_url"].startswith("http://dash.local/noisy-neighbours?node=n1&victim=hive0")
