"""Run artifacts (token arrays) of a server store, kept on local disk in an embedded store beside its queue.

InfluxDB and VictoriaMetrics hold numbers by series, not Parquet artifacts; both keep theirs here. A store mixes in
`LocalArtifacts` and names the directory (`_artifacts_root`); the embedded store is opened on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl


class LocalArtifacts:
    """``write_artifact`` / ``read_artifact`` / ``scan_artifact`` / ``list_artifacts`` through an embedded store at `_artifacts_root`."""

    _artifacts: Any = None

    def _artifacts_root(self) -> Path:
        raise NotImplementedError

    def _artifact_store(self) -> Any:
        if self._artifacts is None:
            from telemetry.store.parquet import ParquetStore

            self._artifacts = ParquetStore(self._artifacts_root())
        return self._artifacts

    def write_artifact(self, key: str, frame: pl.DataFrame) -> Path:
        return self._artifact_store().write_artifact(key, frame)

    def read_artifact(self, key: str) -> pl.DataFrame | None:
        return self._artifact_store().read_artifact(key)

    def scan_artifact(self, key: str) -> pl.LazyFrame | None:
        return self._artifact_store().scan_artifact(key)

    def prune_artifacts(self, prefix: str, keep_bytes: int) -> int:
        return self._artifact_store().prune_artifacts(prefix, keep_bytes)

    def list_artifacts(self, prefix: str = "") -> list[str]:
        return self._artifact_store().list_artifacts(prefix)

    def _close_artifacts(self) -> None:
        if self._artifacts is not None:
            self._artifacts.close()
            self._artifacts = None
