"""The victim benchmark as the plan runs it: llama-benchy, unmodified, as a child process; when the plan stops it at
the end of the schedule (``[victim] stop_after_schedule``: SIGINT, or SIGTERM), this passes SIGINT to
llama-benchy, waits for it, and writes the result with the requests that finished.

    python bench.py --progress RAW.jsonl --result OUT.jsonl -- python -m llama_benchy ... --emit-progress RAW.jsonl

llama-benchy's ``--emit-progress`` stream (``RAW``), interrupted, ends with a ``request_start`` that has no
``request_end`` and ``bench_complete`` with status ``error``; the importer refuses a request without its end, so the
unfinished request is left out of ``OUT`` (its tokens too) and nothing else is changed. Not interrupted, ``OUT`` is
``RAW`` as written. Exit code: llama-benchy's, or 0 when this stopped it and at least one request finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def finished_only(raw: str) -> tuple[str, int, int]:
    """``raw`` without the events of requests that have no ``request_end``: (text, finished, dropped)."""
    lines = raw.splitlines()
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append(None)  # a line cut by the interruption
    ended = {e.get("request_id") for e in events if isinstance(e, dict) and e.get("type") == "request_end"}
    started = {e.get("request_id") for e in events if isinstance(e, dict) and e.get("type") == "request_start"}
    keep = [
        line
        for line, e in zip(lines, events, strict=True)
        if isinstance(e, dict) and ("request_id" not in e or e["request_id"] in ended)
    ]
    return "".join(f"{line}\n" for line in keep), len(ended), len(started - ended)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--progress", type=Path, required=True, help="the --emit-progress file the benchmark writes")
    ap.add_argument("--result", type=Path, required=True, help="the result file to write (imported by the wrapper)")
    ap.add_argument("--grace-s", type=float, default=20.0, help="seconds the benchmark gets to stop after SIGINT")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- the benchmark's command line")
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("the benchmark's command line is missing (after --)")
    stopped = []

    def stop(signum: int, _frame: object) -> None:
        stopped.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    proc = subprocess.Popen(cmd, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = None
    while True:
        try:
            code = proc.wait(0.2)
            break
        except subprocess.TimeoutExpired:
            if stopped and deadline is None:
                deadline = time.monotonic() + args.grace_s
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
    if not args.progress.exists():
        print(f"bench.py: {args.progress} was not written (exit code {code})", file=sys.stderr)
        return code or 1
    if not stopped:
        if args.progress.resolve() != args.result.resolve():
            shutil.copyfile(args.progress, args.result)
        return code
    text, finished, dropped = finished_only(args.progress.read_text())
    args.result.write_text(text)
    print(f"bench.py: stopped; {finished} finished request(s) kept, {dropped} unfinished left out", file=sys.stderr)
    return 0 if finished else 1


if __name__ == "__main__":
    raise SystemExit(main())
