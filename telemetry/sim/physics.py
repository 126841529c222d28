"""Node physics at 1 Hz: utilisation -> power -> temperature -> clocks; PCIe; host CPU; tenants.

`node_state` computes the per-second state of every device and of the host once (numpy, float32,
seconds x devices); `frames` turns any window ``[t0, t1)`` of it into schema frames. Noise on the state
is drawn once from the seed; noise on derived fields comes from fixed tables indexed by ``t mod prime``,
so a window's frames do not depend on how the timeline is chunked.

Models (per device d, second t):

- utilisation ``u``: serving groups from their engine's token rates (0.80 decode-only .. 0.99 with
  prefill), batch groups ``Tenant.util`` while on, 0 when off (+ noise).
- power ``P = idle + (max - idle) * u**0.9 / clock_penalty`` (+ noise), capped at the limit.
- temperature: first-order lag (tau 25 s) toward ``inlet + r * P + zone_k * (other power in the zone, kW)
  + 150 * thermal pressure`` (cooling-zone neighbours heat each other).
- clocks: ``f = f_busy / (1 + thermal + power pressure)``; ``throttle_thermal`` while thermal pressure >
  0.2 % (likewise ``throttle_power``).
- PCIe: batch tenants stream ``Tenant.pcie_bytes_per_s``; a serving GPU moves ~0.3-2.5 GB/s with its
  prefill load, divided by ``1 + 10 * pcie pressure`` (the antagonist's traffic on the shared switch).
- host: per-socket CPU demand = sum of the tenants' ``cpu_cores`` while on (+ OS); per-core util spreads it
  with fixed per-core weights; ``procs_running`` counts runnable threads (grows past the core count
  with a CPU antagonist); loadN = exponential averages of it.

Shared resources (`resource_state`; issue 20), per group g and second t, with ``p_r`` the coupling pressure of
resource r on g as a victim (sum over couplings of strength x antagonist activity, `telemetry.sim.engine`) and
``I`` g's activity (a serving group's scaled by its decode rate, so the victim's own signals drift with its load):

- memory bandwidth (resctrl MBM / CMT): ``mbm_total = I * Tenant.mem_bw_bytes_per_s / (1 + 3 p_mb)``, local
  share 92 % (55 % for a group spread over both sockets), LLC held ``/ (1 + 5 p_mb)``; the victim's CPU time per
  token rises by ``1.5 p_mb`` (stalled cycles count as busy); host ``numa_miss`` / ``numa_foreign`` rise with the
  pressure. Host MBM = the groups' sum + the OS.
- memory (reclaim): the victim's ``mem_pressure_some`` +300 ms/s per unit of ``p_m`` (full +130 ms/s),
  ``workingset_refault`` +60k/s, ``pgmajfault`` +2.5k/s, its cgroup ``pgscan`` +40k/s; host ``pgscan`` /
  ``pgsteal`` add kswapd's share. Host ``*_pressure_full`` counts only the contention's stall (a busy tenant's
  own waits do not stall everyone); host ``*_pressure_some`` the worst group's. A group's ``mem_cgroup_bytes`` = RSS + page cache (squeezed by the pressure).
- storage (cgroup io.stat, io.pressure; /proc/diskstats): own bytes ``I * Tenant.io_*_bytes_per_s / (1 + 2 p_s)``
  (64 KiB reads, 128 KiB writes) on its disk(s); the victim's ``io_pressure_some`` +400 ms/s per unit of
  ``p_s``; per disk: ``busy_pct`` from the bytes of the groups on it (3.2 GB/s = 100 %) + 45 points x the
  contention on that disk (the couplings whose antagonist shares it), await ms +40 (reads) / +55 (writes) x the
  contention, ``queue_ms_per_s`` = IOPS x await (Little), ``in_flight`` its thousandth.
- network (/sys/class/net statistics, RDMA port counters): each group sends ``I * Tenant.net_bytes_per_s /
  (1 + p_n)`` over its NIC(s), as RDMA (``rdma`` port counters) or TCP (the NIC's netdev in ``net``); ``eth0``
  carries the clients' requests; per NIC, with the contention on it (not with the bytes: a link with credit to
  spare waits for none): ``tx_dropped`` +3000/s, RDMA ``xmit_wait`` +4e7/s, ``cnp_sent`` / ``cnp_handled`` / ``ecn_marked`` +7-9e4/s, ``rx_discards`` +200/s per
  unit. Links are 400 Gb/s (eth0 100 Gb/s).
- CPU: ``cpu_pressure_some`` ~1.5 ms/s per busy core of the group's own, +400 ms/s per unit of ``p_cpu``; a
  group with a CFS quota (``Tenant.cpu_quota_cores``) runs 10 periods/s while on and is throttled in a share
  ``0.6 * max(0, cores / quota - 0.6) + 3.5 p_cpu`` of them (``throttled_us`` 350 ms/s at 100 %; its stall shows
  in ``cpu.pressure`` too); without a quota its periods and throttling read 0. Host CPU pressure follows the run
  queue beyond 85 % of the CPUs.

Every signal carries lognormal noise (3-50 %) drawn once from the seed. A busy co-tenant without a coupling moves
its own counters (and the host's totals, a disk's busy share, a link's bytes) but none of the victim's stall
signals: that is what makes it a decoy.

Vendor gaps (null, never 0): Tenstorrent (tt-smi) gives no ``util_pct``, ``mem_util_pct``,
``mem_used_bytes``, ``mem_clock_mhz``, ``temp_hotspot_c``, ``temp_mem_c``, ``energy_j``, ECC or replay
counters; its PCIe rates are given (as read from the PCIe switch counters). Furiosa RNGD (furiosa-smi)
gives no PCIe rates, ``mem_clock_mhz``, ``sm_clock_mhz``, ``voltage_v``, ``current_a``, ``energy_j``,
``temp_hotspot_c``, ``temp_mem_c``, ECC counters. MI300X has no ``current_a``. Nobody has ``fan_pct``
(chassis fans) or ``throttle_reasons``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.signal import lfilter

from telemetry.schema import DISK, NET, RDMA, conform, measurement
from telemetry.sim.scenario import Scenario
from telemetry.sim.serving import ServingResult

# ruff: noqa: N806 - T (seconds), D (devices), G (groups), S (sockets) as in the physics notation


@dataclass(frozen=True)
class DeviceSpec:
    idle_w: float
    max_w: float
    limit_w: float
    r_c_per_w: float
    clock_busy_mhz: float
    clock_idle_mhz: float
    mem_clock_mhz: float | None
    mem_total_bytes: int | None
    pcie_gen: int
    pcie_width: int


SPECS: dict[str, DeviceSpec] = {
    "MI300X": DeviceSpec(140.0, 720.0, 750.0, 0.072, 2100.0, 132.0, 1300.0, 192 * 10**9, 5, 16),
    "Wormhole n300": DeviceSpec(42.0, 195.0, 300.0, 0.19, 1000.0, 500.0, None, 24 * 10**9, 4, 16),
    "RNGD": DeviceSpec(38.0, 170.0, 180.0, 0.22, 1000.0, 500.0, None, 48 * 10**9, 5, 16),
}
INLET_C = 24.0
ZONE_K_C_PER_KW = 4.0
TEMP_TAU_S = 25.0
OS_CORES = 0.6
NOMINAL_DECODE_TOK_S = 1300.0  # a serving group's decode rate at its nominal load (64 in flight)
CPI_PER_MEMBW_PRESSURE = 1.5  # the victim's CPU time per token grows by 1.5 x memory-bandwidth pressure
_PERIOD = 3607  # prime: period of the derived-field noise tables


@dataclass
class NodeState:
    """Per-second state (rows = seconds, columns = devices / sockets / groups), float32."""

    seconds: int
    util: np.ndarray
    power: np.ndarray
    temp: np.ndarray
    clock: np.ndarray
    pcie_rx: np.ndarray
    pcie_tx: np.ndarray
    mem_used: np.ndarray
    thermal_p: np.ndarray
    power_p: np.ndarray
    energy: np.ndarray
    socket_demand: np.ndarray  # cores busy per socket
    threads_running: np.ndarray
    load: np.ndarray  # (T, 3) load1/5/15
    host_mem_used: np.ndarray
    tenant_cores: np.ndarray  # (T, G)
    tenant_on: np.ndarray  # (T, G) bool
    core_weight: np.ndarray  # (cores,)
    noise: np.ndarray  # (_PERIOD, k) standard normal table
    seed: int
    res: ResourceState  # shared-resource signals (PSI, MBM, vmstat, cgroup, disk, net, rdma)


def _lag(x: np.ndarray, tau_s: float) -> np.ndarray:
    """First-order lag along axis 0, starting at the first value."""
    a = float(np.exp(-1.0 / tau_s))
    zi = (a * x[0])[None, ...] if x.ndim > 1 else np.array([a * x[0]])
    y, _ = lfilter([1 - a], [1, -a], x, axis=0, zi=zi)
    return y


def _noise(rng: np.random.Generator, sigma: float, shape: tuple[int, int]) -> np.ndarray:
    """float32 normal noise (half the memory traffic of float64)."""
    out = rng.standard_normal(shape, dtype=np.float32)
    out *= np.float32(sigma)
    return out


def node_state(
    scenario: Scenario, seed: int, press: dict[str, dict[str, np.ndarray]], runs: list[tuple[str, int, ServingResult]]
) -> NodeState:
    """Compute the per-second state of the node (see module docstring)."""
    topo = scenario.topology
    T = scenario.duration_s
    devs = topo.devices
    D = len(devs)
    rng = np.random.default_rng([seed, 0x5EED])
    sched = scenario.schedule()
    tenants = {t.group: t for t in scenario.tenants}
    serving_run = {g for g, _, _ in runs}

    util = np.zeros((T, D), dtype=np.float32)
    prefill_share = np.zeros((T, D), dtype=np.float32)
    # group activity per second (0..1), from runs for serving groups that ran the benchmark
    group_act: dict[str, np.ndarray] = {}
    group_pre: dict[str, np.ndarray] = {}
    group_dec: dict[str, np.ndarray] = {}
    for g, on in sched.items():
        group_act[g] = on.astype(float)
        group_pre[g] = np.zeros(T)
    for g in serving_run:
        group_act[g] = np.zeros(T)
        group_dec[g] = np.zeros(T)
    for g, start_s, res in runs:
        n = min(int(res.duration_s) + 1, T - start_s)
        dec, pre = res.tokens_per_second(n)
        busy = (dec + pre) > 0
        group_act[g][start_s : start_s + n] = np.maximum(group_act[g][start_s : start_s + n], busy)
        group_pre[g][start_s : start_s + n] = np.clip(pre / 12000.0, 0, 1)
        group_dec[g][start_s : start_s + n] += dec
    for j, d in enumerate(devs):
        t = tenants.get(d.group)
        act = group_act.get(d.group, np.zeros(T))
        if t is None:
            continue
        if t.kind == "serving":
            util[:, j] = act * (0.80 + 0.19 * group_pre[d.group])
            prefill_share[:, j] = group_pre[d.group]
        else:
            util[:, j] = act * t.util
    util = np.clip(util + (util > 0) * _noise(rng, 0.02, (T, D)), 0, 1)

    thermal_p = np.zeros((T, D), dtype=np.float32)
    power_p = np.zeros((T, D), dtype=np.float32)
    pcie_p = np.zeros((T, D), dtype=np.float32)
    for j, d in enumerate(devs):
        res = press.get(d.group, {})
        if "thermal" in res:
            thermal_p[:, j] = res["thermal"]
        if "power" in res:
            power_p[:, j] = res["power"]
        if "pcie" in res:
            pcie_p[:, j] = res["pcie"]

    spec = [SPECS[d.model] for d in devs]
    idle = np.array([s.idle_w for s in spec], dtype=np.float32)
    mx = np.array([s.max_w for s in spec], dtype=np.float32)
    lim = np.array([s.limit_w for s in spec], dtype=np.float32)
    power = idle + (mx - idle) * util**0.9 / (1 + 0.5 * (thermal_p + power_p))
    power = np.minimum(power * (1 + _noise(rng, 0.012, (T, D))), lim)

    zones = sorted({d.cooling_zone for d in devs})
    zidx = np.array([zones.index(d.cooling_zone) for d in devs])
    zone_power = np.zeros((T, len(zones)))
    for z in range(len(zones)):
        zone_power[:, z] = power[:, zidx == z].sum(axis=1)
    others_kw = (zone_power[:, zidx] - power) / 1000.0
    r = np.array([s.r_c_per_w for s in spec], dtype=np.float32)
    target = np.float32(INLET_C) + r * power + ZONE_K_C_PER_KW * others_kw + 150.0 * thermal_p
    temp = _lag(target, TEMP_TAU_S) + _noise(rng, 0.25, (T, D))

    f_busy = np.array([s.clock_busy_mhz for s in spec], dtype=np.float32)
    f_idle = np.array([s.clock_idle_mhz for s in spec], dtype=np.float32)
    clock = (f_idle + (f_busy - f_idle) * np.minimum(1.0, util * 4)) / (1 + thermal_p + power_p)
    clock = clock * (1 + _noise(rng, 0.004, (T, D)))

    pcie_rx = np.zeros((T, D), dtype=np.float32)
    for j, d in enumerate(devs):
        t = tenants.get(d.group)
        if t is None:
            continue
        if t.kind == "serving":
            demand = group_act[d.group] * (0.3e9 + 2.2e9 * group_pre[d.group])
            pcie_rx[:, j] = demand / (1 + 10.0 * pcie_p[:, j])
        else:
            pcie_rx[:, j] = group_act[d.group] * t.pcie_bytes_per_s
    pcie_rx = np.maximum(pcie_rx * (1 + _noise(rng, 0.05, (T, D))), 0) + 2e5
    pcie_tx = pcie_rx * np.where([d.vendor == "amd" for d in devs], 0.35, 0.6) + 1e5

    mem_used = np.zeros((T, D), dtype=np.float32)
    for j, d in enumerate(devs):
        s = SPECS[d.model]
        t = tenants.get(d.group)
        on = sched.get(d.group, np.zeros(T, dtype=bool)).astype(float) if t else np.zeros(T)
        frac = 0.85 if (t and t.kind == "serving") else 0.7
        mem_used[:, j] = (s.mem_total_bytes or 0) * (0.002 + frac * on)

    energy = np.cumsum(power, axis=0) + rng.uniform(1e8, 5e8, D)

    # host CPU
    S = topo.sockets
    G = len(scenario.tenants)
    tenant_cores = np.zeros((T, G))
    tenant_on = np.zeros((T, G), dtype=bool)
    socket_demand = np.full((T, S), OS_CORES)
    for gi, t in enumerate(scenario.tenants):
        on = sched[t.group]
        act = group_act.get(t.group, on.astype(float))
        act = np.maximum(act, on * 0.15) if t.kind == "serving" else act
        cores = act * t.cpu_cores * (1 + 0.5 * group_pre.get(t.group, np.zeros(T)) * (t.kind == "serving"))
        cores = np.maximum(cores * (1 + rng.normal(0, 0.04, T)), 0)
        if "memory_bandwidth" in press.get(t.group, {}):  # cycles stalled on DRAM count as busy: CPI rises
            cores = cores * (1 + CPI_PER_MEMBW_PRESSURE * press[t.group]["memory_bandwidth"][:T])
        tenant_cores[:, gi] = cores
        tenant_on[:, gi] = on
        if t.socket is None:
            socket_demand += cores[:, None] / S
        else:
            socket_demand[:, t.socket] += cores
    runnable = socket_demand.sum(axis=1)  # demand past the core count waits in the run queue
    threads_running = np.maximum(runnable + rng.normal(0, 0.8, T), 0)
    load = np.stack([_lag(threads_running, tau) for tau in (60.0, 300.0, 900.0)], axis=1)
    host_mem = 42 * 2**30 + sum(sched[t.group].astype(float) * t.rss_bytes for t in scenario.tenants) * (
        1 + rng.normal(0, 0.002, T)
    )

    ncores = topo.cpu_count
    core_weight = rng.uniform(0.5, 1.5, ncores)
    for s_ in range(S):
        sl = slice(s_ * topo.cores_per_socket, (s_ + 1) * topo.cores_per_socket)
        core_weight[sl] = core_weight[sl] / core_weight[sl].mean()
    noise = np.random.default_rng([seed, 0x7AB1E]).standard_normal((_PERIOD, max(ncores, D, 8)))

    intensity = np.zeros((T, G))
    for gi, t in enumerate(scenario.tenants):
        if t.group in group_dec:  # a serving group that ran the benchmark: its token rate
            busy = group_act[t.group]
            intensity[:, gi] = busy * (0.3 + 0.7 * np.clip(group_dec[t.group] / NOMINAL_DECODE_TOK_S, 0, 2))
        else:
            intensity[:, gi] = group_act.get(t.group, sched[t.group].astype(float))
    runnable_share = threads_running / ncores
    res_state = resource_state(scenario, seed, press, intensity, tenant_on, tenant_cores, runnable_share)

    f32 = np.float32
    return NodeState(
        seconds=T,
        util=util.astype(f32),
        power=power.astype(f32),
        temp=temp.astype(f32),
        clock=clock.astype(f32),
        pcie_rx=pcie_rx.astype(f32),
        pcie_tx=pcie_tx.astype(f32),
        mem_used=mem_used.astype(np.float64),
        thermal_p=thermal_p.astype(f32),
        power_p=power_p.astype(f32),
        energy=energy,
        socket_demand=socket_demand.astype(f32),
        threads_running=threads_running.astype(f32),
        load=load.astype(f32),
        host_mem_used=host_mem.astype(np.float64),
        tenant_cores=tenant_cores.astype(f32),
        tenant_on=tenant_on,
        core_weight=core_weight,
        noise=noise,
        seed=seed,
        res=res_state,
    )


def _tag(values: list[str], reps: int) -> pl.Series:
    """``values`` repeated ``reps`` times (row-major: v0, v1, ..., v0, v1, ...), built by gather (fast)."""
    return pl.Series(list(values), dtype=pl.String).gather(np.tile(np.arange(len(values)), reps))


def _nulls(mask: np.ndarray, values: np.ndarray) -> pl.Series | np.ndarray:
    """values where mask, else NaN (conform turns NaN into null)."""
    return np.where(mask, values, np.nan)


def frames(state: NodeState, scenario: Scenario, start_ns: int, t0: int, t1: int) -> dict[str, pl.DataFrame]:
    """Schema frames (accel, host, host_core, tenant and the disk, net and rdma measurements, `DISK` / `NET` /
    `RDMA`) for seconds ``[t0, t1)``; rows time-ordered."""
    t0 = max(0, t0)
    t1 = min(t1, state.seconds)
    T = max(0, t1 - t0)
    topo = scenario.topology
    devs = topo.devices
    D = len(devs)
    node = topo.node
    secs = np.arange(t0, t1)
    times = start_ns + secs.astype(np.int64) * 10**9
    nz = state.noise[secs % _PERIOD]

    # ----- accel
    vend = np.array([d.vendor for d in devs])
    amd = np.broadcast_to(vend == "amd", (T, D))
    tt = np.broadcast_to(vend == "tenstorrent", (T, D))
    fur = np.broadcast_to(vend == "furiosa", (T, D))
    spec = [SPECS[d.model] for d in devs]
    sl = slice(t0, t1)
    util = state.util[sl].astype(np.float64)
    power = state.power[sl].astype(np.float64)
    temp = state.temp[sl].astype(np.float64)
    clock = state.clock[sl].astype(np.float64)
    f_busy = np.array([s.clock_busy_mhz for s in spec])
    volt = 0.68 + 0.22 * clock / f_busy
    mem_total = np.array([float(s.mem_total_bytes or 0) for s in spec])
    memclk = np.array([s.mem_clock_mhz or np.nan for s in spec])
    mem_util = np.clip(util * 100 * (0.75 + 0.05 * nz[:, :D]), 0, 100)
    accel = {
        "time": np.repeat(times, D),
        "node": node,
        "device": _tag([d.id for d in devs], T),
        "vendor": _tag([d.vendor for d in devs], T),
        "model": _tag([d.model for d in devs], T),
        "group": _tag([d.group for d in devs], T),
        "pci_bus": _tag([d.pci_bus for d in devs], T),
        "temp_c": temp,
        "temp_hotspot_c": _nulls(amd, temp + 2.0 + 0.004 * power),
        "temp_mem_c": _nulls(amd, temp - 9.0 + 0.01 * power),
        "power_w": power,
        "power_avg_w": _nulls(~tt, power * (1 + 0.004 * nz[:, 1 : D + 1])),
        "power_limit_w": np.broadcast_to(np.array([s.limit_w for s in spec]), (T, D)),
        "energy_j": _nulls(amd, state.energy[sl]),
        "voltage_v": _nulls(~fur, volt),
        "current_a": _nulls(tt, power / volt),
        "pcie_tx_bytes_per_s": _nulls(~fur, state.pcie_tx[sl].astype(np.float64)),
        "pcie_rx_bytes_per_s": _nulls(~fur, state.pcie_rx[sl].astype(np.float64)),
        "pcie_link_gen": np.broadcast_to(np.array([s.pcie_gen for s in spec]), (T, D)),
        "pcie_link_width": np.broadcast_to(np.array([s.pcie_width for s in spec]), (T, D)),
        "pcie_replay_count": _nulls(amd, np.zeros((T, D))),
        "util_pct": _nulls(~tt, util * 100.0),
        "mem_util_pct": _nulls(amd, mem_util),
        "mem_used_bytes": _nulls(~tt, state.mem_used[sl]),
        "mem_total_bytes": np.broadcast_to(mem_total, (T, D)),
        "sm_clock_mhz": _nulls(~fur, clock),
        "mem_clock_mhz": _nulls(amd, np.broadcast_to(memclk, (T, D)) * np.where(util > 0.05, 1.0, 0.69)),
        "throttle_thermal": state.thermal_p[sl] > 0.002,
        "throttle_power": state.power_p[sl] > 0.002,
        "ecc_corrected_count": _nulls(amd, np.zeros((T, D))),
        "ecc_uncorrected_count": _nulls(amd, np.zeros((T, D))),
    }
    ints = ("pcie_link_gen", "pcie_link_width", "pcie_replay_count", "ecc_corrected_count", "ecc_uncorrected_count")
    cols: list[pl.Series] = []
    for k, v in accel.items():
        if isinstance(v, np.ndarray) and v.ndim == 2:
            v = np.ascontiguousarray(v).reshape(-1)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            ser = pl.Series(k, v, dtype=pl.Float64, nan_to_null=True)  # NaN = unsupported -> null
            cols.append(ser.cast(pl.Int64) if k in ints else ser)
        elif isinstance(v, np.ndarray) and k in ints:
            cols.append(pl.Series(k, v.astype(np.int64)))
        elif isinstance(v, str):
            cols.append(pl.repeat(v, T * D, dtype=pl.String, eager=True).alias(k))
        else:
            cols.append(pl.Series(k, v) if not isinstance(v, pl.Series) else v.alias(k))
    accel_df = pl.DataFrame(cols)

    # ----- host
    ncores = topo.cpu_count
    demand = state.socket_demand[sl].astype(np.float64)
    busy = np.clip(demand.sum(axis=1), 0, ncores)
    cpu_util = 100.0 * busy / ncores
    running = state.threads_running[sl].astype(np.float64)
    host = pl.DataFrame(
        {
            "time": times,
            "node": node,
            "cpu_util_pct": cpu_util,
            "cpu_user_pct": cpu_util * 0.84,
            "cpu_system_pct": cpu_util * 0.15,
            "cpu_iowait_pct": np.abs(0.15 + 0.05 * nz[:, 0]),
            "cpu_steal_pct": np.zeros(T),
            "cpu_count": np.full(T, ncores, dtype=np.int64),
            "load1": state.load[sl, 0].astype(np.float64),
            "load5": state.load[sl, 1].astype(np.float64),
            "load15": state.load[sl, 2].astype(np.float64),
            "mem_total_bytes": np.full(T, float(topo.mem_total_bytes)),
            "mem_used_bytes": state.host_mem_used[sl],
            "mem_available_bytes": topo.mem_total_bytes - state.host_mem_used[sl] * 1.03,
            "swap_used_bytes": np.zeros(T),
            "ctx_switches_per_s": 18000 + 2400 * running + 500 * nz[:, 1],
            "interrupts_per_s": 12000 + 900 * running + 300 * nz[:, 2],
            "procs_running": np.round(running).astype(np.int64) + 1,
            "cpu_temp_c": _cpu_temp_c(state, ncores)[sl] + 0.3 * nz[:, 0],
            **{k: v[sl] for k, v in state.res.host.items()},
        }
    )

    # ----- host_core
    cps = topo.cores_per_socket
    sock_of_core = np.repeat(np.arange(topo.sockets), cps)
    per_core = demand[:, sock_of_core] / cps * state.core_weight[None, :]
    core_util = np.clip(100.0 * per_core + 1.5 * np.abs(nz[:, :ncores]), 0, 100)
    freq = 3700.0 - 600.0 * (demand[:, sock_of_core] / cps).clip(0, 1) + 15 * nz[:, :ncores]
    host_core = pl.DataFrame(
        {
            "time": np.repeat(times, ncores),
            "node": node,
            "core": _tag([str(c) for c in range(ncores)], T),
            "socket": _tag([str(x) for x in sock_of_core], T),
            "util_pct": core_util.reshape(-1),
            "user_pct": (core_util * 0.85).reshape(-1),
            "system_pct": (core_util * 0.14).reshape(-1),
            "iowait_pct": np.abs(0.1 * nz[:, :ncores]).reshape(-1),
            "freq_mhz": freq.reshape(-1),
        }
    )

    # ----- tenant
    groups = [t.group for t in scenario.tenants]
    G = len(groups)
    on = state.tenant_on[sl]
    cores = state.tenant_cores[sl].astype(np.float64)
    rss = np.array([t.rss_bytes for t in scenario.tenants], dtype=float)
    threads = np.array([t.threads for t in scenario.tenants])
    accel_mem = np.zeros((T, G))
    for gi, g in enumerate(groups):
        cols = [j for j, d in enumerate(devs) if d.group == g]
        if cols:
            accel_mem[:, gi] = state.mem_used[sl][:, cols].sum(axis=1) * on[:, gi]
    base_pid = 4100 + 977 * np.arange(G)
    pids = np.array([" ".join(str(p + k) for k in range(4)) for p in base_pid])
    tenant = pl.DataFrame(
        {
            "time": np.repeat(times, G),
            "node": node,
            "group": _tag(groups, T),
            "cpu_pct": (100.0 * cores).reshape(-1),
            "rss_bytes": np.where(on, rss * (1 + 0.002 * nz[:, :G]), 0.0).reshape(-1),
            "accel_mem_bytes": accel_mem.reshape(-1),
            "process_count": np.where(on, 4, 0).reshape(-1).astype(np.int64),
            "threads_count": np.where(on, threads, 0).reshape(-1).astype(np.int64),
            "pids": pl.Series([*pids.tolist(), None], dtype=pl.String).gather(
                np.where(on, np.arange(G)[None, :], G).reshape(-1)
            ),
            **{k: v[sl].reshape(-1) for k, v in state.res.tenant.items()},
        }
    )
    r = state.res
    disk = _device_frame(DISK.name, node, times, {"disk": list(r.disks)}, {k: v[sl] for k, v in r.disk.items()})
    net = _device_frame(NET.name, node, times, {"interface": list(r.interfaces)}, {k: v[sl] for k, v in r.net.items()})
    ports = [x.split("/") for x in r.ports]
    rdma = _device_frame(
        RDMA.name,
        node,
        times,
        {"device": [d for d, _ in ports], "port": [q for _, q in ports]},
        {k: v[sl] for k, v in r.rdma.items()},
    )

    return {
        "accel": _rounded(conform(accel_df, "accel", where="simulator.accel"), "accel"),
        "host": _rounded(conform(host, "host", where="simulator.host"), "host"),
        "host_core": _rounded(conform(host_core, "host_core", where="simulator.host_core"), "host_core"),
        "tenant": _rounded(conform(tenant, "tenant", where="simulator.tenant"), "tenant"),
        DISK.name: disk,
        NET.name: net,
        RDMA.name: rdma,
    }


# --------------------------------------------------------------------------------------------- resources


@dataclass
class ResourceState:
    """Per-second arrays of the shared-resource signals (issue 20), noise included: ``host`` (T,), ``tenant``
    (T, G), ``disk`` (T, disks), ``net`` (T, interfaces), ``rdma`` (T, ports); NaN = absent (null)."""

    host: dict[str, np.ndarray]
    tenant: dict[str, np.ndarray]
    disks: tuple[str, ...]
    disk: dict[str, np.ndarray]
    interfaces: tuple[str, ...]
    net: dict[str, np.ndarray]
    ports: tuple[str, ...]
    rdma: dict[str, np.ndarray]


def _split(scenario: Scenario, key: str, places: tuple[str, ...], per_group: np.ndarray) -> np.ndarray:
    """(T, places): each group's per-second amount (``per_group`` (T, G)) split evenly over its ``key`` places."""
    out = np.zeros((per_group.shape[0], len(places)))
    for gi, t in enumerate(scenario.tenants):
        mine = scenario.topology.places(t.group, key)
        for p in mine:
            out[:, places.index(p)] += per_group[:, gi] / len(mine)
    return out


def _coupled_places(scenario: Scenario, key: str, places: tuple[str, ...], resource: str) -> np.ndarray:
    """(T, places): the contention on each place through ``resource``: per coupling, ``strength *`` the
    antagonist's activity on the places it shares with the victim (all the victim's when it declares none)."""
    sched = scenario.schedule()
    out = np.zeros((scenario.duration_s, len(places)))
    for c in scenario.couplings:
        if c.resource != resource:
            continue
        mine = scenario.topology.places(c.victim, key)
        shared = [p for p in mine if p in scenario.topology.places(c.antagonist, key)] or mine
        for p in shared:
            out[:, places.index(p)] += c.strength * sched[c.antagonist]
    return out


def resource_state(
    scenario: Scenario,
    seed: int,
    press: dict[str, dict[str, np.ndarray]],
    intensity: np.ndarray,
    on: np.ndarray,
    tenant_cores: np.ndarray,
    runnable_share: np.ndarray,
) -> ResourceState:
    """The shared-resource signals (module docstring, "Shared resources"): ``intensity`` (T, G) is each group's
    activity (serving groups scaled by their token rate), ``on`` (T, G) its switch, ``tenant_cores`` (T, G) its
    CPU, ``runnable_share`` (T,) the host's runnable threads per CPU."""
    rng = np.random.default_rng([seed, 0x2E5])
    T, G = intensity.shape
    tenants = scenario.tenants

    def p(res: str) -> np.ndarray:
        """(T, G) coupling pressure of ``res`` on each group (as victim)."""
        out = np.zeros((T, G))
        for gi, t in enumerate(tenants):
            if res in press.get(t.group, {}):
                out[:, gi] = press[t.group][res][:T]
        return out

    def ln(sigma: float, shape: tuple[int, ...]) -> np.ndarray:
        return np.exp(sigma * rng.standard_normal(shape))

    def col(attr: str) -> np.ndarray:
        return np.array([float(getattr(t, attr) or 0.0) for t in tenants])

    pc, pmb, pm, ps, pn = (p(r) for r in ("cpu", "memory_bandwidth", "memory", "storage_io", "network"))
    onf = on.astype(float)
    quota = np.array([t.cpu_quota_cores or np.nan for t in tenants])
    has_quota = ~np.isnan(quota)

    # memory bandwidth: own traffic by activity, squeezed by the antagonist's; the cache it holds shrinks
    mbm = intensity * col("mem_bw_bytes_per_s") / (1 + 3.0 * pmb) * ln(0.04, (T, G))
    spread = np.array([t.kind == "batch" and t.socket is None for t in tenants])
    mbm_local = mbm * np.where(spread, 0.55, 0.92 - 0.3 * np.clip(pmb, 0, 1))
    llc = onf * (col("llc_bytes") / (1 + 5.0 * pmb) * ln(0.05, (T, G)) + 2**20)

    # CPU: stall waiting for a CPU (run queue, or the quota spent) and CFS throttling of quota'd groups
    frac = np.where(has_quota, tenant_cores / np.where(has_quota, quota, 1.0), 0.0)
    thr_frac = np.clip(0.6 * np.clip(frac - 0.6, 0, None) + 3.5 * pc, 0, 1) * has_quota * onf
    thr_frac = np.clip(thr_frac * ln(0.08, (T, G)), 0, 1)
    periods = np.where(has_quota, 10.0 * onf, 0.0)
    throttled_us = 350_000.0 * thr_frac
    cpu_some = onf * (1500.0 * tenant_cores * ln(0.2, (T, G))) + np.where(has_quota, 0.6 * throttled_us, 400_000 * pc)
    cpu_some *= ln(0.05, (T, G))
    cpu_full = 0.35 * cpu_some

    # memory (reclaim): the victim's pages reclaimed and faulted back in
    mem_stall = 300_000.0 * pm * ln(0.08, (T, G))  # the contention's part (host full counts only this)
    mem_some = onf * 300.0 * ln(0.3, (T, G)) + mem_stall
    mem_full = onf * 60.0 * ln(0.3, (T, G)) + 0.43 * mem_stall
    refault = intensity * 80.0 * ln(0.3, (T, G)) + 60_000.0 * pm * ln(0.1, (T, G))
    majfault = intensity * 1.0 * ln(0.5, (T, G)) + 2_500.0 * pm * ln(0.1, (T, G))
    pgscan = 40_000.0 * pm * ln(0.1, (T, G))
    pgsteal = 0.8 * pgscan
    rss = col("rss_bytes")
    cache = np.where([t.kind == "serving" for t in tenants], 40.0 * 2**30, 4.0 * 2**30)
    mem_cgroup = onf * (rss * 1.04 + cache / (1 + 10 * pm)) * ln(0.002, (T, G))

    # storage: own I/O by activity (slowed by the contention), the victim waiting on the shared disk
    io_r = intensity * col("io_read_bytes_per_s") / (1 + 2.0 * ps) * ln(0.08, (T, G))
    io_w = intensity * col("io_write_bytes_per_s") / (1 + 2.0 * ps) * ln(0.08, (T, G))
    io_rops, io_wops = io_r / 65536.0, io_w / 131072.0
    io_own = 25.0 * (io_r + io_w) / 1e6  # us stalled per MB moved
    io_stall = 400_000.0 * ps * ln(0.08, (T, G))
    io_some = onf * io_own * ln(0.2, (T, G)) + io_stall
    io_full = 0.5 * io_some

    # network: what each group sends (RDMA or TCP), slowed by the contention
    net_tx = intensity * col("net_bytes_per_s") / (1 + pn) * ln(0.05, (T, G))
    tcp = np.array([t.net_kind == "tcp" for t in tenants])
    tcp_tx, rdma_tx = net_tx * tcp, net_tx * ~tcp

    tenant = {
        "cpu_pressure_some_us_per_s": cpu_some,
        "cpu_pressure_full_us_per_s": cpu_full,
        "mem_pressure_some_us_per_s": mem_some,
        "mem_pressure_full_us_per_s": mem_full,
        "io_pressure_some_us_per_s": io_some,
        "io_pressure_full_us_per_s": io_full,
        "cpu_periods_per_s": periods,
        "cpu_throttled_periods_per_s": 10.0 * thr_frac,
        "cpu_throttled_us_per_s": throttled_us,
        "mem_cgroup_bytes": mem_cgroup,
        "workingset_refault_per_s": refault,
        "pgscan_per_s": pgscan,
        "pgsteal_per_s": pgsteal,
        "pgmajfault_per_s": majfault,
        "io_read_bytes_per_s": io_r,
        "io_write_bytes_per_s": io_w,
        "io_read_ops_per_s": io_rops,
        "io_write_ops_per_s": io_wops,
        "mbm_total_bytes_per_s": mbm,
        "mbm_local_bytes_per_s": mbm_local,
        "llc_occupancy_bytes": llc,
    }

    m_all = pm.sum(axis=1)
    mb_all = pmb.sum(axis=1)
    rq = np.clip(runnable_share - 0.85, 0, 1)
    host = {
        "cpu_pressure_some_us_per_s": np.maximum(600_000.0 * rq, cpu_some.max(axis=1)) + 800 * ln(0.3, (T,)),
        "cpu_pressure_full_us_per_s": np.zeros(T),  # system-wide CPU full is always 0 (kernel)
        "mem_pressure_some_us_per_s": mem_some.max(axis=1) + 150 * ln(0.3, (T,)),
        # full = every non-idle task stalled at once: a busy tenant's own waits do not stall the others; the
        # contention of a shared resource does (its victims' share of it)
        "mem_pressure_full_us_per_s": 0.43 * mem_stall.max(axis=1) + 30 * ln(0.3, (T,)),
        "io_pressure_some_us_per_s": io_some.max(axis=1) + 400 * ln(0.3, (T,)),
        "io_pressure_full_us_per_s": 0.5 * io_stall.max(axis=1) + 150 * ln(0.3, (T,)),
        "pgmajfault_per_s": majfault.sum(axis=1) + 4.0 * ln(0.4, (T,)),
        "workingset_refault_per_s": refault.sum(axis=1) + 20.0 * ln(0.4, (T,)),
        "pgscan_per_s": pgscan.sum(axis=1) + 150_000.0 * m_all * ln(0.1, (T,)),
        "pgsteal_per_s": pgsteal.sum(axis=1) + 120_000.0 * m_all * ln(0.1, (T,)),
        "numa_miss_per_s": 200.0 * ln(0.3, (T,)) + 300_000.0 * mb_all * ln(0.1, (T,)),
        "numa_foreign_per_s": 180.0 * ln(0.3, (T,)) + 270_000.0 * mb_all * ln(0.1, (T,)),
        "mbm_total_bytes_per_s": mbm.sum(axis=1) + 2.0e9 * ln(0.05, (T,)),
        "mbm_local_bytes_per_s": mbm_local.sum(axis=1) + 1.6e9 * ln(0.05, (T,)),
        "llc_occupancy_bytes": np.minimum(llc.sum(axis=1) + 8 * 2**20, scenario.topology.sockets * 256 * 2**20),
    }

    # disks: the bytes of the groups on each; busy with the traffic; await and queue with the contention
    disks = scenario.topology.all_places("disk")
    d_r = _split(scenario, "disk", disks, io_r) + 2e5
    d_w = _split(scenario, "disk", disks, io_w) + 5e5
    d_rops = _split(scenario, "disk", disks, io_rops) + 3.0
    d_wops = _split(scenario, "disk", disks, io_wops) + 8.0
    d_p = _coupled_places(scenario, "disk", disks, "storage_io")[:T]
    D = len(disks)
    util = np.clip((d_r + d_w) / 3.2e9, 0, 1)
    busy = np.clip(100 * (0.92 * util + 0.01) * ln(0.03, (T, D)) + 45.0 * d_p, 0, 100)
    r_await = (0.09 + 0.05 * util + 40.0 * d_p) * ln(0.1, (T, D))
    w_await = (0.03 + 0.08 * util + 55.0 * d_p) * ln(0.1, (T, D))
    queue_ms = d_rops * r_await + d_wops * w_await
    disk = {
        "read_bytes_per_s": d_r,
        "write_bytes_per_s": d_w,
        "read_ops_per_s": d_rops,
        "write_ops_per_s": d_wops,
        "busy_pct": busy,
        "queue_ms_per_s": queue_ms,
        "read_await_ms": r_await,
        "write_await_ms": w_await,
        "in_flight": np.round(queue_ms / 1000.0),
    }

    # net: eth0 carries the clients' requests and responses; each RoCE NIC's netdev its groups' TCP traffic
    nics = scenario.topology.all_places("nic")
    ifaces = ("eth0", *nics)
    serving = np.array([t.kind == "serving" for t in tenants])
    front = (intensity * serving).sum(axis=1)
    n_tx = _split(scenario, "nic", nics, tcp_tx) + 4e5
    n_rx = _split(scenario, "nic", nics, tcp_tx * 0.02) + 3e5
    n_p = _coupled_places(scenario, "nic", nics, "network")[:T]
    tx = np.column_stack([2e5 + 6e5 * front, n_tx]) * ln(0.03, (T, len(ifaces)))
    rx = np.column_stack([1e5 + 1.2e6 * front, n_rx]) * ln(0.03, (T, len(ifaces)))
    drops = np.column_stack([np.zeros(T), 3000.0 * n_p]) * ln(0.2, (T, len(ifaces)))
    net = {
        "rx_bytes_per_s": rx,
        "tx_bytes_per_s": tx,
        "rx_packets_per_s": rx / 1500.0,
        "tx_packets_per_s": tx / 1500.0,
        "rx_dropped_per_s": 0.3 * drops,
        "tx_dropped_per_s": drops,
        "rx_errors_per_s": np.zeros((T, len(ifaces))),
        "tx_errors_per_s": np.zeros((T, len(ifaces))),
        "speed_mbit_per_s": np.broadcast_to(np.array([100_000.0] + [400_000.0] * len(nics)), (T, len(ifaces))),
    }

    # rdma: each NIC's RoCE port (port 1): its groups' RDMA traffic; credit waits and congestion notifications
    # rise with the contention on the port
    K = len(nics)
    r_tx = _split(scenario, "nic", nics, rdma_tx) + 1e6
    rdma = {
        "rx_bytes_per_s": 0.9 * r_tx * ln(0.03, (T, K)),
        "tx_bytes_per_s": r_tx * ln(0.03, (T, K)),
        "rx_packets_per_s": 0.9 * r_tx / 4096.0,
        "tx_packets_per_s": r_tx / 4096.0,
        "xmit_wait_per_s": (300.0 + 4e7 * n_p) * ln(0.15, (T, K)),  # a link with credit to spare: ~0
        "cnp_sent_per_s": (20.0 + 8e4 * n_p) * ln(0.15, (T, K)),
        "cnp_handled_per_s": (15.0 + 7e4 * n_p) * ln(0.15, (T, K)),
        "ecn_marked_per_s": (25.0 + 9e4 * n_p) * ln(0.15, (T, K)),
        "rx_discards_per_s": 200.0 * n_p * ln(0.3, (T, K)),
    }
    return ResourceState(host, tenant, disks, disk, ifaces, net, tuple(f"{n}/1" for n in nics), rdma)


def _device_frame(
    name: str, node: str, times: np.ndarray, tags: dict[str, list[str]], values: dict[str, np.ndarray]
) -> pl.DataFrame:
    """A measurement with one row per (second, place): ``tags`` per place, ``values`` (T, places)."""
    T = len(times)
    n = len(next(iter(tags.values()))) if tags else 0
    cols: dict[str, object] = {"time": np.repeat(times, n), "node": node}
    for k, v in tags.items():
        cols[k] = _tag(v, T)
    ints = {f.name for f in measurement(name).fields if f.kind == "int"}
    for k, v in values.items():
        ser = pl.Series(k, np.ascontiguousarray(v).reshape(-1), dtype=pl.Float64, nan_to_null=True)
        cols[k] = ser.cast(pl.Int64) if k in ints else ser
    frame = pl.DataFrame(cols) if n else pl.DataFrame(schema={"time": pl.Int64, "node": pl.String})
    return _rounded(conform(frame, name, where=f"simulator.{name}"), name)


# decimals a real reader reports per unit (sensors and /proc give limited precision)
_DECIMALS = {
    "degC": 1,
    "W": 1,
    "MHz": 0,
    "B/s": 0,
    "%": 2,
    "V": 3,
    "A": 2,
    "J": 0,
    "B": 0,
    "1/s": 0,
    "1": 2,
    "us/s": 0,
    "ms/s": 1,
    "ms": 3,
    "Mbit/s": 0,
}


def _cpu_temp_c(state: NodeState, ncores: int) -> np.ndarray:
    """CPU package temperature over the whole timeline: a first-order lag (tau ~ 20 s) toward
    38 degC + 0.45 degC per % of the host busy (computed whole, so chunks agree with the full frame)."""
    busy = np.clip(state.socket_demand.astype(np.float64).sum(axis=1), 0, ncores)
    target = 38.0 + 0.45 * 100.0 * busy / ncores
    if target.size == 0:
        return target
    return lfilter([0.05], [1.0, -0.95], target, zi=[0.95 * target[0]])[0]


def _rounded(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    m = measurement(name)
    cols = [pl.col(f.name).round(_DECIMALS[f.unit]) for f in m.fields if f.kind == "float" and f.unit in _DECIMALS]
    return frame.with_columns(cols)
