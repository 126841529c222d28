"""The rdma sampler: InfiniBand / RoCE port counters (a fake sysfs with known deltas; this host's where it has any)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.samplers.base import SamplerContext
from agents.samplers.rdma import SATURATED_32, RdmaSampler


class FakeClock:
    def __init__(self, t: float = 10.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def port(sysfs: Path, dev: str, num: str, hw: bool = True, **values: int) -> None:
    """fake_sysfs: one port's counters/ and (mlx5-like) hw_counters/ files; counters not given are 0."""
    d = sysfs / "class/infiniband" / dev / "ports" / num
    (d / "counters").mkdir(parents=True, exist_ok=True)
    for name in ("port_rcv_data", "port_xmit_data", "port_rcv_packets", "port_xmit_packets", "port_xmit_wait",
                 "port_rcv_discards", "port_xmit_discards"):  # fmt: skip
        (d / "counters" / name).write_text(f"{values.get(name, 0)}\n")
    if hw:
        (d / "hw_counters").mkdir(exist_ok=True)
        for name in ("np_cnp_sent", "rp_cnp_handled", "np_ecn_marked_roce_packets", "out_of_buffer"):
            (d / "hw_counters" / name).write_text(f"{values.get(name, 0)}\n")


def test_port_rates_from_two_ticks_fake_sysfs(tmp_path):
    clock = FakeClock()
    port(tmp_path, "mlx5_0", "1", port_rcv_data=1000, port_xmit_wait=5)
    port(tmp_path, "mlx5_1", "1")
    s = RdmaSampler(tmp_path, clock=clock)
    assert s.read(0.0)["rdma"] == []  # first tick: every rate absent, so no row (a row of nothing carries nothing)
    clock.t += 2.0
    port(tmp_path, "mlx5_0", "1", port_rcv_data=501_000, port_xmit_data=250, port_rcv_packets=4000,
         port_xmit_wait=2005, np_cnp_sent=20, rp_cnp_handled=6, np_ecn_marked_roce_packets=40,
         port_rcv_discards=3, port_xmit_discards=1)  # fmt: skip
    r = s.read(0.0)["rdma"][0]
    assert r["rx_bytes_per_s"] == 1_000_000.0  # 500 000 4-byte words over 2 s
    assert r["tx_bytes_per_s"] == 500.0 and r["rx_packets_per_s"] == 2000.0 and r["tx_packets_per_s"] == 0.0
    assert r["xmit_wait_per_s"] == 1000.0
    assert (r["cnp_sent_per_s"], r["cnp_handled_per_s"], r["ecn_marked_per_s"]) == (10.0, 3.0, 20.0)
    assert r["rx_discards_per_s"] == 2.0  # receive + transmit discards


def test_reset_saturated_and_missing_counters_are_absent_fake_sysfs(tmp_path):
    clock = FakeClock()
    port(tmp_path, "rxe0", "1", hw=False, port_rcv_data=10_000, port_xmit_data=SATURATED_32 - 10, port_rcv_packets=7)
    s = RdmaSampler(tmp_path, clock=clock)
    s.read(0.0)
    clock.t += 1.0
    port(tmp_path, "rxe0", "1", hw=False, port_rcv_data=10, port_xmit_data=SATURATED_32, port_rcv_packets=9)
    r = s.read(0.0)["rdma"][0]
    assert r["rx_bytes_per_s"] is None  # went back: a reset
    assert r["tx_bytes_per_s"] is None  # a 32-bit counter stuck at its maximum would read as 0 B/s
    assert r["rx_packets_per_s"] == 2.0
    assert r["cnp_sent_per_s"] is None and r["ecn_marked_per_s"] is None  # no hw_counters (soft-RoCE)
    assert s.support()["rxe0/1"]["cnp_sent_per_s"] is False


def test_device_filter_option_fake_sysfs(tmp_path):
    port(tmp_path, "mlx5_0", "1")
    port(tmp_path, "rxe0", "1")
    s = RdmaSampler.from_context(SamplerContext(options={"exclude": "^rxe"}, sysfs_root=tmp_path))
    assert [d for d, _, _ in s.ports()] == ["mlx5_0"]


def test_this_hosts_rdma_ports_or_not_started_without_them():
    if not Path("/sys/class/infiniband").is_dir():
        with pytest.raises(FileNotFoundError, match="no RDMA device"):  # "auto": the agent leaves it out
            RdmaSampler.from_context(SamplerContext())
        return
    s = RdmaSampler.from_context(SamplerContext())
    s.read(0.0)
    rows = s.read(0.0)["rdma"]
    assert rows and all(r["rx_bytes_per_s"] is None or r["rx_bytes_per_s"] >= 0.0 for r in rows)
