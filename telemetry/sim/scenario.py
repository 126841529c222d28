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

Presets (`preset(name, ...)`): ``seed000`` (default), ``pcie_antagonist``, ``cpu_antagonist``,
``thermal_neighbour``, ``decoy``, ``no_interference``, ``aa``, ``randomized``. `PRESETS` lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from telemetry.errors import ConfigError

Resource = Literal["pcie", "cpu", "thermal", "power"]
RESOURCES: tuple[str, ...] = ("pcie", "cpu", "thermal", "power")
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


@dataclass(frozen=True)
class Topology:
    """The node: its accelerators and host CPU layout (logical cores numbered socket-major)."""

    node: str
    devices: tuple[Device, ...]
    sockets: int = 2
    cores_per_socket: int = 32
    mem_total_bytes: int = 1536 * 2**30

    @property
    def cpu_count(self) -> int:
        return self.sockets * self.cores_per_socket

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
        }


@dataclass(frozen=True)
class Tenant:
    """A co-tenant group and what it consumes while on.

    ``util`` is the accelerator busy share (0..1) of a batch tenant; serving tenants derive theirs from the
    simulated server. ``pcie_bytes_per_s`` is per device while on. ``cpu_cores`` is the CPU the group's
    processes keep busy (cores, on ``socket`` or spread over all sockets when None).
    """

    group: str
    kind: TenantKind
    util: float = 0.9
    pcie_bytes_per_s: float = 0.0
    cpu_cores: float = 2.0
    socket: int | None = None
    rss_bytes: int = 8 * 2**30
    threads: int = 64


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

    def __post_init__(self) -> None:
        groups = {t.group for t in self.tenants}
        for t in self.tenants:
            if t.kind not in ("serving", "batch"):
                raise ConfigError(f"scenario {self.name}: tenant {t.group}: unknown kind {t.kind!r}")
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
    Hive 0 = gpu0-7 (socket 0), hive 1 = gpu8-15 (socket 1).
    """
    devs: list[Device] = []
    for k in range(8):
        sock = 0 if k < 4 else 1
        zone = f"zone{k // 2}"
        for j in range(2):
            i = 2 * k + j
            devs.append(
                Device(
                    f"gpu{i}",
                    "amd",
                    "MI300X",
                    "hive0" if i < 8 else "hive1",
                    f"0000:{0x11 + 0x10 * k + j:02x}:00.0",
                    f"sw{k}",
                    sock,
                    zone,
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
                )
            )
    devs.append(Device("rngd0", "furiosa", "RNGD", "furiosa", "0000:15:00.0", "sw0", 0, "zone0"))
    devs.append(Device("rngd1", "furiosa", "RNGD", "furiosa", "0000:55:00.0", "sw4", 1, "zone2"))
    return Topology(node=node, devices=tuple(devs))


def _tenants(extra: tuple[Tenant, ...] = ()) -> tuple[Tenant, ...]:
    base = (
        Tenant("hive0", "serving", cpu_cores=4.0, socket=0, rss_bytes=96 * 2**30, threads=180),
        Tenant("hive1", "serving", cpu_cores=4.0, socket=1, rss_bytes=96 * 2**30, threads=180),
        Tenant(
            "tt",
            "batch",
            util=0.92,
            pcie_bytes_per_s=9.0e9,
            cpu_cores=24.0,
            socket=None,
            rss_bytes=64 * 2**30,
            threads=256,
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
) -> Scenario:
    s = phase_s or SEED000_PHASE_S
    return Scenario(
        name=name,
        topology=seed000_topology(),
        tenants=_tenants(extra),
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
    }


PRESETS: tuple[str, ...] = tuple(_builders())


def preset(
    name: str = "seed000", *, phase_s: int | None = None, num_prompts: int | None = None, seed: int = 0
) -> Scenario:
    """A ready-made scenario.

    ``phase_s``: every phase (for ``randomized``: every block) this many seconds (default: 780 s, enough for
    640 prompts; blocks 60 s). ``num_prompts``: prompts per benchmark run (default 640; 0 = keep
    dispatching until the phase ends). ``seed`` matters only for ``randomized`` (its on/off design).
    """
    try:
        build = _builders()[name]
    except KeyError:
        raise ConfigError(f"unknown scenario {name!r}; presets: {', '.join(PRESETS)}") from None
    return build(phase_s, num_prompts, seed)
