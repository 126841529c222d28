"""Attribution on the simulator's new-resource presets and its drift designs, against ground truth: each
single antagonist is named through its own resource; null designs (co-tenants switched in long blocks while the
victim's own load drifts) stay at or under 5 % false alarms; a decoy beside a true antagonist is not flagged."""

from __future__ import annotations

import pytest

from tests.analysis.calibration_helpers import attribution_outcome, binomial_ci, simulated_attribution

# (preset, seed, culprit, resource): two phases of 240 s, a different seed each
PRESETS = [
    ("memory_bandwidth_antagonist", 31, "stream", "memory_bandwidth"),
    ("memory_pressure_antagonist", 32, "memhog", "memory"),
    ("storage_antagonist", 33, "fio", "storage_io"),
    ("network_antagonist", 34, "iperf", "network"),
    ("cpu_quota_antagonist", 35, "quota", "cpu"),
]


@pytest.mark.parametrize(("scenario", "seed", "culprit", "resource"), PRESETS)
def test_each_new_resource_antagonist_is_named_through_its_resource(
    scenario: str, seed: int, culprit: str, resource: str
) -> None:
    res, out = simulated_attribution(scenario, seed, phase_s=240, baseline_phase="baseline")
    assert res.ground_truth["culprits"] == [culprit]
    top = out.antagonists.row(0, named=True)
    assert (top["antagonist"], top["resource"]) == (culprit, resource)
    assert top["significant"] and top["q_value"] < 0.05
    assert top["evidence"][0].startswith(f"{resource}: ")
    assert out.antagonists.filter(out.antagonists["significant"]).height == 1


@pytest.mark.parametrize("seed", range(5))  # seed % 5 picks the antagonist's resource: each once
def test_a_decoy_beside_a_true_antagonist_is_not_flagged(seed: int) -> None:
    o = attribution_outcome("interference_drift", seed)
    assert o.decoys and o.culprits
    assert not o.decoy_flagged, o
    # nothing but the culprit is flagged, and a flagged culprit is named through its own resource (under drift
    # and 0.7-1.3 x nominal strength it is not always found: the power is in docs/analysis.md, "Calibration")
    assert set(o.flagged) <= set(o.culprits), o
    assert o.found_resource == o.found, o


@pytest.mark.slow
def test_false_alarms_under_drift_stay_at_or_under_five_percent() -> None:
    # 40 held-out null seeds (the 200-seed calibration in docs/analysis.md used seeds 0-199)
    outs = [attribution_outcome("null_drift", s) for s in range(1000, 1040)]
    k = sum(o.any_flag for o in outs)
    lo, _ = binomial_ci(k, len(outs))
    assert lo <= 0.05, f"{k} of {len(outs)} null runs flagged a co-tenant: {[o.flagged for o in outs if o.flagged]}"
