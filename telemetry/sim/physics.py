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

from telemetry.schema import conform, measurement
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
    for g, on in sched.items():
        group_act[g] = on.astype(float)
        group_pre[g] = np.zeros(T)
    for g in serving_run:
        group_act[g] = np.zeros(T)
    for g, start_s, res in runs:
        n = min(int(res.duration_s) + 1, T - start_s)
        dec, pre = res.tokens_per_second(n)
        busy = (dec + pre) > 0
        group_act[g][start_s : start_s + n] = np.maximum(group_act[g][start_s : start_s + n], busy)
        group_pre[g][start_s : start_s + n] = np.clip(pre / 12000.0, 0, 1)
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
    )


def _tag(values: list[str], reps: int) -> pl.Series:
    """``values`` repeated ``reps`` times (row-major: v0, v1, ..., v0, v1, ...), built by gather (fast)."""
    return pl.Series(list(values), dtype=pl.String).gather(np.tile(np.arange(len(values)), reps))


def _nulls(mask: np.ndarray, values: np.ndarray) -> pl.Series | np.ndarray:
    """values where mask, else NaN (conform turns NaN into null)."""
    return np.where(mask, values, np.nan)


def frames(state: NodeState, scenario: Scenario, start_ns: int, t0: int, t1: int) -> dict[str, pl.DataFrame]:
    """Schema frames (accel, host, host_core, tenant) for seconds ``[t0, t1)``; rows time-ordered."""
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
        }
    )

    return {
        "accel": _rounded(conform(accel_df, "accel", where="simulator.accel"), "accel"),
        "host": _rounded(conform(host, "host", where="simulator.host"), "host"),
        "host_core": _rounded(conform(host_core, "host_core", where="simulator.host_core"), "host_core"),
        "tenant": _rounded(conform(tenant, "tenant", where="simulator.tenant"), "tenant"),
    }


# decimals a real reader reports per unit (sensors and /proc give limited precision)
_DECIMALS = {"degC": 1, "W": 1, "MHz": 0, "B/s": 0, "%": 2, "V": 3, "A": 2, "J": 0, "B": 0, "1/s": 0, "1": 2}


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
