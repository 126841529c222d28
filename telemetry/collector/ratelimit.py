"""Per-node token buckets: a node that sends faster than its budget gets 429 with Retry-After."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBuckets:
    """One bucket per key, refilled at ``rate`` per second up to ``burst``. Thread-safe."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, amount: float) -> float:
        """Take ``amount`` from ``key``'s bucket: 0.0 if granted, else the seconds to wait before retrying.

        A request larger than the burst can never fit; it is granted when the bucket is full and leaves it
        in debt, so one oversized batch slows its node down instead of being refused forever.
        """
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            level, last = self._state.get(key, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            if level >= min(amount, self.burst):
                self._state[key] = (level - amount, now)
                return 0.0
            self._state[key] = (level, now)
            return (min(amount, self.burst) - level) / self.rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
