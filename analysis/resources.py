"""The shared resources attribution names, one `Resource` record each (the only place a resource is described).

A record says everything analysis needs to know about one resource a co-tenant can steal:

- ``name``: what attribution reports (``resource`` column, the prefix of evidence lines);
- ``share_keys``: the columns of the declared topology (`telemetry.topology.SHARED`) whose common value makes a
  co-tenant a suspect through this resource (telemetry cannot import analysis, so the keys live there and the
  records name them; ``tests/analysis/test_resources.py`` checks they exist). No share key (``()``): the resource
  is host-wide (memory): every co-tenant on the victim's node shares it;
- ``fields``: the sample fields it reads, each as a per-window column of `analysis.align` (``measurement``:
  ``accel``, ``host``, ``tenant``, ``host_disk``, ``host_net`` or ``rdma``; how it is computed from the samples, and how
  several rows combine: a group's devices, the victim's disks / NICs / ports);
- ``mediators``: the victim-side signals attribution regresses on a suspect's activity, each with its kind
  (``primary``: a victim-side signal that can name the resource; ``hard``: a throttle flag, hard evidence that
  wins; ``context``: reported, never decisive), how it is derived per window (``derive``, a derivation
  `analysis.attribution.mediators` implements), where it comes from (``source``), the words of its evidence line
  (``label`` and ``effect``) and the resources it cannot tell this one from by itself (``ambiguous_with``);
- ``t_evidence`` / ``hard_share``: the thresholds a mediator must pass to count as evidence.

`RESOURCES` is the registry, in the order suspects list their resources and evidence lines are written. A new
resource is a new record here (plus its sampler fields and its simulator physics); a mediator that no existing
``derive`` covers also needs that derivation in `analysis.attribution`. docs/analysis.md explains each record.
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
TIE_P = 0.05  # two resources cannot be told apart when their best signals' correlations with the suspect's
# activity do not differ at this level (`analysis.stats.dependent_corr_test`, Williams' t)

Col = Callable[[str], pl.Expr]
"""A sample field by name (a null column where the measurement lacks it)."""

MediatorKind = Literal["primary", "hard", "context"]
Derive = Literal[
    "load_adjusted_drop",
    "load_adjusted_rise",
    "neg_log",
    "value",
    "socket_max",
    "run_queue_excess",
    "victim_cpu_drop",
    "cpu_per_token_rise",
    "link_saturation",
]
WindowMeasurement = Literal["accel", "host", "tenant", "host_disk", "host_net", "rdma"]
GroupAgg = Literal["sum", "mean", "max"]

MEASUREMENT_KEYS: dict[str, tuple[str, ...]] = {
    "host": ("node",),
    "tenant": ("group",),
    "host_disk": ("node", "disk"),
    "host_net": ("node", "interface"),
    "rdma": ("node", "device", "port"),
}
"""The tags a window frame of each non-accelerator measurement keeps (`analysis.align.measurement_windows`)."""

VICTIM_ROWS: dict[str, tuple[str, str]] = {
    "host_disk": ("disk", "disk"),
    "host_net": ("nic", "interface"),
    "rdma": ("nic", "device"),
}
"""Which rows of a device measurement are the victim's: (topology column, measurement tag). The victim's disks are
the ``disk`` values of its topology rows, its NICs the ``nic`` values (a net interface or an RDMA device name);
with no topology, or none of them matching, every row."""


@dataclass(frozen=True)
class WindowField:
    """A per-window column of one measurement (`analysis.align`).

    ``expr`` builds the per-sample value from the sample fields; windows average the samples. ``group_agg`` is
    how several rows combine: a group's devices (``accel``), the victim's rows of ``tenant`` (its nodes),
    ``host_disk`` / ``host_net`` / ``rdma`` (its disks, interfaces, ports) and ``host`` (nodes): ``sum`` for a rate they
    share (PCIe bytes, drops), ``mean`` for a level (a temperature, a flag share), ``max`` for the worst of
    them (a disk's await). ``column`` is its name in `analysis.attribution.mediators`' victim frame:
    ``<measurement>.<name>``, accel fields unprefixed."""

    name: str
    expr: Callable[[Col], pl.Expr]
    group_agg: GroupAgg = "mean"
    measurement: WindowMeasurement = "accel"

    @property
    def column(self) -> str:
        return self.name if self.measurement == "accel" else f"{self.measurement}.{self.name}"


def sample(measurement: WindowMeasurement, name: str, group_agg: GroupAgg = "mean") -> WindowField:
    """A window field that is one sample field as is."""
    return WindowField(name, lambda col: col(name), group_agg, measurement)


@dataclass(frozen=True)
class Mediator:
    """One victim-side signal of a resource (a column of `analysis.attribution.mediators`; higher = more
    evidence).

    ``derive``: how it is computed per victim window (``load_adjusted_drop`` / ``load_adjusted_rise``: minus /
    plus the residual of the victim's ``field`` (log for a drop) on its own load, fitted on baseline windows;
    ``neg_log``: minus the log of ``field``; ``value``: ``field`` as is; ``socket_max``: the highest
    saturated-core share among the victim's sockets; ``run_queue_excess`` / ``victim_cpu_drop``: host run queue
    beyond the CPUs / minus the victim's CPU on an oversubscribed host; ``cpu_per_token_rise``: the log of the
    victim's CPU time per output token, load-adjusted (a CPI proxy); ``link_saturation``: the victim's NIC
    traffic as a share of its link speed, else of its observed peak). ``field`` is a window field's ``column``
    (or a base column of a window frame: ``tenant.cpu_pct``). ``source``: the measurement fields it rests on, in
    words. ``effect``: the slope (mediator per unit of activity) in the words of its evidence line.
    ``ambiguous_with``: resources this signal cannot rule out by itself (a CPI rise is memory bandwidth or
    cache, or a core shared with a busy sibling thread): attribution names them beside this one unless their own
    signals were measured and show nothing."""

    column: str
    kind: MediatorKind
    label: str
    derive: Derive
    source: str
    effect: Callable[[float], str]
    field: str | None = None
    ambiguous_with: tuple[str, ...] = ()


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


def _sum_or_null(col: Col, a: str, b: str) -> pl.Expr:
    """a + b, one of them alone where the other is absent, null where both are."""
    return pl.when(col(a).is_null() & col(b).is_null()).then(None).otherwise(col(a).fill_null(0) + col(b).fill_null(0))


def _rate_change(slope: float) -> str:
    """A slope of minus a log rate, as the rate's change in %."""
    return f"{100 * (math.exp(-slope) - 1):+.1f}%"


def _log_rise(slope: float) -> str:
    """A slope of a log, as the quantity's change in %."""
    return f"{100 * (math.exp(min(slope, 50.0)) - 1):+.1f}%"


def _points(slope: float) -> str:
    return f"{100 * slope:+.1f} points"


def _stall(slope: float) -> str:
    """A slope of a stall time in us per s, in ms of stall per second (us under 0.1 ms)."""
    return f"{slope / 1000:+.1f} ms/s of stall" if abs(slope) >= 100 else f"{slope:+.0f} us/s of stall"


def _per_s(unit: str) -> Callable[[float], str]:
    return lambda slope: f"{slope:+.3g} {unit}/s"


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
    fields=(
        sample("tenant", "cpu_pressure_some_us_per_s", "sum"),
        sample("tenant", "cpu_throttled_us_per_s", "sum"),
        sample("host", "cpu_pressure_some_us_per_s"),
    ),
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
        Mediator(
            "victim_cpu_pressure",
            "primary",
            "victim's CPU pressure (runnable, waiting for a CPU)",
            "load_adjusted_rise",
            "tenant cpu_pressure_some_us_per_s of the victim (cgroup v2 cpu.pressure), beyond its own load",
            _stall,
            field="tenant.cpu_pressure_some_us_per_s",
        ),
        Mediator(
            "victim_cpu_throttled",
            "primary",
            "victim's CFS quota throttling",
            "load_adjusted_rise",
            "tenant cpu_throttled_us_per_s of the victim (cgroup v2 cpu.stat throttled_usec), beyond its own load",
            lambda s: f"{s / 1000:+.1f} ms/s throttled",
            field="tenant.cpu_throttled_us_per_s",
            # a victim stalled on memory burns more CPU per token and hits its own quota sooner
            ambiguous_with=("memory_bandwidth",),
        ),
        Mediator(
            "host_cpu_pressure",
            "context",
            "host CPU pressure",
            "value",
            "host cpu_pressure_some_us_per_s (/proc/pressure/cpu: any task waiting, the suspect's own included)",
            _stall,
            field="host.cpu_pressure_some_us_per_s",
        ),
    ),
)

MEMORY_BANDWIDTH = Resource(
    name="memory_bandwidth",
    share_keys=("socket", "numa_node"),
    fields=(
        sample("tenant", "mbm_total_bytes_per_s", "sum"),
        sample("tenant", "llc_occupancy_bytes", "sum"),
        sample("host", "mbm_total_bytes_per_s"),
        sample("host", "numa_miss_per_s"),
    ),
    mediators=(
        Mediator(
            "victim_mbm_drop",
            "primary",
            "victim's load-adjusted memory traffic (resctrl MBM)",
            "load_adjusted_drop",
            "tenant mbm_total_bytes_per_s of the victim's resctrl monitoring group, beyond its own load",
            _rate_change,
            field="tenant.mbm_total_bytes_per_s",
        ),
        Mediator(
            "victim_cpu_per_token",
            "primary",
            "victim's CPU time per output token (a CPI proxy: cycles stalled on memory count as busy)",
            "cpu_per_token_rise",
            "tenant cpu_pct of the victim / its output tok/s, log, beyond its own load",
            _log_rise,
            field="tenant.cpu_pct",
            ambiguous_with=("cpu",),
        ),
        Mediator(
            "victim_llc_drop",
            "context",
            "victim's last-level cache held (resctrl CMT)",
            "load_adjusted_drop",
            "tenant llc_occupancy_bytes of the victim's resctrl monitoring group",
            _rate_change,
            field="tenant.llc_occupancy_bytes",
        ),
        Mediator(
            "host_mbm",
            "context",
            "host memory traffic (resctrl MBM)",
            "value",
            "host mbm_total_bytes_per_s (the root resctrl group: every tenant, the suspect's own traffic included)",
            lambda s: f"{s / 1e9:+.2f} GB/s",
            field="host.mbm_total_bytes_per_s",
        ),
        Mediator(
            "host_numa_miss",
            "context",
            "host NUMA misses",
            "value",
            "host numa_miss_per_s (/proc/vmstat)",
            _per_s("allocations"),
            field="host.numa_miss_per_s",
        ),
    ),
)

MEMORY = Resource(
    name="memory",
    share_keys=(),
    fields=(
        sample("tenant", "mem_pressure_some_us_per_s", "sum"),
        sample("tenant", "workingset_refault_per_s", "sum"),
        sample("tenant", "pgmajfault_per_s", "sum"),
        sample("host", "mem_pressure_full_us_per_s"),
        sample("host", "pgscan_per_s"),
        sample("host", "workingset_refault_per_s"),
    ),
    mediators=(
        Mediator(
            "victim_mem_pressure",
            "primary",
            "victim's memory pressure (stalled on reclaim, refaults, swap-in)",
            "load_adjusted_rise",
            "tenant mem_pressure_some_us_per_s of the victim (cgroup v2 memory.pressure), beyond its own load",
            _stall,
            field="tenant.mem_pressure_some_us_per_s",
        ),
        Mediator(
            "victim_refaults",
            "primary",
            "victim's working-set refaults",
            "load_adjusted_rise",
            "tenant workingset_refault_per_s of the victim (cgroup v2 memory.stat), beyond its own load",
            _per_s("pages"),
            field="tenant.workingset_refault_per_s",
        ),
        Mediator(
            "victim_major_faults",
            "primary",
            "victim's major page faults",
            "load_adjusted_rise",
            "tenant pgmajfault_per_s of the victim (cgroup v2 memory.stat), beyond its own load",
            _per_s("faults"),
            field="tenant.pgmajfault_per_s",
        ),
        Mediator(
            "host_mem_pressure_full",
            "context",
            "host memory stall with every task stalled",
            "value",
            (
                "host mem_pressure_full_us_per_s (/proc/pressure/memory full: all non-idle tasks stalled at once; "
                "a victim waiting on its accelerator is idle, so not necessarily the victim's)"
            ),
            _stall,
            field="host.mem_pressure_full_us_per_s",
        ),
        Mediator(
            "host_reclaim",
            "context",
            "host page reclaim scanning",
            "value",
            "host pgscan_per_s (/proc/vmstat pgscan_kswapd + pgscan_direct)",
            _per_s("pages"),
            field="host.pgscan_per_s",
        ),
        Mediator(
            "host_refaults",
            "context",
            "host working-set refaults",
            "value",
            "host workingset_refault_per_s (/proc/vmstat)",
            _per_s("pages"),
            field="host.workingset_refault_per_s",
        ),
    ),
)

STORAGE_IO = Resource(
    name="storage_io",
    share_keys=("disk",),
    fields=(
        sample("tenant", "io_pressure_some_us_per_s", "sum"),
        sample("host", "io_pressure_full_us_per_s"),
        WindowField(
            "await_ms", lambda col: pl.max_horizontal(col("read_await_ms"), col("write_await_ms")), "max", "host_disk"
        ),
        sample("host_disk", "busy_pct", "max"),
        sample("host_disk", "queue_ms_per_s", "max"),
    ),
    mediators=(
        Mediator(
            "victim_io_pressure",
            "primary",
            "victim's I/O pressure (waiting for its I/O)",
            "load_adjusted_rise",
            "tenant io_pressure_some_us_per_s of the victim (cgroup v2 io.pressure), beyond its own load",
            _stall,
            field="tenant.io_pressure_some_us_per_s",
        ),
        Mediator(
            "host_io_pressure_full",
            "context",
            "host I/O stall with every task stalled",
            "value",
            (
                "host io_pressure_full_us_per_s (/proc/pressure/io full: all non-idle tasks stalled at once; "
                "a victim waiting on its accelerator is idle, so not necessarily the victim's)"
            ),
            _stall,
            field="host.io_pressure_full_us_per_s",
        ),
        Mediator(
            "disk_await",
            "primary",
            "I/O latency on the victim's disk",
            "value",
            "disk read_await_ms / write_await_ms (the larger) of the victim's disk(s), the worst of them",
            lambda s: f"{s:+.2f} ms per I/O",
            field="host_disk.await_ms",
        ),
        Mediator(
            "disk_busy",
            "context",
            "victim's disk busy",
            "value",
            "disk busy_pct of the victim's disk(s), the busiest",
            lambda s: f"{s:+.1f} points",
            field="host_disk.busy_pct",
        ),
        Mediator(
            "disk_queue",
            "context",
            "victim's disk queue",
            "value",
            "disk queue_ms_per_s (mean queue depth x 1000) of the victim's disk(s)",
            lambda s: f"{s / 1000:+.2f} queued I/Os",
            field="host_disk.queue_ms_per_s",
        ),
    ),
)

NETWORK = Resource(
    name="network",
    share_keys=("nic",),
    fields=(
        sample("host_net", "rx_bytes_per_s", "sum"),
        sample("host_net", "tx_bytes_per_s", "sum"),
        sample("host_net", "speed_mbit_per_s", "sum"),
        WindowField(
            "dropped_per_s", lambda col: _sum_or_null(col, "rx_dropped_per_s", "tx_dropped_per_s"), "sum", "host_net"
        ),
        sample("rdma", "xmit_wait_per_s", "sum"),
        sample("rdma", "cnp_handled_per_s", "sum"),
        sample("rdma", "cnp_sent_per_s", "sum"),
        sample("rdma", "ecn_marked_per_s", "sum"),
        sample("rdma", "rx_discards_per_s", "sum"),
    ),
    mediators=(
        Mediator(
            "link_saturation",
            "primary",
            "victim's link load",
            "link_saturation",
            "net max(rx, tx)_bytes_per_s of the victim's NIC(s) / speed_mbit_per_s (else / its observed peak)",
            _points,
            field="host_net.tx_bytes_per_s",
        ),
        Mediator(
            "nic_drops",
            "primary",
            "packets dropped on the victim's NIC",
            "value",
            "net rx_dropped_per_s + tx_dropped_per_s of the victim's NIC(s)",
            _per_s("packets"),
            field="host_net.dropped_per_s",
        ),
        Mediator(
            "rdma_xmit_wait",
            "primary",
            "victim's RDMA port waiting for credit",
            "value",
            "rdma xmit_wait_per_s (port_xmit_wait) of the victim's port(s)",
            _per_s("ticks"),
            field="rdma.xmit_wait_per_s",
        ),
        Mediator(
            "rdma_cnp_handled",
            "primary",
            "congestion notifications slowing the victim's port",
            "value",
            "rdma cnp_handled_per_s (rp_cnp_handled) of the victim's port(s)",
            _per_s("notifications"),
            field="rdma.cnp_handled_per_s",
        ),
        Mediator(
            "rdma_ecn_marked",
            "primary",
            "ECN-marked packets arriving at the victim's port",
            "value",
            "rdma ecn_marked_per_s (np_ecn_marked_roce_packets) of the victim's port(s)",
            _per_s("packets"),
            field="rdma.ecn_marked_per_s",
        ),
        Mediator(
            "rdma_discards",
            "primary",
            "packets discarded on the victim's RDMA port",
            "value",
            "rdma rx_discards_per_s of the victim's port(s)",
            _per_s("packets"),
            field="rdma.rx_discards_per_s",
        ),
        Mediator(
            "rdma_cnp_sent",
            "context",
            "congestion notifications sent by the victim's port",
            "value",
            "rdma cnp_sent_per_s (np_cnp_sent) of the victim's port(s)",
            _per_s("notifications"),
            field="rdma.cnp_sent_per_s",
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

RESOURCES: tuple[Resource, ...] = (PCIE, CPU, MEMORY_BANDWIDTH, MEMORY, STORAGE_IO, NETWORK, THERMAL, POWER)
"""Every resource attribution knows, in report order."""

RESOURCE_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCES)
BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}

ALL_FIELDS: tuple[WindowField, ...] = tuple(f for r in RESOURCES for f in r.fields)
"""Every resource's window fields, in record order."""

FIELDS: tuple[WindowField, ...] = tuple(f for f in ALL_FIELDS if f.measurement == "accel")
"""The accelerator window fields of every resource, in record order (`analysis.align` device and group windows)."""


def fields_of(measurement: str) -> tuple[WindowField, ...]:
    """The window fields of one measurement, first declaration of a name kept (two records may read one field)."""
    seen: dict[str, WindowField] = {}
    for f in ALL_FIELDS:
        if f.measurement == measurement and f.name not in seen:
            seen[f.name] = f
    return tuple(seen.values())
