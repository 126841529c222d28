"""fake_sysfs: a copy of a committed fake sysfs tree (tests/fixtures/sysfs/<case>) that a test may change."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sysfs"


@pytest.fixture
def fake_sysfs(tmp_path: Path) -> Callable[[str], Path]:
    def copy(case: str) -> Path:
        dest = tmp_path / case
        shutil.copytree(FIXTURES / case, dest, symlinks=True)
        return dest

    return copy
