"""Alignment: windows on the epoch grid, victim throughput / ITL / load per window, device and group activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis.align import (
    MIN_ITL_SAMPLES,
    MIN_P99_SAMPLES,
    MIN_TTFT_P99_SAMPLES,
    align,
    choose_window_s,
    device_windows,
    grid_from_victim,
    group_windows,
    socket_windows,
    token_windows,
    victim_windows,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ns(t: datetime) -> pl.Series:
    return pl.Series([t]).cast(pl.Datetime("ns", "UTC"))


def _tokens(rate_per_s: int, seconds: int, itl_ms: float = 10.0) -> pl.DataFrame:
    n = rate_per_s * seconds
    times = [T0 + timedelta(seconds=i / rate_per_s) for i in range(n)]
    return pl.DataFrame(
        {"run_id": "r", "request_index": np.arange(n) % 4, "time": times, "itl_ms": np.full(n, itl_ms)}
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))


def _runs(seconds: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"run_id": ["r"], "phase": ["p"], "group": ["g"], "start": [T0], "end": [T0 + timedelta(seconds=seconds)]}
    ).with_columns(pl.col("start").cast(pl.Datetime("ns", "UTC")), pl.col("end").cast(pl.Datetime("ns", "UTC")))


def _requests() -> pl.DataFrame:
    # two requests: [0 s, 4 s) and [2 s, 6 s), TTFT 1 s, 100 input tokens each
    return pl.DataFrame(
        {
            "run_id": ["r", "r"],
            "request_index": [0, 1],
            "time": [T0, T0 + timedelta(seconds=2)],
            "ttft_ms": [1000.0, 1000.0],
            "e2e_ms": [4000.0, 4000.0],
            "input_tokens": [100, 100],
            "output_tokens": [10, 10],
            "error": [None, None],
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")), pl.col("error").cast(pl.String))


def test_window_grows_until_a_window_holds_a_thousand_itl_samples() -> None:
    assert choose_window_s(_tokens(600, 10), 10.0) == 2.0  # 600/s: 1 s has 600, 2 s has 1200
    assert choose_window_s(_tokens(1200, 5), 5.0) == 1.0
    assert choose_window_s(_tokens(30, 10), 10.0) == 60.0  # 30/s: 60 s windows hold 1800


def test_victim_windows_count_tokens_and_load_per_window() -> None:
    w = victim_windows(_requests(), _tokens(600, 6), _runs(6), 2.0)
    assert w["window_start"].to_list() == [T0 + timedelta(seconds=s) for s in (0, 2, 4, 6)][: w.height]
    first = w.row(0, named=True)
    assert first["tokens"] == 1200 and first["output_tok_s"] == 600.0
    assert first["itl_n"] == 1200 and first["itl_ms_p99"] == 10.0
    # in flight: request 0 the whole window [0, 2) -> 1.0; [2, 4): both -> 2.0; [4, 6): request 1 -> 1.0
    assert w["running_requests"].to_list()[:3] == [1.0, 2.0, 1.0]
    # prefill finishes (first token) at 1 s and 3 s
    assert w["prefill_tokens"].to_list()[:3] == [100.0, 100.0, 0.0]
    assert w["requests_started"].to_list()[:3] == [1, 1, 0]


def test_windowed_p99_needs_enough_samples() -> None:
    w = victim_windows(_requests(), _tokens(40, 6), _runs(6), 2.0)
    assert w["itl_n"][0] == 80 < MIN_P99_SAMPLES
    assert w["itl_ms_p99"].null_count() == w.height
    assert w["itl_ms_p50"][0] == 10.0 and w["itl_ms_mean"][0] == 10.0


def test_slow_windows_keep_their_p99_no_censoring_by_speed() -> None:
    # a slowed victim emits fewer ITLs per window: 200 here, well under the adaptive target of 1000, still a p99
    w = victim_windows(_requests(), _tokens(100, 6), _runs(6), 2.0)
    assert w["itl_n"][0] == 200 < MIN_ITL_SAMPLES
    assert w["itl_ms_p99"].null_count() == 0


def _accel() -> pl.DataFrame:
    rows = []
    for s in range(4):
        for dev, grp, power in (("gpu0", "a", 100.0 + s), ("gpu1", "a", 200.0), ("tt0", "b", 50.0)):
            rows.append(
                {
                    "time": T0 + timedelta(seconds=s),
                    "node": "n",
                    "device": dev,
                    "group": grp,
                    "power_w": power,
                    "power_limit_w": 300.0,
                    "pcie_rx_bytes_per_s": 1e9,
                    "pcie_tx_bytes_per_s": None if dev == "tt0" else 5e8,
                    "temp_c": 50.0,
                    "sm_clock_mhz": 2000.0,
                    "throttle_thermal": s == 3,
                    "throttle_power": False,
                    "util_pct": None if dev == "tt0" else 90.0,
                }
            )
    return pl.DataFrame(rows).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))


def test_device_windows_average_and_flag_shares() -> None:
    d = device_windows(_accel(), 2.0)
    g0 = d.filter(pl.col("device") == "gpu0").sort("window_start")
    assert g0["power_w"].to_list() == [100.5, 102.5]
    assert g0["throttle_thermal_share"].to_list() == [0.0, 0.5]
    assert g0["pcie_bytes_per_s"][0] == 1.5e9
    tt = d.filter(pl.col("device") == "tt0")
    assert tt["pcie_bytes_per_s"][0] == 1e9  # a missing direction is not a zero of the other
    assert tt["util_pct"].null_count() == tt.height  # absent stays absent


def test_group_windows_sum_power_and_pcie_over_devices() -> None:
    g = group_windows(device_windows(_accel(), 2.0)).filter(pl.col("group") == "a").sort("window_start")
    assert g["power_w"].to_list() == [300.5, 302.5]
    assert g["pcie_bytes_per_s"][0] == 3e9
    assert g["n_devices"][0] == 2


def test_socket_windows_measure_saturated_cores() -> None:
    hc = pl.DataFrame(
        {
            "time": [T0] * 4,
            "node": "n",
            "core": ["0", "1", "2", "3"],
            "socket": ["0", "0", "1", "1"],
            "util_pct": [100.0, 50.0, 10.0, 20.0],
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
    s = socket_windows(hc, 1.0).sort("socket")
    assert s["saturated_core_share"].to_list() == [0.5, 0.0]
    assert s["util_pct"].to_list() == [75.0, 15.0]


def test_align_says_how_the_window_was_chosen_and_accepts_lazy_frames() -> None:
    grid = align(_requests(), _tokens(600, 6).lazy(), _runs(6), accel=_accel().lazy())
    assert grid.window_s == 2.0
    assert any("1000 ITL samples" in n for n in grid.notes)
    wide = grid.wide()
    assert {"a.power_w", "b.pcie_bytes_per_s", "output_tok_s"} <= set(wide.columns)


def test_groups_from_samples_equal_groups_from_device_windows() -> None:
    from analysis.align import group_windows_direct

    a = group_windows(device_windows(_accel(), 2.0)).sort("window_start", "group")
    b = group_windows_direct(_accel(), 2.0).sort("window_start", "group")
    for col in ("power_w", "power_limit_w", "pcie_bytes_per_s", "util_pct", "throttle_thermal_share", "n_devices"):
        assert a[col].to_list() == b[col].to_list(), col


def test_telemetry_outside_the_victims_windows_is_not_aggregated() -> None:
    late = _accel().with_columns((pl.col("time") + pl.duration(hours=1)).cast(pl.Datetime("ns", "UTC")))
    grid = align(_requests(), _tokens(600, 6), _runs(6), accel=pl.concat([_accel(), late]), window_s=2.0)
    assert grid.groups["window_start"].max() < T0 + timedelta(minutes=1)
    full = align(
        _requests(),
        _tokens(600, 6),
        _runs(6),
        accel=pl.concat([_accel(), late]),
        window_s=2.0,
        victim_windows_only=False,
        per_device=True,
    )
    assert full.groups["window_start"].max() > T0 + timedelta(minutes=59)
    assert full.devices.height > 0


def test_a_bidirectional_pcie_figure_counts_when_rx_and_tx_are_absent() -> None:
    a = _accel().with_columns(
        pl.lit(None, dtype=pl.Float64).alias("pcie_rx_bytes_per_s"),
        pl.lit(None, dtype=pl.Float64).alias("pcie_tx_bytes_per_s"),
        pl.lit(7e8).alias("pcie_bidir_bytes_per_s"),
    )
    assert device_windows(a, 2.0)["pcie_bytes_per_s"].to_list()[0] == 7e8


def test_victim_windows_carry_ttft_p99_and_the_request_rate() -> None:
    many = pl.DataFrame(
        {
            "run_id": "r",
            "request_index": np.arange(10),
            "time": [T0 + timedelta(milliseconds=100 * i) for i in range(10)],
            "ttft_ms": [10.0 * (i + 1) for i in range(10)],
            "e2e_ms": 500.0,
            "input_tokens": 100,
            "output_tokens": 10,
            "error": None,
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")), pl.col("error").cast(pl.String))
    w = victim_windows(
        pl.concat([many, _requests().with_columns(pl.col("request_index") + 10)], how="vertical_relaxed"),
        _tokens(600, 6),
        _runs(6),
        2.0,
    )
    first = w.row(0, named=True)
    assert first["requests_started"] == 11 and first["requests_per_s"] == 5.5
    ttfts = np.array([*(10.0 * (i + 1) for i in range(10)), 1000.0])
    assert first["ttft_ms_p99"] == pytest.approx(np.quantile(ttfts, 0.99))
    # one request in a window: too few for a p99 (null, not its value), its p50 kept
    second = w.row(1, named=True)
    assert second["requests_started"] == 1 and second["ttft_ms_p99"] is None and second["ttft_ms_p50"] == 1000.0
    assert MIN_TTFT_P99_SAMPLES > 1


def _device_samples() -> dict[str, pl.DataFrame]:
    t = [T0 + timedelta(seconds=s) for s in range(4)]
    disk = pl.DataFrame(
        {
            "time": t * 2,
            "node": "n",
            "disk": ["nvme0n1"] * 4 + ["sda"] * 4,
            "read_await_ms": [1.0, 2.0, 3.0, 4.0] + [9.0] * 4,
            "write_await_ms": [5.0, 0.0, 0.0, 0.0] + [None] * 4,
            "busy_pct": [10.0, 20.0, 30.0, 40.0] + [90.0] * 4,
        }
    )
    net = pl.DataFrame(
        {
            "time": t,
            "node": "n",
            "interface": "eth0",
            "rx_bytes_per_s": 1e6,
            "tx_bytes_per_s": 2e6,
            "rx_dropped_per_s": [1.0, None, 3.0, None],
            "tx_dropped_per_s": [None, None, 1.0, None],
        }
    )
    rdma = pl.DataFrame({"time": t, "node": "n", "device": "mlx5_0", "port": "1", "xmit_wait_per_s": 7.0})
    return {
        k: v.with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
        for k, v in (("disk", disk), ("net", net), ("rdma", rdma))
    }


def test_disk_net_and_rdma_windows_come_from_the_resource_records() -> None:
    s = _device_samples()
    grid = align(_requests(), _tokens(600, 6), _runs(6), window_s=2.0, disk=s["disk"], net=s["net"], rdma=s["rdma"])
    d = grid.disks.filter(pl.col("disk") == "nvme0n1").sort("window_start")
    # await: the larger of read / write per sample, window mean; busy: window mean
    assert d["await_ms"].to_list() == [3.5, 3.5] and d["busy_pct"].to_list() == [15.0, 35.0]
    assert "queue_ms_per_s" not in grid.disks.columns  # absent from the samples: absent, not 0
    n = grid.nets.sort("window_start")
    # drops: rx + tx where either is reported, null where neither is
    assert n["dropped_per_s"].to_list() == [1.0, 4.0]
    assert grid.rdma["xmit_wait_per_s"].to_list() == [7.0, 7.0] and set(grid.rdma["port"]) == {"1"}
    wide = grid.wide()
    assert {"host_disk.nvme0n1.await_ms", "host_net.eth0.dropped_per_s", "rdma.mlx5_0/1.xmit_wait_per_s"} <= set(
        wide.columns
    )


def test_a_victim_table_from_another_source_gets_the_same_telemetry_grid() -> None:
    # a live source (serving metrics) fills the documented victim table itself; the telemetry half is the same
    s = _device_samples()
    victim = victim_windows(_requests(), _tokens(600, 6), _runs(6), 2.0)
    direct = align(_requests(), _tokens(600, 6), _runs(6), window_s=2.0, accel=_accel(), disk=s["disk"])
    live = grid_from_victim(victim, 2.0, accel=_accel(), disk=s["disk"], notes=("live serving metrics",))
    assert live.victim.equals(direct.victim)
    assert live.groups.sort("window_start", "group").equals(direct.groups.sort("window_start", "group"))
    assert live.disks.equals(direct.disks)
    assert live.notes[0] == "live serving metrics"


def test_token_windows_by_chunks_of_runs_equal_one_pass() -> None:
    """A week of tokens is aggregated a few whole runs at a time (bounded memory): the same rows as one pass,
    including a window that two runs share and runs whose ITL quantiles differ."""
    rng = np.random.default_rng(3)
    frames = []
    for k in range(7):
        n = 3000 + 500 * k
        frames.append(
            pl.DataFrame(
                {
                    "run_id": f"run{k}",
                    "time": [T0 + timedelta(seconds=40 * k + i / 100) for i in range(n)],
                    "itl_ms": rng.lognormal(2 + 0.1 * k, 0.4, n),
                }
            ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")), pl.col("run_id").cast(pl.Categorical))
        )
    tokens = pl.concat(frames, rechunk=False)
    one = token_windows(tokens, 5.0, max_rows=10**9).sort("run_id", "window_start")
    chunked = token_windows(tokens, 5.0, max_rows=8000).sort("run_id", "window_start")
    assert one.height > 7 * 6
    assert chunked.equals(one)
    assert token_windows(tokens.lazy(), 5.0, max_rows=8000).sort("run_id", "window_start").equals(one)


def test_telemetry_aggregated_by_chunks_of_time_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """A week of telemetry is aggregated `TIME_CHUNK_S` of victim windows at a time (bounded memory, each chunk's
    time range pushed down to the scan): the same groups, sockets and tenants as one pass, gaps included."""
    import analysis.align as al

    rng = np.random.default_rng(5)
    n = 300
    t = [T0 + timedelta(seconds=i) for i in range(n)]
    accel = pl.DataFrame(
        {
            "time": [x for x in t for _ in range(3)],
            "node": "n",
            "device": ["gpu0", "gpu1", "tt0"] * n,
            "group": ["a", "a", "b"] * n,
            "power_w": rng.normal(200, 30, 3 * n),
            "power_limit_w": 300.0,
            "util_pct": rng.uniform(0, 100, 3 * n),
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
    cores = pl.DataFrame(
        {
            "time": [x for x in t for _ in range(4)],
            "node": "n",
            "socket": ["0", "0", "1", "1"] * n,
            "core": ["0", "1", "2", "3"] * n,
            "util_pct": rng.uniform(50, 100, 4 * n),
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
    tenant = pl.DataFrame({"time": t, "node": "n", "group": "b", "cpu_pct": rng.uniform(0, 400, n)}).with_columns(
        pl.col("time").cast(pl.Datetime("ns", "UTC"))
    )
    # the victim's windows: two stretches with a gap (windows of 5 s)
    wins = [T0 + timedelta(seconds=5 * k) for k in list(range(0, 20)) + list(range(35, 55))]
    victim = pl.DataFrame({"window_start": wins}).with_columns(pl.col("window_start").cast(pl.Datetime("ns", "UTC")))

    def grid() -> tuple[pl.DataFrame, ...]:
        g = grid_from_victim(victim, 5.0, accel=accel.lazy(), host_core=cores, tenant=tenant, per_device=False)
        return g.groups, g.sockets, g.tenants

    one = grid()
    monkeypatch.setattr(al, "TIME_CHUNK_S", 17.0)
    chunked = grid()
    assert one[0]["window_start"].n_unique() == 40
    for a, b in zip(one, chunked, strict=True):  # window means summed in another order: equal to rounding
        assert_frame_equal(a, b, check_exact=False, rel_tol=1e-9)
