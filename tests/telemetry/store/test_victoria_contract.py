"""The store contract (tests/telemetry/store/test_contract.py) run against the VictoriaMetrics store on a real
VictoriaMetrics server, twice: ``downsample`` reduced on the server (``query_range``: the fixture's server runs
with ``-dedup.minScrapeInterval=1ms``) and from raw samples (``downsample=raw``: ``/api/v1/export``).

The queued store acknowledges a write before VictoriaMetrics has it; `FlushingStore` waits for the queue after
each write (and the queue's flush asks the server to make the writes searchable), so the contract's
write-then-read tests see their data. Every contract test passes: none is marked xfail.
"""

from __future__ import annotations

import pytest

from telemetry.store.factory import open_store
from tests.telemetry.store import test_contract
from tests.telemetry.store.test_influx_contract import FlushingStore

# every test of the contract, collected here with this module's `store`
globals().update({name: fn for name, fn in vars(test_contract).items() if name.startswith("test_")})

pytestmark = pytest.mark.influx


@pytest.fixture(params=["server", "raw"])
def store(request, vm_url):
    inner = open_store(f"{vm_url}&downsample={request.param}")
    yield FlushingStore(inner)
    inner.close()
