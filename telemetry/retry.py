"""One retry policy for every sender: exponential backoff with jitter that honours the server's ``Retry-After``.

Used by the agent's sender (collector down), the remote store's drain loop (InfluxDB down) and the demo's
pusher. A loop asks `Backoff.next_wait` after each failure and calls `Backoff.reset` after a success::

    backoff = Backoff(min_s=0.5, max_s=30)
    while True:
        result = post(body)
        if result.ok:
            backoff.reset(); continue
        stop.wait(backoff.next_wait(parse_retry_after(result.headers.get("Retry-After"))))

Why not tenacity / backoff: those wrap a call in a decorator and sleep themselves; our loops wait on a
``threading.Event`` so that shutdown and "hurry" signals cut a wait short. The policy is what is shared.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]

#: a server's Retry-After is honoured up to this many seconds (a misconfigured one must not park a sender for days)
RETRY_AFTER_CAP_S = 300.0


@dataclass
class Backoff:
    """Exponential backoff, doubling from ``min_s`` up to ``max_s``, with ±``jitter`` (a fraction) spread.

    A ``Retry-After`` given by the server replaces the computed wait (capped at `RETRY_AFTER_CAP_S`) and does
    not advance the exponent: the server said when to come back.
    """

    min_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2
    factor: float = 2.0
    _current: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.min_s <= 0 or self.max_s < self.min_s:
            raise ValueError(f"backoff needs 0 < min_s <= max_s, got min_s={self.min_s}, max_s={self.max_s}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff jitter must be in [0, 1), got {self.jitter}")
        self._current = self.min_s

    @property
    def current_s(self) -> float:
        """The un-jittered wait the next failure will get."""
        return self._current

    def next_wait(self, retry_after_s: float | None = None) -> float:
        """Seconds to wait after a failure; ``retry_after_s`` is the server's ``Retry-After`` if it sent one."""
        if retry_after_s is not None and retry_after_s >= 0:
            return min(float(retry_after_s), RETRY_AFTER_CAP_S)
        wait = self._current * random.uniform(1 - self.jitter, 1 + self.jitter)
        self._current = min(self.max_s, self._current * self.factor)
        return wait

    def reset(self) -> None:
        """After a success: the next failure waits ``min_s`` again."""
        self._current = self.min_s


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (RFC 9110: delay-seconds or an HTTP-date) as seconds from now; None if absent
    or unreadable. A date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)
