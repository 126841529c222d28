"""telemetry.retry: the one backoff policy every sender shares."""

from datetime import UTC, datetime

import pytest

from telemetry.retry import RETRY_AFTER_CAP_S, Backoff, parse_retry_after


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_success():
    b = Backoff(min_s=1, max_s=5, jitter=0)
    assert [b.next_wait() for _ in range(5)] == [1, 2, 4, 5, 5]
    b.reset()
    assert b.next_wait() == 1


def test_jitter_spreads_waits_within_its_fraction():
    b = Backoff(min_s=10, max_s=10, jitter=0.2)
    waits = [b.next_wait() for _ in range(200)]
    assert min(waits) >= 8 and max(waits) <= 12
    assert max(waits) - min(waits) > 1  # not a constant


def test_a_server_retry_after_replaces_the_wait_and_keeps_the_exponent():
    b = Backoff(min_s=1, max_s=60, jitter=0)
    b.next_wait()
    assert b.next_wait(retry_after_s=7) == 7
    assert b.next_wait() == 2  # the exponent did not move for the server's wait
    assert b.next_wait(retry_after_s=10**6) == RETRY_AFTER_CAP_S


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("Sat, 05 Dec 2026 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Sat, 05 Dec 2026 11:00:00 GMT", now=now) == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="min_s"):
        Backoff(min_s=0)
    with pytest.raises(ValueError, match="min_s"):
        Backoff(min_s=5, max_s=1)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)
