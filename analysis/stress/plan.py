"""The stress plan (TOML) and the schedule it expands to. Pure: no processes here (see `analysis.stress.runner`).

A plan names the victim benchmark, the co-tenant load commands per group, the phases, the repetitions and a design:

- ``phases``: every repetition runs each phase once, co-tenants of the phase on, the victim through the benchmark
  wrapper. ``order = "interleaved"`` repeats the phase list (ABAB: drift and thermal soak hit every phase alike),
  ``"balanced"`` reverses every other repetition (ABBA: cancels a linear drift exactly).
- ``randomized``: the victim runs once per repetition, continuously, while every co-tenant is switched on or off
  independently (probability ``p_on``, seeded) in blocks of ``block_s`` seconds, so the analysis can estimate
  each co-tenant's causal effect (analysis-methods.md §6b.6).

``cgroup = true`` (``[plan]``, or per tenant ``true`` / ``false`` / a path) gives tenants cgroup v2 groups of their
own (`tenant_cgroups`; made and removed by the runner, `analysis.stress.cgroups`); ``[victim] stop_after_schedule``
stops a randomized plan's benchmark when its last block ends (docs/stress-plans.md).

Example (see docs/stress-plans.md and examples/plans/)::

    [plan]
    name = "h100-nightly"
    node = "n1"
    design = "phases"
    repetitions = 5
    [victim]
    group = "hive0"
    tool = "vllm"
    command = "vllm bench serve --model m --save-result --result-filename {result}"
    result = "{workdir}/{run_id}.json"
    [[cotenant]]
    group = "hive1"
    command = ["python", "train.py"]
    [[phase]]
    name = "baseline"
    [[phase]]
    name = "plus_hive1"
    cotenants = ["hive1"]
"""

from __future__ import annotations

import shlex
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analysis.stress.cgroups import check_path
from telemetry.config import Duration, load_toml_model

NAME = r"^[A-Za-z0-9_.:-]+$"


class PlanSettings(BaseModel):
    """The ``[plan]`` table."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=NAME)
    node: str = ""
    design: Literal["phases", "randomized"] = "phases"
    repetitions: int = Field(3, ge=1, le=1000)
    order: Literal["interleaved", "balanced"] = "interleaved"
    warmup_s: Duration = Field(0.0, alias="warmup")
    settle_s: Duration = Field(0.0, alias="settle")
    block_s: Duration = Field(60.0, alias="block", gt=0)
    blocks: int = Field(10, ge=1)
    p_on: float = Field(0.5, gt=0, lt=1)
    seed: int = 0
    silence_alerts: bool = False
    agent_config: str | None = None
    collector: str | None = None
    cgroup: bool = False
    cgroup_parent: str = "neighborscope"

    @field_validator("cgroup_parent")
    @classmethod
    def _parent(cls, v: str) -> str:
        return check_path(v)


class Victim(BaseModel):
    """The ``[victim]`` table: the benchmark run through ``neighborscope run``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    group: str = Field(pattern=NAME)
    command: str | list[str]
    shell: bool = False
    tool: str | None = None
    result: str | None = None
    timeout_s: Duration = Field(3600.0, alias="timeout", gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    cgroup: bool | str | None = None
    stop_after_schedule: bool = False
    stop_signal: str = "SIGINT"
    grace_s: Duration = Field(30.0, alias="grace")

    @field_validator("cgroup")
    @classmethod
    def _cgroup(cls, v: bool | str | None) -> bool | str | None:
        return check_path(v) if isinstance(v, str) else v

    @field_validator("stop_signal")
    @classmethod
    def _signal(cls, v: str) -> str:
        return _signal_name(v)


class Cotenant(BaseModel):
    """A ``[[cotenant]]``: a load command for one group, started and stopped on schedule."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    group: str = Field(pattern=NAME)
    command: str | list[str]
    shell: bool = False
    stop_signal: str = "SIGTERM"
    grace_s: Duration = Field(10.0, alias="grace")
    env: dict[str, str] = Field(default_factory=dict)
    cgroup: bool | str | None = None

    @field_validator("cgroup")
    @classmethod
    def _cgroup(cls, v: bool | str | None) -> bool | str | None:
        return check_path(v) if isinstance(v, str) else v

    @field_validator("stop_signal")
    @classmethod
    def _signal(cls, v: str) -> str:
        return _signal_name(v)


def _signal_name(v: str) -> str:
    name = v.upper() if v.upper().startswith("SIG") else f"SIG{v.upper()}"
    if not hasattr(signal, name):
        raise ValueError(f"unknown signal {v!r} (e.g. SIGTERM, SIGINT)")
    return name


class PhaseSpec(BaseModel):
    """A ``[[phase]]``: a name and the co-tenant groups on during it (none: the baseline)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    cotenants: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    """A whole stress plan (the TOML file)."""

    model_config = ConfigDict(extra="forbid")

    plan: PlanSettings
    victim: Victim
    cotenant: list[Cotenant] = Field(default_factory=list)
    phase: list[PhaseSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Plan:
        groups = [c.group for c in self.cotenant]
        dup = sorted({g for g in groups if groups.count(g) > 1})
        if dup:
            raise ValueError(f"cotenant: group(s) {dup} listed twice")
        if self.victim.group in groups:
            raise ValueError(f"victim.group {self.victim.group!r} is also a co-tenant")
        names = [p.name for p in self.phase]
        dupp = sorted({n for n in names if names.count(n) > 1})
        if dupp:
            raise ValueError(f"phase: name(s) {dupp} listed twice")
        for i, p in enumerate(self.phase):
            unknown = sorted(set(p.cotenants) - set(groups))
            if unknown:
                raise ValueError(f"phase[{i}].cotenants: unknown group(s) {unknown}; co-tenants: {groups}")
        if self.plan.design == "phases" and not self.phase:
            raise ValueError("phase: the 'phases' design needs at least one [[phase]]")
        if self.victim.stop_after_schedule and self.plan.design != "randomized":
            raise ValueError("victim.stop_after_schedule: only for the 'randomized' design")
        if self.plan.design == "randomized" and not self.cotenant:
            raise ValueError("cotenant: the 'randomized' design needs at least one [[cotenant]]")
        paths = list(tenant_cgroups(self).values())
        shared = sorted({p for p in paths if paths.count(p) > 1})
        if shared:
            raise ValueError(f"cgroup: {shared} given to two tenants (each tenant needs a group of its own)")
        return self


def tenant_cgroups(plan: Plan) -> dict[str, str]:
    """The cgroup (a path under the v2 mount) of each tenant that gets one: ``cgroup = "path"`` on the victim or a
    co-tenant, ``cgroup = true`` (or ``[plan] cgroup = true`` and no ``cgroup = false``) gives
    ``<cgroup_parent>/<group>``. The victim's key is its group."""
    out: dict[str, str] = {}
    for t in (plan.victim, *plan.cotenant):
        want = plan.plan.cgroup if t.cgroup is None else t.cgroup
        if isinstance(want, str):
            out[t.group] = want
        elif want:
            out[t.group] = f"{plan.plan.cgroup_parent}/{t.group}"
    return out


def load_plan(path: Path | str) -> Plan:
    """Read and validate a plan; `telemetry.errors.ConfigError` names the file and key on a problem."""
    return load_toml_model(path, Plan)


def command_argv(command: str | list[str], shell: bool, values: dict[str, str]) -> list[str]:
    """The argv of a command with ``{placeholders}`` filled: a shell string runs under ``sh -c``."""
    if isinstance(command, list):
        return [_fill(part, values) for part in command]
    text = _fill(command, values)
    return ["/bin/sh", "-c", text] if shell else shlex.split(text)


def _fill(text: str, values: dict[str, str]) -> str:
    out = text
    for k, v in values.items():
        out = out.replace("{" + k + "}", v)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The schedule


@dataclass(frozen=True)
class Step:
    """One victim run of the schedule: its phase, repetition and the co-tenants on, per block for randomized plans
    (``blocks[k]`` = the groups on in block k; one block for the phases design)."""

    rep: int
    phase: str
    run_id: str
    blocks: tuple[frozenset[str], ...]
    block_s: float | None


def schedule(plan: Plan, run_prefix: str) -> list[Step]:
    """The ordered victim runs of ``plan`` (pure, seeded)."""
    ps = plan.plan
    steps: list[Step] = []
    if ps.design == "phases":
        for rep in range(ps.repetitions):
            order = list(plan.phase)
            if ps.order == "balanced" and rep % 2 == 1:
                order.reverse()
            for ph in order:
                steps.append(Step(rep, ph.name, f"{run_prefix}.{ph.name}.r{rep}", (frozenset(ph.cotenants),), None))
        return steps
    rng = np.random.default_rng([ps.seed, 0x5EED])
    groups = [c.group for c in plan.cotenant]
    for rep in range(ps.repetitions):
        on = rng.random((ps.blocks, len(groups))) < ps.p_on
        blocks = tuple(frozenset(g for g, o in zip(groups, row, strict=True) if o) for row in on)
        steps.append(Step(rep, "randomized", f"{run_prefix}.randomized.r{rep}", blocks, ps.block_s))
    return steps
