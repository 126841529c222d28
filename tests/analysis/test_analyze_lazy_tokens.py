"""`analyze` reads the runs' per-token artifacts lazily (a scan of the per-run files that its consumers read a few
runs at a time: a week of tokens never sits in memory): the result equals the eager path's (every token read up
front), and an unreadable tokens artifact is named, never a traceback. What `analyze` derives is kept in the store
(`analysis.derived`): per run its token aggregates (a pure function of the write-once tokens artifact and the
window), per analysis the telemetry window aggregates keyed by the identity of the files read; the first analysis
and a second one (reading only what was kept) give the result of reading every token and every sample, and a late
telemetry batch or a broken derived file is never served (seed 000 simulated, AIPerf runs imported, real store)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

import analysis.analyze as an
from analysis.analyze import analyze
from analysis.derived import TELEMETRY_WINDOWS, TOKEN_WINDOWS
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


@pytest.fixture()
def store(good_store: Path, tmp_path: Path) -> Path:
    """A copy of the store for one test (analyses write derived artifacts into it)."""
    return Path(shutil.copytree(good_store, tmp_path / "copy"))


class _NoArtifactFiles:
    """The same real store, without lazy artifact scans: `analyze` then reads every run's tokens up front (the path
    of a store that cannot scan an artifact lazily)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "scan_artifact":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_lazy_tokens_give_the_eager_result(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(an, "EAGER_TOKEN_ROWS", 0)  # a small store's tokens would be read at once: stay lazy
    st = open_store(store, create=False)
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


def _analyze(root: Path) -> Any:
    st = open_store(root, create=False)
    try:
        return analyze(st, "hive0", n_shifts=99)
    finally:
        st.close()


def _reference(root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The analysis without anything derived kept or read: every token and sample read."""
    with monkeypatch.context() as m:
        m.setattr(an, "stored_token_aggregates", lambda *a, **k: None)
        m.setattr(an, "files_identity", lambda *a, **k: None)
        return _analyze(root)


def _same(a: Any, b: Any) -> None:
    assert a.to_dict() == b.to_dict()
    assert a.windows.equals(b.windows)
    ga, gb = a.attribution.grid, b.attribution.grid
    for name in ("groups", "host", "sockets", "tenants"):
        assert getattr(ga, name).equals(getattr(gb, name)), name


def _keys(root: Path, prefix: str) -> list[str]:
    st = open_store(root, create=False)
    try:
        return st.list_artifacts(prefix)
    finally:
        st.close()


def test_first_and_second_analysis_equal_reading_every_token(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _reference(store, monkeypatch)
    assert not _keys(store, "derived")
    first = _analyze(store)
    runs = {r.run_id for r in list_runs(open_store(store, create=False)) if r.group == "hive0"}
    kept = _keys(store, TOKEN_WINDOWS)
    assert {k.split("/")[-2] for k in kept} == runs  # one per victim run
    assert _keys(store, TELEMETRY_WINDOWS)
    second = _analyze(store)
    assert ref.attribution is not None and ref.antagonists.height and ref.complete
    _same(first, ref)
    _same(second, ref)


def test_a_late_telemetry_batch_is_not_served_from_the_cache(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _analyze(store)  # keeps the telemetry windows
    st = open_store(store)
    try:  # a late batch: a device of a co-tenant group at full power through the victim's windows
        accel = st.query("accel")
        dev = accel["device"][0]
        late = accel.filter(pl.col("device") == dev).with_columns(
            pl.lit(f"{dev}-late").alias("device"), pl.col("power_w") * 0 + 999.0
        )
        st.write("accel", late)
    finally:
        st.close()
    after = _analyze(store)
    _same(after, _reference(store, monkeypatch))
    assert not after.attribution.grid.groups.equals(before.attribution.grid.groups)


def test_a_broken_or_stale_derived_artifact_is_recomputed(store: Path) -> None:
    first = _analyze(store)  # equals the analysis reading everything (the test above)
    files = sorted((store / "artifacts" / TOKEN_WINDOWS).rglob("*.parquet"))
    files[0].write_bytes(b"PAR1 not parquet PAR1")  # broken
    stale = pl.read_parquet(files[1])
    stale.with_columns(pl.col("run_rows") + 1).write_parquet(files[1])  # from other tokens than the run's now
    for f in (store / "artifacts" / TELEMETRY_WINDOWS).rglob("*.parquet"):
        f.write_bytes(b"broken")
    again = _analyze(store)
    assert again.complete, again.unreadable  # a derived file is recomputed, not a hole in the result
    _same(again, first)
    assert pl.read_parquet(files[0]).height  # rewritten
    assert pl.read_parquet(files[1])["run_rows"].equals(stale["run_rows"])  # rewritten from the run's tokens


def test_what_analysis_keeps_stays_under_its_caps_oldest_first(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import analysis.derived as derived

    _analyze(store)
    windows = sorted((store / "artifacts" / TELEMETRY_WINDOWS).rglob("*.parquet"))
    kept_bytes = sum(f.stat().st_size for f in windows)
    assert len(windows) > 1 and _keys(store, TOKEN_WINDOWS)
    monkeypatch.setattr(derived, "KEEP_TELEMETRY_WINDOWS_BYTES", kept_bytes - 1)
    st = open_store(store)
    try:
        assert 0 < derived.prune(st, force=True) < kept_bytes  # the oldest telemetry windows only
        assert derived.prune(st) == 0  # at most once a minute without force
    finally:
        st.close()
    left = sorted((store / "artifacts" / TELEMETRY_WINDOWS).rglob("*.parquet"))
    assert 0 < len(left) < len(windows) and sum(f.stat().st_size for f in left) < kept_bytes
    assert _keys(store, TOKEN_WINDOWS)  # under their own cap: kept
    _same(_analyze(store), _analyze(store))  # a pruned cache is recomputed, same result
