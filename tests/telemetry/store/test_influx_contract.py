"""The store contract (tests/telemetry/store/test_contract.py) run against the InfluxDB store on a real influxd.

The queued store acknowledges a write before InfluxDB has it; `FlushingStore` waits for the queue after each
write, so the contract's write-then-read tests see their data.
"""

from __future__ import annotations

import pytest

from telemetry.store.factory import open_store
from tests.telemetry.store import test_contract

# every test of the contract, collected here with this module's `store`
globals().update({name: fn for name, fn in vars(test_contract).items() if name.startswith("test_")})

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
