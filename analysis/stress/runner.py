"""Run a stress plan with real processes: co-tenant load commands started and stopped on schedule, every switch
recorded as a ``run_event`` (``switch_on`` / ``switch_off``, ``tenant`` = the co-tenant group), the victim run
through the benchmark wrapper (``neighborscope run``: start / end events, then the importer stores its result).

A command that fails is recorded, never fatal: a co-tenant that cannot start or exits early gets a ``switch_off``
with its exit code and ``"failed": true`` in ``metadata_json``; a victim that fails (or times out) is reported in
the step's result and the plan goes on. Co-tenants run in their own process group, so a shell command's children
stop with it (``stop_signal``, then SIGKILL after ``grace_s``). Ctrl-C / SIGTERM stops every co-tenant.

The switch events are written straight into the store (``--store``); the victim's start / end go through the
wrapper to the collector (or its spool) and the importer writes start / end / summary into the store.

Tenants with a cgroup (`analysis.stress.plan.tenant_cgroups`) run in it from their first instruction (the child
joins before it execs); the groups are made before the first step and removed after the last, what is left in them
killed. ``[victim] stop_after_schedule`` stops a randomized plan's benchmark when the last block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from analysis.stress.cgroups import Cgroup, CgroupError, v2_mount
from analysis.stress.plan import Cotenant, Plan, Step, command_argv, schedule, tenant_cgroups
from telemetry.schema import conform

NEIGHBORSCOPE = [sys.executable, "-m", "telemetry.cli"]


@dataclass
class StepResult:
    """What happened in one victim run."""

    run_id: str
    phase: str
    rep: int
    exit_code: int | None
    started_at: str
    ended_at: str
    duration_s: float
    notes: list[str] = field(default_factory=list)


@dataclass
class StressReport:
    """The outcome of a plan: one `StepResult` per victim run; ``failures`` counts failed commands."""

    plan: str
    stress_id: str
    node: str
    store: str
    steps: list[StepResult]
    failures: int
    manifest: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["manifest"] = str(self.manifest) if self.manifest else None
        return d


class EventWriter:
    """Writes ``run_event`` switch rows into the store (opened once for the plan)."""

    def __init__(self, store: Any, node: str, plan: Plan) -> None:
        self.store = store
        self.node = node
        self.plan = plan

    def write(
        self,
        event: str,
        *,
        run_id: str,
        group: str,
        phase: str,
        tenant: str | None = None,
        command: str | None = None,
        exit_code: int | None = None,
        **meta: Any,
    ) -> None:
        row = {
            "time": time.time_ns(), "node": self.node, "run_id": run_id, "group": group, "phase": phase,
            "event": event, "monotonic_s": time.monotonic(), "tool": self.plan.victim.tool, "command": command,
            "exit_code": exit_code, "tenant": tenant,
            "metadata_json": json.dumps({"plan": self.plan.plan.name, "design": self.plan.plan.design, **meta},
                                        sort_keys=True, default=str),
        }  # fmt: skip
        self.store.write("run_event", conform(pl.DataFrame([row]), "run_event"))


class CotenantProcess:
    """One co-tenant's load command, started and stopped in its own process group."""

    def __init__(self, spec: Cotenant, values: dict[str, str], log_dir: Path, cgroup: Cgroup | None = None) -> None:
        self.spec = spec
        self.values = values
        self.log_dir = log_dir
        self.cgroup = cgroup
        self.proc: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> str | None:
        """Start the command; returns an error text when it could not start."""
        self.argv = command_argv(self.spec.command, self.spec.shell, self.values)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.log_dir / f"cotenant-{self.spec.group}.log").open("ab")
        try:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env={**os.environ, **self.spec.env},
                                         preexec_fn=self.cgroup.join_self if self.cgroup else None)  # fmt: skip
        except OSError as exc:
            self.proc = None
            return f"cannot start {self.argv[0]!r}: {exc.strerror}"
        except subprocess.SubprocessError:
            self.proc = None
            return f"cannot start {self.argv[0]!r} in cgroup {self.cgroup.path if self.cgroup else '-'}"
        finally:
            out.close()
        return None

    def stop(self) -> int | None:
        """Stop it (stop_signal to the group, SIGKILL after grace); returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            sig = getattr(signal, self.spec.stop_signal)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(self.spec.grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def command_text(self) -> str:
        return shlex.join(self.argv)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class PlanRunner:
    """Runs a `Plan` step by step. ``neighborscope`` is the argv prefix of the CLI (the wrapper is
    ``neighborscope run``); ``sleep`` / ``echo`` are parameters so callers choose clock and output."""

    def __init__(
        self,
        plan: Plan,
        *,
        store: str,
        workdir: Path,
        collector: str | None = None,
        neighborscope: Sequence[str] = NEIGHBORSCOPE,
        echo: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        alert_state_dir: Path | None = None,
        cgroup_mount: Path | None = None,
    ) -> None:
        import socket

        self.plan = plan
        self.store_url = store
        self.workdir = workdir
        self.collector = collector or plan.plan.collector
        self.neighborscope = list(neighborscope)
        self.echo = echo or (lambda m: print(f"neighborscope stress: {m}", file=sys.stderr, flush=True))
        self.sleep = sleep
        self.alert_state_dir = alert_state_dir
        self.node = plan.plan.node or socket.gethostname().split(".")[0]
        self.stress_id = f"{plan.plan.name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        self.failures = 0
        self.cgroup_mount = cgroup_mount
        self.cgroups: dict[str, Cgroup] = {}

    # -- helpers ------------------------------------------------------------------------------------------------

    def _values(self, step: Step | None = None) -> dict[str, str]:
        v = {
            "workdir": str(self.workdir), "plan": self.plan.plan.name, "node": self.node, "seed": str(self.plan.plan.seed),
            "python": sys.executable, "neighborscope": shlex.join(self.neighborscope), "stress_id": self.stress_id,
            "store": self.store_url,
        }  # fmt: skip
        if step is not None:
            v.update(run_id=step.run_id, phase=step.phase, rep=str(step.rep), group=self.plan.victim.group,
                     run_seed=str(self.plan.plan.seed * 1000 + step.rep))  # fmt: skip
        return v

    def _agent_config(self) -> Path:
        if self.plan.plan.agent_config:
            return Path(self.plan.plan.agent_config)
        p = self.workdir / "agent.toml"
        lines = [f"node = {json.dumps(self.node)}", "[agent]", f"spool_dir = {json.dumps(str(self.workdir / 'spool'))}"]
        if self.collector:
            lines[1:1] = ["[collector]", f"url = {json.dumps(self.collector)}"]
        p.write_text("\n".join(lines) + "\n")
        return p

    def _victim_argv(self, step: Step, config: Path) -> tuple[list[str], Path | None]:
        v = self.plan.victim
        values = self._values(step)
        result = Path(v.result.format_map(_Missing(values))) if v.result else None
        if result is not None:
            values["result"] = str(result)
            result.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                result.unlink()
        argv = [*self.neighborscope, "run", "--group", v.group, "--phase", step.phase, "--run-id", step.run_id,
                "--store", self.store_url, "--config", str(config)]  # fmt: skip
        if v.tool:
            argv += ["--tool", v.tool]
        if result is not None:
            argv += ["--result", str(result)]
        return [*argv, "--", *command_argv(v.command, v.shell, values)], result

    def _set_on(
        self,
        procs: dict[str, CotenantProcess],
        want: Iterable[str],
        events: EventWriter,
        step: Step,
        block: int | None,
        notes: list[str],
    ) -> None:
        want = set(want)
        for g, p in procs.items():
            if g not in want and (p.running or p.proc is not None):
                code = p.stop()
                events.write(
                    "switch_off",
                    run_id=step.run_id,
                    group=g,
                    phase=step.phase,
                    tenant=g,
                    command=p.command_text(),
                    exit_code=code,
                    rep=step.rep,
                    block=block,
                    failed=False,
                )
        for g in sorted(want):
            p = procs[g]
            if p.running:
                continue
            if p.proc is not None:  # it exited on its own: record the failure, then restart it
                self._record_exit(p, events, step, block, notes)
            err = p.start()
            if err:
                self.failures += 1
                notes.append(f"co-tenant {g}: {err}")
                self.echo(f"co-tenant {g}: {err} (recorded; the plan goes on)")
                events.write("switch_off", run_id=step.run_id, group=g, phase=step.phase, tenant=g,
                             command=shlex.join(p.argv), exit_code=127, rep=step.rep, block=block, failed=True,
                             reason=err)  # fmt: skip
                continue
            events.write(
                "switch_on",
                run_id=step.run_id,
                group=g,
                phase=step.phase,
                tenant=g,
                command=p.command_text(),
                rep=step.rep,
                block=block,
                pid=p.proc.pid if p.proc else None,
                cgroup=p.cgroup.proc_path if p.cgroup else None,
            )

    def _record_exit(
        self, p: CotenantProcess, events: EventWriter, step: Step, block: int | None, notes: list[str]
    ) -> None:
        code = p.stop()
        self.failures += 1
        msg = f"co-tenant {p.spec.group} exited early with code {code}"
        notes.append(msg)
        self.echo(f"{msg} (recorded; the plan goes on)")
        events.write("switch_off", run_id=step.run_id, group=p.spec.group, phase=step.phase, tenant=p.spec.group,
                     command=p.command_text(), exit_code=code, rep=step.rep, block=block, failed=True,
                     reason="exited early")  # fmt: skip

    def _check_exits(
        self, procs: dict[str, CotenantProcess], events: EventWriter, step: Step, block: int | None, notes: list[str]
    ) -> None:
        for p in procs.values():
            if p.proc is not None and p.proc.poll() is not None:
                self._record_exit(p, events, step, block, notes)

    # -- the run ------------------------------------------------------------------------------------------------

    def estimated_duration_s(self) -> float:
        ps = self.plan.plan
        if ps.design == "randomized":
            return ps.repetitions * (ps.blocks * ps.block_s + ps.warmup_s + ps.settle_s)
        return len(schedule(self.plan, "x")) * (ps.warmup_s + ps.settle_s + 60.0)

    def run(self) -> StressReport:
        from telemetry.store.factory import open_store

        self.workdir.mkdir(parents=True, exist_ok=True)
        steps = schedule(self.plan, self.stress_id)
        config = self._agent_config()
        self._make_cgroups()
        try:
            store = open_store(self.store_url)
        except BaseException:
            self._remove_cgroups()
            raise
        events = EventWriter(store, self.node, self.plan)
        procs = {
            c.group: CotenantProcess(c, self._values(), self.workdir / "logs", self.cgroups.get(c.group))
            for c in self.plan.cotenant
        }
        silence = self._silence()
        results: list[StepResult] = []
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            for i, step in enumerate(steps, 1):
                self.echo(
                    f"[{i}/{len(steps)}] {step.run_id}: "
                    + (
                        f"co-tenants on: {', '.join(sorted(step.blocks[0])) or 'none'}"
                        if step.block_s is None
                        else f"{len(step.blocks)} randomized blocks of {step.block_s:g} s"
                    )
                )
                results.append(self._run_step(step, procs, events, config))
        finally:
            for g, p in procs.items():
                if p.proc is not None:
                    code = p.stop()
                    events.write(
                        "switch_off",
                        run_id=f"{self.stress_id}.end",
                        group=g,
                        phase="end",
                        tenant=g,
                        command=p.command_text(),
                        exit_code=code,
                        failed=False,
                    )
            signal.signal(signal.SIGTERM, previous)
            self._remove_cgroups()
            if silence is not None and self.alert_state_dir is not None:
                from analysis.alerts.engine import expire_silence

                expire_silence(self.alert_state_dir, silence)
            store.close()
        report = StressReport(self.plan.plan.name, self.stress_id, self.node, self.store_url, results, self.failures)
        manifest = self.workdir / f"{self.stress_id}.json"
        report.manifest = manifest
        manifest.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        return report

    def _make_cgroups(self) -> None:
        """Create the tenants' cgroups (`analysis.stress.plan.tenant_cgroups`); CgroupError (one line) when this
        host cannot: no cgroup v2 mount, or no permission."""
        wanted = tenant_cgroups(self.plan)
        if not wanted:
            return
        mount = self.cgroup_mount or v2_mount()
        if mount is None:
            raise CgroupError(
                f"the plan gives tenants cgroups ({', '.join(sorted(wanted))}) but this host has no cgroup v2 "
                "(unified) mount; set [plan] cgroup = false or mount cgroup2"
            )
        try:
            for group, rel in wanted.items():
                self.cgroups[group] = Cgroup.under(mount, rel).create()
        except CgroupError:
            self._remove_cgroups()
            raise
        self.echo("cgroups: " + ", ".join(f"{g} -> {cg.path}" for g, cg in self.cgroups.items()))

    def _remove_cgroups(self) -> None:
        for g, cg in reversed(self.cgroups.items()):  # the first made the shared parents: it goes last
            problem = cg.remove()
            if problem:
                self.echo(f"{g}: {problem}")
        self.cgroups = {}

    def _silence(self) -> str | None:
        if not (self.plan.plan.silence_alerts and self.alert_state_dir):
            return None
        from analysis.alerts.engine import add_silence

        now = datetime.now(UTC)
        sil = add_silence(
            self.alert_state_dir,
            {"node": self.node},
            now,
            now + timedelta(seconds=self.estimated_duration_s() * 2 + 600),
            comment=f"stress plan {self.plan.plan.name} ({self.stress_id})",
            created_by="neighborscope stress",
        )
        self.echo(f"alerts on node {self.node} silenced while the plan runs (silence {sil.id})")
        return sil.id

    def _run_step(self, step: Step, procs: dict[str, CotenantProcess], events: EventWriter, config: Path) -> StepResult:
        ps = self.plan.plan
        notes: list[str] = []
        self._set_on(procs, step.blocks[0], events, step, 0 if step.block_s else None, notes)
        if ps.warmup_s:
            self.sleep(ps.warmup_s)
        argv, _result = self._victim_argv(step, config)
        t0 = time.time()
        env = {**os.environ, **self.plan.victim.env}
        cg = self.cgroups.get(self.plan.victim.group)
        try:
            victim = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=_victim_preexec(cg))
        except (OSError, subprocess.SubprocessError) as exc:
            self.failures += 1
            why = exc.strerror if isinstance(exc, OSError) else f"cannot join cgroup {cg.path if cg else '-'}"
            notes.append(f"victim wrapper: cannot start: {why}")
            return StepResult(step.run_id, step.phase, step.rep, 127, _iso(t0), _iso(time.time()), 0.0, notes)
        deadline = time.monotonic() + self.plan.victim.timeout_s
        if step.block_s is not None:
            for k, on in enumerate(step.blocks):
                if k:
                    self._set_on(procs, on, events, step, k, notes)
                end = time.monotonic() + step.block_s
                while time.monotonic() < end and victim.poll() is None:
                    self.sleep(min(0.2, max(0.0, end - time.monotonic())))
                    self._check_exits(procs, events, step, k, notes)
                if victim.poll() is not None:
                    if k < len(step.blocks) - 1:
                        notes.append(f"victim ended during block {k} of {len(step.blocks)}")
                    break
            stopped = self._stop_with_schedule(victim, notes)
            self._set_on(procs, (), events, step, None, notes)
            if stopped is not None:
                return self._finish(step, stopped, t0, argv, events, notes)
        code = self._wait(victim, deadline, procs, events, step, notes)
        return self._finish(step, code, t0, argv, events, notes)

    def _stop_with_schedule(self, victim: subprocess.Popen[bytes], notes: list[str]) -> int | None:
        """``[victim] stop_after_schedule``: a victim still running when the last block ends is stopped: the
        benchmark (the wrapper's child) gets ``stop_signal``, and the wrapper, once it has ended, records the end
        and imports what it wrote; that exit code is then not a failure. None when it was not stopped here.

        The signal goes to the benchmark, not to the wrapper: a Python process with native threads (polars) may
        take SIGINT on one of them and then not leave its ``waitpid`` until the child exits anyway."""
        v = self.plan.victim
        if not v.stop_after_schedule or victim.poll() is not None:
            return None
        for pid in _children(victim.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, getattr(signal, v.stop_signal))
        try:
            code = victim.wait(v.grace_s)
        except subprocess.TimeoutExpired:
            victim.kill()
            code = victim.wait()
            notes.append(f"victim did not stop within {v.grace_s:g} s of {v.stop_signal}: killed")
            return code
        notes.append(f"victim stopped at the end of the schedule ({v.stop_signal}; exit code {code})")
        return 0

    def _finish(
        self, step: Step, code: int, t0: float, argv: list[str], events: EventWriter, notes: list[str]
    ) -> StepResult:
        ps = self.plan.plan
        t1 = time.time()
        if code != 0:
            self.failures += 1
            notes.append(f"victim exited with code {code}")
            self.echo(f"{step.run_id}: victim exited with code {code} (recorded; the plan goes on)")
            if not self.collector:
                events.write(
                    "end",
                    run_id=step.run_id,
                    group=self.plan.victim.group,
                    phase=step.phase,
                    command=shlex.join(argv),
                    exit_code=code,
                    failed=True,
                    rep=step.rep,
                )
        if ps.settle_s:
            self.sleep(ps.settle_s)
        return StepResult(step.run_id, step.phase, step.rep, code, _iso(t0), _iso(t1), t1 - t0, notes)

    def _wait(
        self,
        victim: subprocess.Popen[bytes],
        deadline: float,
        procs: dict[str, CotenantProcess],
        events: EventWriter,
        step: Step,
        notes: list[str],
    ) -> int:
        while victim.poll() is None:
            if time.monotonic() > deadline:
                notes.append(f"victim timed out after {self.plan.victim.timeout_s:g} s")
                victim.terminate()
                try:
                    return victim.wait(10)
                except subprocess.TimeoutExpired:
                    victim.kill()
                    return victim.wait()
            self.sleep(0.2)
            self._check_exits(procs, events, step, None, notes)
        return int(victim.returncode)


def _children(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The child processes of ``pid`` (``/proc/<pid>/task/*/children``, else a scan of ``/proc/*/stat``)."""
    found: set[int] = set()
    tasks = list((proc / str(pid) / "task").glob("*/children"))
    for f in tasks:
        with contextlib.suppress(OSError, ValueError):
            found.update(int(x) for x in f.read_text().split())
    if tasks and found:
        return sorted(found)
    for stat in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
    return sorted(found)


def _victim_preexec(cg: Cgroup | None) -> Callable[[], None]:
    """In the victim's child before exec: SIGINT back to its default (a runner started in the background by a
    non-interactive shell inherits it ignored, and the wrapper could then not be stopped with it), then join the
    victim's cgroup where it has one."""

    def pre() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if cg is not None:
            cg.join_self()

    return pre


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_plan(
    plan: Plan,
    *,
    store: str,
    workdir: Path | str,
    collector: str | None = None,
    neighborscope: Sequence[str] = NEIGHBORSCOPE,
    echo: Callable[[str], None] | None = None,
    alert_state_dir: Path | None = None,
    cgroup_mount: Path | None = None,
) -> StressReport:
    """Run ``plan`` (see the module docstring); returns what happened, also written to ``workdir/<id>.json``."""
    return PlanRunner(
        plan,
        store=store,
        workdir=Path(workdir),
        collector=collector,
        neighborscope=neighborscope,
        echo=echo,
        alert_state_dir=alert_state_dir,
        cgroup_mount=cgroup_mount,
    ).run()
