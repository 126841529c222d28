"""Data integrity under operational faults: real agents, a real collector killed and starved, for each store.

For each store (``--stores embedded,influx``):

1. start a real `neighborscope collector` (on loopback) whose store (embedded) or local queue (InfluxDB) lives on
   a small tmpfs mounted for the run (root; without it a plain directory and no disk-full fault);
2. start ``--agents`` real `neighborscope agent` processes (host sampler at 5 Hz, a batch every 0.5 s, each with
   its own disk spool and token);
3. for ``--duration-s`` seconds, inject faults at seeded random times: the collector killed with SIGKILL
   ``--kills`` times (restarted on the same port and store after 0.5-3 s), its disk filled completely for
   ``--disk-full-s`` and freed, and (InfluxDB) influxd stopped for ``--influx-outage-s`` and started again;
4. stop the agents with SIGTERM (each flushes and delivers its spool) and let the collector finish (the InfluxDB
   queue drains), then read every node's rows back through the store protocol.

Prints per store, in batches and rows:

- acknowledged: batches the collector answered 200 (the agents' ``sent``), and their rows;
- lost: rows of acknowledged batches missing from the store (must be 0);
- duplicated: rows stored more than once, same time and tags (must be 0);
- never acknowledged: batches still in an agent's spool, dropped or rejected at the end (must be 0: the agents
  had time to deliver everything).

Exit code 0 when every count but "acknowledged" is zero, 1 otherwise. Influx needs Debian's ``influxd``
(``apt-get install influxdb``; skipped with a note when absent).

    .venv/bin/python benchmarks/faults.py            # 8 agents, 90 s per store, 5 kills: about 4 minutes
    .venv/bin/python benchmarks/faults.py --quick    # 3 agents, 20 s per store, 2 kills: about a minute
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from telemetry.collector.process import NEIGHBORSCOPE, CollectorProcess  # noqa: E402
from telemetry.schema import MEASUREMENTS  # noqa: E402

PAGE = 4096


@dataclass
class Counts:
    store: str
    agents: int = 0
    acknowledged_batches: int = 0
    acknowledged_rows: int = 0
    lost_rows: int = 0
    duplicated_rows: int = 0
    never_acknowledged_batches: int = 0
    agent_retry_episodes: int = 0  # "collector unavailable" in the agents' logs: the faults were felt
    faults: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost_rows or self.duplicated_rows or self.never_acknowledged_batches)


# ---- the disk --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[bool]:
    """A tmpfs of ``size_mb`` at ``path`` (True), or a plain directory where mounting is not allowed (False)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], capture_output=True, text=True
    )
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill_disk(disk: Path) -> Path:
    """A file taking every free byte of ``disk``."""
    filler = disk / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        block = b"\0" * (256 * PAGE)
        while True:
            try:
                fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == PAGE:
                    break
                block = block[: len(block) // 2]
    return filler


# ---- agents ----------------------------------------------------------------------------------------------


AGENT_TOML = """node = "{node}"
[collector]
url = "{url}"
token = "{token}"
timeout_s = 5
[agent]
cadence_s = 0.2
flush_s = 0.5
spool_dir = "{spool}"
shutdown_timeout_s = {drain_s}
[samplers.host]
per_core = false
[samplers.nvml]
enabled = false
[samplers.amdgpu]
enabled = false
[samplers.hwmon]
enabled = false
[samplers.tenants]
enabled = false
"""


@dataclass
class AgentProc:
    node: str
    spool: Path
    log: Path
    proc: subprocess.Popen

    def summary(self) -> dict:
        lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.startswith("agent summary: ")]
        if not lines:
            raise RuntimeError(f"agent {self.node} wrote no summary: {self.log.read_text(errors='replace')[-2000:]}")
        return json.loads(lines[-1].removeprefix("agent summary: "))


def start_agents(n: int, url: str, tokens: dict[str, str], work: Path, drain_s: float) -> list[AgentProc]:
    agents = []
    for node in list(tokens)[:n]:
        spool = work / f"spool-{node}"
        config = work / f"{node}.toml"
        config.write_text(AGENT_TOML.format(node=node, url=url, token=tokens[node], spool=spool, drain_s=drain_s))
        log = work / f"{node}.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(
                [*NEIGHBORSCOPE, "agent", "--config", str(config)], stdout=fh, stderr=subprocess.STDOUT, cwd=work
            )
        agents.append(AgentProc(node, spool, log, proc))
    deadline = time.monotonic() + 120
    for a in agents:
        while "sampler(s) [" not in a.log.read_text(errors="replace"):
            if a.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent {a.node} did not start: {a.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
    return agents


def stop_agents(agents: list[AgentProc], timeout_s: float) -> None:
    for a in agents:
        if a.proc.poll() is None:
            a.proc.send_signal(signal.SIGTERM)
    for a in agents:
        try:
            a.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            a.proc.kill()
            a.proc.wait(10)


def spooled_rows(spool: Path) -> dict[str, int]:
    """Rows per measurement in the batches still in an agent's spool (never acknowledged)."""
    rows: dict[str, int] = {}
    for p in sorted(spool.glob("*.batch.gz")):
        try:
            doc = json.loads(gzip.decompress(p.read_bytes()))
        except (OSError, ValueError):
            continue
        for f in doc.get("frames", []):
            rows[f["measurement"]] = rows.get(f["measurement"], 0) + len(f["columns"]["time"])
    return rows


# ---- faults ----------------------------------------------------------------------------------------------


@dataclass
class Plan:
    at_s: float
    kind: str  # kill | disk | influx


def fault_plan(rng: random.Random, duration_s: float, kills: int, disk: bool, influx: bool) -> list[Plan]:
    """Fault start times: kills spread at random over the run; the disk and InfluxDB outages in separate thirds."""
    plan = [Plan(rng.uniform(0.1, 0.9) * duration_s, "kill") for _ in range(kills)]
    if disk:
        plan.append(Plan(rng.uniform(0.15, 0.35) * duration_s, "disk"))
    if influx:
        plan.append(Plan(rng.uniform(0.45, 0.55) * duration_s, "influx"))
    return sorted(plan, key=lambda p: p.at_s)


class Faults:
    """Runs a fault plan on its own threads (the outages overlap kills, as they would in life)."""

    def __init__(
        self,
        collector: CollectorProcess,
        disk: Path,
        influxd: object | None,
        rng: random.Random,
        disk_full_s: float,
        influx_outage_s: float,
        counts: Counts,
    ) -> None:
        self.collector, self.disk, self.influxd, self.rng = collector, disk, influxd, rng
        self.disk_full_s, self.influx_outage_s, self.counts = disk_full_s, influx_outage_s, counts
        self._lock = threading.Lock()  # one kill / restart at a time
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def run(self, plan: list[Plan], t0: float) -> None:
        for p in plan:
            time.sleep(max(0.0, t0 + p.at_s - time.monotonic()))
            th = threading.Thread(target=self._guarded, args=(p,), daemon=True)
            th.start()
            self._threads.append(th)
        for th in self._threads:
            th.join()

    def _guarded(self, p: Plan) -> None:
        try:
            getattr(self, f"_{p.kind}")()
        except Exception as exc:
            self.errors.append(f"{p.kind} at {p.at_s:.0f} s: {type(exc).__name__}: {exc}")

    def _kill(self) -> None:
        with self._lock:
            self.collector.kill()
            down = self.rng.uniform(0.5, 3.0)
            self.counts.faults.append(f"collector kill -9, down {down:.1f} s")
            time.sleep(down)
            self.restart()

    def restart(self, deadline_s: float = 120.0) -> None:
        """Start the collector again, retrying every second like systemd's Restart=on-failure (a start can fail
        while its disk is full); each failed start is reported."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                self.collector.start(timeout_s=60)
                return
            except Exception as exc:
                last = [ln for ln in str(exc).splitlines() if ln.strip()][-1:] or [type(exc).__name__]
                self.errors.append(f"collector failed to start: {last[0].strip()}")
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def _disk(self) -> None:
        filler = fill_disk(self.disk)
        self.counts.faults.append(f"collector disk full for {self.disk_full_s:.0f} s")
        time.sleep(self.disk_full_s)
        filler.unlink()

    def _influx(self) -> None:
        self.influxd.stop()  # type: ignore[attr-defined]
        self.counts.faults.append(f"influxd stopped for {self.influx_outage_s:.0f} s")
        time.sleep(self.influx_outage_s)
        self.influxd.restart_same_port()  # type: ignore[attr-defined]


# ---- reading back ----------------------------------------------------------------------------------------


def stored_rows(store: object, node: str, measurement: str) -> tuple[int, int]:
    """(rows, distinct rows by time and tags) of one node's measurement."""
    import polars as pl

    frame = store.query(measurement, tags={"node": node})  # type: ignore[attr-defined]
    if frame.height == 0:
        return 0, 0
    keys = ["time", *[t for t in MEASUREMENTS[measurement].tags if t in frame.columns]]
    return frame.height, frame.select(pl.struct(keys).n_unique()).item()


def account(counts: Counts, agents: list[AgentProc], reader: object) -> None:
    for a in agents:
        s = a.summary()
        counts.agent_retry_episodes += a.log.read_text(errors="replace").count("collector unavailable")
        left = spooled_rows(a.spool)
        never = s["spooled"] + s["dropped"] + s["rejected"]
        counts.acknowledged_batches += s["sent"]
        counts.never_acknowledged_batches += never
        if never:
            counts.details.append(
                f"{a.node}: {s['spooled']} batch(es) left in the spool, {s['dropped']} dropped, "
                f"{s['rejected']} rejected"
            )
        for m, submitted in s["rows"].items():
            expected = submitted - left.get(m, 0)  # rows of acknowledged batches (dropped ones are unknowable)
            rows, distinct = stored_rows(reader, a.node, m)
            counts.acknowledged_rows += expected
            if distinct < expected:
                counts.lost_rows += expected - distinct
                counts.details.append(f"{a.node} {m}: {expected - distinct} of {expected} acknowledged rows missing")
            if rows > distinct:
                counts.duplicated_rows += rows - distinct
                counts.details.append(f"{a.node} {m}: {rows - distinct} row(s) stored twice")


# ---- one store -------------------------------------------------------------------------------------------


def run_store(kind: str, args: argparse.Namespace, work: Path, influx_binary: str | None) -> Counts:
    counts = Counts(kind)
    rng = random.Random(f"{args.seed}-{kind}")
    tokens = {f"node{i:02d}": f"token-{i:02d}-{rng.getrandbits(64):016x}" for i in range(args.agents)}
    disk = work / "disk"
    influxd = None
    with small_disk(disk, args.disk_mb) as mounted:
        if not mounted:
            counts.details.append("no tmpfs (not root?): the disk-full fault was left out")
        if kind == "influx":
            from tests.telemetry.store.conftest import InfluxServer

            influxd = InfluxServer(influx_binary, work / "influxd").start()  # type: ignore[arg-type]
            db = influxd.create_database("faults")
            base = f"influx://127.0.0.1:{influxd.http_port}/{db}"
            store_url = f"{base}?queue={disk / 'queue'}&artifacts={work / 'artifacts'}&timeout=5"
        else:
            store_url = str(disk / "store")
        collector = CollectorProcess(store=store_url, workdir=work, tokens=tokens)
        agents: list[AgentProc] = []
        try:
            collector.start(timeout_s=60)
            agents = start_agents(args.agents, collector.url, tokens, work, args.drain_s)
            faults = Faults(collector, disk, influxd, rng, args.disk_full_s, args.influx_outage_s, counts)
            plan = fault_plan(rng, args.duration_s, args.kills, mounted, kind == "influx")
            t0 = time.monotonic()
            faults.run(plan, t0)
            time.sleep(max(0.0, t0 + args.duration_s - time.monotonic()))
            if collector.proc is None or collector.proc.poll() is not None:
                faults.restart()  # a fault left it down (a failed start): up again before the agents stop
            counts.details += faults.errors
            stop_agents(agents, args.drain_s + 30)
            if kind == "influx":
                wait_for_queue(disk / "queue", timeout_s=120)
            collector.stop(timeout_s=60)
            counts.agents = len(agents)
            account(counts, agents, open_reader(kind, store_url if kind == "embedded" else base))
        finally:
            for a in agents:
                if a.proc.poll() is None:
                    a.proc.kill()
            collector.kill()
            if influxd is not None:
                influxd.stop()
    return counts


def wait_for_queue(queue: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    # the queue keeps empty spare files made ahead of writes: only a file with data is still waiting
    while queue.is_dir() and any(_size(p) for p in queue.glob("q-*.arrow")) and time.monotonic() < deadline:
        time.sleep(0.5)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # sent and removed meanwhile
        return 0


def open_reader(kind: str, url: str) -> object:
    if kind == "influx":
        from telemetry.store.influx import InfluxConfig, InfluxStore

        return InfluxStore(InfluxConfig.from_url(url))
    from telemetry.store.factory import open_store

    return open_store(url)


# ---- the command -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 agents, 20 s per store, 2 kills, short outages")
    ap.add_argument("--agents", type=int, help="agent processes (default 8; --quick 3)")
    ap.add_argument("--duration-s", type=float, help="seconds of faults per store (default 90; --quick 20)")
    ap.add_argument("--kills", type=int, help="collector kill -9s per store (default 5; --quick 2)")
    ap.add_argument("--disk-full-s", type=float, help="seconds the collector's disk stays full (default 5; --quick 3)")
    ap.add_argument("--influx-outage-s", type=float, help="seconds influxd is stopped (default 30; --quick 8)")
    ap.add_argument("--drain-s", type=float, default=60.0, help="the agents' shutdown_timeout_s (deliver the spool)")
    ap.add_argument("--disk-mb", type=int, default=64, help="size of the collector's tmpfs")
    ap.add_argument("--stores", default="embedded,influx", help="embedded, influx or both (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the counts to this file")
    args = ap.parse_args(argv)
    defaults = (3, 20.0, 2, 3.0, 8.0) if args.quick else (8, 90.0, 5, 5.0, 30.0)
    for name, value in zip(("agents", "duration_s", "kills", "disk_full_s", "influx_outage_s"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    bad = set(args.stores.split(",")) - {"embedded", "influx"}
    if bad:
        ap.error(f"unknown store(s) {', '.join(sorted(bad))}: use embedded, influx")
    return args


def main(argv: list[str] | None = None) -> list[Counts]:
    from rich.console import Console
    from rich.table import Table

    args = parse_args(argv)
    console = Console()
    results: list[Counts] = []
    influx_binary = shutil.which("influxd") or os.environ.get("NEIGHBORSCOPE_INFLUXD")
    for kind in args.stores.split(","):
        if kind == "influx" and influx_binary is None:
            console.print("[yellow]influx: skipped, influxd is not installed (apt-get install influxdb)[/]")
            continue
        work = Path(tempfile.mkdtemp(prefix=f"ns-faults-{kind}-"))
        t = time.monotonic()
        console.print(f"{kind}: {args.agents} agents, {args.duration_s:.0f} s, {args.kills} kill -9s ...")
        try:
            results.append(run_store(kind, args, work, influx_binary))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        console.print(f"{kind}: done in {time.monotonic() - t:.0f} s")
    table = Table(title="faults: what the collector acknowledged, and what the store holds")
    for col in (
        "store",
        "agents",
        "acknowledged (batches / rows)",
        "lost rows",
        "duplicated rows",
        "never acknowledged (batches)",
    ):
        table.add_column(col, justify="right" if col != "store" else "left")
    for c in results:
        table.add_row(
            c.store,
            str(c.agents),
            f"{c.acknowledged_batches} / {c.acknowledged_rows}",
            str(c.lost_rows),
            str(c.duplicated_rows),
            str(c.never_acknowledged_batches),
        )
    console.print(table)
    for c in results:
        console.print(
            f"{c.store} faults: "
            + "; ".join(c.faults)
            + f" (the agents logged {c.agent_retry_episodes} retry episode(s))"
        )
        for d in c.details:
            console.print(f"  {c.store}: {d}")
    if args.json:
        Path(args.json).write_text(json.dumps([c.__dict__ for c in results], indent=2) + "\n")
    if not all(c.clean for c in results):
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()
