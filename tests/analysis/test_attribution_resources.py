"""Attribution names every shared resource from the victim's own signals (fake window grids: the PSI, resctrl,
disk and NIC telemetry this host may lack, built as the samplers would report it), and says "A or B: cannot be
told apart" where no signal separates two resources."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl
import pytest

from analysis.align import Grid, measurement_windows
from analysis.attribution import attribute, mediators, resource_evidence
from analysis.resources import RESOURCE_NAMES
from telemetry.topology import topology_frame

N = 120
EMPTY = pl.DataFrame(schema={"window_start": pl.Datetime("ns", "UTC")})


def _windows(n: int = N) -> pl.Series:
    ws = pl.Series("window_start", np.datetime64("2026-01-01T00:00:00", "ns") + np.arange(n) * np.timedelta64(5, "s"))
    return ws.dt.replace_time_zone("UTC")


def _on(n: int = N) -> np.ndarray:
    """A co-tenant on in blocks of 6 windows (30 s), in an irregular order."""
    rng = np.random.default_rng(7)
    blocks = rng.permutation(np.tile([0.0, 1.0], n // 12))
    return np.repeat(blocks, 6)[:n]


def fake_grid(
    on: np.ndarray,
    *,
    slowdown: float = 0.2,
    ttft_slowdown: float = 0.0,
    victim_cpu_pct: np.ndarray | None = None,
    tenant: Mapping[str, np.ndarray] | None = None,
    host: Mapping[str, np.ndarray] | None = None,
    disks: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    nets: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    sockets: np.ndarray | None = None,
    seed: int = 0,
) -> Grid:
    """A victim slowed by ``slowdown`` while ``on``; its tenant / host / disk / net windows hold the given fields
    (a fake of what the cgroup, procfs, resctrl, diskstats and net samplers report on a host that has them)."""
    rng = np.random.default_rng(seed)
    n = len(on)
    ws = _windows(n)
    tput = 200 * (1 - slowdown * on) * np.exp(rng.normal(0, 0.03, n))
    victim = pl.DataFrame(
        {
            "run_id": "r",
            "phase": "p",
            "group": "victim",
            "window_start": ws,
            "covered_s": 5.0,
            "tokens": tput * 5,
            "output_tok_s": tput,
            "itl_n": 1000,
            "itl_ms_p50": 5 * 200 / tput,
            "itl_ms_p99": 30 * (1 + 1.5 * slowdown * on) * np.exp(rng.normal(0, 0.05, n)),
            "itl_ms_mean": 5 * 200 / tput,
            "requests_started": 30,
            "requests_per_s": 6 * (1 - ttft_slowdown / 4 * on) * np.exp(rng.normal(0, 0.03, n)),
            "ttft_ms_p50": 50.0,
            "ttft_ms_p99": 80 * (1 + ttft_slowdown * on) * np.exp(rng.normal(0, 0.05, n)),
            "running_requests": 1.0,
            "prefill_tokens": 640.0,
        }
    )
    vcpu = victim_cpu_pct if victim_cpu_pct is not None else 100 * tput / 200 + rng.normal(0, 1, n)
    # one sample per window, in the schema's fields, windowed as align does
    tenants = measurement_windows(
        pl.concat(
            [
                pl.DataFrame({"time": ws, "node": "n", "group": "victim", "cpu_pct": vcpu, **(tenant or {})}),
                pl.DataFrame({"time": ws, "node": "n", "group": "hog", "cpu_pct": 5 + 90 * on + rng.normal(0, 2, n)}),
            ],
            how="diagonal",
        ),
        5.0,
        "tenant",
    )
    host_frame = measurement_windows(pl.DataFrame({"time": ws, "node": "n", **host}), 5.0, "host") if host else EMPTY

    def per_device(frames: Mapping[str, Mapping[str, np.ndarray]] | None, measurement: str) -> pl.DataFrame:
        if not frames:
            return EMPTY
        tag = "disk" if measurement == "host_disk" else "interface"
        samples = pl.concat(
            [pl.DataFrame({"time": ws, "node": "n", tag: name, **cols}) for name, cols in frames.items()]
        )
        return measurement_windows(samples, 5.0, measurement)

    sock = (
        pl.DataFrame({"window_start": ws, "socket": "0", "util_pct": 50.0, "saturated_core_share": sockets})
        if sockets is not None
        else EMPTY
    )
    return Grid(
        5.0,
        victim,
        EMPTY,
        EMPTY,
        host_frame,
        sock,
        tenants,
        disks=per_device(disks, "host_disk"),
        nets=per_device(nets, "host_net"),
    )


def _noise(scale: float, seed: int = 1, n: int = N) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).normal(0, scale, n))


def _flat_cpu(on: np.ndarray) -> dict[str, np.ndarray]:
    """CPU signals measured and flat: the victim waits for no CPU and is never throttled."""
    return {"cpu_pressure_some_us_per_s": 2000 + _noise(300, 3), "cpu_throttled_us_per_s": np.zeros(len(on))}


def _evidence(grid: Grid, on: np.ndarray, resources=RESOURCE_NAMES, topology=None) -> tuple[str, list[str]]:
    med = mediators(grid, "victim", topology)
    resource, lines, _ = resource_evidence("hog", on, med, list(resources))
    return resource, lines


def test_memory_bandwidth_from_the_victims_own_mbm_falling() -> None:
    on = _on()
    tenant = {"mbm_total_bytes_per_s": 8e9 * (1 - 0.35 * on) * np.exp(_noise(0.02)), **_flat_cpu(on)}
    resource, lines = _evidence(fake_grid(on, tenant=tenant), on)
    assert resource == "memory_bandwidth"
    assert lines[0].startswith("memory_bandwidth: victim's load-adjusted memory traffic (resctrl MBM) -")


def test_memory_bandwidth_without_resctrl_when_cpu_signals_are_measured_and_flat() -> None:
    # the victim keeps its CPU time but makes fewer tokens with it: stalled cycles count as busy (a CPI rise)
    on = _on()
    grid = fake_grid(on, victim_cpu_pct=95 + _noise(1.5), tenant=_flat_cpu(on), sockets=0.1 + _noise(0.02))
    resource, lines = _evidence(grid, on)
    assert resource == "memory_bandwidth"
    assert any("CPU time per output token" in line for line in lines)
    assert not any("cannot be told apart" in line for line in lines)


def test_a_cpi_rise_with_no_cpu_signals_measured_is_memory_bandwidth_or_cpu() -> None:
    on = _on()
    resource, lines = _evidence(fake_grid(on, victim_cpu_pct=95 + _noise(1.5)), on)
    assert resource == "memory_bandwidth or cpu"
    assert lines[0].startswith("memory_bandwidth or cpu: cannot be told apart (") or lines[0].startswith(
        "memory_bandwidth or cpu: cannot be told apart: "
    )
    assert "not measured" in lines[0]


def test_memory_pressure_from_the_victims_stalls_and_refaults() -> None:
    on = _on()
    tenant = {
        "mem_pressure_some_us_per_s": 1000 + 150_000 * on + _noise(5000),
        "workingset_refault_per_s": 10 + 400 * on + _noise(20),
        **_flat_cpu(on),
    }
    resource, lines = _evidence(fake_grid(on, tenant=tenant), on)
    assert resource == "memory"
    assert any(line.startswith("memory: victim's memory pressure") and "ms/s of stall" in line for line in lines)


def test_storage_io_from_the_victims_io_pressure_and_its_disks_latency() -> None:
    on = _on()
    tenant = {"io_pressure_some_us_per_s": 500 + 200_000 * on + _noise(8000), **_flat_cpu(on)}
    disks = {
        "nvme0n1": {"read_await_ms": 0.2 + 4 * on + _noise(0.1), "write_await_ms": 0.3 + _noise(0.1)},
        "nvme1n1": {"read_await_ms": 0.2 + _noise(0.1), "write_await_ms": 0.3 + _noise(0.1)},
    }
    topo = topology_frame(
        {"groups": {"victim": {"disk": "nvme0n1", "socket": "0"}, "hog": {"disk": "nvme0n1", "socket": "1"}}}
    )
    grid = fake_grid(on, tenant=tenant, disks=disks)
    resource, lines = _evidence(grid, on, topology=topo)
    assert resource == "storage_io"
    assert any(line.startswith("storage_io: I/O latency on the victim's disk +3.8") for line in lines)
    # the victim's disk is the topology's: only nvme0n1 is read
    med = mediators(grid, "victim", topo)
    assert med["disk_await"].mean() == pytest.approx(0.2 + 2 + 0.08, abs=0.3)


def test_network_from_the_victims_saturated_link_and_drops() -> None:
    on = _on()
    nets = {
        "veth-srv": {
            "rx_bytes_per_s": 2e6 + 10e6 * on + _noise(2e5),
            "tx_bytes_per_s": 3e6 + _noise(2e5),
            "rx_dropped_per_s": 20 * on + _noise(1),
            "tx_dropped_per_s": np.zeros(N),
        }
    }
    resource, lines = _evidence(fake_grid(on, nets=nets, tenant=_flat_cpu(on)), on)
    assert resource == "network"
    assert any(line.startswith("network: victim's link load") for line in lines)
    assert any(line.startswith("network: packets dropped on the victim's NIC") for line in lines)


def test_cpu_from_the_victims_cpu_pressure_and_throttling() -> None:
    on = _on()
    tenant = {
        "cpu_pressure_some_us_per_s": 5000 + 300_000 * on + _noise(10_000),
        "cpu_throttled_us_per_s": 100_000 * on + _noise(3000),
    }
    resource, lines = _evidence(fake_grid(on, tenant=tenant), on)
    assert resource == "cpu"
    assert any("victim's CPU pressure" in line for line in lines) and any("CFS quota" in line for line in lines)


def test_two_resources_moving_alike_cannot_be_told_apart() -> None:
    # memory and I/O stalls rising together by the same amount through the same noise: no signal separates them
    on = _on()
    tenant = {
        "mem_pressure_some_us_per_s": 1000 + 100_000 * on + _noise(60_000, 4),
        "io_pressure_some_us_per_s": 1000 + 100_000 * on + _noise(60_000, 5),
        **_flat_cpu(on),
    }
    resource, lines = _evidence(fake_grid(on, tenant=tenant), on)
    assert resource in ("memory or storage_io", "storage_io or memory")
    assert lines[0].startswith(f"{resource}: cannot be told apart: their victim-side signals move with the suspect")
    assert "Williams' test p=" in lines[0]


def test_one_resource_far_stronger_is_named_alone() -> None:
    on = _on()
    tenant = {
        "mem_pressure_some_us_per_s": 1000 + 200_000 * on + _noise(5000, 4),
        "io_pressure_some_us_per_s": 1000 + 30_000 * on + _noise(40_000, 5),
        **_flat_cpu(on),
    }
    assert _evidence(fake_grid(on, tenant=tenant), on)[0] == "memory"


def test_context_evidence_alone_names_the_resource_and_says_so() -> None:
    on = _on()
    host = {"mbm_total_bytes_per_s": 10e9 + 20e9 * on + _noise(5e8)}
    resource, lines = _evidence(fake_grid(on, host=host, tenant=_flat_cpu(on)), on)
    assert resource == "memory_bandwidth"
    assert lines[0] == (
        "memory_bandwidth: context evidence only (signals that the suspect uses it, none that the victim stalls on it)"
    )


def test_no_evidence_at_all_is_unknown() -> None:
    on = _on()
    resource, lines = _evidence(fake_grid(on, tenant=_flat_cpu(on)), on)
    assert resource == "unknown" and lines == []


def test_absent_fields_are_null_mediators_not_zero() -> None:
    on = _on()
    med = mediators(fake_grid(on), "victim")
    for col in ("victim_mem_pressure", "victim_io_pressure", "disk_await", "link_saturation", "rdma_xmit_wait"):
        assert med[col].null_count() == med.height, col


def test_ttft_metric_finds_a_neighbour_that_slows_prefill_only() -> None:
    # the neighbour lengthens time to first token (+40 %) and leaves decode alone: ITL sees nothing, TTFT does
    on = _on()
    tenant = {"cpu_pressure_some_us_per_s": 2000 + 200_000 * on + _noise(10_000)}
    grid = fake_grid(on, slowdown=0.0, ttft_slowdown=0.4, tenant=tenant)
    itl = attribute(grid, "victim", n_shifts=199).antagonists.row(0, named=True)
    ttft = attribute(grid, "victim", n_shifts=199, metric="ttft").antagonists.row(0, named=True)
    assert itl["antagonist"] == "hog" and not itl["significant"] and itl["metric"] == "itl"
    assert ttft["antagonist"] == "hog" and ttft["significant"] and ttft["metric"] == "ttft"
    assert ttft["resource"] == "cpu"
    assert ttft["ttft_ci_low"] > 20 and ttft["ttft_p99_effect_pct"] == pytest.approx(40, abs=8)
    assert ttft["effect_pct"] < 0  # the request rate fell
    with pytest.raises(ValueError, match="metric"):
        attribute(grid, "victim", metric="tpot")  # type: ignore[arg-type]


def test_cfs_throttling_alone_cannot_rule_out_memory_bandwidth_with_evidence_of_its_own() -> None:
    # a victim stalled on memory burns more CPU per token and hits its own CPU quota: throttling alone is cpu, or
    # memory bandwidth when the victim's memory traffic falls too
    on = _on()
    tenant = {
        "cpu_throttled_us_per_s": 100_000 * on + _noise(3000),
        "cpu_pressure_some_us_per_s": 2000 + _noise(300, 3),
        "mbm_total_bytes_per_s": 8e9 * (1 - 0.1 * on) * np.exp(_noise(0.05, 6)),
    }
    resource, lines = _evidence(fake_grid(on, tenant=tenant), on)
    assert resource == "cpu or memory_bandwidth"
    assert "would also come from memory_bandwidth, which has evidence of its own" in lines[0]
    # with the victim's memory traffic measured and flat, throttling is cpu alone
    tenant["mbm_total_bytes_per_s"] = 8e9 * np.exp(_noise(0.05, 6))
    assert _evidence(fake_grid(on, tenant=tenant), on)[0] == "cpu"
