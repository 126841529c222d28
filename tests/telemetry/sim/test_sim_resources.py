"""The simulator's shared resources of issue 20: scenario vocabulary and topology, the physics of each antagonist
(its own counters while on, the victim's stall signals in proportion to the coupling), the disk / net / rdma
frames in schema form, the victim's drifting load, and the calibration presets (null_drift, interference_drift)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from telemetry.errors import ConfigError
from telemetry.schema import DISK, NET, RDMA, conform, measurement
from telemetry.sim import PRESETS, TELEMETRY_MEASUREMENTS, Coupling, Tenant, preset, simulate
from telemetry.sim.scenario import ANTAGONIST_KINDS, RESOURCE_PRESETS, RESOURCES, LoadDrift
from telemetry.topology import topology_frame

PHASE_S = 120  # baseline [0, 120), stress [120, 240)
BASE = (20, 110)
STRESS = (140, 230)


def _sim(name: str, seed: int = 1, **kw):
    sc = preset(name, phase_s=PHASE_S, num_prompts=0)
    if kw:
        sc = replace(sc, **kw)
    return simulate(sc, seed=seed)


def _mean(res, measurement_name: str, col: str, span: tuple[int, int], **tags: str) -> float:
    frame = res.telemetry()[measurement_name]
    t = (frame["time"].dt.epoch("ns") - res.start_ns) // 10**9
    f = frame.filter((t >= span[0]) & (t < span[1]))
    for k, v in tags.items():
        f = f.filter(pl.col(k) == v)
    assert f.height, (measurement_name, col, tags)
    return float(f[col].mean())


def _rise(res, measurement_name: str, col: str, **tags: str) -> tuple[float, float]:
    """(baseline mean, stress mean) of a column."""
    return _mean(res, measurement_name, col, BASE, **tags), _mean(res, measurement_name, col, STRESS, **tags)


# ------------------------------------------------------------------------------------------ vocabulary


def test_the_vocabulary_has_the_new_resources_and_presets() -> None:
    assert set(RESOURCES) >= {"memory_bandwidth", "memory", "storage_io", "network", "cpu", "pcie"}
    assert set(RESOURCE_PRESETS) | {"null_drift", "interference_drift"} <= set(PRESETS)
    assert set(RESOURCE_PRESETS.values()) == set(ANTAGONIST_KINDS)


def test_a_coupling_through_an_unknown_resource_or_a_negative_rate_is_a_config_error() -> None:
    sc = preset("storage_antagonist", phase_s=60)
    with pytest.raises(ConfigError, match="resource must be one of"):
        replace(sc, couplings=(Coupling("fio", "hive0", "disk_bandwidth", 0.1),))  # type: ignore[arg-type]
    bad = replace(sc.tenants[-1], io_write_bytes_per_s=-1.0)
    with pytest.raises(ConfigError, match="io_write_bytes_per_s must be >= 0"):
        replace(sc, tenants=(*sc.tenants[:-1], bad))
    with pytest.raises(ConfigError, match="cpu_quota_cores must be > 0"):
        replace(sc, tenants=(*sc.tenants[:-1], replace(bad, io_write_bytes_per_s=0.0, cpu_quota_cores=0.0)))


def test_the_topology_declares_numa_nodes_nics_disks_and_host_only_groups() -> None:
    doc = preset("interference_drift", seed=3).topology.to_dict()
    gpu0 = next(d for d in doc["devices"] if d["id"] == "gpu0")
    assert (gpu0["numa_node"], gpu0["nic"], gpu0["disk"]) == (0, "mlx5_0", "nvme0n1")
    frame = topology_frame(doc)
    by = {g: frame.filter(pl.col("group") == g) for g in frame["group"].unique().to_list()}
    # iperf_a / iperf_b (seed 3: network) send through hive0's NIC; host-only rows have no device
    for g in ("iperf_a", "iperf_b"):
        row = by[g].row(0, named=True)
        assert row["device"] is None and row["nic"] == "mlx5_0" and row["socket"] == "1"
    assert "mlx5_0" in by["hive0"]["nic"].to_list() and set(by["hive0"]["disk"]) == {"nvme0n1"}
    # hive1 shares no NUMA node, NIC or disk with hive0 (the control)
    for key in ("numa_node", "nic", "disk"):
        assert not set(by["hive1"][key].drop_nulls()) & set(by["hive0"][key].drop_nulls()), key


def test_fio_shares_the_victims_disk_and_the_stream_job_its_numa_node() -> None:
    doc = preset("storage_antagonist", phase_s=60).topology.to_dict()
    assert doc["groups"]["fio"] == {"socket": 1, "numa_node": 1, "disk": "nvme0n1"}
    doc = preset("memory_bandwidth_antagonist", phase_s=60).topology.to_dict()
    assert doc["groups"]["stream"] == {"socket": 0, "numa_node": 0}


@pytest.mark.parametrize(("name", "resource"), sorted(RESOURCE_PRESETS.items()))
def test_each_new_antagonist_preset_has_its_ground_truth(name: str, resource: str) -> None:
    res = simulate(preset(name, phase_s=150, num_prompts=96), seed=2)
    (effect,) = res.ground_truth["effects"]
    who = ANTAGONIST_KINDS[resource][0]
    assert (effect["antagonist"], effect["resources"]) == (who, [resource])
    assert effect["throughput_change_pct"] < -1.0 and effect["p99_itl_change_pct"] > 2.0
    assert res.ground_truth["culprits"] == [who]


# ------------------------------------------------------------------------------------------ physics


@pytest.fixture(scope="module")
def membw():
    return _sim("memory_bandwidth_antagonist")


def test_memory_bandwidth_antagonist_streams_and_the_victims_memory_traffic_and_cache_drop(membw) -> None:
    b, s = _rise(membw, "tenant", "mbm_total_bytes_per_s", group="stream")
    assert b == 0 and s > 80e9
    b, s = _rise(membw, "tenant", "mbm_total_bytes_per_s", group="hive0")
    assert s < 0.85 * b
    b, s = _rise(membw, "tenant", "llc_occupancy_bytes", group="hive0")
    assert s < 0.8 * b
    b, s = _rise(membw, "host", "mbm_total_bytes_per_s")
    assert s > b + 80e9
    b, s = _rise(membw, "host", "numa_miss_per_s")
    assert s > 10 * b


def test_memory_bandwidth_antagonist_raises_the_victims_cpu_per_token(membw) -> None:
    frames = membw.telemetry()
    cpu_b, cpu_s = _rise(membw, "tenant", "cpu_pct", group="hive0")
    req = membw.bench_requests()
    t = (req["time"].dt.epoch("ns") - membw.start_ns) // 10**9
    tok_b = req.filter((t >= BASE[0]) & (t < BASE[1]))["output_tokens"].sum()
    tok_s = req.filter((t >= STRESS[0]) & (t < STRESS[1]))["output_tokens"].sum()
    assert (cpu_s / tok_s) > 1.1 * (cpu_b / tok_b)
    assert frames["tenant"].filter(pl.col("group") == "hive0")["mem_pressure_some_us_per_s"].max() < 5000


def test_memory_pressure_antagonist_makes_the_victim_stall_on_reclaim() -> None:
    res = _sim("memory_pressure_antagonist")
    for col, more in (("mem_pressure_some_us_per_s", 15_000), ("mem_pressure_full_us_per_s", 6_000)):
        b, s = _rise(res, "tenant", col, group="hive0")
        assert s > b + more, col
    b, s = _rise(res, "host", "mem_pressure_full_us_per_s")
    assert s > b + 6_000  # reclaim stalls everyone at once
    for col in ("workingset_refault_per_s", "pgmajfault_per_s"):
        b, s = _rise(res, "tenant", col, group="hive0")
        assert s > 5 * b, col
    b, s = _rise(res, "host", "pgscan_per_s")
    assert s > b + 10_000
    assert _mean(res, "tenant", "rss_bytes", STRESS, group="memhog") > 1000 * 2**30
    # nothing else moves: no I/O or CPU stall on the victim
    b, s = _rise(res, "tenant", "io_pressure_some_us_per_s", group="hive0")
    assert s < b + 2000


def test_storage_antagonist_loads_the_shared_disk_and_the_victim_waits_for_io() -> None:
    res = _sim("storage_antagonist")
    b, s = _rise(res, "tenant", "io_write_bytes_per_s", group="fio")
    assert b == 0 and s > 2e9
    b, s = _rise(res, DISK.name, "busy_pct", disk="nvme0n1")
    assert s > b + 40
    for col in ("read_await_ms", "write_await_ms"):
        b, s = _rise(res, DISK.name, col, disk="nvme0n1")
        assert s > 5 * b, col
    b, s = _rise(res, "tenant", "io_pressure_some_us_per_s", group="hive0")
    assert s > b + 15_000
    # the other disks are untouched
    b, s = _rise(res, DISK.name, "busy_pct", disk="nvme1n1")
    assert abs(s - b) < 1


def test_network_antagonist_fills_the_shared_nic_and_the_victims_port_waits() -> None:
    res = _sim("network_antagonist")
    b, s = _rise(res, NET.name, "tx_bytes_per_s", interface="mlx5_0")
    assert s > b + 40e9
    for col in ("xmit_wait_per_s", "cnp_handled_per_s", "cnp_sent_per_s", "ecn_marked_per_s"):
        b, s = _rise(res, RDMA.name, col, device="mlx5_0")
        assert s > 10 * b, col
    b, s = _rise(res, NET.name, "tx_dropped_per_s", interface="mlx5_0")
    assert s > b + 100
    # hive0's other NIC carries no bulk transfer and sees no congestion; hive1's NICs neither
    for nic in ("mlx5_1", "mlx5_2"):
        b, s = _rise(res, RDMA.name, "cnp_handled_per_s", device=nic)
        assert s < 3 * b + 20, nic


def test_cpu_quota_antagonist_throttles_the_victim_without_saturating_the_host() -> None:
    res = _sim("cpu_quota_antagonist")
    b, s = _rise(res, "tenant", "cpu_throttled_us_per_s", group="hive0")
    assert s > b + 50_000
    b, s = _rise(res, "tenant", "cpu_throttled_periods_per_s", group="hive0")
    assert s > b + 1
    assert _mean(res, "tenant", "cpu_periods_per_s", STRESS, group="hive0") == pytest.approx(10.0)
    assert _mean(res, "tenant", "cpu_periods_per_s", STRESS, group="hive1") == 0  # no quota: no periods
    b, s = _rise(res, "tenant", "cpu_pressure_some_us_per_s", group="hive0")
    assert s > b + 20_000
    host = res.telemetry()["host"]
    assert (host["procs_running"] < host["cpu_count"]).all()  # the run queue never exceeds the CPUs


def test_the_victims_stall_grows_with_the_coupling_strength() -> None:
    base = preset("storage_antagonist", phase_s=PHASE_S, num_prompts=0)
    (c,) = base.couplings
    deltas = []
    for k in (0.0, 1.0, 2.0):
        res = simulate(replace(base, couplings=(replace(c, strength=k * c.strength),)), seed=4)
        b, s = _rise(res, "tenant", "io_pressure_some_us_per_s", group="hive0")
        deltas.append(s - b)
    assert abs(deltas[0]) < 3000
    assert deltas[1] > 15_000 and deltas[2] == pytest.approx(2 * deltas[1], rel=0.25)


def test_a_busy_co_tenant_without_a_coupling_leaves_the_victims_stall_signals_flat() -> None:
    sc = preset("storage_antagonist", phase_s=PHASE_S, num_prompts=0)
    res = simulate(replace(sc, couplings=()), seed=1)
    b, s = _rise(res, "tenant", "io_write_bytes_per_s", group="fio")
    assert s > 2e9  # fio writes as much as ever ...
    for col in ("io_pressure_some_us_per_s", "mem_pressure_some_us_per_s", "cpu_pressure_some_us_per_s"):
        b, s = _rise(res, "tenant", col, group="hive0")
        assert abs(s - b) < 0.25 * b + 3000, col  # ... and hive0 does not wait
    b, s = _rise(res, DISK.name, "write_await_ms", disk="nvme0n1")
    assert s < 2 * b + 0.5
    b, s = _rise(res, "host", "io_pressure_full_us_per_s")  # fio's own waits stall nobody else
    assert s < 2 * b + 500
    b, s = _rise(res, "host", "io_pressure_some_us_per_s")  # but the host sees someone waiting
    assert s > b + 20_000


def test_rdma_traffic_without_contention_waits_for_no_credit() -> None:
    res = _sim("no_interference")  # tt (3 GB/s of RDMA over hive0's NICs) busy in the stress phase, no coupling
    b, s = _rise(res, RDMA.name, "tx_bytes_per_s", device="mlx5_0")
    assert s > b + 5e8
    for col in ("xmit_wait_per_s", "cnp_handled_per_s", "ecn_marked_per_s"):
        b, s = _rise(res, RDMA.name, col, device="mlx5_0")
        assert s < 1.3 * b, col


# ------------------------------------------------------------------------------------------ schema


@pytest.fixture(scope="module")
def network():
    return _sim("network_antagonist", seed=3)


def test_every_new_frame_is_in_schema_form(network) -> None:
    frames = network.telemetry()
    assert {DISK.name, NET.name, RDMA.name} <= set(frames) and set(frames) == set(TELEMETRY_MEASUREMENTS)
    for name in ("host", "tenant", DISK.name, NET.name, RDMA.name):
        frame = frames[name]
        assert frame.columns == list(measurement(name).columns), name
        assert conform(frame, name).equals(frame), name
    n = network.duration_s
    disk, net, rdma = frames[DISK.name], frames[NET.name], frames[RDMA.name]
    assert disk.height == n * 3 and set(disk["disk"]) == {"nvme0n1", "nvme1n1", "nvme2n1"}
    assert net.height == n * 5 and set(net["interface"]) == {
        "eth0",
        *(f"mlx5_{i}" for i in range(4)),
    }
    assert rdma.height == n * 4 and set(rdma["port"]) == {"1"}


def test_new_fields_are_filled_where_the_simulated_host_has_them(network) -> None:
    frames = network.telemetry()
    psi = [f"{r}_pressure_{k}_us_per_s" for r in ("cpu", "mem", "io") for k in ("some", "full")]
    for name, cols in (
        ("host", [*psi, "mbm_total_bytes_per_s", "pgscan_per_s", "numa_miss_per_s", "llc_occupancy_bytes"]),
        ("tenant", [*psi, "cpu_throttled_us_per_s", "io_read_bytes_per_s", "mbm_total_bytes_per_s"]),
        (DISK.name, ["busy_pct", "read_await_ms", "queue_ms_per_s", "in_flight"]),
        (RDMA.name, ["xmit_wait_per_s", "cnp_handled_per_s", "ecn_marked_per_s"]),
    ):
        for col in cols:
            assert frames[name][col].null_count() == 0, (name, col)
            assert (frames[name][col] >= 0).all(), (name, col)


def test_new_frames_chunk_like_the_whole_timeline(network) -> None:
    whole = network.telemetry()
    chunks = [c for _, c in network.iter_telemetry(chunk_s=70)]
    for name in ("host", "tenant", DISK.name, NET.name, RDMA.name):
        assert pl.concat([c[name] for c in chunks]).equals(whole[name]), name


# ------------------------------------------------------------------------------------------ drift


def test_load_drift_is_slow_bounded_and_seeded() -> None:
    d = LoadDrift(concurrency_amp=0.35, input_len_amp=0.3, period_s=450, seed=7)
    conc, size = d.factors(1080)
    assert conc.min() >= 0.65 - 1e-9 and conc.max() <= 1.35 + 1e-9
    assert size.min() >= 0.7 - 1e-9 and size.max() <= 1.3 + 1e-9
    assert conc.max() - conc.min() > 0.2  # it moves ...
    assert np.abs(np.diff(conc)).max() < 0.01  # ... slowly
    assert not np.allclose(conc, LoadDrift(seed=8).factors(1080)[0])


def test_the_victims_concurrency_and_prompt_length_follow_the_drift() -> None:
    sc = preset("null_drift", seed=5)
    res = simulate(sc, seed=5)
    (run,) = res.runs
    r = run.result
    conc, size = sc.drift.factors(sc.duration_s + 3600)
    sec = (r.start_s + 5).astype(int)  # the run starts 5 s into the scenario
    # prompt length: drawn uniform in [0.8, 1] x 4096, scaled by the drift at dispatch
    ratio = r.input_tokens / (0.9 * sc.bench.input_len)
    assert np.corrcoef(ratio, size[sec])[0, 1] > 0.5
    # concurrency: requests in flight per minute follow the drift's cap
    per_min = np.array([((r.start_s <= m * 60 + 30) & (r.start_s + r.e2e_s > m * 60 + 30)).sum() for m in range(16)])
    cap = conc[np.arange(16) * 60 + 35] * sc.bench.max_concurrency
    assert np.corrcoef(per_min, cap)[0, 1] > 0.8


def test_a_drift_beyond_its_range_is_a_config_error() -> None:
    sc = preset("null_drift", seed=1)
    with pytest.raises(ConfigError, match="drift: concurrency_amp, input_len_amp and speed_amp must be in"):
        replace(sc, drift=replace(sc.drift, input_len_amp=1.0))


def test_the_servers_unobserved_drift_slows_its_steps_at_a_fixed_load() -> None:
    sc = preset("null_drift", seed=6)
    drift = LoadDrift(concurrency_amp=0.0, input_len_amp=0.0, period_s=300, seed=6, speed_amp=0.1)
    res = simulate(replace(sc, drift=drift), seed=6)
    r = res.runs[0].result
    minute = (r.step_end_s // 60).astype(int)
    itl = np.array([np.median(r.step_s[(minute == m) & (r.step_prefill_tokens == 0)]) for m in range(16)])
    slow = drift.slowdown(sc.duration_s + 3600)[np.arange(16) * 60 + 35]
    assert np.corrcoef(itl, slow)[0, 1] > 0.8
    assert preset("null_drift", seed=6).drift.speed_amp > 0  # the calibration presets carry it


def test_the_drift_leaves_fixed_load_runs_unchanged() -> None:
    # the client's dispatch rule with a constant cap is the one before drift existed: the same steps to the bit
    # (figures of this run from the simulator before the change, commit 511fce2)
    r = simulate(preset("aa", phase_s=90, num_prompts=48), seed=2).runs[0].result
    assert len(r.step_s) == 1078
    assert float(r.step_end_s[-1]) == 53.42506942819098
    assert float(r.e2e_s.sum()) == 2411.5786300722075


# ------------------------------------------------------------------------------------------ calibration presets


def test_null_drift_has_co_tenants_switching_in_long_blocks_and_no_culprit() -> None:
    sc = preset("null_drift", seed=11)
    res = simulate(sc, seed=11)
    gt = res.ground_truth
    assert gt["culprits"] == [] and gt["effects"] == [] and gt["couplings"] == [] and gt["decoys"] == []
    co = sorted({t.group for t in sc.tenants} - {"hive0", "hive1", "furiosa"})
    assert len(co) == 4 and "tt" in co and set(gt["innocent"]) >= set(co)
    sched = sc.schedule()
    for g in co:
        on = sched[g].astype(int)
        edges = np.flatnonzero(np.diff(on)) + 1
        runs = np.diff(np.concatenate([[0], edges, [len(on)]]))
        assert len(runs) >= 5, g  # switched several times ...
        assert runs[1:-1].min() >= 45, g  # ... in long blocks (mean 90 s)
    assert sc.bench_mode == "continuous" and sc.drift is not None
    events = res.run_events().filter(pl.col("event").is_in(["switch_on", "switch_off"]))
    assert set(events["tenant"]) >= set(co)


def test_drift_presets_are_a_function_of_the_seed() -> None:
    a, b = preset("null_drift", seed=1), preset("null_drift", seed=2)
    assert a.schedule_blocks() != b.schedule_blocks() or a.tenants != b.tenants
    assert preset("null_drift", seed=1) == preset("null_drift", seed=1)
    assert preset("interference_drift", seed=9).couplings == preset("interference_drift", seed=9).couplings


@pytest.mark.parametrize("seed", range(5))
def test_interference_drift_has_one_antagonist_and_a_decoy_of_its_kind_beside_it(seed: int) -> None:
    sc = preset("interference_drift", seed=seed)
    (c,) = sc.couplings
    assert c.resource == list(ANTAGONIST_KINDS)[seed % 5]
    kind = ANTAGONIST_KINDS[c.resource][0]
    pair = {f"{kind}_a", f"{kind}_b"}
    assert c.antagonist in pair
    (decoy,) = pair - {c.antagonist}
    topo = topology_frame(sc.topology.to_dict())
    keys = ["socket", "numa_node", "nic", "disk"]
    a_row = topo.filter(pl.col("group") == c.antagonist).select(keys).row(0)
    d_row = topo.filter(pl.col("group") == decoy).select(keys).row(0)
    assert a_row == d_row  # the decoy shares exactly what the antagonist shares
    assert sc.tenant(decoy) == replace(sc.tenant(c.antagonist), group=decoy)
    sched = sc.schedule()
    assert not np.array_equal(sched[c.antagonist], sched[decoy])


def test_interference_drift_ground_truth_names_the_antagonist_while_on() -> None:
    res = simulate(preset("interference_drift", seed=2), seed=2)
    gt = res.ground_truth
    (effect,) = gt["effects"]
    assert effect["phase"] == "while_on" and effect["resources"] == ["storage_io"]
    assert effect["p99_itl_change_pct"] > 5 and effect["throughput_change_pct"] < 0
    assert gt["culprits"] == [effect["antagonist"]]
    (decoy,) = gt["decoys"]  # the twin beside the antagonist; the other co-tenants are innocent, not decoys
    assert decoy == {"fio_a": "fio_b", "fio_b": "fio_a"}[effect["antagonist"]]
    assert set(gt["innocent"]) > {decoy}


def test_host_only_tenant_without_devices_needs_no_topology_entry() -> None:
    sc = preset("aa", phase_s=60)
    extra = Tenant("job", "batch", util=0.0, socket=1, disk="nvme1n1")
    sc2 = replace(sc, tenants=(*sc.tenants, extra))
    assert sc2.topology.to_dict()["groups"]["job"] == {"socket": 1, "numa_node": 1, "disk": "nvme1n1"}
