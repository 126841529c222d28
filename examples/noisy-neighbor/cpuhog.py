"""The CPU-hungry co-tenant: pure-Python busy loops (default: two per core), until SIGTERM.

    python examples/noisy-neighbor/cpuhog.py --procs 2

The stress runner starts it in a session of its own; where the kernel groups sessions for CPU fairness
(``kernel.sched_autogroup_enabled = 1``), all its loops together get one group's share of the CPU, so on a host
with many busy sessions it takes little from the victim unless ``--autogroup-nice`` raises its weight.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path


def burn() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    x = 0
    while True:
        for i in range(100_000):
            x = (x * 31 + i) & 0xFFFFFFFF


def idle() -> None:
    while True:
        time.sleep(3600)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--procs", type=int, default=2 * (os.cpu_count() or 1), help="busy processes (default: two per core)"
    )
    ap.add_argument(
        "--autogroup-nice",
        type=int,
        default=None,
        help="set the nice value of this session's scheduler autogroup (-20..19; negative needs root): "
        "with kernel.sched_autogroup_enabled every session is one scheduling group, so this is the "
        "co-tenant's CPU weight against the other sessions (like a container's cpu.weight)",
    )
    ap.add_argument(
        "--sleep", action="store_true", help="the processes sleep instead of burning (an A/A co-tenant: takes nothing)"
    )
    args = ap.parse_args(argv)
    if args.autogroup_nice is not None:
        try:
            Path("/proc/self/autogroup").write_text(str(args.autogroup_nice))
        except OSError as exc:
            print(f"cpuhog: cannot set the autogroup nice value: {exc}", file=sys.stderr)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=idle if args.sleep else burn, daemon=True) for _ in range(max(1, args.procs))]
    for p in procs:
        p.start()

    def stop(*_: object) -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(5)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
