"""Where the dashboard reads from: set by ``neighborscope dashboard`` through the environment (no Streamlit here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STORE = "neighborscope-data/store"


@dataclass(frozen=True)
class Settings:
    """Where the dashboard reads from (see the module docstring for the environment variables)."""

    store_url: str
    topology_path: str | None
    reports_dir: str | None
    alert_state: str | None
    refresh_s: int

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            store_url=os.environ.get("NEIGHBORSCOPE_STORE") or DEFAULT_STORE,
            topology_path=os.environ.get("NEIGHBORSCOPE_TOPOLOGY") or None,
            reports_dir=os.environ.get("NEIGHBORSCOPE_REPORTS") or None,
            alert_state=os.environ.get("NEIGHBORSCOPE_ALERT_STATE") or None,
            refresh_s=int(os.environ.get("NEIGHBORSCOPE_REFRESH_S") or 30),
        )

    def local_root(self) -> Path | None:
        """The embedded store's directory (None for InfluxDB URLs)."""
        url = self.store_url
        if "://" in url and not url.startswith("file://"):
            return None
        return Path(url.removeprefix("file://"))

    def beside_store(self, name: str) -> list[Path]:
        """Where a file named ``name`` may sit: in the store directory, then beside it."""
        root = self.local_root()
        return [] if root is None else [root / name, root.parent / name]
