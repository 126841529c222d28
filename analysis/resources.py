"""The shared resources attribution names, one `Resource` record each (the only place a resource is described).

A record says everything analysis needs to know about one resource a co-tenant can steal:

- ``name``: what attribution reports (``resource`` column, the prefix of evidence lines);
- ``share_keys``: the columns of the declared topology (`telemetry.topology.SHARED`) whose common value makes a
  co-tenant a suspect through this resource (telemetry cannot import analysis, so the keys live there and the
  records name them; ``tests/analysis/test_resources.py`` checks they exist);
- ``fields``: the accelerator sample fields it reads, each as a per-window column of `analysis.align` (how it is
  computed from the ``accel`` measurement, and whether a group's devices are summed or averaged);
- ``mediators``: the victim-side signals attribution regresses on a suspect's activity, each with its kind
  (``primary``: a victim-side performance signal that can name the resource; ``hard``: a throttle flag, hard
  evidence that wins; ``context``: reported, never decisive), how it is derived per window (``derive``, a
  derivation `analysis.attribution.mediators` implements), where it comes from (``source``) and the words of its
  evidence line (``label`` and ``effect``);
- ``t_evidence`` / ``hard_share``: the thresholds a mediator must pass to count as evidence.

`RESOURCES` is the registry, in the order suspects list their resources and evidence lines are written. A new
resource is a new record here (plus its sampler fields and its simulator physics); a mediator that no existing
``derive`` covers also needs that derivation in `analysis.attribution`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import polars as pl

T_EVIDENCE = 4.0  # |t| a mediator needs to count as evidence (Newey–West t; windows are autocorrelated)
HARD_SHARE = 0.05  # throttle flags: share of samples more while the suspect is active
POWER_CAP_SHARE = 0.97  # a sample is at its power cap when power_w >= 97 % of power_limit_w
SATURATED_CORE_PCT = 95.0  # a core-sample is saturated at >= 95 % utilisation

Col = Callable[[str], pl.Expr]
"""A sample field by name (a null column where the measurement lacks it)."""

MediatorKind = Literal["primary", "hard", "context"]
Derive = Literal["load_adjusted_drop", "neg_log", "value", "socket_max", "run_queue_excess", "victim_cpu_drop"]


@dataclass(frozen=True)
class WindowField:
    """A per-window column of the ``accel`` measurement (`analysis.align` device and group windows).

    ``expr`` builds the per-sample value from the sample fields; ``group_agg`` is how a group's devices combine
    (``sum``: a rate the devices share, e.g. PCIe bytes; ``mean``: a level, e.g. a temperature or a flag share).
    Windows average the samples."""

    name: str
    expr: Callable[[Col], pl.Expr]
    group_agg: Literal["sum", "mean"] = "mean"


@dataclass(frozen=True)
class Mediator:
    """One victim-side signal of a resource (a column of `analysis.attribution.mediators`; higher = more
    evidence).

    ``derive``: how it is computed per victim window (``load_adjusted_drop``: minus the log of the victim group's
    ``field`` adjusted for the victim's own load; ``neg_log``: minus the log of ``field``; ``value``: ``field``
    as is; ``socket_max``: the highest saturated-core share among the victim's sockets; ``run_queue_excess`` /
    ``victim_cpu_drop``: host run queue beyond the CPUs / minus the victim's CPU on an oversubscribed host).
    ``source``: the measurement fields it rests on, in words. ``effect``: the slope (mediator per unit of
    activity) in the words of its evidence line."""

    column: str
    kind: MediatorKind
    label: str
    derive: Derive
    source: str
    effect: Callable[[float], str]
    field: str | None = None


@dataclass(frozen=True)
class Resource:
    """A shared resource: its topology share keys, fields, mediators and evidence thresholds (module docstring)."""

    name: str
    share_keys: tuple[str, ...]
    mediators: tuple[Mediator, ...]
    fields: tuple[WindowField, ...] = ()
    t_evidence: float = T_EVIDENCE
    hard_share: float = HARD_SHARE

    def mediator_columns(self) -> tuple[str, ...]:
        return tuple(m.column for m in self.mediators)


def _pcie_bytes(col: Col) -> pl.Expr:
    """PCIe bytes/s both ways: rx + tx, or the device's bidirectional figure when it gives only that."""
    both = (
        pl.when(col("pcie_rx_bytes_per_s").is_null() & col("pcie_tx_bytes_per_s").is_null())
        .then(None)
        .otherwise(col("pcie_rx_bytes_per_s").fill_null(0) + col("pcie_tx_bytes_per_s").fill_null(0))
    )
    return pl.coalesce(both, col("pcie_bidir_bytes_per_s"))


def _at_power_cap(col: Col) -> pl.Expr:
    return (col("power_w") >= POWER_CAP_SHARE * col("power_limit_w")).cast(pl.Float64)


def _rate_change(slope: float) -> str:
    """A slope of minus a log rate, as the rate's change in %."""
    return f"{100 * (math.exp(-slope) - 1):+.1f}%"


def _points(slope: float) -> str:
    return f"{100 * slope:+.1f} points"


PCIE = Resource(
    name="pcie",
    share_keys=("pcie_switch",),
    fields=(WindowField("pcie_bytes_per_s", _pcie_bytes, "sum"),),
    mediators=(
        Mediator(
            "pcie_drop",
            "primary",
            "victim's load-adjusted PCIe rate",
            "load_adjusted_drop",
            "accel pcie_rx/tx_bytes_per_s (else pcie_bidir_bytes_per_s) of the victim's devices, summed",
            _rate_change,
            field="pcie_bytes_per_s",
        ),
    ),
)

CPU = Resource(
    name="cpu",
    share_keys=("socket",),
    mediators=(
        Mediator(
            "cpu_saturation",
            "primary",
            "saturated cores on the victim's socket",
            "socket_max",
            f"host_core util_pct: share of core-samples >= {SATURATED_CORE_PCT:g} % on the victim's socket(s)",
            _points,
        ),
        Mediator(
            "run_queue_excess",
            "primary",
            "host run queue beyond the CPUs",
            "run_queue_excess",
            "host procs_running / cpu_count - 1 (>= 0)",
            lambda s: f"{s:+.2f} waiting tasks per CPU",
        ),
        Mediator(
            "victim_cpu_drop",
            "primary",
            "victim's CPU share on an oversubscribed host",
            "victim_cpu_drop",
            "tenant cpu_pct of the victim, in cores, where the median run queue exceeds the CPUs",
            lambda s: f"{-s:+.2f} cores",
        ),
    ),
)

THERMAL = Resource(
    name="thermal",
    share_keys=("cooling_zone",),
    fields=(
        WindowField("temp_c", lambda col: col("temp_c")),
        WindowField("sm_clock_mhz", lambda col: col("sm_clock_mhz")),
        WindowField("throttle_thermal_share", lambda col: col("throttle_thermal")),
    ),
    mediators=(
        Mediator(
            "clock_drop",
            "primary",
            "victim clock",
            "neg_log",
            "accel sm_clock_mhz of the victim's devices",
            _rate_change,
            field="sm_clock_mhz",
        ),
        Mediator(
            "throttle_thermal_share",
            "hard",
            "thermal throttle flags",
            "value",
            "accel throttle_thermal: share of the victim's samples flagged",
            _points,
            field="throttle_thermal_share",
        ),
        Mediator(
            "temp_c",
            "context",
            "victim temperature",
            "value",
            "accel temp_c of the victim's devices",
            lambda s: f"{s:+.1f} degC",
            field="temp_c",
        ),
    ),
)

POWER = Resource(
    name="power",
    share_keys=("power_zone",),
    fields=(
        WindowField("throttle_power_share", lambda col: col("throttle_power")),
        WindowField("at_power_cap_share", _at_power_cap),
    ),
    mediators=(
        Mediator(
            "throttle_power_share",
            "hard",
            "power throttle flags",
            "value",
            "accel throttle_power: share of the victim's samples flagged",
            _points,
            field="throttle_power_share",
        ),
        Mediator(
            "at_power_cap_share",
            "primary",
            "victim at its power cap",
            "value",
            f"accel power_w >= {POWER_CAP_SHARE:g} x power_limit_w: share of the victim's samples",
            _points,
            field="at_power_cap_share",
        ),
    ),
)

RESOURCES: tuple[Resource, ...] = (PCIE, CPU, THERMAL, POWER)
"""Every resource attribution knows, in report order."""

RESOURCE_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCES)
BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}

FIELDS: tuple[WindowField, ...] = tuple(f for r in RESOURCES for f in r.fields)
"""The accelerator window fields of every resource, in record order (`analysis.align` computes them)."""
