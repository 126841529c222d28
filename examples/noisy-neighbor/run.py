"""A real noisy-neighbour experiment on this host, in one command:

    python examples/noisy-neighbor/run.py --cotenant cpu|memory|io|network|idle [--duration-s 60]
    python examples/noisy-neighbor/run.py --cotenant-cmd "stress-ng --cache 2" --expect-resource cpu

1. a real collector (`neighborscope collector`, embedded store, one node token) on 127.0.0.1;
2. the victim: `server.py`, an OpenAI-compatible streaming server whose tokens are real CPU work (the io
   experiment: it also writes and fsyncs per request under ``--disk-path``), in
   a cgroup v2 group of its own (``neighborscope/noisy-neighbor-<pid>/victim``) so the agent reads its pressure;
3. the real agent (`neighborscope agent`) sampling this host (``host``, plus ``disk`` / ``net`` where the agent
   has them) and its tenants (``tenants``: the server -> group ``victim``, the co-tenant -> its group) every 0.5 s;
4. `neighborscope stress run plan.toml` (randomized design): the victim benchmark, llama-benchy from PyPI,
   unmodified, streams from the server continuously while the co-tenant is switched on or off at random in
   blocks (seeded; every switch a ``run_event``; the co-tenant in a cgroup of its own);
5. `neighborscope analyze --victim victim`: the ranked antagonists (effect on tok/s and p99 ITL, q-value,
   resource, evidence).

Co-tenants (``--cotenant``; group name in brackets):

- ``cpu`` [cpuhog]: two pure-Python busy loops per core (cpuhog.py);
- ``memory`` [memhog]: ``stress-ng --vm 1 --vm-bytes 1G --vm-keep --stream 1`` (page-touching and STREAM);
- ``io`` [iohog]: ``fio`` random 4 KiB writes, fsync after each, on the same file system as the victim's disk path;
- ``network`` [nethog]: a shaped link built here: a network namespace for the benchmark client joined to this
  host's namespace by a veth pair, ``tc`` tbf rate limit on the server's side; an ``iperf3`` bulk transfer
  (server to client) shares the link with the victim's token stream. Needs root; the namespace is deleted on
  exit, also on error or SIGTERM;
- ``idle`` [idler] (A/A): a co-tenant whose processes exist and are switched on and off like any other, but
  sleep: it takes nothing the victim asks for;
- ``--cotenant-cmd "CMD"`` [cotenant, or ``--cotenant-group``]: any shell command (stopped with SIGTERM to its
  process group; what escaped the group is killed with its cgroup).
- ``--with-idler``: beside any of them, a second co-tenant [idler] that sleeps, switched on and off at random
  independently of the first: an A/A control in the same run (the check also wants it not significant).

It prints the victim's ITL p50 / p99 with the co-tenant off and on (tokens classified by the recorded switch
times), the top antagonist with its effect, interval, q-value and evidence, and writes all of it to
``WORKDIR/findings.json`` (``--out``). Exit code: 0 when the finding is as expected, 1 when not (``--no-check``:
always 0 unless a stage failed), 2 when a stage failed. Expected: ``--expect-resource R[,R2]`` (the top
significant antagonist, q < 0.05, is the co-tenant through R or R2), ``--expect-none`` (nothing significant);
default per kind: cpu -> cpu, memory -> memory_bandwidth or memory, io -> storage_io, network -> network,
idle -> none, ``--cotenant-cmd`` -> no check. Offline: no model, tokenizer or corpus download.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from stack import NEIGHBORSCOPE, VICTIM, Stack, free_port, start_agent, start_collector, start_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE = "noisy-neighbor"
PP, TG = 64, 32
Q_MAX = 0.05
GROUPS = {"cpu": "cpuhog", "memory": "memhog", "io": "iohog", "network": "nethog", "idle": "idler"}
EXPECT = {"cpu": "cpu", "memory": "memory_bandwidth,memory", "io": "storage_io", "network": "network", "idle": None}
# the benchmark is sized for this many times the schedule at its speed with no co-tenant, then stopped when the
# schedule ends (plan.toml: stop_after_schedule): on a shared host its speed varies tenfold from minute to minute
OUTLAST = 3.0
MAX_RUNS = 20000
# --with-idler: a second co-tenant whose process sleeps, switched on and off at random independently of the first, an
# A/A control inside the experiment (the analysis must name the first and not it). -X noisy-neighbor-idler: a marker
# in its command line (Python ignores unknown -X options) that the agent's tenant pattern matches.
IDLER = "idler"
IDLER_COTENANT = """
[[cotenant]]
group = "idler"              # run.py --with-idler: sleeps; switched independently of the first co-tenant
command = ["{python}", "-X", "noisy-neighbor-idler", "-c", "import time; time.sleep(86400)"]
grace = 5.0
"""
IDLER_CMDLINE = "-X noisy-neighbor-idler "
# the schedule's default seed; with the idler (13 blocks, the CI length): first co-tenant 0101100101010, idler
# 0101010010001: both start quiet, 11 and 10 on/off segments, correlation -0.10 (11 blocks: the first 11 of these)
SEED, SEED_WITH_IDLER = 103, 1068


def say(msg: str) -> None:
    print(f"noisy-neighbor: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The shaped link of the network experiment


class ShapedLink:
    """A network namespace for the benchmark client joined to this host's namespace by a veth pair; ``tc`` tbf on
    the host side shapes what the server (and the bulk co-tenant beside it) sends to the client. The host end stays
    in this namespace so the agent's ``net`` sampler (``/sys/class/net``) sees the shared link. `close` deletes the
    namespace (and with it the pair and its qdisc)."""

    PREFIX = "nsnb"

    def __init__(self, rate_mbit: float, latency_ms: float) -> None:
        pid = os.getpid()
        self.ns = f"{self.PREFIX}-{pid}"
        self.host_if, self.peer_if = f"{self.PREFIX}{pid}h", f"{self.PREFIX}{pid}c"
        net = 16 + pid % 200 * 4  # a /30 in 10.213.0.0/16, one per run
        self.host_ip, self.client_ip = f"10.213.{net // 256}.{net % 256 + 1}", f"10.213.{net // 256}.{net % 256 + 2}"
        self.rate_mbit, self.latency_ms = rate_mbit, latency_ms
        self.up = False

    @staticmethod
    def check() -> str | None:
        """Why the link cannot be built here (one line), or None."""
        if os.geteuid() != 0:
            return "the network experiment needs root (ip netns, veth, tc): run it as root or with sudo"
        missing = [b for b in ("ip", "tc", "iperf3") if shutil.which(b) is None]
        if missing:
            return f"the network experiment needs {', '.join(missing)} (Debian: iproute2, iperf3)"
        return None

    @classmethod
    def clean_stale(cls) -> None:
        """Delete namespaces a killed earlier run left (named after a process that is gone)."""
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            name = line.split()[0] if line.split() else ""
            m = re.fullmatch(rf"{cls.PREFIX}-(\d+)", name)
            if m and not Path(f"/proc/{m.group(1)}").exists():
                subprocess.run(["ip", "netns", "del", name], capture_output=True)

    def _ip(self, *args: str) -> None:
        r = subprocess.run(list(args), capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"noisy-neighbor: `{shlex.join(args)}` failed: {r.stderr.strip()}")

    def open(self) -> ShapedLink:
        self.clean_stale()
        self.up = True  # from here on close() undoes whatever was made
        self._ip("ip", "netns", "add", self.ns)
        self._ip("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if)
        self._ip("ip", "link", "set", self.peer_if, "netns", self.ns)
        self._ip("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self._ip("ip", "link", "set", self.host_if, "up")
        self._ip("ip", "-n", self.ns, "addr", "add", f"{self.client_ip}/30", "dev", self.peer_if)
        self._ip("ip", "-n", self.ns, "link", "set", self.peer_if, "up")
        self._ip("ip", "-n", self.ns, "link", "set", "lo", "up")
        self._ip("tc", "qdisc", "add", "dev", self.host_if, "root", "tbf", "rate", f"{self.rate_mbit:g}mbit",
                 "burst", "16kb", "latency", f"{self.latency_ms:g}ms")  # fmt: skip
        return self

    def close(self) -> None:
        if self.up:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)  # gone with the peer already
            self.up = False

    def prefix(self) -> str:
        return f"ip netns exec {self.ns}"


# ---------------------------------------------------------------------------------------------------------------
# Co-tenants


def remove_cgroup(cg: Any) -> None:
    if problem := cg.remove():
        say(problem)


def cotenant_command(kind: str, custom: str | None, wd: Path, link: ShapedLink | None, nice: int | None) -> str:
    """The co-tenant's shell command (run by the plan under /bin/sh -c, in a session and cgroup of its own)."""
    if kind == "custom":
        cmd = custom or ""
    elif kind == "cpu":
        cmd = f"exec {shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'cpuhog.py'))}"
    elif kind == "memory":
        cmd = "exec stress-ng --vm 1 --vm-bytes 1G --vm-keep --stream 1 --timeout 0 --quiet"
    elif kind == "io":
        d = wd / "iohog"
        cmd = (
            # asynchronous direct writes, 32 in flight per job: the disk's queue fills, the CPU stays mostly free
            # (a synchronous writer with an fsync per write slows a victim on a 2-core host mostly through the CPU)
            f"mkdir -p {shlex.quote(str(d))} && exec fio --name=iohog --directory={shlex.quote(str(d))} "
            "--rw=randwrite --bs=64k --size=256m --numjobs=2 --ioengine=libaio --iodepth=32 --direct=1 "
            "--time_based --runtime=86400 --group_reporting --output-format=terse"
        )
    elif kind == "network":
        assert link is not None
        port = free_port()
        cmd = (
            f"iperf3 -s -1 -B {link.host_ip} -p {port} & sleep 0.3; "
            f"{link.prefix()} iperf3 -c {link.host_ip} -p {port} -R -t 86400 -i 0; wait"
        )
    elif kind == "idle":
        # A/A: the co-tenant's processes exist and are switched on and off like any other, but sleep: they take
        # nothing the victim needs. (An idle-priority busy loop is not nothing on a 2-vCPU guest: at a quieter
        # moment one raised the victim's p99 ITL from 3.4 to 6.4 ms, q = 0.001, and was rightly flagged.)
        cmd = f"exec {shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'cpuhog.py'))} --procs 1 --sleep"
    else:
        raise ValueError(kind)
    if nice is not None:
        # the plan starts the co-tenant in a session of its own: with kernel.sched_autogroup_enabled its CPU weight
        # is that session's autogroup nice (like a container's cpu.weight); lowering it needs root
        cmd = f"echo {int(nice)} > /proc/self/autogroup 2>/dev/null; {cmd}"
    return cmd


def cotenant_cmdline_rule(kind: str, custom: str | None) -> str:
    """The agent's tenant rule (cmdline regex) for the co-tenant where it has no cgroup of its own."""
    return {
        "cpu": re.escape(str(HERE / "cpuhog.py")),
        "idle": re.escape(str(HERE / "cpuhog.py")),
        "memory": r"^stress-ng --vm 1 ",
        "io": r"^fio --name=iohog",
        "network": r"^iperf3 .*-p \d+",
    }.get(kind) or re.escape((custom or "").strip().split(" ")[0] or "^$")


def agent_toml(
    url: str,
    token: str,
    spool: Path,
    cotenant: str,
    *,
    victim_cgroup: str | None = None,
    cotenant_cgroup: str | None = None,
    cotenant_cmdline: str = "",
    extra_samplers: tuple[str, ...] = (),
    more_tenants: tuple[tuple[str, str | None, str], ...] = (),
) -> str:
    """The agent's config: host and tenants samplers (plus ``extra_samplers``, e.g. disk and net) every 0.5 s; the
    victim and the co-tenant matched by their cgroups where they have them, else by command line;
    ``more_tenants``: further co-tenants as (group, cgroup or None, command-line pattern)."""

    def rule(group: str, cgroup: str | None, cmdline: str) -> str:
        key = f"cgroup = {json.dumps('^' + re.escape(cgroup) + '$')}" if cgroup else f"cmdline = {json.dumps(cmdline)}"
        return f'[[tenants]]\ngroup = "{group}"\n{key}\n'

    samplers = "".join(f"[samplers.{s}]\nenabled = true\n" for s in ("host", "tenants", *extra_samplers))
    off = "".join(f"[samplers.{s}]\nenabled = false\n" for s in ("nvml", "amdgpu", "hwmon"))
    return (
        f'node = "{NODE}"\n[collector]\nurl = "{url}"\ntoken = "{token}"\n[agent]\ncadence_s = 0.5\nflush_s = 1.0\n'
        f"spool_dir = {json.dumps(str(spool))}\n{samplers}{off}"
        + rule(VICTIM, victim_cgroup, re.escape(str(HERE / "server.py")))
        + rule(cotenant, cotenant_cgroup, cotenant_cmdline)
        + "".join(rule(g, cg, cmdline) for g, cg, cmdline in more_tenants)
    )


def block_device(path: Path) -> str | None:
    """The disk (as ``/proc/diskstats`` names it, a partition's parent) that holds ``path``; None for a file system
    with no block device (tmpfs, overlay)."""
    st = os.stat(path)
    dev = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not dev.exists():
        return None
    real = dev.resolve()
    return real.parent.name if (real / "partition").exists() else real.name


def topology(group: str, nic: str, disk: str | None, *more: str) -> dict[str, Any]:
    """The experiment's topology (`telemetry.topology`): the victim and the co-tenant on this host's one CPU socket
    and NUMA node, the victim's NIC (the shaped link's host end, or loopback) and its disk, all shared with the
    co-tenant: every resource is a path the co-tenant could take, and the victim's NIC and disk rows are the ones
    the analysis reads."""
    shared = {"socket": "0", "numa_node": "0", "nic": nic, "disk": disk}
    return {"node": NODE, "cpu_count": os.cpu_count(), "groups": {g: shared for g in (VICTIM, group, *more)}}


def known_samplers() -> set[str]:
    """The agent's sampler names (a sampler module that does not import yet is not one)."""
    import importlib.util

    from agents.samplers import BUILTIN

    return {name for name in BUILTIN if importlib.util.find_spec(f"agents.samplers.{name}") is not None}


# ---------------------------------------------------------------------------------------------------------------
# Results


def warmup_run_s(url: str, tokenizer: Path, home: Path, concurrency: int, prefix: str, progress: Path,
                 runs: int = 6) -> float:  # fmt: skip
    """Seconds the fastest llama-benchy run takes here with no co-tenant: llama-benchy itself (as in the plan) does
    ``runs`` runs and its ``--emit-progress`` stream times them (a run: its request, plus the client's own time until
    the next one starts). The fastest, not the median: on a shared host a stall of the moment must not make the plan
    too short (it outlasts the schedule and is stopped when the schedule ends, so too long costs nothing)."""
    cmd = (
        f"HOME={shlex.quote(str(home))} HF_HUB_OFFLINE=1 exec {prefix} {shlex.quote(sys.executable)} -m llama_benchy "
        f"--base-url {url}/v1 --model tiny-cpu-decoder --tokenizer {shlex.quote(str(tokenizer))} "
        f"--book-url {url}/corpus.txt --pp {PP} --tg {TG} --runs {runs} --concurrency {concurrency} "
        f"--skip-coherence --latency-mode api --emit-progress {shlex.quote(str(progress))}"
    )
    r = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=300)
    starts: list[float] = []
    with contextlib.suppress(OSError):
        for line in progress.read_text().splitlines():
            with contextlib.suppress(ValueError):
                ev = json.loads(line)
                if ev.get("type") == "request_start":
                    starts.append(float(ev["ts"]))
    starts = sorted(set(starts))
    if r.returncode != 0 or len(starts) < 2:
        raise SystemExit(f"noisy-neighbor: the llama-benchy warm-up failed (exit {r.returncode}): {r.stderr[-2000:]}")
    gaps = [b - a for a, b in itertools.pairwise(starts)]  # concurrency > 1: runs start together
    return min(g for g in gaps if g > 0.001) if any(g > 0.001 for g in gaps) else gaps[0]


def itl_by_cotenant(store: str, victim: str, cotenant: str, margin_s: float = 0.5) -> dict[str, Any]:
    """The victim's inter-token latencies with the co-tenant off / on (per the store's switch_on / switch_off
    run_events; intervals within ``margin_s`` after a switch are left out): p50, p99, mean, count."""
    import numpy as np
    import polars as pl

    from analysis.ingest.model import list_runs, load_tokens
    from telemetry.store.factory import open_store

    st = open_store(store)
    try:
        runs = [r for r in {r.run_id: r for r in list_runs(st)}.values() if r.group == victim]
        toks = [t for r in runs if (t := load_tokens(st, r.run_id)) is not None and t.height]
        ev = st.query("run_event", tags={"event": ["switch_on", "switch_off"], "tenant": cotenant}).sort("time")
    finally:
        st.close()
    if not toks or ev.height == 0:
        return {}
    tok = pl.concat(toks)
    t_ns = tok["time"].dt.epoch("ns").to_numpy()
    itl = tok["itl_ms"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    sw_t = ev["time"].dt.epoch("ns").to_numpy()
    sw_on = (ev["event"] == "switch_on").to_numpy()
    k = np.searchsorted(sw_t, t_ns, side="right") - 1  # the last switch before each token
    state = np.where(k >= 0, sw_on[np.clip(k, 0, None)], False)
    since = np.where(k >= 0, (t_ns - sw_t[np.clip(k, 0, None)]) / 1e9, np.inf)
    keep = np.isfinite(itl) & (since >= margin_s)
    out: dict[str, Any] = {}
    for name, mask in (("cotenant_off", keep & ~state), ("cotenant_on", keep & state)):
        a = itl[mask]
        if a.size:
            out[name] = {"itl_ms_p50": float(np.percentile(a, 50)), "itl_ms_p99": float(np.percentile(a, 99)),
                         "itl_ms_mean": float(a.mean()), "intervals": int(a.size)}  # fmt: skip
    if "cotenant_off" in out and "cotenant_on" in out:
        off, on = out["cotenant_off"], out["cotenant_on"]
        out["change_pct"] = {m: 100 * (on[m] / off[m] - 1) for m in ("itl_ms_p50", "itl_ms_p99", "itl_ms_mean")}
    return out


def findings(analysis: dict[str, Any], itl: dict[str, Any]) -> dict[str, Any]:
    ants = analysis.get("antagonists") or []
    top = ants[0] if ants else {}
    phases = analysis.get("phases") or []
    itl_rows = [r for r in phases if "itl" in str(r.get("metric", ""))]
    p99 = next((r for r in itl_rows if r.get("metric") in ("itl_ms_p99", "itl_p99_ms")), None)
    degraded = bool(p99 and p99.get("verdict") == "degraded")
    if top.get("itl_p99_effect_pct") is not None:
        lo = top.get("itl_ci_low")
        degraded = degraded or (top["itl_p99_effect_pct"] > 0 and (lo is None or lo > 0))
    return {
        "antagonist": top.get("antagonist"),
        "resource": top.get("resource"),
        "significant": top.get("significant"),
        "q_value": top.get("q_value"),
        "p_value": top.get("p_value"),
        "design": top.get("design"),
        "confidence": top.get("confidence"),
        "throughput_effect_pct": top.get("effect_pct"),
        "throughput_ci_pct": [top.get("ci_low"), top.get("ci_high")],
        "itl_p99_effect_pct": top.get("itl_p99_effect_pct"),
        "itl_p99_ci_pct": [top.get("itl_ci_low"), top.get("itl_ci_high")],
        "evidence": top.get("evidence"),
        "itl_p99_degraded": degraded,
        "itl_ms_by_cotenant_state": itl,
        "phase_table_itl": itl_rows,
        "antagonists": ants,
        "notes": analysis.get("notes"),
    }


def resources_of(value: Any) -> set[str]:
    """The resource(s) a finding names: one name, a list, or "a or b" (cannot be told apart)."""
    if value is None:
        return set()
    if isinstance(value, list | tuple):
        return {str(v) for v in value}
    return {p.strip() for p in re.split(r"\bor\b|,|/", str(value)) if p.strip()}


def check(
    result: dict[str, Any], cotenant: str, expect: str | None, expect_none: bool, quiet: tuple[str, ...] = ()
) -> tuple[bool, str]:
    """Whether the finding is the expected one, and what was expected (for the message). ``quiet``: co-tenants that
    must have been tested and found not significant (the sleeping idler of ``--with-idler``)."""
    ants = result.get("antagonists") or []

    def sig(a: dict[str, Any]) -> bool:
        q = a.get("q_value")
        return bool(a.get("significant")) and q is not None and q < Q_MAX

    if expect_none:
        found = [a.get("antagonist") for a in ants if sig(a)]
        return not found, f"nothing significant (q < {Q_MAX}); found {found}"
    ok, wanted = True, []
    if quiet:
        tested = {a.get("antagonist") for a in ants}
        loud = [a.get("antagonist") for a in ants if sig(a) and a.get("antagonist") in quiet]
        untested = [g for g in quiet if g not in tested]
        ok = not loud and not untested
        wanted.append(
            f"{', '.join(quiet)} tested and not significant (found significant: {loud}, untested: {untested})"
        )
    if not expect:
        return ok, "; ".join(wanted) or "no check"
    want = {r.strip() for r in expect.split(",") if r.strip()}
    top = next((a for a in ants if sig(a)), None)
    ok = ok and top is not None and top.get("antagonist") == cotenant and bool(resources_of(top.get("resource")) & want)
    got = "nothing significant" if top is None else f"{top.get('antagonist')} via {top.get('resource')}"
    return ok, "; ".join([f"{cotenant} via {' or '.join(sorted(want))} with q < {Q_MAX}; found {got}", *wanted])


def report(result: dict[str, Any], out_path: Path) -> None:
    def pct(v: Any) -> str:
        return "-" if v is None else f"{v:+.1f}"

    print()
    itl = result["itl_ms_by_cotenant_state"]
    for state in ("cotenant_off", "cotenant_on"):
        if state in itl:
            v = itl[state]
            print(
                f"victim ITL, {state.replace('_', ' '):>13}: p50 {v['itl_ms_p50']:7.2f} ms   "
                f"p99 {v['itl_ms_p99']:7.2f} ms   ({v['intervals']} intervals)"
            )
    if "change_pct" in itl:
        print(
            f"victim ITL change with the co-tenant on: p50 {itl['change_pct']['itl_ms_p50']:+.1f} %, "
            f"p99 {itl['change_pct']['itl_ms_p99']:+.1f} %"
        )
    if result["antagonist"]:
        lo, hi = result["itl_p99_ci_pct"]
        tlo, thi = result["throughput_ci_pct"]
        print(
            f"top antagonist: {result['antagonist']} via {result['resource']} (q = {result['q_value']}, "
            f"significant {result['significant']}, {result['design']}, confidence {result['confidence']})\n"
            f"  p99 ITL {pct(result['itl_p99_effect_pct'])} % [{pct(lo)}, {pct(hi)}], "
            f"tok/s {pct(result['throughput_effect_pct'])} % [{pct(tlo)}, {pct(thi)}]"
        )
        for line in result.get("evidence") or []:
            print(f"  evidence: {line}")
    else:
        print("top antagonist: none found")
    for a in result.get("antagonists") or []:
        if a.get("antagonist") in (result.get("quiet_cotenants") or []):
            print(
                f"A/A control {a['antagonist']} (sleeps, switched independently): p99 ITL "
                f"{pct(a.get('itl_p99_effect_pct'))} % [{pct(a.get('itl_ci_low'))}, {pct(a.get('itl_ci_high'))}], "
                f"tok/s {pct(a.get('effect_pct'))} % [{pct(a.get('ci_low'))}, {pct(a.get('ci_high'))}], "
                f"q = {a.get('q_value')}, significant {a.get('significant')}"
            )
    for note in result.get("notes") or []:
        print(f"note: {note}")
    print(f"findings written to {out_path}")


# ---------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    who = ap.add_mutually_exclusive_group()
    who.add_argument("--cotenant", choices=sorted(GROUPS), default="cpu", help="the co-tenant (default: cpu)")
    who.add_argument("--cotenant-cmd", metavar="CMD", help="any shell command as the co-tenant")
    ap.add_argument("--cotenant-group", default=None, help="the co-tenant's group name (default: per kind)")
    exp = ap.add_mutually_exclusive_group()
    exp.add_argument("--expect-resource", metavar="R[,R2]", default=None,
                     help="exit 1 unless the top significant antagonist (q < 0.05) is the co-tenant through R")  # fmt: skip
    exp.add_argument("--expect-none", action="store_true", help="exit 1 when any antagonist is significant")
    exp.add_argument("--no-check", action="store_true", help="exit 0 whatever the finding (unless a stage failed)")
    ap.add_argument("--duration-s", type=float, default=120.0, help="length of the randomized on/off schedule")
    ap.add_argument("--block-s", type=float, default=5.0, help="seconds per on/off block")
    ap.add_argument("--window-s", type=float, default=2.0, help="analysis window (neighborscope analyze --window-s)")
    ap.add_argument("--seed", type=int, default=None,
                    help=f"the schedule's seed (default: {SEED}; with --with-idler {SEED_WITH_IDLER})")  # fmt: skip
    ap.add_argument("--with-idler", action="store_true", help="also a sleeping co-tenant (group idler) switched on "
                    "and off at random independently of the first: an A/A control in the same run; the check then also "
                    "wants it tested and not significant")  # fmt: skip
    ap.add_argument("--workdir", type=Path, default=None, help="work directory, emptied first "
                    "(default: neighborscope-demo/noisy-neighbor/<co-tenant>)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=None, help="findings JSON (default: WORKDIR/findings.json)")
    ap.add_argument("--token-ms", type=float, default=2.5, help="server CPU time per token on an idle core")
    ap.add_argument("--concurrency", type=int, default=1, help="llama-benchy --concurrency (streams at once)")
    ap.add_argument("--cotenant-nice", type=int, default=None, help="autogroup nice of the co-tenant's session "
                    "(e.g. -10: a heavier CPU weight than the other sessions; root; default: unchanged, 19 for idle)")  # fmt: skip
    ap.add_argument("--no-cgroups", action="store_true", help="no cgroup v2 groups (the agent matches by command line)")
    ap.add_argument(
        "--victim-disk",
        action="store_true",
        help="give the victim server its disk path (KV offload "
        "under WORKDIR/victim-disk, the file system of WORKDIR) whatever the co-tenant (default: io only)",
    )
    ap.add_argument(
        "--kv-offload-mb",
        type=float,
        default=16.0,
        help="with a disk path: MiB written and read back per request (server.py --kv-offload-mb; 16: each token "
        "reads 512 KiB, so the victim waits on its disk as much as on its CPU)",
    )
    ap.add_argument("--reanalyse", action="store_true", help="analyse the experiment already in WORKDIR again")
    ap.add_argument("--rate-mbit", type=float, default=8.0, help="network: the shaped link's rate")
    ap.add_argument("--link-latency-ms", type=float, default=200.0, help="network: the tbf queue's length in time")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import importlib.util

    from analysis.stress.cgroups import Cgroup, CgroupError, v2_mount

    kind = "custom" if args.cotenant_cmd else args.cotenant
    group = args.cotenant_group or GROUPS.get(kind, "cotenant")
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", group) or group == VICTIM:
        raise SystemExit(f"noisy-neighbor: --cotenant-group {group!r}: letters, digits, _ . : - and not {VICTIM!r}")
    expect = args.expect_resource if args.expect_resource is not None else EXPECT.get(kind)
    expect_none = args.expect_none or (kind == "idle" and args.expect_resource is None)
    if args.with_idler and group == IDLER:
        raise SystemExit(f"noisy-neighbor: --with-idler: the co-tenant's group is {IDLER!r} already")
    seed = args.seed if args.seed is not None else SEED_WITH_IDLER if args.with_idler else SEED
    idler = (IDLER,) if args.with_idler else ()
    if importlib.util.find_spec("llama_benchy") is None:
        raise SystemExit("noisy-neighbor: llama-benchy is not installed in this Python: pip install llama-benchy")
    need = {"memory": ["stress-ng"], "io": ["fio"]}.get(kind, [])
    if missing := [b for b in need if shutil.which(b) is None]:
        raise SystemExit(f"noisy-neighbor: the {kind} co-tenant needs {', '.join(missing)} (Debian package "
                         f"{'util-linux' if missing == ['chrt'] else missing[0]})")  # fmt: skip
    if kind == "network" and (why := ShapedLink.check()):
        raise SystemExit(f"noisy-neighbor: {why}")
    mount = None if args.no_cgroups else v2_mount()
    if mount is not None and os.geteuid() != 0 and not os.access(mount, os.W_OK):
        say(f"no write access to the cgroup v2 mount {mount} (not root): tenants matched by command line instead")
        mount = None
    elif mount is None and not args.no_cgroups:
        say("no cgroup v2 mount on this host: tenants matched by command line, no per-tenant pressure")
    blocks = max(6, round(args.duration_s / args.block_s))
    t_begin = time.monotonic()

    wd = (args.workdir or Path("neighborscope-demo/noisy-neighbor") / group).resolve()
    if args.reanalyse:
        try:
            setup = json.loads((wd / "setup.json").read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"noisy-neighbor: --reanalyse: no experiment in {wd} ({exc})") from None
        return analyse(wd, setup, args, expect, expect_none, t_begin)
    if wd.exists():
        shutil.rmtree(wd)
    (wd / "logs").mkdir(parents=True)
    (wd / "home").mkdir()
    store = str(wd / "store")
    token = secrets.token_hex(16)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    parent = f"neighborscope/{NODE}-{os.getpid()}"

    def on_term(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second one must not cut the clean-up short
        raise SystemExit(f"noisy-neighbor: stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    link = ShapedLink(args.rate_mbit, args.link_latency_ms) if kind == "network" else None
    with Stack(say) as stack:
        victim_cg: Cgroup | None = None
        if mount is not None:
            try:
                victim_cg = Cgroup.under(mount, f"{parent}/{VICTIM}").create()
            except CgroupError as exc:
                raise SystemExit(f"noisy-neighbor: {exc}") from None
            stack.callback(remove_cgroup, victim_cg)
            # the stress runner makes and removes the co-tenants' groups; should it die first, what is left goes here
            for g in (group, *idler):
                leftover = Cgroup.under(mount, f"{parent}/{g}")
                leftover.created = [leftover.path]
                stack.callback(remove_cgroup, leftover)
        if link is not None:
            stack.callback(link.close)
            link.open()
            say(f"shaped link: {link.host_if} ({link.host_ip}) <-> {link.ns}/{link.peer_if} ({link.client_ip}), "
                f"tbf {args.rate_mbit:g} mbit/s, queue {args.link_latency_ms:g} ms")  # fmt: skip
        say(f"co-tenant {group} ({kind}){' and the sleeping ' + IDLER if idler else ''}; starting the collector, "
            "the server and the agent")  # fmt: skip
        server_argv = ["--token-ms", str(args.token_ms)]
        if link is not None:
            server_argv += ["--host", "0.0.0.0"]
        disk = args.victim_disk or (kind == "io")
        if disk:
            (wd / "victim-disk").mkdir()
            server_argv += ["--disk-path", str(wd / "victim-disk"), "--kv-offload-mb", str(args.kv_offload_mb)]
        server, server_up = start_server(stack, wd, server_argv, preexec_fn=victim_cg.join_self if victim_cg else None)
        coll = start_collector(stack, wd, NODE, token)
        surl = server_up()
        bench_url = surl if link is None else f"http://{link.host_ip}:{surl.rsplit(':', 1)[1]}"
        topo = topology(group, link.host_if if link else "lo", block_device(wd), *idler)
        (wd / "topology.json").write_text(json.dumps(topo, indent=2) + "\n")
        (wd / "tokenizer.json").write_bytes(httpx.get(surl + "/tokenizer.json", timeout=10).content)
        extra = tuple(s for s in ("disk", "net") if s in known_samplers())
        if len(extra) < 2:
            say(f"the agent has no {' / '.join(sorted({'disk', 'net'} - set(extra)))} sampler yet: left out")
        (wd / "agent.toml").write_text(
            agent_toml(coll.url, token, wd / "spool", group, victim_cgroup=victim_cg.proc_path if victim_cg else None,
                       cotenant_cgroup=f"/{parent}/{group}" if mount is not None else None,
                       cotenant_cmdline=cotenant_cmdline_rule(kind, args.cotenant_cmd), extra_samplers=extra,
                       more_tenants=tuple((g, f"/{parent}/{g}" if mount is not None else None, IDLER_CMDLINE)
                                          for g in idler))
        )  # fmt: skip
        agent = start_agent(stack, wd / "agent.toml", wd / "logs" / "agent.log")
        run_s = warmup_run_s(bench_url, wd / "tokenizer.json", wd / "home", args.concurrency,
                             link.prefix() if link else "", wd / "logs" / "warmup.progress.jsonl")  # fmt: skip
        runs = min(MAX_RUNS, max(3, math.ceil(OUTLAST * args.duration_s / run_s)))
        say(
            f"one llama-benchy run ({args.concurrency} x {PP} prompt / {TG} output tokens) takes {run_s * 1000:.0f} ms "
            f"at best with no co-tenant: {runs} runs; co-tenant schedule {blocks} x {args.block_s:g} s blocks"
            + (f" (and {IDLER}'s, independent)" if idler else "")
        )
        plan = (HERE / "plan.toml").read_text()
        for key, value in (("blocks", blocks), ("block", args.block_s), ("seed", seed),
                           ("cgroup", "true" if mount is not None else "false"),
                           ("cgroup_parent", json.dumps(parent))):  # fmt: skip
            plan = re.sub(rf"(?m)^{key} = \S+", f"{key} = {value}", plan, count=1)
        plan = re.sub(r'(?m)^(\[\[cotenant\]\]\ngroup = )"[^"]*"', rf'\1"{group}"', plan)
        if idler:
            plan += IDLER_COTENANT
        (wd / "plan.toml").write_text(plan)
        cmd = cotenant_command(kind, args.cotenant_cmd, wd, link, args.cotenant_nice)
        senv = {**env, "NS_EX_URL": bench_url, "NS_EX_TOKENIZER": str(wd / "tokenizer.json"), "NS_EX_RUNS": str(runs),
                "NS_EX_CONCURRENCY": str(args.concurrency), "NS_EX_HOME": str(wd / "home"), "NS_EX_DIR": str(HERE),
                "NS_EX_BENCH_PREFIX": link.prefix() if link else "", "NS_EX_COTENANT_CMD": cmd}  # fmt: skip
        say(f"running the stress plan (neighborscope stress run); co-tenant: {cmd}")
        sr = subprocess.Popen([*NEIGHBORSCOPE, "stress", "run", str(wd / "plan.toml"), "--store", store,
                               "--workdir", str(wd / "stress")], cwd=wd, env=senv, stdin=subprocess.DEVNULL)  # fmt: skip
        stack.callback(stack.stop, sr, "stress run", 30.0)  # on an error or SIGTERM: it stops its co-tenant first
        sr.wait()
        if agent.poll() is not None:
            raise SystemExit(
                f"the agent died (exit {agent.returncode}): {(wd / 'logs' / 'agent.log').read_text()[-2000:]}"
            )
        time.sleep(1.5)  # the agent's last flush
        stack.stop(agent, "agent")
        stack.stop(server, "server")
        coll.stop()
    signal.signal(signal.SIGTERM, previous)
    shutil.rmtree(wd / "iohog", ignore_errors=True)
    if sr.returncode != 0:
        say(f"the stress plan reported failures (exit {sr.returncode}); see {wd / 'stress'}")

    setup = {"cotenant": kind, "cotenant_group": group, "cotenant_command": cmd,
             "duration_s": args.duration_s, "blocks": blocks, "block_s": args.block_s, "seed": seed,
             "quiet_cotenants": list(idler),
             "llama_benchy_runs": runs, "concurrency": args.concurrency, "run_s_no_cotenant": run_s,
             "token_ms": args.token_ms, "prompt_tokens": PP, "output_tokens": TG, "cpus": os.cpu_count(),
             "experiment_wall_s": time.monotonic() - t_begin, "workdir": str(wd),
             "cotenant_nice": args.cotenant_nice, "cgroups": mount is not None, "samplers_extra": extra,
             "server_disk_path": disk, "kv_offload_mb": args.kv_offload_mb,
             "link": None if link is None else {"rate_mbit": args.rate_mbit, "latency_ms": args.link_latency_ms},
             "loadavg_end": os.getloadavg(), "stress_exit_code": sr.returncode}  # fmt: skip
    (wd / "setup.json").write_text(json.dumps(setup, indent=2, default=str) + "\n")
    return analyse(wd, setup, args, expect, expect_none, t_begin)


def analyse(wd: Path, setup: dict[str, Any], args: argparse.Namespace, expect: str | None, expect_none: bool,
            t_begin: float) -> int:  # fmt: skip
    """`neighborscope analyze` on the experiment's store, the ITL off / on, the check; findings.json."""
    group = setup["cotenant_group"]
    store = str(wd / "store")
    out_path = args.out or wd / "findings.json"
    say("analysing (neighborscope analyze)")
    aj = wd / "analysis.json"
    topo = ["--topology", str(wd / "topology.json")] if (wd / "topology.json").exists() else []
    an = subprocess.run([*NEIGHBORSCOPE, "analyze", "--store", store, "--victim", VICTIM, "--window-s",
                         str(args.window_s), *topo, "--json", str(aj)])  # fmt: skip
    if an.returncode != 0 or not aj.exists():
        say(f"analysis failed (exit {an.returncode})")
        return 2
    result = findings(json.loads(aj.read_text()), itl_by_cotenant(store, VICTIM, group))
    quiet = tuple(setup.get("quiet_cotenants") or ())
    result["quiet_cotenants"] = list(quiet)
    ok, wanted = check(result, group, None if args.no_check else expect, expect_none and not args.no_check,
                       () if args.no_check else quiet)  # fmt: skip
    result["check"] = {"ok": ok, "expected": wanted, "expect_resource": expect, "expect_none": expect_none,
                       "expect_not_significant": list(quiet)}  # fmt: skip
    result["setup"] = {**setup, "window_s": args.window_s, "wall_s": time.monotonic() - t_begin,
                       "loadavg_analysis": os.getloadavg()}  # fmt: skip
    out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    report(result, out_path)
    if not ok:
        say(f"expected finding missing: {wanted}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
