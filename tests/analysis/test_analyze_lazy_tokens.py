"""`analyze` reads the runs' per-token artifacts lazily (a scan of the per-run files that its consumers read a few
runs at a time: a week of tokens never sits in memory): the result equals the eager path's (every token read up
front), and an unreadable tokens artifact is named, never a traceback (seed 000 simulated, AIPerf runs imported)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analysis.analyze import analyze
from analysis.ingest.model import artifact_key, list_runs, load_requests, tokens_frame
from telemetry.cli import app
from telemetry.store.factory import open_store
from tests.faults.test_report_unreadable_files import build_store


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 000 imported from AIPerf, plus each run's per-token artifact (as the simulator's and the benchmark
    runner's imports store it: `benchmarks/analysis_scale.py`)."""
    root = build_store(tmp_path_factory.mktemp("lazy-tokens"))
    st = open_store(root)
    try:
        for run in list_runs(st):
            req = load_requests(st, run.run_id)
            assert req is not None and req.height
            st.write_artifact(artifact_key(run.run_id, "tokens"), tokens_frame(req))
    finally:
        st.close()
    return root


class _NoArtifactFiles:
    """The same real store, without the artifact file paths: `analyze` then reads every run's tokens up front
    (the path of stores that keep no per-run files, e.g. InfluxDB)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "_artifact_path":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_lazy_tokens_give_the_eager_result(good_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import analysis.analyze as an

    monkeypatch.setattr(an, "EAGER_TOKEN_ROWS", 0)  # a small store's tokens would be read at once: stay lazy
    st = open_store(good_store, create=False)
    try:
        lazy = analyze(st, "hive0", n_shifts=99)
        eager = analyze(_NoArtifactFiles(st), "hive0", n_shifts=99)
    finally:
        st.close()
    assert lazy.attribution is not None and lazy.antagonists.height
    assert lazy.windows is not None and lazy.windows.height
    assert lazy.to_dict() == eager.to_dict()
    assert lazy.windows.equals(eager.windows)


def test_an_unreadable_tokens_artifact_is_named_and_leaves_the_summaries(good_store: Path, tmp_path: Path) -> None:
    store = Path(shutil.copytree(good_store, tmp_path / "store"))
    run_dir = next(d for d in (store / "artifacts" / "bench").iterdir() if "hive0" in d.name)
    tokens = run_dir / "tokens.parquet"
    tokens.write_bytes(b"PAR1 not parquet at all PAR1")
    res = CliRunner().invoke(
        app,
        ["analyze", "--store", str(store), "--victim", "hive0", "--shifts", "99", "--json", str(tmp_path / "r.json")],
        catch_exceptions=False,
    )
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and str(tokens) in res.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["complete"] is False and doc["phases"]
    assert {r["method"] for r in doc["phases"]} == {"summary_only"}
    assert any("could not be read" in n for n in doc["notes"])
