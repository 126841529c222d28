"""`neighborscope serve`: the collector plus a scheduler (APScheduler 3.x) for the nightly report and the alerts.

Jobs (one instance each, misfires coalesced: a scheduler that was asleep runs a late job once, not N times):

- ``nightly`` (cron, default ``0 6 * * *`` in ``--timezone``): ``neighborscope report --nightly`` as a subprocess
  (its output directory and store from the options), then `analysis.alerts.engine.refresh_nightly` (regression and
  thermal findings), `analysis.alerts.engine.refresh_degradation` (who slows whom: the noisy-neighbour rule's
  input), a rerun (``--rerun-command``) when a regression is suspected, then one alert evaluation so a new
  regression alerts at once;
- ``alerts`` (every ``--alert-interval``, default 60 s): `analysis.alerts.engine.evaluate_once`, which runs the
  live analysis of every victim group with serving data over the ``NoisyNeighbour`` rule's rolling window
  (`analysis.alerts.engine.refresh_live`) before evaluating the rules;
- the collector (``neighborscope collector``) runs beside them as a child process, restarted if it dies
  (``--no-collector`` when it runs elsewhere).

SIGTERM / Ctrl-C stops the scheduler (waiting for a running job) and the collector.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

log = logging.getLogger("neighborscope.serve")

NEIGHBORSCOPE = [sys.executable, "-m", "telemetry.cli"]


@dataclass
class ServeOptions:
    """What `build_scheduler` needs (the CLI fills it)."""

    store: str
    alerts_config: Path | None = None
    state_dir: Path | None = None
    report_out: Path = Path("neighborscope-data/reports")
    report_cron: str = "0 6 * * *"
    report_args: list[str] = field(default_factory=list)
    timezone: str = "UTC"
    alert_interval_s: float = 60.0
    misfire_grace_s: float = 3600.0
    rerun_command: str | None = None
    neighborscope: list[str] = field(default_factory=lambda: list(NEIGHBORSCOPE))


class Jobs:
    """The scheduled jobs (plain methods: the scheduler calls them; tests may too)."""

    def __init__(self, opts: ServeOptions) -> None:
        from analysis.alerts.engine import load_config, state_dir_for

        self.opts = opts
        self.cfg = load_config(opts.alerts_config)
        self.state_dir = opts.state_dir or state_dir_for(self.cfg, opts.store)
        self.runs: dict[str, int] = {"nightly": 0, "alerts": 0}

    def report_command(self) -> list[str]:
        return [*self.opts.neighborscope, "report", "--nightly", "--store", self.opts.store,
                "--out", str(self.opts.report_out), *self.opts.report_args]  # fmt: skip

    def nightly(self) -> None:
        """The nightly report (subprocess), the nightly findings, then an alert evaluation."""
        from analysis.alerts.engine import refresh_degradation, refresh_nightly
        from telemetry.store.factory import open_store

        self.runs["nightly"] += 1
        cmd = self.report_command()
        log.info("nightly: %s", shlex.join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()
            log.error("nightly report failed (exit %d): %s", proc.returncode, tail[-1] if tail else "no output")
        st = open_store(self.opts.store)
        try:
            log.info("nightly findings: %s", refresh_nightly(st, self.cfg, self.state_dir))
        except Exception:
            log.exception("nightly findings failed")
        try:
            self.rerun_if_requested(st)
        except Exception:
            log.exception("rerun failed")
        try:
            log.info("degradation rows: %d", refresh_degradation(st, self.state_dir))
        except Exception:
            log.exception("degradation analysis failed")
        finally:
            st.close()
        self.alerts()

    def rerun_if_requested(self, store: Any) -> bool:
        """When a history is suspected (``reruns_requested.json`` not empty) and ``--rerun-command`` is set, run it
        once (e.g. ``neighborscope stress run nightly.toml``), then refresh the findings: a rerun that agrees
        confirms the regression the same night, one that does not leaves it suspected."""
        from analysis.alerts.engine import RERUNS_FILE, refresh_nightly

        path = self.state_dir / RERUNS_FILE
        wanted = json.loads(path.read_text()) if path.exists() else []
        if not wanted or not self.opts.rerun_command:
            return False
        env = {**os.environ, "NEIGHBORSCOPE_RERUN": json.dumps(wanted)}
        log.info("rerun requested for %d histories: %s", len(wanted), self.opts.rerun_command)
        proc = subprocess.run(self.opts.rerun_command, shell=True, env=env, check=False)  # noqa: S602 (operator's command)
        if proc.returncode != 0:
            log.error("rerun command exited with %d", proc.returncode)
        log.info("findings after the rerun: %s", refresh_nightly(store, self.cfg, self.state_dir))
        return True

    def alerts(self) -> None:
        """One alert evaluation (errors are logged; the next minute tries again)."""
        from analysis.alerts.engine import evaluate_once
        from telemetry.store.factory import open_store

        self.runs["alerts"] += 1
        st = open_store(self.opts.store)
        try:
            res = evaluate_once(self.cfg, st, self.state_dir, datetime.now(UTC))
            for tr in res.transitions:
                log.info("alert %s %s: %s -> %s", tr.alert.name, tr.fingerprint, tr.before, tr.after)
            for key, err in res.errors.items():
                log.warning("notifier %s: %s", key, err)
        except Exception:
            log.exception("alert evaluation failed")
        finally:
            st.close()


def build_scheduler(jobs: Jobs, background: bool = True) -> Any:
    """An APScheduler 3.x scheduler with the ``nightly`` (cron) and ``alerts`` (interval) jobs, one instance each,
    misfires coalesced."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from telemetry.errors import ConfigError

    opts = jobs.opts
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": int(opts.misfire_grace_s)}
    cls = BackgroundScheduler if background else BlockingScheduler
    try:
        sched = cls(timezone=opts.timezone, job_defaults=defaults)
    except (LookupError, ValueError) as exc:  # zoneinfo.ZoneInfoNotFoundError is a KeyError
        raise ConfigError(f"--timezone {opts.timezone!r}: unknown time zone ({exc})") from None
    try:
        cron = CronTrigger.from_crontab(opts.report_cron, timezone=opts.timezone)
    except ValueError as exc:
        raise ConfigError(
            f"--report-cron {opts.report_cron!r}: {exc} (five fields: minute hour day month weekday)"
        ) from None
    sched.add_job(jobs.nightly, cron, id="nightly", name="nightly report + findings", replace_existing=True)
    sched.add_job(
        jobs.alerts,
        IntervalTrigger(seconds=opts.alert_interval_s, timezone=opts.timezone),
        id="alerts",
        name="alert evaluation",
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    return sched


class CollectorChild:
    """``neighborscope collector`` as a child process, restarted when it dies."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def ensure(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.restarts += 1
                log.warning("collector exited with %s; restarting", self.proc.returncode)
            self.proc = subprocess.Popen(self.argv)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _split(option: str, text: str) -> list[str]:
    from telemetry.errors import ConfigError

    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r}: {exc}") from None


def serve(
    store: str = typer.Option(
        "neighborscope-data/store", "--store", envvar="NEIGHBORSCOPE_STORE", help="Store path or URL."
    ),
    alerts_config: Path | None = typer.Option(
        None, "--alerts-config", envvar="NEIGHBORSCOPE_ALERTS_CONFIG", help="alerts.toml (rules, notifiers, silences)."
    ),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Alert state directory."),
    report_out: Path = typer.Option(
        Path("neighborscope-data/reports"), "--report-out", help="Where the nightly reports go (one folder per night)."
    ),
    report_cron: str = typer.Option("0 6 * * *", "--report-cron", help="When the nightly job runs (crontab)."),
    report_args: str = typer.Option("", "--report-args", help="Extra arguments for `neighborscope report`."),
    timezone: str = typer.Option("UTC", "--timezone", help="Time zone of --report-cron."),
    alert_interval: float = typer.Option(60.0, "--alert-interval", help="Seconds between alert evaluations."),
    collector: bool = typer.Option(True, "--collector/--no-collector", help="Run the collector beside the jobs."),
    collector_args: str = typer.Option(
        "", "--collector-args", help="Extra arguments for `neighborscope collector` (e.g. '--config c.toml')."
    ),
    rerun_command: str | None = typer.Option(
        None,
        "--rerun-command",
        help="Shell command run once after the "
        "nightly findings when a regression is suspected (e.g. 'neighborscope "
        "stress run nightly.toml'); NEIGHBORSCOPE_RERUN lists the histories.",
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug | info | warning | error"),
) -> None:
    """Run the collector and the scheduler: the nightly report (cron) and the alert evaluation (every minute),
    one instance of each job, misfires coalesced.

    Example: neighborscope serve --store data/store --alerts-config alerts.toml --report-cron "30 5 * * *"
    """
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if log_level.lower() != "debug":  # APScheduler logs every run of every job at INFO
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    opts = ServeOptions(store=store, alerts_config=alerts_config, state_dir=state_dir, report_out=report_out,
                        report_cron=report_cron, report_args=_split("--report-args", report_args), timezone=timezone,
                        alert_interval_s=alert_interval, rerun_command=rerun_command)  # fmt: skip
    # the jobs run beside the collector that creates and owns the store; without it, nothing here creates the
    # store, so it must exist (a mistyped --store is exit 2 at start, not jobs reading an empty store every minute)
    if not collector:
        from telemetry.store.factory import open_store

        open_store(store, create=False).close()
    jobs = Jobs(opts)
    sched = build_scheduler(jobs, background=True)
    child = (
        CollectorChild([*NEIGHBORSCOPE, "collector", "--store", store, *_split("--collector-args", collector_args)])
        if collector
        else None
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sched.start()
    log.info(
        "scheduler started: nightly at '%s' (%s), alerts every %g s; state in %s",
        report_cron,
        timezone,
        alert_interval,
        jobs.state_dir,
    )
    try:
        while not stop.is_set():
            if child is not None:
                child.ensure()
            stop.wait(2.0)
    finally:
        sched.shutdown(wait=True)
        if child is not None:
            child.stop()
