"""Dashboard fixtures: a demo-like store (simulated seed 000, built once per session) and an empty store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboard.demo_store import build_demo_store
from tests.dashboard.fleet_store import build_fleet_store

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = {
    "overview": "views/overview.py",
    "node_detail": "views/node_detail.py",
    "noisy_neighbours": "views/noisy_neighbours.py",
    "runs": "views/runs.py",
    "alerts": "views/alerts.py",
}


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_store(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def small_fleet_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 nodes x 34 accelerators, 20 minutes at 1 Hz ending now, trouble planted on node-003, -007 and -011,
    with the alert engine's state beside the store (`tests/dashboard/fleet_store.py`)."""
    return build_fleet_store(tmp_path_factory.mktemp("fleet"), nodes=12, seconds=1200)


@pytest.fixture
def empty_store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path
