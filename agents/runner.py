"""The benchmark wrapper behind `neighborscope run`.

Records a `run_event` ``start`` (wall clock as the row time, ``time.monotonic()`` as ``monotonic_s``)
before the command and an ``end`` (with the exit code) after it, streams the command's output through
(the child inherits stdout / stderr), and hands the result file to the benchmark importer as a
subprocess (``neighborscope import bench FILE --run ID --phase P --group G --store S --wall-start W
--monotonic-start M``). The events go through the agent's transport: posted at once, and left in the
node's spool directory (which the running agent delivers) while the collector is unreachable.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.config import AgentConfig
from agents.spool import DiskSpool, MemorySpool, Spool
from agents.transport import Sender, Transport

log = logging.getLogger(__name__)


def _say(message: str) -> None:
    print(f"neighborscope run: {message}", file=sys.stderr, flush=True)


def _sender(cfg: AgentConfig) -> Sender:
    spool: Spool
    try:
        spool = DiskSpool(cfg.spool_dir, cfg.spool_max_bytes) if cfg.spool_dir else MemorySpool()
    except OSError as exc:
        _say(f"cannot use the spool {cfg.spool_dir} ({exc.strerror}); run events are kept in memory only")
        spool = MemorySpool()
    transport = (
        Transport(cfg.collector_url, cfg.token, timeout_s=5.0, ca_file=cfg.ca_file) if cfg.collector_url else None
    )
    return Sender(cfg.node, spool, transport, boot_id=f"run-{uuid.uuid4().hex}", backoff_min_s=0.2, backoff_max_s=1.0)


def _deliver(sender: Sender, what: str) -> None:
    if sender.transport is None:
        _say(f"no collector configured: the {what} event stays in the spool")
        return
    if not sender.drain(5.0):
        where = getattr(sender.spool, "path", None)
        _say(
            f"collector unreachable ({sender.last_error}): the {what} event is "
            + (f"spooled in {where} for the agent to deliver" if where else "LOST (no spool directory)")
        )


def run_benchmark(
    cfg: AgentConfig,
    command: list[str],
    *,
    group: str,
    phase: str,
    run_id: str | None = None,
    tool: str | None = None,
    result: Path | None = None,
    store: str | None = None,
) -> int:
    """Run ``command`` between a start and an end run_event; returns its exit code."""
    if not command:
        _say("no command given (put it after --)")
        return 2
    run_id = run_id or f"{group}-{phase}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    tags = {"run_id": run_id, "group": group, "phase": phase}
    sender = _sender(cfg)
    sender.start()
    wall_start_ns, mono_start = time.time_ns(), time.monotonic()
    cmd_text = " ".join(command)
    sender.submit(
        {
            "run_event": [
                {
                    "time": wall_start_ns,
                    **tags,
                    "event": "start",
                    "monotonic_s": mono_start,
                    "tool": tool,
                    "command": cmd_text,
                }
            ]
        }
    )
    _deliver(sender, "start")
    try:
        proc = subprocess.Popen(command)  # output streams straight through
    except OSError as exc:
        _say(f"cannot start {command[0]!r}: {exc.strerror}")
        code = 127
    else:
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            code = proc.wait()
    wall_end_ns, mono_end = time.time_ns(), time.monotonic()
    meta: dict[str, Any] = {"duration_s": mono_end - mono_start, "wall_start_ns": wall_start_ns}
    if result is not None:
        meta["result_file"] = str(result)
    sender.submit(
        {
            "run_event": [
                {
                    "time": wall_end_ns,
                    **tags,
                    "event": "end",
                    "monotonic_s": mono_end,
                    "tool": tool,
                    "command": cmd_text,
                    "exit_code": code,
                    "metadata_json": json.dumps(meta, sort_keys=True),
                }
            ]
        }
    )
    _deliver(sender, "end")
    sender.stop(1.0)
    if result is not None:
        _import(result, run_id, phase, group, cfg.node, store, wall_start_ns / 1e9, mono_start)
    return code


def import_command(
    result: Path,
    run_id: str,
    phase: str,
    group: str,
    node: str,
    store: str | None,
    wall_start: float,
    mono_start: float,
) -> list[str]:
    """The importer's command line (``neighborscope import bench ...``) for a result file."""
    cmd = [
        sys.executable,
        "-m",
        "telemetry.cli",
        "import",
        "bench",
        str(result),
        "--run",
        run_id,
        "--phase",
        phase,
        "--group",
        group,
        "--node",
        node,
        "--wall-start",
        repr(wall_start),
        "--monotonic-start",
        repr(mono_start),
    ]
    if store:
        cmd += ["--store", store]
    return cmd


def _import(
    result: Path,
    run_id: str,
    phase: str,
    group: str,
    node: str,
    store: str | None,
    wall_start: float,
    mono_start: float,
) -> None:
    cmd = import_command(result, run_id, phase, group, node, store, wall_start, mono_start)
    shown = " ".join(["neighborscope", *cmd[3:]])
    if not result.exists():
        _say(f"no result file {result}: nothing to import (the run_events are recorded)")
        return
    if not store:
        _say(f"no --store given: import the result later with: {shown} --store STORE")
        return
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        reason = (proc.stderr or proc.stdout).strip().splitlines()
        _say(
            f"the benchmark importer failed (exit {proc.returncode}): {reason[-1] if reason else 'no output'}; "
            f"the run_events are recorded; retry with: {shown}"
        )
        return
    _say(f"imported {result} as run {run_id}")
