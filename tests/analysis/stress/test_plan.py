"""Stress plans: the TOML model, its errors, and the schedule it expands to (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.stress.plan import Plan, command_argv, load_plan, schedule
from telemetry.config import model_from_dict
from telemetry.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]

BASE = {
    "plan": {"name": "p", "design": "phases", "repetitions": 2},
    "victim": {"group": "hive0", "command": ["bench"]},
    "cotenant": [{"group": "a", "command": ["load-a"]}, {"group": "b", "command": "load-b --x"}],
    "phase": [{"name": "baseline"}, {"name": "plus_a", "cotenants": ["a"]}, {"name": "all", "cotenants": ["a", "b"]}],
}


def _plan(**over: dict) -> Plan:
    doc = {k: (v.copy() if isinstance(v, dict) else v) for k, v in BASE.items()}
    for k, v in over.items():
        doc[k] = {**doc[k], **v} if isinstance(doc.get(k), dict) and isinstance(v, dict) else v
    return model_from_dict(Plan, doc, "plan.toml")


def test_phases_design_interleaves_abab() -> None:
    steps = schedule(_plan(), "s")
    assert [s.phase for s in steps] == ["baseline", "plus_a", "all"] * 2
    assert steps[2].blocks == (frozenset({"a", "b"}),)
    assert steps[3].run_id == "s.baseline.r1" and steps[3].rep == 1


def test_balanced_order_reverses_every_other_repetition() -> None:
    steps = schedule(_plan(plan={"order": "balanced", "repetitions": 3}), "s")
    assert [s.phase for s in steps] == [
        "baseline",
        "plus_a",
        "all",
        "all",
        "plus_a",
        "baseline",
        "baseline",
        "plus_a",
        "all",
    ]


def test_randomized_design_is_seeded_and_independent_per_cotenant() -> None:
    p = _plan(plan={"design": "randomized", "blocks": 200, "repetitions": 2, "seed": 3})
    a, b = schedule(p, "s"), schedule(p, "s")
    assert a == b
    assert [s.phase for s in a] == ["randomized", "randomized"]
    blocks = a[0].blocks
    on_a = sum("a" in blk for blk in blocks) / len(blocks)
    on_b = sum("b" in blk for blk in blocks) / len(blocks)
    both = sum({"a", "b"} <= blk for blk in blocks) / len(blocks)
    assert 0.4 < on_a < 0.6 and 0.4 < on_b < 0.6
    assert abs(both - on_a * on_b) < 0.08
    assert a[0].blocks != a[1].blocks
    assert (
        schedule(_plan(plan={"design": "randomized", "seed": 4}), "s")[0].blocks
        != schedule(_plan(plan={"design": "randomized", "seed": 3}), "s")[0].blocks
    )


def test_phase_naming_an_unknown_cotenant_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"plan\.toml: .*phase\[1\]\.cotenants: unknown group\(s\) \['c'\]"):
        _plan(phase=[{"name": "baseline"}, {"name": "x", "cotenants": ["c"]}])


def test_duplicate_groups_and_victim_as_cotenant_are_errors() -> None:
    with pytest.raises(ConfigError, match="listed twice"):
        _plan(cotenant=[{"group": "a", "command": "x"}, {"group": "a", "command": "y"}], phase=[{"name": "b"}])
    with pytest.raises(ConfigError, match="also a co-tenant"):
        _plan(cotenant=[{"group": "hive0", "command": "x"}], phase=[{"name": "b"}])


def test_bad_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"plan\.toml: plan\.repetitions: Input should be greater than or equal to 1"):
        _plan(plan={"repetitions": 0})
    with pytest.raises(ConfigError, match=r"cotenant\[0\]\.stop_signal: unknown signal 'SIGFOO'"):
        _plan(cotenant=[{"group": "a", "command": "x", "stop_signal": "SIGFOO"}], phase=[{"name": "b"}])
    with pytest.raises(ConfigError, match=r"plan\.design: Input should be 'phases' or 'randomized'"):
        _plan(plan={"design": "abab"})


def test_missing_victim_and_unknown_key(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[plan]\nname = "x"\nrepetition = 3\n')
    with pytest.raises(ConfigError) as exc:
        load_plan(p)
    msg = str(exc.value)
    assert f"{p}: plan.repetition: unknown key (got 3)" in msg
    assert f"{p}: victim: Field required" in msg


def test_randomized_needs_cotenants_and_phases_needs_phases() -> None:
    with pytest.raises(ConfigError, match="needs at least one \\[\\[cotenant\\]\\]"):
        _plan(plan={"design": "randomized"}, cotenant=[], phase=[])
    with pytest.raises(ConfigError, match="needs at least one \\[\\[phase\\]\\]"):
        _plan(phase=[])


def test_command_placeholders_and_shell() -> None:
    values = {"result": "/tmp/r.json", "run_id": "x.r0"}
    assert command_argv(["bench", "--out", "{result}"], False, values) == ["bench", "--out", "/tmp/r.json"]
    assert command_argv("bench --id '{run_id}' {unknown}", False, values) == ["bench", "--id", "x.r0", "{unknown}"]
    assert command_argv("a && b > {result}", True, values) == ["/bin/sh", "-c", "a && b > /tmp/r.json"]


@pytest.mark.parametrize("name", ["simulated.toml", "simulated-randomized.toml", "vllm-h100.toml"])
def test_example_plans_are_valid(name: str) -> None:
    plan = load_plan(ROOT / "examples" / "plans" / name)
    assert schedule(plan, "x")
