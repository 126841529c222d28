"""The node simulator: determinism, calibration to seed 000, schema, physics, ground truth, file formats."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from telemetry.errors import ConfigError
from telemetry.schema import conform, measurement
from telemetry.sim import (
    PRESETS,
    TELEMETRY_MEASUREMENTS,
    aiperf_records,
    iter_telemetry,
    preset,
    sglang_summary,
    simulate,
    vllm_detailed,
    write_output,
)

SHORT = {"phase_s": 150, "num_prompts": 96}


@pytest.fixture(scope="module")
def seed000():
    """The full, calibrated seed-000 scenario (640 prompts per run, three 780 s phases)."""
    return simulate(preset("seed000"), seed=0)


@pytest.fixture(scope="module")
def short():
    return simulate(preset("seed000", **SHORT), seed=3)


def _run(res, group, phase):
    return next(r for r in res.runs if r.group == group and r.phase == phase)


# ------------------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_output(short):
    again = simulate(preset("seed000", **SHORT), seed=3)
    for name in TELEMETRY_MEASUREMENTS:
        assert short.telemetry()[name].equals(again.telemetry()[name]), name
    assert short.bench_requests().equals(again.bench_requests())
    assert short.ground_truth == again.ground_truth


def test_another_seed_gives_other_numbers(short):
    other = simulate(preset("seed000", **SHORT), seed=4)
    assert not short.telemetry()["accel"]["power_w"].equals(other.telemetry()["accel"]["power_w"])
    assert short.runs[0].summary() != other.runs[0].summary()


# ------------------------------------------------------------------------------------------ calibration


def test_seed000_baseline_matches_the_blog(seed000):
    s = _run(seed000, "hive0", "baseline").summary()
    assert s["completed"] == 640
    assert s["output_throughput"] == pytest.approx(822.1, rel=0.03)
    assert s["p99_itl_ms"] == pytest.approx(411.67, rel=0.05)
    assert s["median_itl_ms"] == pytest.approx(44.37, rel=0.05)
    assert s["mean_itl_ms"] == pytest.approx(74.64, rel=0.05)
    assert s["duration_s"] == pytest.approx(717.6, rel=0.03)


def test_seed000_full_stress_costs_about_2pct_throughput_and_6pct_p99_itl(seed000):
    base = _run(seed000, "hive0", "baseline").summary()
    stress = _run(seed000, "hive0", "full_stress").summary()
    d_thr = 100 * (stress["output_throughput"] / base["output_throughput"] - 1)
    d_p99 = 100 * (stress["p99_itl_ms"] / base["p99_itl_ms"] - 1)
    assert -3.5 < d_thr < -1.0
    assert 3.5 < d_p99 < 9.0
    # the median ITL barely moves (seed 000: 44.37 -> 44.52 ms)
    assert stress["median_itl_ms"] == pytest.approx(base["median_itl_ms"], rel=0.02)


def test_seed000_dual_hive_costs_about_1pct_throughput(seed000):
    base = _run(seed000, "hive0", "baseline").summary()
    dual = _run(seed000, "hive0", "dual_hive").summary()
    assert -2.5 < 100 * (dual["output_throughput"] / base["output_throughput"] - 1) < 0.5


def test_seed000_ground_truth_blames_tt_most_through_pcie(seed000):
    gt = seed000.ground_truth
    assert gt["victim"] == "hive0"
    assert set(gt["culprits"]) == {"hive1", "tt", "furiosa"}
    stress = [e for e in gt["effects"] if e["victim"] == "hive0" and e["phase"] == "full_stress"]
    worst = min(stress, key=lambda e: e["throughput_change_pct"])
    assert worst["antagonist"] == "tt"
    assert "pcie" in worst["resources"]
    total = gt["phases"]["full_stress"]["runs"]["hive0"]["true_effect"]
    assert -3.5 < total["throughput_change_pct"] < -1.0
    assert 3.5 < total["p99_itl_change_pct"] < 9.0


# ------------------------------------------------------------------------------------------ schema


def test_every_frame_is_in_schema_form(short):
    frames = short.telemetry()
    assert set(frames) == set(TELEMETRY_MEASUREMENTS)
    for name, frame in frames.items():
        assert frame.columns == list(measurement(name).columns), name
        assert conform(frame, name).equals(frame), name
    assert short.bench_requests().columns == list(measurement("bench_request").columns)


def test_telemetry_is_1hz_for_every_device_and_core(short):
    frames = short.telemetry()
    n = short.duration_s
    assert frames["accel"].height == n * 34
    assert frames["host"].height == n
    assert frames["host_core"].height == n * short.scenario.topology.cpu_count
    assert frames["accel"]["device"].n_unique() == 34
    assert frames["accel"]["time"].is_sorted()


def test_unsupported_fields_are_absent_not_zero(short):
    accel = short.telemetry()["accel"]
    tt = accel.filter(pl.col("vendor") == "tenstorrent")
    fur = accel.filter(pl.col("vendor") == "furiosa")
    amd = accel.filter(pl.col("vendor") == "amd")
    for col in ("mem_clock_mhz", "util_pct", "temp_hotspot_c"):
        assert tt[col].null_count() == tt.height, col
    for col in ("pcie_rx_bytes_per_s", "pcie_tx_bytes_per_s", "mem_clock_mhz"):
        assert fur[col].null_count() == fur.height, col
    for col in ("mem_clock_mhz", "util_pct", "pcie_rx_bytes_per_s", "temp_mem_c", "energy_j"):
        assert amd[col].null_count() == 0, col
    assert accel["fan_pct"].null_count() == accel.height


def test_chunks_concatenate_to_the_whole_timeline(short):
    whole = short.telemetry()
    chunks = list(iter_telemetry(short, chunk_s=70))
    assert [t0 for t0, _ in chunks] == list(range(0, short.duration_s, 70))
    for name in TELEMETRY_MEASUREMENTS:
        assert pl.concat([c[name] for _, c in chunks]).equals(whole[name]), name


# ------------------------------------------------------------------------------------------ physics


def _mean(frame, device_group, col, t0, t1, start_ns):
    lo = pl.lit(start_ns + t0 * 10**9).cast(pl.Datetime("ns", "UTC"))
    hi = pl.lit(start_ns + t1 * 10**9).cast(pl.Datetime("ns", "UTC"))
    f = frame.filter((pl.col("group") == device_group) & (pl.col("time") >= lo) & (pl.col("time") < hi))
    return f[col].mean()


def test_power_and_temperature_follow_load(short):
    accel = short.telemetry()["accel"]
    # hive1 idles in the baseline phase and serves in the dual phase
    idle_w = _mean(accel, "hive1", "power_w", 60, 140, short.start_ns)
    busy_w = _mean(accel, "hive1", "power_w", 210, 290, short.start_ns)
    assert busy_w > idle_w + 300
    assert (
        _mean(accel, "hive1", "temp_c", 210, 290, short.start_ns)
        > _mean(accel, "hive1", "temp_c", 60, 140, short.start_ns) + 20
    )


def test_thermal_neighbour_throttles_the_victim_only_while_on():
    res = simulate(preset("thermal_neighbour", phase_s=120, num_prompts=64), seed=1)
    accel = res.telemetry()["accel"]
    hive0 = accel.filter(pl.col("group") == "hive0")
    t = (hive0["time"].dt.epoch("ns") - res.start_ns) // 10**9
    assert not hive0.filter(t < 120)["throttle_thermal"].any()
    assert hive0.filter(t >= 180)["throttle_thermal"].all()
    assert _mean(accel, "hive0", "sm_clock_mhz", 180, 240, res.start_ns) < _mean(
        accel, "hive0", "sm_clock_mhz", 40, 110, res.start_ns
    )
    assert not accel.filter(pl.col("group") == "hive1")["throttle_thermal"].any()


def test_cpu_antagonist_raises_the_run_queue():
    res = simulate(preset("cpu_antagonist", phase_s=120, num_prompts=64), seed=1)
    host = res.telemetry()["host"]
    t = (host["time"].dt.epoch("ns") - res.start_ns) // 10**9
    assert host.filter(t >= 150)["procs_running"].mean() > host.filter(t < 120)["procs_running"].mean() + 30
    cores = res.telemetry()["host_core"]
    tc = (cores["time"].dt.epoch("ns") - res.start_ns) // 10**9
    s0 = cores.filter((pl.col("socket") == "0") & (tc >= 150))["util_pct"].mean()
    s1 = cores.filter((pl.col("socket") == "1") & (tc >= 150))["util_pct"].mean()
    assert s0 > 80 > s1


def test_pcie_antagonist_lowers_the_victims_pcie_rate():
    res = simulate(preset("pcie_antagonist", phase_s=150, num_prompts=64), seed=1)
    accel = res.telemetry()["accel"]
    base = _mean(accel, "hive0", "pcie_rx_bytes_per_s", 20, 100, res.start_ns)
    stress = _mean(accel, "hive0", "pcie_rx_bytes_per_s", 170, 250, res.start_ns)
    assert stress < 0.8 * base
    assert _mean(accel, "tt", "pcie_rx_bytes_per_s", 170, 250, res.start_ns) > 5e9


# ------------------------------------------------------------------------------------------ ground truth


@pytest.mark.parametrize(
    ("name", "resource"), [("pcie_antagonist", "pcie"), ("cpu_antagonist", "cpu"), ("thermal_neighbour", "thermal")]
)
def test_single_antagonist_presets_name_the_culprit_and_resource(name, resource):
    res = simulate(preset(name, phase_s=150, num_prompts=96), seed=2)
    gt = res.ground_truth
    (effect,) = gt["effects"]
    assert effect["victim"] == "hive0" and effect["resources"] == [resource]
    assert effect["throughput_change_pct"] < -1.0
    assert effect["p99_itl_change_pct"] > 2.0
    base = _run(res, "hive0", "baseline").summary()
    stress = _run(res, "hive0", "stress").summary()
    assert stress["p99_itl_ms"] > base["p99_itl_ms"]


@pytest.mark.parametrize("name", ["decoy", "no_interference", "aa"])
def test_presets_without_a_culprit_have_no_effects(name):
    res = simulate(preset(name, phase_s=120, num_prompts=64), seed=2)
    gt = res.ground_truth
    assert gt["culprits"] == [] and gt["effects"] == []
    if name == "decoy":
        assert "hive1" in gt["innocent"]
    for phase in gt["phases"].values():
        assert phase["runs"]["hive0"]["true_effect"] == {"throughput_change_pct": 0.0, "p99_itl_change_pct": 0.0}


def test_randomized_design_records_its_schedule_and_effects():
    res = simulate(preset("randomized", seed=5), seed=5)
    gt = res.ground_truth
    assert len(gt["schedule"]) == 24
    assert all(b["end_s"] - b["start_s"] == 60 for b in gt["schedule"])
    on = np.array([[g in b["active"] for g in ("hive1", "tt", "furiosa")] for b in gt["schedule"]])
    assert 0 < on.mean() < 1
    assert {e["antagonist"] for e in gt["effects"]} <= {"hive1", "tt", "furiosa"}
    tt = next(e for e in gt["effects"] if e["antagonist"] == "tt")
    assert tt["phase"] == "while_on" and tt["p99_itl_change_pct"] > 0
    reqs = res.bench_requests()
    assert reqs["phase"].n_unique() > 10  # each request tagged with the block it started in
    events = res.run_events()
    assert events.filter(pl.col("event").is_in(["switch_on", "switch_off"])).height > 5
    # the design is a function of the seed
    assert preset("randomized", seed=5).schedule_blocks() == gt["schedule"]
    assert preset("randomized", seed=6).schedule_blocks() != gt["schedule"]


def test_every_preset_builds_and_short_phases_work():
    for name in PRESETS:
        sc = preset(name, phase_s=60, num_prompts=16)
        assert sc.duration_s >= 60


def test_an_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown scenario"):
        preset("nope")


def test_telemetry_only_mode_skips_the_benchmark():
    res = simulate(preset("seed000", phase_s=600), seed=0, bench=False)
    assert res.runs == [] and res.ground_truth["effects"] == []
    assert res.telemetry(0, 10)["accel"].height == 340


# ------------------------------------------------------------------------------------------ files


def test_vllm_detailed_has_the_documented_keys_in_seconds(short):
    run = _run(short, "hive0", "baseline")
    doc = vllm_detailed(run)
    for key in (
        "date",
        "backend",
        "model_id",
        "num_prompts",
        "request_rate",
        "max_concurrency",
        "duration",
        "completed",
        "failed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "median_itl_ms",
        "mean_e2el_ms",
        "latencies",
        "input_lens",
        "output_lens",
        "start_times",
        "ttfts",
        "itls",
        "generated_texts",
        "errors",
    ):
        assert key in doc, key
    n = doc["completed"]
    assert all(len(doc[k]) == n for k in ("input_lens", "output_lens", "start_times", "ttfts", "itls", "errors"))
    assert all(len(i) == o - 1 for i, o in zip(doc["itls"], doc["output_lens"], strict=True))
    assert max(max(i) for i in doc["itls"]) < 5.0  # seconds
    assert doc["p99_itl_ms"] > 100  # milliseconds
    assert doc["start_times"][0] == pytest.approx(run.monotonic_start_s)
    assert doc["output_throughput"] == pytest.approx(run.summary()["output_throughput"])


def test_aiperf_records_carry_wall_clock_and_consistent_latencies(short):
    run = _run(short, "hive0", "baseline")
    recs = aiperf_records(run)
    assert len(recs) == run.result.n
    r = recs[5]
    md, m = r["metadata"], r["metrics"]
    assert md["benchmark_phase"] == "profiling" and r["error"] is None
    assert md["request_start_ns"] == run.start_ns + round(run.result.start_s[5] * 1e9)
    assert md["request_end_ns"] > md["request_start_ns"]
    lat, ttft = m["request_latency"]["value"], m["time_to_first_token"]["value"]
    assert sum(m["inter_chunk_latency"]["value"]) == pytest.approx(lat - ttft, rel=1e-4)
    osl = m["output_sequence_length"]["value"]
    assert m["inter_token_latency"]["value"] == pytest.approx((lat - ttft) / (osl - 1))
    assert m["request_latency"]["unit"] == "ms"


def test_sglang_summary_block_has_the_printed_labels(short):
    run = _run(short, "hive0", "baseline")
    text = sglang_summary(run)
    assert text.startswith("=" * 12 + " Serving Benchmark Result ")
    for label in (
        "Successful requests:",
        "Benchmark duration (s):",
        "Output token throughput (tok/s):",
        "Median TTFT (ms):",
        "P99 ITL (ms):",
        "Median TPOT (ms):",
    ):
        assert label in text
    seedstyle = sglang_summary(run, style="inferencex", title="Hive 0 - 8 GPUs")
    assert "Serving Benchmark Result (Hive 0 - 8 GPUs)" in seedstyle and "P99 E2EL (ms):" in seedstyle


def test_write_output_writes_telemetry_bench_files_and_ground_truth(short, tmp_path):
    written = write_output(short, tmp_path, formats=("vllm", "aiperf", "sglang", "sglang_jsonl"), tokens=True)
    for name in TELEMETRY_MEASUREMENTS:
        frame = pl.read_parquet(tmp_path / "telemetry" / f"{name}.parquet")
        assert frame.equals(short.telemetry()[name]), name
    gt = json.loads((tmp_path / "ground_truth.json").read_text())
    assert gt["victim"] == "hive0" and gt["effects"]
    topo = json.loads((tmp_path / "topology.json").read_text())
    assert len(topo["devices"]) == 34
    assert {"id", "vendor", "model", "group", "pci_bus", "pcie_switch", "socket", "cooling_zone"} <= set(
        topo["devices"][0]
    )
    for run in short.runs:
        d = tmp_path / "bench" / run.run_id
        assert json.loads((d / "vllm_detailed.json").read_text())["completed"] == run.result.n
        assert len((d / "profile_export.jsonl").read_text().splitlines()) == run.result.n
        line = (d / "sglang_output.jsonl").read_text().splitlines()
        assert len(line) == 1 and '"request_rate": Infinity' in line[0]
    tokens = pl.read_parquet(tmp_path / "tokens.parquet")
    assert tokens.height == sum(int((r.result.output_tokens - 1).sum()) for r in short.runs)
    assert sum(len(v) for v in written.values()) > 10


def test_simulate_command_writes_a_directory(tmp_path):
    import typer

    from telemetry.sim.cli import simulate as command

    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)
    runner = CliRunner()
    help_ = runner.invoke(app, ["simulate", "--help"])
    assert help_.exit_code == 0 and "--scenario" in help_.output and "seed000" in help_.output
    out = tmp_path / "sim"
    res = runner.invoke(
        app,
        [
            "simulate",
            "--scenario",
            "aa",
            "--phase-s",
            "90",
            "--num-prompts",
            "64",
            "--seed",
            "2",
            "--out",
            str(out),
            "--formats",
            "vllm",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert (out / "ground_truth.json").exists() and (out / "telemetry" / "accel.parquet").exists()
    assert "ground truth" in res.output
