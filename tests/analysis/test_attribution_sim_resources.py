"""Attribution on the simulator's antagonists of the new resources (issue 20): each is named, through the right
resource, with q < 0.05; co-tenants switching in long blocks beside a drifting victim are not flagged."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from analysis.analyze import AnalysisOptions, AnalysisResult, TelemetryFrames, analyze_frames
from telemetry.schema import DISK, NET, RDMA
from telemetry.sim.scenario import ANTAGONIST_KINDS, RESOURCE_PRESETS
from tests.analysis.simdata import SimFrames, sim_frames

_ALIASES = {"disk": DISK.name, "net": NET.name, "rdma": RDMA.name}


def _telemetry(f: SimFrames) -> TelemetryFrames:
    """Every measurement the simulator wrote that `TelemetryFrames` takes (by field name or the measurement's)."""
    t = f.telemetry
    kw = {}
    for field in dataclasses.fields(TelemetryFrames):
        key = field.name if field.name in t else _ALIASES.get(field.name)
        if key in t and field.name not in ("run_events", "topology"):
            kw[field.name] = t[key]
    return TelemetryFrames(**kw, run_events=t["run_event"], topology=f.topology)


def _analyze(f: SimFrames, seed: int) -> AnalysisResult:
    return analyze_frames(
        f.runs,
        f.requests,
        f.tokens,
        victim="hive0",
        telemetry=_telemetry(f),
        options=AnalysisOptions(seed=seed, n_shifts=499),
    )


# (preset, seed): a different seed for each
CASES = [(name, 31 + i, RESOURCE_PRESETS[name]) for i, name in enumerate(sorted(RESOURCE_PRESETS))]


@pytest.mark.parametrize(("scenario", "seed", "resource"), CASES)
def test_antagonist_of_each_new_resource_is_named_through_it(scenario: str, seed: int, resource: str) -> None:
    f = sim_frames(scenario, seed)
    culprit = ANTAGONIST_KINDS[resource][0]
    (truth,) = [e for e in f.truth["effects"] if e["victim"] == "hive0"]
    assert (truth["antagonist"], truth["resources"]) == (culprit, [resource])
    top = _analyze(f, seed).antagonists.row(0, named=True)
    assert top["antagonist"] == culprit, top
    assert top["resource"] == resource, (top["resource"], top["evidence"])
    assert top["significant"] and top["q_value"] < 0.05
    assert top["effect_pct"] < 0
    assert any(line.startswith(resource) for line in top["evidence"]), top["evidence"]


@pytest.mark.parametrize("seed", [101, 102, 103])
def test_null_drift_flags_no_co_tenant(seed: int) -> None:
    f = sim_frames("null_drift", seed, phase_s=90)
    assert f.truth["culprits"] == []
    ant = _analyze(f, seed).antagonists
    assert ant.height >= 4  # every co-tenant that switched was tested
    assert ant.filter(pl.col("significant")).height == 0, ant.select("antagonist", "resource", "q_value")
