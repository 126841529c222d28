"""The CPU-hungry co-tenant: pure-Python busy loops (default: two per core), until SIGTERM.

    python examples/cpu-neighbor/cpuhog.py --procs 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys


def burn() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    x = 0
    while True:
        for i in range(100_000):
            x = (x * 31 + i) & 0xFFFFFFFF


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=2 * (os.cpu_count() or 1), help="busy processes (default: two per core)")
    args = ap.parse_args(argv)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=burn, daemon=True) for _ in range(max(1, args.procs))]
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
