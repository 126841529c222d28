"""The live noisy-neighbour alert end to end on this host, in one command (LIVE.md):

    python examples/noisy-neighbor/live.py [--duration-s 50] [--alertmanager URL|start|none]

1. a real collector (`neighborscope collector`, embedded store, one node token) on 127.0.0.1;
2. the victim: `server.py`, an OpenAI-compatible server whose ``/metrics`` speaks vLLM's metric names, in a
   cgroup v2 group of its own where the host allows (the agent then reads the victim's own CPU pressure);
3. the real agent (`neighborscope agent`): ``host`` and ``tenants`` (the server's process tree -> group
   ``victim``, the co-tenants' -> ``cpuhog`` / ``idler``) every 0.5 s, and ``serving`` scraping the server's
   ``/metrics`` as a production vLLM (``[[serving]] group = "victim" engine = "vllm"``) every 0.5 s;
4. production traffic: llama-benchy from PyPI, unmodified, streaming at the server from before the first phase
   to after the last; nothing of it is imported into the store (the victim's latency comes only from the engine's
   own histograms);
5. per phase, `neighborscope stress run` switches a co-tenant on and off at random in blocks (seeded; every
   switch a ``run_event``; the plan's victim step only spans the schedule): ``aa`` a sleeping process (A/A: shares
   nothing), ``ab`` a CPU hog (`cpuhog.py`);
6. after each phase, `neighborscope alerts` evaluates the live ``NoisyNeighbour`` rule over that phase (its
   ``lookback``) and delivers to a real Alertmanager (``--alertmanager``: a URL; ``start``, the default when the
   Debian ``prometheus-alertmanager`` binary is installed, starts one on a free port; ``none``: log only), whose
   ``/api/v2/alerts`` is then read back.

It writes ``WORKDIR/findings.json`` (``--out``): per phase the alert transitions, the alerts Alertmanager holds, the
victim's ITL p99 from the serving rows with the co-tenant off and on. Exit code 0 when the ``ab`` phase fired a
``NoisyNeighbour`` alert naming ``cpuhog`` through ``cpu`` and the ``aa`` phase fired nothing (``--no-check``:
0 unless a stage failed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from stack import NEIGHBORSCOPE, VICTIM, Stack, free_port, start_agent, start_collector, start_server, wait_http

HERE = Path(__file__).resolve().parent
NODE = "live-neighbor"
RULE = "NoisyNeighbour"
DASHBOARD = "http://127.0.0.1:8501"
PHASES = {
    "aa": {"plan": "live_plan_aa.toml", "cotenant": "idler", "expect": None},
    "ab": {"plan": "live_plan.toml", "cotenant": "cpuhog", "expect": "cpu"},
}
ALERTMANAGER_NAMES = ("prometheus-alertmanager", "alertmanager")
ALERTMANAGER_YML = """route:
  receiver: "null"
  group_by: ["alertname", "victim"]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"live-neighbor [{time.monotonic() - T0:5.1f} s]: {msg}", file=sys.stderr, flush=True)


def victim_cgroup(stack: Stack, wanted: bool) -> tuple[Any, str]:
    """A cgroup v2 group of the server's own (``neighborscope-live-<pid>/victim`` under the unified mount), so the
    agent reads the victim's own pressure stall time (``cpu.pressure``: the victim waiting for a CPU); removed at
    the end. (None, why) where there is no v2 mount or it is not writable: the analysis then has host-level
    evidence only."""
    if not wanted:
        return None, "off (--no-cgroups)"
    from analysis.stress.cgroups import Cgroup, CgroupError, v2_mount

    mount = v2_mount()
    if mount is None:
        return None, "no cgroup v2 mount on this host: no per-tenant pressure for the victim"
    cg = Cgroup.under(mount, f"neighborscope-live-{os.getpid()}/victim")
    try:
        cg.create()
    except CgroupError as exc:
        say(f"{exc}: the victim runs without a cgroup of its own")
        return None, str(exc)
    stack.callback(cg.remove)
    return cg, str(cg.path)


def agent_toml(collector_url: str, token: str, spool: Path, server_url: str, server_port_file: Path) -> str:
    """The node config: host, tenants and the server's /metrics as a vLLM endpoint, every 0.5 s (a live window
    needs two scrape intervals; 2 s windows hold >= 1000 inter-token latencies at this server's speed)."""
    # patterns that match this run's processes only (another experiment on the host runs the same scripts): the
    # server by its port file (in the work directory), the co-tenants by the markers their plans start them with
    server = re.escape(str(HERE / "server.py")) + ".*" + re.escape(str(server_port_file))
    hog = "-X live-neighbor-cpuhog .*" + re.escape(str(HERE / "cpuhog.py"))
    return f"""node = "{NODE}"
[collector]
url = "{collector_url}"
token = "{token}"
[agent]
cadence_s = 0.5
flush_s = 1.0
spool_dir = {json.dumps(str(spool))}
[samplers.host]
enabled = true
[samplers.tenants]
enabled = true
[samplers.serving]
cadence_s = 0.5
[samplers.nvml]
enabled = false
[samplers.amdgpu]
enabled = false
[samplers.hwmon]
enabled = false
[[tenants]]
group = "{VICTIM}"
cmdline = {json.dumps(server)}
[[tenants]]
group = "cpuhog"
cmdline = {json.dumps(hog)}
[[tenants]]
group = "idler"
cmdline = "-X live-neighbor-idler -c"
[[serving]]
group = "{VICTIM}"
url = "{server_url}/metrics"
engine = "vllm"
"""


def alerts_toml(
    state_dir: Path, alertmanager: str | None, lookback_s: float, fdr: float, enter_pct: float, window_s: float = 2.0
) -> str:
    """Only the live rule (no built-ins), firing at once (``for = 0``), on the phase just run (``lookback``), with
    ``window_s`` windows (a short phase needs short windows: the attribution wants at least 20 of them)."""
    am = "" if alertmanager is None else f'\n[[notifier]]\nkind = "alertmanager"\nurl = "{alertmanager}"\n'
    return f"""[alerts]
state_dir = {json.dumps(str(state_dir))}
builtin_rules = false
dashboard_url = "{DASHBOARD}"   # `neighborscope dashboard`'s default address: the alert links its noisy-neighbour page

[[rule]]
name = "{RULE}"
kind = "noisy_neighbour_live"
severity = "warning"
lookback = "{lookback_s:.0f}s"
window_s = {window_s:g}
for = "0s"
fdr = {fdr}
enter_pct = {enter_pct}
exit_pct = {enter_pct / 2}
metrics = ["itl", "ttft"]
{am}
[[notifier]]
kind = "log"
path = {json.dumps(str(state_dir / "alerts.log"))}
"""


def alertmanager_binary() -> str | None:
    for name in ALERTMANAGER_NAMES:
        if found := shutil.which(name):
            return found
    return None


def start_alertmanager(stack: Stack, home: Path) -> str:
    binary = alertmanager_binary()
    if binary is None:
        raise SystemExit("live-neighbor: --alertmanager start: prometheus-alertmanager is not installed")
    (home / "data").mkdir(parents=True)
    (home / "alertmanager.yml").write_text(ALERTMANAGER_YML)
    port = free_port()
    log = home / "alertmanager.log"
    argv = [binary, f"--config.file={home / 'alertmanager.yml'}", f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]  # fmt: skip
    proc = stack.start("alertmanager", argv, log)
    return wait_http(proc, lambda: f"http://127.0.0.1:{port}", "/-/ready", "alertmanager", log, timeout_s=30)


def alertmanager_alerts(url: str, since: datetime) -> list[dict[str, Any]]:
    """The ``NoisyNeighbour`` alerts Alertmanager holds for this node that started since ``since`` (an Alertmanager
    used before keeps older ones until they resolve)."""
    r = httpx.get(url + "/api/v2/alerts", params={"filter": [f'alertname="{RULE}"', f'node="{NODE}"']}, timeout=10)
    r.raise_for_status()
    out = []
    for a in r.json():
        started = datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00"))
        if started >= since - timedelta(seconds=1):
            out.append({"labels": a["labels"], "annotations": a.get("annotations", {}),
                        "status": a.get("status", {}), "startsAt": a["startsAt"]})  # fmt: skip
    return out


def traffic_argv(url: str, tokenizer: Path, concurrency: int) -> list[str]:
    """llama-benchy, unmodified, as the production traffic: endless runs of 64 prompt / 32 output tokens."""
    return [sys.executable, "-m", "llama_benchy", "--base-url", f"{url}/v1", "--model", "tiny-cpu-decoder",
            "--tokenizer", str(tokenizer), "--book-url", f"{url}/corpus.txt", "--pp", "64", "--tg", "32",
            "--runs", "1000000", "--concurrency", str(concurrency), "--skip-coherence",
            "--latency-mode", "api"]  # fmt: skip


def generated_tokens(url: str) -> float:
    """``vllm:generation_tokens_total`` of the server, read with prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "vllm:generation_tokens_total")  # fmt: skip


def wait_traffic(proc: subprocess.Popen, url: str, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"the traffic (llama-benchy) exited with code {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        if generated_tokens(url) > 0:
            return
        time.sleep(0.5)
    raise SystemExit(f"no tokens served {timeout_s:g} s after starting the traffic:\n{log.read_text()[-3000:]}")


def itl_p99_by_cotenant(store: str, cotenant: str, since: datetime, until: datetime) -> dict[str, Any]:
    """The victim's ITL p99 per serving scrape interval, with the co-tenant off and on (per the switch events;
    the median over intervals; what the engine's own histograms said)."""
    import polars as pl

    from telemetry.store.factory import open_store

    st = open_store(store)
    try:
        rows = st.query("serving", since, until, tags={"group": VICTIM})
        ev = st.query("run_event", since, until, tags={"event": ["switch_on", "switch_off"], "tenant": cotenant})
    finally:
        st.close()
    if rows.height == 0 or "itl_ms_p99" not in rows.columns:
        return {"serving_rows": rows.height}
    ev = ev.sort("time").select("time", (pl.col("event") == "switch_on").alias("on"))
    rows = rows.sort("time").join_asof(ev, on="time", strategy="backward").with_columns(pl.col("on").fill_null(False))
    out: dict[str, Any] = {"serving_rows": rows.height, "up_rows": int(rows["up"].sum()) if "up" in rows else None}
    for name, on in (("cotenant_off", False), ("cotenant_on", True)):
        part = rows.filter((pl.col("on") == on) & pl.col("itl_ms_p99").is_not_null())
        if part.height:
            out[name] = {"itl_ms_p99_median": part["itl_ms_p99"].median(), "intervals": part.height,
                         "itl_observations": int(part["itl_count"].sum()) if "itl_count" in part else None}  # fmt: skip
    return out


def phase_analysis(store: str, since: str, until: str, fdr: float, window_s: float) -> dict[str, Any]:
    """What the live rule saw: `analysis.analyze.analyze_live` over the phase's lookback (window lengths, every
    co-tenant tested with its effect and q, the notes), so an A/A phase that fires nothing shows it was tested."""
    from analysis.analyze import analyze_live
    from analysis.degradation import Thresholds
    from telemetry.errors import NeighborscopeError
    from telemetry.store.factory import open_store

    st = open_store(store)
    try:
        res = analyze_live(st, VICTIM, start=datetime.fromisoformat(since), end=datetime.fromisoformat(until),
                           node=NODE, thresholds=Thresholds(q=fdr), window_s=window_s)  # fmt: skip
    except (NeighborscopeError, ValueError) as exc:
        return {"error": str(exc)}
    finally:
        st.close()
    doc = res.to_dict()
    keep = ("antagonist", "resource", "effect_pct", "itl_p99_effect_pct", "itl_ci_low", "itl_ci_high", "q_value",
            "significant", "design", "evidence")  # fmt: skip
    return {"window_s": doc["window_s"], "window_s_ttft": doc["window_s_ttft"],
            "itl": [{k: a.get(k) for k in keep} for a in doc["antagonists"]],
            "ttft": [{k: a.get(k) for k in keep} for a in doc["antagonists_ttft"]], "notes": doc["notes"]}  # fmt: skip


def schedule_start(
    store: str, cotenant: str, since: datetime, until: datetime, plan_path: Path, block_s: float
) -> datetime | None:
    """When block 0 of the phase's schedule began: the first recorded ``switch_on`` of ``cotenant`` minus the blocks
    before it (from the plan's seeded schedule); None when the store has no switch (the runner failed)."""
    from analysis.stress.plan import load_plan, schedule
    from telemetry.store.factory import open_store

    (step,) = schedule(load_plan(plan_path), "live")
    first_on = next((k for k, on in enumerate(step.blocks) if on), None)
    st = open_store(store)
    try:
        ev = st.query("run_event", since, until, tags={"event": ["switch_on"], "tenant": cotenant}).sort("time")
    finally:
        st.close()
    if first_on is None or ev.height == 0:
        return None
    return ev["time"][0] - timedelta(seconds=first_on * block_s)


def run_phase(
    name: str,
    args: argparse.Namespace,
    wd: Path,
    store: str,
    env: dict[str, str],
    am_url: str | None,
    duration_s: float,
    cgroups: bool,
) -> dict[str, Any]:
    spec = PHASES[name]
    blocks = max(6, round(duration_s / args.block_s))
    lookback_s = (blocks - 1) * args.block_s  # blocks 1..N-1 (see below)
    (wd / "alerts.toml").write_text(alerts_toml(wd / "alerts", am_url, lookback_s, args.fdr, args.enter_pct,
                                                args.window_s))  # fmt: skip
    plan = (HERE / spec["plan"]).read_text()
    plan = re.sub(r"(?m)^blocks = .*$", f"blocks = {blocks}", plan)
    plan = re.sub(r"(?m)^block = .*$", f"block = {args.block_s}", plan)
    if not cgroups:
        plan = re.sub(r"(?m)^cgroup = true", "cgroup = false", plan)
    plan_path = wd / spec["plan"]
    plan_path.write_text(plan)
    since = datetime.now(UTC)
    env = {**env, "NS_LIVE_SPAN_S": f"{blocks * args.block_s + 0.5:g}"}
    say(f"phase {name}: co-tenant {spec['cotenant']} switched at random in {blocks} x {args.block_s:g} s blocks")
    sr = subprocess.run([*NEIGHBORSCOPE, "stress", "run", str(plan_path), "--store", store, "--workdir",
                         str(wd / f"stress-{name}")], cwd=wd, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    returned = datetime.now(UTC)
    time.sleep(2.0)  # the last serving scrape and the agent's last flush
    # The rule looks back over [until - lookback, until]: the schedule's blocks 1..N-1, from the recorded switches.
    # Block 0 is left out: the runner and its victim wrapper start during it, and their start-up (two Python
    # processes importing neighborscope) is CPU work that slows the victim with the co-tenant still off.
    start = schedule_start(store, spec["cotenant"], since, returned, plan_path, args.block_s)
    until = returned if start is None else start + timedelta(seconds=blocks * args.block_s)
    say(f"phase {name}: evaluating the {RULE} rule (neighborscope alerts)")
    ev = subprocess.run([*NEIGHBORSCOPE, "alerts", "--config", str(wd / "alerts.toml"), "--store", store, "--now",
                         until.isoformat(), "--json"], env=env, capture_output=True, text=True)  # fmt: skip
    (wd / "logs" / f"alerts-{name}.log").write_text(ev.stdout + ev.stderr)
    transitions = []
    for line in ev.stdout.splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict):
                transitions.append(doc)
    held: list[dict[str, Any]] | None = None
    if am_url is not None:
        time.sleep(1.0)
        held = alertmanager_alerts(am_url, since)
    fired = [t for t in transitions if (t.get("labels") or {}).get("alertname") == RULE]
    return {
        "cotenant": spec["cotenant"],
        "blocks": blocks,
        "block_s": args.block_s,
        "lookback_s": lookback_s,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "schedule_start": None if start is None else start.isoformat(),
        "rule_from": (until - timedelta(seconds=lookback_s)).isoformat(),
        "stress_exit_code": sr.returncode,
        "alerts_exit_code": ev.returncode,
        "alerts_stderr_tail": ev.stderr[-1500:],
        "transitions": transitions,
        "fired": fired,
        "alertmanager": held,
        "victim": itl_p99_by_cotenant(store, spec["cotenant"], since, until),
    }


def check(result: dict[str, Any]) -> list[str]:
    """What is wrong with the outcome (empty: as expected)."""
    problems = []
    for name, phase in result["phases"].items():
        expect = PHASES[name]["expect"]
        alerts = phase["alertmanager"] if phase["alertmanager"] is not None else phase["fired"]
        ours = [a for a in alerts if a["labels"].get("alertname") == RULE]
        if expect is None and ours:
            problems.append(f"phase {name}: {len(ours)} {RULE} alert(s) fired with an idle co-tenant")
        if expect is not None:
            hit = [a for a in ours if a["labels"].get("antagonist") == phase["cotenant"]
                   and a["labels"].get("resource") == expect and a["labels"].get("victim") == VICTIM]  # fmt: skip
            if not hit:
                problems.append(f"phase {name}: no {RULE} alert naming {phase['cotenant']} through {expect}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=50.0, help="length of each phase's on/off schedule")
    ap.add_argument("--aa-duration-s", type=float, default=None,
                    help="length of the aa phase's schedule (default: --duration-s)")  # fmt: skip
    ap.add_argument("--block-s", type=float, default=5.0, help="seconds per on/off block")
    ap.add_argument("--phases", default="aa,ab", help="which phases, in order: aa (idle co-tenant), ab (CPU hog)")
    ap.add_argument("--workdir", type=Path, default=Path("neighborscope-demo/live-neighbor"),
                    help="work directory (emptied first)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=None, help="findings JSON (default: WORKDIR/findings.json)")
    ap.add_argument("--alertmanager", default=None,
                    help="Alertmanager URL to deliver to; 'start': start prometheus-alertmanager on a free port "
                    "(the default when installed); 'none': log notifier only")  # fmt: skip
    ap.add_argument("--token-ms", type=float, default=1.0, help="server CPU time per token on an idle core")
    ap.add_argument("--concurrency", type=int, default=2,
                    help="llama-benchy --concurrency (streams at once; 2 keeps the engine busy between requests)",
                    )  # fmt: skip
    ap.add_argument("--max-num-seqs", type=int, default=4, help="server --max-num-seqs")
    ap.add_argument("--window-s", type=float, default=2.0, help="the live analysis window of the rule (window_s)")
    ap.add_argument("--fdr", type=float, default=0.05, help="the rule's q-value gate")
    ap.add_argument("--enter-pct", type=float, default=10.0, help="the rule's effect threshold (lower bound, %%)")
    ap.add_argument("--cotenant-nice", type=int, default=None,
                    help="autogroup nice of the CPU hog (e.g. -10: a heavier CPU weight; see cpuhog.py --help)",
                    )  # fmt: skip
    ap.add_argument("--no-cgroups", dest="cgroups", action="store_false",
                    help="no cgroup v2 groups for the server and the co-tenants (default: where the host allows)",
                    )  # fmt: skip
    ap.add_argument("--no-check", action="store_true", help="exit 0 even when the expected outcome is missing")
    args = ap.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not phases or any(p not in PHASES for p in phases):
        ap.error(f"--phases: a comma-separated list of {', '.join(PHASES)}, got {args.phases!r}")
    phase_s = {"aa": args.duration_s if args.aa_duration_s is None else args.aa_duration_s, "ab": args.duration_s}
    for opt, value in (("--duration-s", args.duration_s), ("--aa-duration-s", phase_s["aa"])):
        if value < 6 * args.block_s:
            ap.error(f"{opt} {value:g} holds fewer than 6 blocks of {args.block_s:g} s")
    import importlib.util

    if importlib.util.find_spec("llama_benchy") is None:
        raise SystemExit("live-neighbor: llama-benchy is not installed in this Python: pip install llama-benchy")
    am_mode = args.alertmanager or ("start" if alertmanager_binary() else "none")
    t_begin = time.monotonic()

    wd = args.workdir.resolve()
    if wd.exists():
        shutil.rmtree(wd)
    (wd / "logs").mkdir(parents=True)
    (wd / "home").mkdir()
    store = str(wd / "store")
    token = secrets.token_hex(16)
    out_path = args.out or wd / "findings.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result: dict[str, Any] = {"phases": {}}

    with Stack(say) as stack:
        say("starting the collector, the server, the agent" + (" and Alertmanager" if am_mode == "start" else ""))
        am_url = None if am_mode == "none" else (start_alertmanager(stack, wd / "alertmanager")
                                                 if am_mode == "start" else am_mode.rstrip("/"))  # fmt: skip
        sport = wd / "server.port"
        cg, cg_note = victim_cgroup(stack, args.cgroups)
        result["victim_cgroup"] = cg_note
        server, server_up = start_server(stack, wd, ["--token-ms", str(args.token_ms), "--max-num-seqs",
                                                     str(args.max_num_seqs)],
                                         preexec_fn=None if cg is None else cg.join_self)  # fmt: skip
        coll = start_collector(stack, wd, NODE, token)
        surl = server_up()
        (wd / "tokenizer.json").write_bytes(httpx.get(surl + "/tokenizer.json", timeout=10).content)
        (wd / "agent.toml").write_text(agent_toml(coll.url, token, wd / "spool", surl, sport))
        alog = wd / "logs" / "agent.log"
        agent = start_agent(stack, wd / "agent.toml", alog)
        time.sleep(2.0)
        if agent.poll() is not None:
            raise SystemExit(f"the agent exited with code {agent.returncode}:\n{alog.read_text()[-3000:]}")
        say("starting the production traffic (llama-benchy)")
        tlog = wd / "logs" / "traffic.log"
        tenv = {**env, "HOME": str(wd / "home"), "HF_HUB_OFFLINE": "1"}  # its caches stay in the work directory
        traffic = stack.start("traffic", traffic_argv(surl, wd / "tokenizer.json", args.concurrency), tlog, env=tenv)
        wait_traffic(traffic, surl, tlog)
        hog_args = "" if args.cotenant_nice is None else f"--autogroup-nice {args.cotenant_nice}"
        penv = {**env, "NS_LIVE_DIR": str(HERE), "NS_LIVE_HOG_ARGS": hog_args}
        for name in phases:
            result["phases"][name] = run_phase(name, args, wd, store, penv, am_url, phase_s[name], cg is not None)
            if agent.poll() is not None:
                raise SystemExit(f"the agent died (exit {agent.returncode}):\n{alog.read_text()[-3000:]}")
            if traffic.poll() is not None:
                raise SystemExit(f"the traffic stopped (exit {traffic.returncode}):\n{tlog.read_text()[-3000:]}")
        stack.stop(traffic, "traffic")
        result["server_health"] = httpx.get(surl + "/health", timeout=10).json()
        stack.stop(agent, "agent")
        stack.stop(server, "server")
        coll.stop()

    say("the live analysis of each phase's lookback (what the rule saw)")
    for phase in result["phases"].values():
        phase["analysis"] = phase_analysis(store, phase["rule_from"], phase["until"], args.fdr, args.window_s)
    result["setup"] = {"duration_s": args.duration_s, "aa_duration_s": phase_s["aa"], "block_s": args.block_s,
                       "token_ms": args.token_ms,
                       "concurrency": args.concurrency, "max_num_seqs": args.max_num_seqs, "fdr": args.fdr,
                       "enter_pct": args.enter_pct,
                       "lookback_s": (round(args.duration_s / args.block_s) - 1) * args.block_s,
                       "window_s": args.window_s,
                       "alertmanager": am_url,
                       "cotenant_nice": args.cotenant_nice, "cpus": os.cpu_count(), "loadavg_end": os.getloadavg(),
                       "wall_s": time.monotonic() - t_begin, "workdir": str(wd)}  # fmt: skip
    problems = check(result)
    result["problems"] = problems
    out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")

    print()
    for name, phase in result["phases"].items():
        alerts = phase["alertmanager"] if phase["alertmanager"] is not None else phase["fired"]
        where = "in Alertmanager" if phase["alertmanager"] is not None else "fired (log notifier)"
        print(f"phase {name} (co-tenant {phase['cotenant']}): {len(alerts)} {RULE} alert(s) {where}")
        for a in alerts:
            lab, ann = a["labels"], a.get("annotations", {})
            print(f"  {lab.get('antagonist')} via {lab.get('resource')} on {lab.get('victim')} "
                  f"({lab.get('metric', '-')}): {ann.get('effect', '')} q = {ann.get('q_value', '-')}")  # fmt: skip
        an = phase.get("analysis") or {}
        for a in an.get("itl") or []:
            print(f"  analysis (ITL, {an.get('window_s')} s windows): {a['antagonist']} via {a['resource']}: p99 ITL "
                  f"{a['itl_p99_effect_pct'] if a['itl_p99_effect_pct'] is not None else float('nan'):+.1f} %, "
                  f"q = {a['q_value']}")  # fmt: skip
        if an.get("error") or not an.get("itl"):
            print(f"  analysis: {an.get('error') or 'no co-tenant tested'}")
        v = phase["victim"]
        for state in ("cotenant_off", "cotenant_on"):
            if state in v:
                print(f"  victim ITL p99 (engine histograms, median of scrape intervals), {state.replace('_', ' ')}: "
                      f"{v[state]['itl_ms_p99_median']:.2f} ms ({v[state]['intervals']} intervals)")  # fmt: skip
    print(f"findings written to {out_path}")
    for p in problems:
        say(p)
    return 0 if not problems or args.no_check else 1


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    raise SystemExit(main())
