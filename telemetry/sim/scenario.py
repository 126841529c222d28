"""Declarative scenarios for the node simulator: topology, tenants, phases, couplings, presets.

A `Scenario` says *what* runs on the node and *when*; `telemetry.sim.engine.simulate` turns it into
telemetry frames, benchmark runs and ground truth. Everything here is plain frozen data (no I/O).

Vocabulary
----------
- `Device`: one accelerator, with the places it shares with others: ``pcie_switch``, ``socket`` (CPU
  package whose root complex it hangs off), ``cooling_zone`` (air path it shares).
- `Tenant`: a co-tenant, named by its ``group`` (the same label as the devices it owns, or a host-only
  group such as ``cpuhog``). ``kind`` is ``serving`` (runs the benchmark: LLM server + client) or
  ``batch`` (a busy job: training / offline inference / CPU work) .
- `Phase`: a named time window with the set of tenants that are on in it.
- `Coupling`: antagonist group -> victim group through a named shared resource, with ``strength`` =
  fractional slowdown of the resource-sensitive part of the victim's step time while the antagonist is
  fully on (see `telemetry.sim.serving`).
- `BenchConfig`: the serving benchmark every ``serving`` tenant runs (SGLang-like, closed loop).

- `LoadDrift`: the victim's own load (client concurrency, input length) drifting slowly: a confounder.

Presets (`preset(name, ...)`): ``seed000`` (default), ``pcie_antagonist``, ``cpu_antagonist``,
``thermal_neighbour``, ``decoy``, ``no_interference``, ``aa``, ``randomized``; the antagonists of the new
resources (`RESOURCE_PRESETS`): ``memory_bandwidth_antagonist``, ``memory_pressure_antagonist``,
``storage_antagonist``, ``network_antagonist``, ``cpu_quota_antagonist``; for calibrating attribution,
``null_drift`` (co-tenants switching in long blocks, the victim's load drifting, no coupling: any flag is a false
alarm) and ``interference_drift`` (the same with one true antagonist, its resource chosen by the seed, and a decoy
of its kind beside it). `PRESETS` lists them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from telemetry.errors import ConfigError

Resource = Literal["pcie", "cpu", "thermal", "power", "memory_bandwidth", "memory", "storage_io", "network"]
RESOURCES: tuple[str, ...] = ("pcie", "cpu", "thermal", "power", "memory_bandwidth", "memory", "storage_io", "network")
"""Kept equal to `analysis.resources.RESOURCE_NAMES` (tests/analysis/test_resources.py checks)."""
TenantKind = Literal["serving", "batch"]
BenchMode = Literal["per_phase", "continuous"]


@dataclass(frozen=True)
class Device:
    """One accelerator and the resources it shares with others."""

    id: str
    vendor: str
    model: str
    group: str
    pci_bus: str
    pcie_switch: str
    socket: int
    cooling_zone: str
    numa_node: int | None = None
    nic: str | None = None
    disk: str | None = None


@dataclass(frozen=True)
class HostGroup:
    """A host-only tenant (no accelerator) and the places it shares (written under ``groups`` in topology.json)."""

    group: str
    socket: int | None = None
    numa_node: int | None = None
    nic: str | None = None
    disk: str | None = None

    def shares(self) -> dict[str, str | int]:
        return {k: v for k, v in asdict(self).items() if k != "group" and v is not None}


@dataclass(frozen=True)
class Topology:
    """The node: its accelerators and host CPU layout (logical cores numbered socket-major)."""

    node: str
    devices: tuple[Device, ...]
    sockets: int = 2
    cores_per_socket: int = 32
    mem_total_bytes: int = 1536 * 2**30
    host_groups: tuple[HostGroup, ...] = ()

    @property
    def cpu_count(self) -> int:
        return self.sockets * self.cores_per_socket

    def places(self, group: str, key: str) -> tuple[str, ...]:
        """The values of share key ``key`` (``nic``, ``disk``, ``numa_node``, ...) that ``group`` uses: its
        devices' or, for a host-only group, its own (sorted, as text)."""
        vals = {getattr(d, key) for d in self.devices if d.group == group}
        vals |= {getattr(h, key) for h in self.host_groups if h.group == group}
        return tuple(sorted(str(v) for v in vals if v is not None))

    def all_places(self, key: str) -> tuple[str, ...]:
        """Every value of share key ``key`` on the node (sorted, as text)."""
        vals = {getattr(d, key) for d in self.devices} | {getattr(h, key) for h in self.host_groups}
        return tuple(sorted(str(v) for v in vals if v is not None))

    def group_devices(self, group: str) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.group == group)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.group for d in self.devices))

    def to_dict(self) -> dict:
        """JSON-ready form (written as ``topology.json``)."""
        return {
            "node": self.node,
            "sockets": self.sockets,
            "cores_per_socket": self.cores_per_socket,
            "cpu_count": self.cpu_count,
            "mem_total_bytes": self.mem_total_bytes,
            "devices": [asdict(d) for d in self.devices],
            "groups": {h.group: h.shares() for h in self.host_groups},
        }


@dataclass(frozen=True)
class Tenant:
    """A co-tenant group and what it consumes while on.

    ``util`` is the accelerator busy share (0..1) of a batch tenant; serving tenants derive theirs from the
    simulated server. ``pcie_bytes_per_s`` is per device while on. ``cpu_cores`` is the CPU the group's
    processes keep busy (cores, on ``socket`` or spread over all sockets when None).

    What the group's processes move while on (a serving group: at its nominal load, scaled by its token rate):
    ``mem_bw_bytes_per_s`` host memory traffic (resctrl MBM), ``llc_bytes`` last-level cache held,
    ``io_read_bytes_per_s`` / ``io_write_bytes_per_s`` on its disk(s), ``net_bytes_per_s`` sent on its NIC(s)
    (``net_kind``: ``rdma`` (RoCE: collectives, KV transfers; counted by the ``rdma`` port counters) or ``tcp``
    (counted by the ``net`` interface counters)).
    ``cpu_quota_cores``: the CFS quota of its cgroup (``cpu.max``; None: no quota). A host-only group shares the
    places it names (``socket``, ``numa_node`` (default: the socket), ``nic``, ``disk``); a group with
    accelerators shares its devices' places.
    """

    group: str
    kind: TenantKind
    util: float = 0.9
    pcie_bytes_per_s: float = 0.0
    cpu_cores: float = 2.0
    socket: int | None = None
    rss_bytes: int = 8 * 2**30
    threads: int = 64
    mem_bw_bytes_per_s: float = 2.0e9
    llc_bytes: float = 24 * 2**20
    io_read_bytes_per_s: float = 0.0
    io_write_bytes_per_s: float = 0.0
    net_bytes_per_s: float = 0.0
    net_kind: Literal["rdma", "tcp"] = "rdma"
    cpu_quota_cores: float | None = None
    numa_node: int | None = None
    nic: str | None = None
    disk: str | None = None

    def host_group(self) -> HostGroup:
        numa = self.numa_node if self.numa_node is not None else self.socket
        return HostGroup(self.group, self.socket, numa, self.nic, self.disk)


@dataclass(frozen=True)
class Phase:
    """A named time window and the tenants that are on in it."""

    name: str
    duration_s: int
    active: frozenset[str]


@dataclass(frozen=True)
class Coupling:
    """Antagonist group slows victim group through ``resource`` (strength: see module docstring)."""

    antagonist: str
    victim: str
    resource: Resource
    strength: float


@dataclass(frozen=True)
class BenchConfig:
    """The benchmark each serving tenant runs (SGLang ``bench_serving``-like, ``--request-rate inf``).

    ``num_prompts`` None: keep dispatching until the phase (or, for ``continuous``, the scenario) ends.
    Input / output lengths are uniform in ``[len * range_ratio, len]`` (SGLang's random dataset).
    """

    tool: str = "sglang"
    model: str = "Qwen/Qwen3.5-397B-A17B-FP8"
    backend: str = "sglang"
    num_prompts: int | None = 640
    max_concurrency: int = 64
    input_len: int = 8192
    output_len: int = 1024
    range_ratio: float = 0.8
    tp: int = 8


@dataclass(frozen=True)
class LoadDrift:
    """The victim's own load drifting slowly (a confounder, not interference): its client's concurrency and its
    prompts' input length are scaled by ``1 + amp * s(t)``, ``s`` a smooth random curve in [-1, 1] (three
    sinusoids with periods in ``[0.6, 1.6] * period_s`` and random phases, drawn from ``seed``). ``speed_amp``
    adds a drift no load regressor sees: the server's step time scaled by ``1 + speed_amp * s(t)`` (its own
    clocks, cache and allocator state wandering), which only the test's handling of slow confounders absorbs."""

    concurrency_amp: float = 0.35
    input_len_amp: float = 0.3
    period_s: float = 700.0
    seed: int = 0
    speed_amp: float = 0.0

    def _curve(self, n: int, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0xD81F7, k])
        periods = rng.uniform(0.6, 1.6, 3) * self.period_s
        phases = rng.uniform(0, 2 * np.pi, 3)
        weights = rng.uniform(0.5, 1.0, 3)
        t = np.arange(n, dtype=float)
        s = sum(w * np.sin(2 * np.pi * t / p + ph) for w, p, ph in zip(weights, periods, phases, strict=True))
        return s / weights.sum()

    def factors(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(concurrency factor, input-length factor) per second, length ``n``."""
        return 1 + self.concurrency_amp * self._curve(n, 0), 1 + self.input_len_amp * self._curve(n, 1)

    def slowdown(self, n: int) -> np.ndarray:
        """The step-time factor per second (``1 + speed_amp * s(t)``), length ``n``."""
        return 1 + self.speed_amp * self._curve(n, 2)


@dataclass(frozen=True)
class Scenario:
    """Everything the simulator needs; see `preset` for ready-made ones."""

    name: str
    topology: Topology
    tenants: tuple[Tenant, ...]
    phases: tuple[Phase, ...]
    couplings: tuple[Coupling, ...] = ()
    victim: str = "hive0"
    bench: BenchConfig = field(default_factory=BenchConfig)
    bench_mode: BenchMode = "per_phase"
    start: datetime = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
    description: str = ""
    drift: LoadDrift | None = None

    def __post_init__(self) -> None:
        groups = {t.group for t in self.tenants}
        for t in self.tenants:
            if t.kind not in ("serving", "batch"):
                raise ConfigError(f"scenario {self.name}: tenant {t.group}: unknown kind {t.kind!r}")
            rates = ("mem_bw_bytes_per_s", "llc_bytes", "io_read_bytes_per_s", "io_write_bytes_per_s")
            for k in (*rates, "net_bytes_per_s", "pcie_bytes_per_s", "cpu_cores"):
                if getattr(t, k) < 0:
                    raise ConfigError(f"scenario {self.name}: tenant {t.group}: {k} must be >= 0")
            if t.net_kind not in ("rdma", "tcp"):
                raise ConfigError(f"scenario {self.name}: tenant {t.group}: net_kind must be 'rdma' or 'tcp'")
            if t.cpu_quota_cores is not None and t.cpu_quota_cores <= 0:
                raise ConfigError(f"scenario {self.name}: tenant {t.group}: cpu_quota_cores must be > 0")
        d = self.drift
        if d is not None:
            amps = (d.concurrency_amp, d.input_len_amp, d.speed_amp)
            if not all(0 <= a < 1 for a in amps) or d.period_s <= 0:
                raise ConfigError(
                    f"scenario {self.name}: drift: concurrency_amp, input_len_amp and speed_amp must be in [0, 1) "
                    f"and period_s > 0 (got {amps}, {d.period_s})"
                )
        # host-only tenants appear in the topology's groups with the places they share
        with_devices = {d.group for d in self.topology.devices}
        declared = {h.group for h in self.topology.host_groups}
        missing = tuple(t.host_group() for t in self.tenants if t.group not in with_devices | declared)
        if missing:
            object.__setattr__(
                self, "topology", replace(self.topology, host_groups=self.topology.host_groups + missing)
            )
        for p in self.phases:
            if p.duration_s <= 0:
                raise ConfigError(f"scenario {self.name}: phase {p.name}: duration_s must be > 0")
            unknown = set(p.active) - groups
            if unknown:
                raise ConfigError(f"scenario {self.name}: phase {p.name}: unknown tenants {sorted(unknown)}")
        for c in self.couplings:
            if c.resource not in RESOURCES:
                raise ConfigError(f"scenario {self.name}: coupling {c}: resource must be one of {RESOURCES}")
            if c.antagonist not in groups or c.victim not in groups:
                raise ConfigError(f"scenario {self.name}: coupling {c}: unknown group")
        if self.victim not in groups:
            raise ConfigError(f"scenario {self.name}: victim {self.victim!r} is not a tenant")

    @property
    def duration_s(self) -> int:
        return sum(p.duration_s for p in self.phases)

    def tenant(self, group: str) -> Tenant:
        for t in self.tenants:
            if t.group == group:
                return t
        raise ConfigError(f"scenario {self.name}: no tenant {group!r}")

    def phase_bounds(self) -> list[tuple[Phase, int, int]]:
        """(phase, start_s, end_s) offsets from `start`."""
        out, t = [], 0
        for p in self.phases:
            out.append((p, t, t + p.duration_s))
            t += p.duration_s
        return out

    def schedule(self) -> dict[str, np.ndarray]:
        """Per tenant group: a bool array, one entry per second of the scenario, True while on."""
        n = self.duration_s
        out = {t.group: np.zeros(n, dtype=bool) for t in self.tenants}
        for p, a, b in self.phase_bounds():
            for g in p.active:
                out[g][a:b] = True
        return out

    def schedule_blocks(self) -> list[dict]:
        """The on/off design as JSON-ready blocks: ``{phase, start_s, end_s, active: [...]}``."""
        return [
            {"phase": p.name, "start_s": a, "end_s": b, "active": sorted(p.active)} for p, a, b in self.phase_bounds()
        ]

    def with_phase_seconds(self, seconds: int) -> Scenario:
        """The same scenario with every phase ``seconds`` long (for short test runs)."""
        return replace(self, phases=tuple(replace(p, duration_s=seconds) for p in self.phases))

    def to_dict(self) -> dict:
        return json.loads(
            json.dumps(
                {
                    "name": self.name,
                    "description": self.description,
                    "victim": self.victim,
                    "bench_mode": self.bench_mode,
                    "start": self.start.isoformat(),
                    "bench": asdict(self.bench),
                    "tenants": [asdict(t) for t in self.tenants],
                    "phases": self.schedule_blocks(),
                    "couplings": [asdict(c) for c in self.couplings],
                    "drift": asdict(self.drift) if self.drift else None,
                },
                default=str,
            )
        )


# --------------------------------------------------------------------------------------------- topology


def seed000_topology(node: str = "ionx-sixtyfour-01") -> Topology:
    """The 34-accelerator node of seed 000.

    Two sockets. Eight PCIe switches ``sw0..sw7`` (sw0-3 on socket 0, sw4-7 on socket 1); switch *k* holds
    MI300X ``gpu{2k}``, ``gpu{2k+1}`` and Tenstorrent ``tt{2k}``, ``tt{2k+1}``; Furiosa ``rngd0`` sits on sw0
    and ``rngd1`` on sw4. Cooling zones ``zone0..zone3`` = switch pairs (sw0-1, sw2-3, sw4-5, sw6-7).
    Hive 0 = gpu0-7 (socket 0), hive 1 = gpu8-15 (socket 1). One NUMA node per socket (``numa_node`` = socket).
    RoCE NICs ``mlx5_0..mlx5_3``, one per switch pair (the netdev carries the RDMA device's name, so a topology
    ``nic`` matches both the ``net`` interface and the ``rdma`` device). Disks: `GROUP_DISKS`.
    """
    devs: list[Device] = []
    for k in range(8):
        sock = 0 if k < 4 else 1
        zone = f"zone{k // 2}"
        for j in range(2):
            i = 2 * k + j
            group = "hive0" if i < 8 else "hive1"
            devs.append(
                Device(
                    f"gpu{i}",
                    "amd",
                    "MI300X",
                    group,
                    f"0000:{0x11 + 0x10 * k + j:02x}:00.0",
                    f"sw{k}",
                    sock,
                    zone,
                    sock,
                    f"mlx5_{k // 2}",
                    GROUP_DISKS[group],
                )
            )
    for k in range(8):
        sock = 0 if k < 4 else 1
        zone = f"zone{k // 2}"
        for j in range(2):
            i = 2 * k + j
            devs.append(
                Device(
                    f"tt{i}",
                    "tenstorrent",
                    "Wormhole n300",
                    "tt",
                    f"0000:{0x13 + 0x10 * k + j:02x}:00.0",
                    f"sw{k}",
                    sock,
                    zone,
                    sock,
                    f"mlx5_{k // 2}",
                    GROUP_DISKS["tt"],
                )
            )
    devs.append(
        Device("rngd0", "furiosa", "RNGD", "furiosa", "0000:15:00.0", "sw0", 0, "zone0", 0, "mlx5_0", "nvme2n1")
    )
    devs.append(
        Device("rngd1", "furiosa", "RNGD", "furiosa", "0000:55:00.0", "sw4", 1, "zone2", 1, "mlx5_2", "nvme2n1")
    )
    return Topology(node=node, devices=tuple(devs))


GROUP_DISKS = {"hive0": "nvme0n1", "hive1": "nvme1n1", "tt": "nvme2n1", "furiosa": "nvme2n1"}
"""The local NVMe each accelerator group's processes use (model weights, prompt cache, KV offload, logs)."""


_HIVE = {
    "cpu_cores": 4.0,
    "rss_bytes": 96 * 2**30,
    "threads": 180,
    "mem_bw_bytes_per_s": 9.0e9,
    "llc_bytes": 96 * 2**20,
    "io_read_bytes_per_s": 40e6,
    "io_write_bytes_per_s": 25e6,
    "net_bytes_per_s": 1.5e9,
}


def _tenants(extra: tuple[Tenant, ...] = (), victim_quota_cores: float | None = None) -> tuple[Tenant, ...]:
    base = (
        Tenant("hive0", "serving", socket=0, cpu_quota_cores=victim_quota_cores, **_HIVE),
        Tenant("hive1", "serving", socket=1, **_HIVE),
        Tenant(
            "tt",
            "batch",
            util=0.92,
            pcie_bytes_per_s=9.0e9,
            cpu_cores=24.0,
            socket=None,
            rss_bytes=64 * 2**30,
            threads=256,
            mem_bw_bytes_per_s=22e9,
            llc_bytes=64 * 2**20,
            io_read_bytes_per_s=300e6,
            net_bytes_per_s=3.0e9,
        ),
        Tenant(
            "furiosa",
            "batch",
            util=0.85,
            pcie_bytes_per_s=3.0e9,
            cpu_cores=6.0,
            socket=None,
            rss_bytes=24 * 2**30,
            threads=48,
            mem_bw_bytes_per_s=6e9,
            io_read_bytes_per_s=80e6,
            net_bytes_per_s=0.5e9,
        ),
    )
    return base + extra


# Seed 000 couplings, calibrated so hive0 loses ~1 % throughput with hive1 on and ~2 % throughput /
# ~+6 % p99 ITL with everything on (tests/telemetry/test_simulator.py checks this).
SEED000_COUPLINGS = (
    Coupling("hive1", "hive0", "cpu", 0.0055),
    Coupling("tt", "hive0", "pcie", 0.0155),
    Coupling("tt", "hive0", "thermal", 0.003),
    Coupling("tt", "hive0", "cpu", 0.003),
    Coupling("furiosa", "hive0", "cpu", 0.0015),
    Coupling("hive0", "hive1", "cpu", 0.008),
    Coupling("tt", "hive1", "pcie", 0.030),
    Coupling("tt", "hive1", "thermal", 0.004),
    Coupling("tt", "hive1", "cpu", 0.004),
    Coupling("furiosa", "hive1", "cpu", 0.002),
)

SEED000_PHASE_S = 780


def _seed000(phase_s: int | None, num_prompts: int | None, seed: int) -> Scenario:
    s = phase_s or SEED000_PHASE_S
    return Scenario(
        name="seed000",
        topology=seed000_topology(),
        tenants=_tenants(),
        phases=(
            Phase("baseline", s, frozenset({"hive0"})),
            Phase("dual_hive", s, frozenset({"hive0", "hive1"})),
            Phase("full_stress", s, frozenset({"hive0", "hive1", "tt", "furiosa"})),
        ),
        couplings=SEED000_COUPLINGS,
        victim="hive0",
        bench=BenchConfig(num_prompts=_prompts(num_prompts, 640)),
        description="Seed 000: hive0 alone; hive0 + hive1; all 34 accelerators busy (calibrated to the blog).",
    )


def _prompts(num_prompts: int | None, default: int) -> int | None:
    if num_prompts is None:
        return default
    return None if num_prompts <= 0 else num_prompts


def _two_phase(
    name: str,
    antagonist: str,
    couplings: tuple[Coupling, ...],
    phase_s: int | None,
    num_prompts: int | None,
    description: str,
    extra: tuple[Tenant, ...] = (),
    victim_quota_cores: float | None = None,
) -> Scenario:
    s = phase_s or SEED000_PHASE_S
    return Scenario(
        name=name,
        topology=seed000_topology(),
        tenants=_tenants(extra, victim_quota_cores),
        phases=(
            Phase("baseline", s, frozenset({"hive0"})),
            Phase("stress", s, frozenset({"hive0", antagonist})),
        ),
        couplings=couplings,
        victim="hive0",
        bench=BenchConfig(num_prompts=_prompts(num_prompts, 640)),
        description=description,
    )


CPUHOG = Tenant("cpuhog", "batch", util=0.0, cpu_cores=40.0, socket=0, rss_bytes=32 * 2**30, threads=96)


def _randomized(
    phase_s: int | None, num_prompts: int | None, seed: int, blocks: int = 24, block_s: int = 60, p_on: float = 0.5
) -> Scenario:
    """hive0 serves continuously; hive1, tt, furiosa switch on/off per block independently (p = 0.5)."""
    b = phase_s or block_s
    rng = np.random.default_rng([seed, 0xB10C])
    co = ("hive1", "tt", "furiosa")
    on = rng.random((blocks, len(co))) < p_on
    phases = tuple(
        Phase(f"b{i:03d}", b, frozenset({"hive0", *(g for g, o in zip(co, on[i], strict=True) if o)}))
        for i in range(blocks)
    )
    return Scenario(
        name="randomized",
        topology=seed000_topology(),
        tenants=_tenants(),
        phases=phases,
        couplings=tuple(c for c in SEED000_COUPLINGS if c.victim == "hive0"),
        victim="hive0",
        bench=BenchConfig(num_prompts=None if num_prompts is None or num_prompts <= 0 else num_prompts),
        bench_mode="continuous",
        description=(
            f"Randomized design: hive0 serves continuously; hive1, tt and furiosa are each on with p={p_on} "
            f"in {blocks} blocks of {b} s, independently (schedule in ground_truth.json)."
        ),
    )


# ------------------------------------------------------------------------------ antagonists of issue 20


def _stream(group: str) -> Tenant:
    """A STREAM-like job (``stress-ng --stream 4``) on socket 0 / NUMA node 0: four threads that keep the memory
    controllers busy and leave the socket's other cores free (memory bandwidth, not CPU)."""
    return Tenant(
        group,
        "batch",
        util=0.0,
        cpu_cores=4.0,
        socket=0,
        rss_bytes=16 * 2**30,
        threads=4,
        mem_bw_bytes_per_s=110e9,
        llc_bytes=220 * 2**20,
    )


def _memhog(group: str) -> Tenant:
    """A memory hog (``stress-ng --vm`` with a huge footprint) on socket 1: the host reclaims everyone's pages."""
    return Tenant(
        group,
        "batch",
        util=0.0,
        cpu_cores=2.0,
        socket=1,
        rss_bytes=1200 * 2**30,
        threads=4,
        mem_bw_bytes_per_s=12e9,
        llc_bytes=32 * 2**20,
    )


def _fio(group: str) -> Tenant:
    """A ``fio`` writer with syncs on hive0's disk ``nvme0n1`` (its CPUs on socket 1)."""
    return Tenant(
        group,
        "batch",
        util=0.0,
        cpu_cores=3.0,
        socket=1,
        rss_bytes=2 * 2**30,
        threads=8,
        mem_bw_bytes_per_s=3e9,
        io_read_bytes_per_s=0.6e9,
        io_write_bytes_per_s=2.6e9,
        disk="nvme0n1",
    )


def _iperf(group: str) -> Tenant:
    """A bulk transfer (``iperf3``) through hive0's NIC ``mlx5_0`` (its CPUs on socket 1)."""
    return Tenant(
        group,
        "batch",
        util=0.0,
        cpu_cores=4.0,
        socket=1,
        rss_bytes=1 * 2**30,
        threads=8,
        mem_bw_bytes_per_s=4e9,
        net_bytes_per_s=44e9,
        net_kind="tcp",
        nic="mlx5_0",
    )


def _quota_job(group: str) -> Tenant:
    """A CPU job in hive0's parent slice on socket 0: it spends the CFS quota hive0 shares with it (6 cores, far
    from saturating the socket, so only throttling shows it)."""
    return Tenant(
        group,
        "batch",
        util=0.0,
        cpu_cores=6.0,
        socket=0,
        rss_bytes=4 * 2**30,
        threads=12,
        mem_bw_bytes_per_s=3e9,
    )


VICTIM_QUOTA_CORES = 8.0
"""hive0's CFS quota (``cpu.max``) in the CPU-quota and drift presets."""

ANTAGONIST_KINDS: dict[str, tuple[str, Callable[[str], Tenant], float]] = {
    "memory_bandwidth": ("stream", _stream, 0.10),
    "memory": ("memhog", _memhog, 0.07),
    "storage_io": ("fio", _fio, 0.06),
    "network": ("iperf", _iperf, 0.16),
    "cpu": ("quota", _quota_job, 0.08),
}
"""Per resource of issue 20: (co-tenant name, its tenant, the coupling strength of the single-antagonist preset).
Strengths give similar slowdowns: about +25-35 % p99 ITL while the antagonist is on in ``interference_drift``."""

RESOURCE_PRESETS: dict[str, str] = {
    "memory_bandwidth_antagonist": "memory_bandwidth",
    "memory_pressure_antagonist": "memory",
    "storage_antagonist": "storage_io",
    "network_antagonist": "network",
    "cpu_quota_antagonist": "cpu",
}
"""The single-antagonist presets of the new resources and the resource each one's antagonist acts through."""

_RESOURCE_WORDS = {
    "memory_bandwidth": "streams through socket 0's memory controllers; hive0's host threads stall on DRAM.",
    "memory": "holds 1.2 TB; the host reclaims hive0's pages and hive0 faults them back in.",
    "storage_io": "writes with syncs to hive0's disk nvme0n1; hive0's prompt-cache reads and logs queue.",
    "network": "sends bulk data through hive0's NIC mlx5_0; hive0's KV transfers wait for credit.",
    "cpu": "spends the CFS quota of hive0's parent slice; hive0's threads are throttled.",
}


def _resource_preset(name: str, phase_s: int | None, num_prompts: int | None) -> Scenario:
    resource = RESOURCE_PRESETS[name]
    who, make, strength = ANTAGONIST_KINDS[resource]
    return _two_phase(
        name,
        who,
        (Coupling(who, "hive0", resource, strength),),
        phase_s,
        num_prompts,
        f"A host-only job {who!r} {_RESOURCE_WORDS[resource]}",
        extra=(make(who),),
        victim_quota_cores=VICTIM_QUOTA_CORES if resource == "cpu" else None,
    )


DRIFT_BLOCK_S = 90
DRIFT_BLOCKS = 12
DRIFT_SPEED_AMP = 0.03  # the victim's unobserved step-time drift, +-3 %
DRIFT_BENCH = BenchConfig(num_prompts=None, max_concurrency=32, input_len=4096, output_len=512)
"""The drift presets' benchmark: half seed 000's concurrency and lengths (shorter runs, same mechanics)."""


def _blocks(rng: np.random.Generator, total_s: int, block_s: int) -> np.ndarray:
    """On/off per second: alternating blocks of uniform ``[0.5, 1.5] * block_s`` seconds, random first state."""
    on = np.zeros(total_s, dtype=bool)
    t, state = 0, bool(rng.random() < 0.5)
    while t < total_s:
        d = int(rng.integers(block_s // 2, block_s * 3 // 2 + 1))
        on[t : t + d] = state
        t += d
        state = not state
    return on


def _phases_from(victim: str, sched: dict[str, np.ndarray]) -> tuple[Phase, ...]:
    """Phases = the intervals between any co-tenant's switches, each with the co-tenants on in it."""
    names = list(sched)
    mat = np.stack([sched[g] for g in names], axis=1)
    change = np.flatnonzero(np.any(mat[1:] != mat[:-1], axis=1)) + 1
    edges = [0, *change.tolist(), mat.shape[0]]
    return tuple(
        Phase(f"b{i:03d}", b - a, frozenset({victim, *(g for g, o in zip(names, mat[a], strict=True) if o)}))
        for i, (a, b) in enumerate(itertools.pairwise(edges))
    )


def _drift(name: str, phase_s: int | None, num_prompts: int | None, seed: int, interference: bool) -> Scenario:
    """hive0 serves continuously with a slowly drifting load; co-tenants sharing a socket, NUMA node, disk, NIC
    or the host's memory with it switch on and off in long blocks; with ``interference`` one of them is a true
    antagonist and another of its kind beside it a decoy (no coupling)."""
    block = phase_s or DRIFT_BLOCK_S
    total = block * DRIFT_BLOCKS
    rng = np.random.default_rng([seed, 0xD21F7, int(interference)])
    kinds = list(ANTAGONIST_KINDS)
    couplings: tuple[Coupling, ...] = ()
    if interference:
        resource = kinds[seed % len(kinds)]
        who, make, strength = ANTAGONIST_KINDS[resource]
        pair = [f"{who}_a", f"{who}_b"]
        antagonist = pair[int(rng.integers(0, 2))]
        other = kinds[int(rng.choice([i for i in range(len(kinds)) if kinds[i] != resource]))]
        extra = (make(pair[0]), make(pair[1]), ANTAGONIST_KINDS[other][1](ANTAGONIST_KINDS[other][0]))
        strength = round(float(strength * rng.uniform(0.7, 1.3)), 4)
        couplings = (Coupling(antagonist, "hive0", resource, strength),)
        decoy = pair[1 - pair.index(antagonist)]
        desc = (
            f"Interference under drift: hive0's load drifts; {antagonist} slows hive0 through {resource} "
            f"(strength {strength}); {decoy} beside it (same kind, same places) is a decoy; tt and {extra[2].group} "
            f"switch too. Blocks of ~{block} s."
        )
    else:
        picked = sorted(rng.choice(len(kinds), 3, replace=False).tolist())
        extra = tuple(ANTAGONIST_KINDS[kinds[i]][1](ANTAGONIST_KINDS[kinds[i]][0]) for i in picked)
        desc = (
            f"Null under drift: hive0's load (concurrency, input length) drifts slowly; tt, "
            f"{', '.join(t.group for t in extra)} switch on/off in blocks of ~{block} s and slow nobody: "
            "any co-tenant flagged is a false alarm."
        )
    tenants = _tenants(extra, VICTIM_QUOTA_CORES)
    co = ["tt", *(t.group for t in extra)]
    sched = {g: _blocks(rng, total, block) for g in co}
    return Scenario(
        name=name,
        topology=seed000_topology(),
        tenants=tenants,
        phases=_phases_from("hive0", sched),
        couplings=couplings,
        victim="hive0",
        bench=replace(DRIFT_BENCH, num_prompts=None if num_prompts is None or num_prompts <= 0 else num_prompts),
        bench_mode="continuous",
        description=desc,
        drift=LoadDrift(period_s=5.0 * block, seed=seed, speed_amp=DRIFT_SPEED_AMP),
    )


def _builders() -> dict[str, Callable[[int | None, int | None, int], Scenario]]:
    return {
        "seed000": _seed000,
        "pcie_antagonist": lambda s, n, seed: _two_phase(
            "pcie_antagonist",
            "tt",
            (Coupling("tt", "hive0", "pcie", 0.10),),
            s,
            n,
            "tt cards on hive0's PCIe switches stream data; hive0's prefill uploads queue behind them.",
        ),
        "cpu_antagonist": lambda s, n, seed: _two_phase(
            "cpu_antagonist",
            "cpuhog",
            (Coupling("cpuhog", "hive0", "cpu", 0.08),),
            s,
            n,
            "A host-only job keeps 40 cores of socket 0 busy; hive0's scheduler threads wait in the run queue.",
            extra=(CPUHOG,),
        ),
        "thermal_neighbour": lambda s, n, seed: _two_phase(
            "thermal_neighbour",
            "tt",
            (Coupling("tt", "hive0", "thermal", 0.08),),
            s,
            n,
            "tt cards heat hive0's cooling zones; hive0 clocks drop (thermal throttle) and prefill slows.",
        ),
        "decoy": lambda s, n, seed: _two_phase(
            "decoy",
            "hive1",
            (),
            s,
            n,
            "hive1 serves at full load in the stress phase but shares no switch, socket or zone effect with "
            "hive0: any blame on hive1 is wrong.",
        ),
        "no_interference": lambda s, n, seed: _two_phase(
            "no_interference",
            "tt",
            (),
            s,
            n,
            "tt cards are busy in the stress phase but perfectly isolated: hive0 is unaffected.",
        ),
        "aa": lambda s, n, seed: Scenario(
            name="aa",
            topology=seed000_topology(),
            tenants=_tenants(),
            phases=(
                Phase("baseline_a", s or SEED000_PHASE_S, frozenset({"hive0"})),
                Phase("baseline_b", s or SEED000_PHASE_S, frozenset({"hive0"})),
            ),
            victim="hive0",
            bench=BenchConfig(num_prompts=_prompts(n, 640)),
            description="A/A: two baseline phases of the same configuration; any difference is noise.",
        ),
        "randomized": _randomized,
        **{
            name: (lambda s, n, seed, name=name: _resource_preset(name, s, n))  # type: ignore[misc]
            for name in RESOURCE_PRESETS
        },
        "null_drift": lambda s, n, seed: _drift("null_drift", s, n, seed, interference=False),
        "interference_drift": lambda s, n, seed: _drift("interference_drift", s, n, seed, interference=True),
    }


PRESETS: tuple[str, ...] = tuple(_builders())


def preset(
    name: str = "seed000", *, phase_s: int | None = None, num_prompts: int | None = None, seed: int = 0
) -> Scenario:
    """A ready-made scenario.

    ``phase_s``: every phase (for ``randomized``: every block; for ``null_drift`` / ``interference_drift``: the
    mean block, twelve of them) this many seconds (default: 780 s, enough for 640 prompts; blocks 60 s, drift
    blocks 90 s). ``num_prompts``: prompts per benchmark run (default 640; 0 = keep dispatching until the phase
    ends; the continuous designs dispatch until the end by default). ``seed`` draws ``randomized``'s on/off
    design and, for the drift presets, the co-tenants, their blocks, the victim's drift and (``interference_drift``)
    the antagonist: resource ``seed % 5`` in `ANTAGONIST_KINDS` order, strength 0.7-1.3 x nominal.
    """
    try:
        build = _builders()[name]
    except KeyError:
        raise ConfigError(f"unknown scenario {name!r}; presets: {', '.join(PRESETS)}") from None
    return build(phase_s, num_prompts, seed)
