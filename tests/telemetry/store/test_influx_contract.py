"""The store contract (tests/telemetry/store/test_contract.py) run against the InfluxDB store on a real influxd.

The queued store acknowledges a write before InfluxDB has it; `FlushingStore` waits for the queue after each
write, so the contract's write-then-read tests see their data.
"""

from __future__ import annotations

import pytest

from telemetry.store.base import open_store
from tests.telemetry.store.test_contract import (  # noqa: F401 - collected here with this module's `store`
    test_absent_values_stay_absent_not_zero,
    test_artifacts_round_trip,
    test_batch_replay_is_stored_once,
    test_query_filters_by_time_range_and_tags,
    test_series_lists_distinct_tag_sets,
    test_store_implements_the_protocol,
    test_unknown_measurement_and_empty_query,
    test_written_rows_read_back_identically,
)

pytestmark = pytest.mark.influx


class FlushingStore:
    """The queued InfluxDB store, flushed after every write (test only: production never waits)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def write(self, measurement, frame):
        n = self.inner.write(measurement, frame)
        assert self.inner.flush(30)
        return n

    def write_batch(self, key, frames):
        new = self.inner.write_batch(key, frames)
        assert self.inner.flush(30)
        return new

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def store(influx_url):
    inner = open_store(influx_url)
    yield FlushingStore(inner)
    inner.close()
