"""summary.json: sections, plain-words verdict, explicit empty sections, the phase table from analysis.degradation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl

from analysis.report import build_report, render
from analysis.report.data import ReportData, run_objects
from analysis.report.summary import NO_ACCEL, NO_HISTORY, NO_RUNS, ReportOptions, antagonist_ranking, phase_rows
from telemetry.schema import empty_frame

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _run(run_id: str, group: str, phase: str, tok_s: float, p99: float) -> dict:
    return {
        "run_id": run_id,
        "tool": "vllm-bench",
        "source": "summary",
        "group": group,
        "phase": phase,
        "start": T0.isoformat(),
        "summary": {"output_tok_s": tok_s, "itl_ms_p99": p99, "completed": 640.0},
    }


def _empty_data() -> ReportData:
    lat = pl.DataFrame(
        schema={
            "time": pl.Datetime("ns", "UTC"),
            "run_id": pl.String,
            "group": pl.String,
            "phase": pl.String,
            "itl_ms": pl.Float64,
            "source": pl.String,
        }
    )
    return ReportData(
        start=T0,
        end=T0.replace(hour=10),
        accel=empty_frame("accel"),
        host=empty_frame("host"),
        tenant=empty_frame("tenant"),
        run_event=empty_frame("run_event"),
        runs=[],
        latency=lat,
        history=[],
    )


def test_sim_summary_has_every_section(sim_report) -> None:
    s = json.loads(sim_report["summary"].read_text())
    for key in (
        "verdict",
        "phases",
        "antagonists",
        "thermal",
        "history",
        "regressions",
        "runs",
        "metadata",
        "window",
        "sources",
    ):
        assert key in s
    assert {(r["group"], r["phase"]) for r in s["phases"]["rows"]} == {
        ("hive0", "baseline"),
        ("hive0", "dual_hive"),
        ("hive0", "full_stress"),
        ("hive1", "dual_hive"),
        ("hive1", "full_stress"),
    }
    assert s["thermal"]["nodes"][0]["devices"] == 34
    assert s["thermal"]["nodes"][0]["status"] in ("COOL", "OK", "WARM", "HOT")
    assert len(s["runs"]) == 5 and all(r["tool"] == "aiperf" for r in s["runs"])
    topics = [line["topic"] for line in s["verdict"]["lines"]]
    assert {"regression", "degradation", "antagonist", "thermal"} <= set(topics)


def test_sim_antagonists_name_the_cotenants_of_the_victim(sim_report) -> None:
    s = json.loads(sim_report["summary"].read_text())
    pairs = {(a["victim"], a["antagonist"]) for a in s["antagonists"]["items"]}
    assert ("hive0", "hive1") in pairs and ("hive1", "hive0") in pairs
    tt = next(a for a in s["antagonists"]["items"] if a["victim"] == "hive0" and "tt" in a["antagonist"])
    assert "furiosa" in tt["confounded_with"]  # seed 000 switches them on together
    assert [a["rank"] for a in s["antagonists"]["items"]] == list(range(1, len(pairs) + 1))


def test_empty_window_says_so_in_every_section(tmp_path) -> None:
    report = build_report(_empty_data(), generated_at=T0)
    s = report.summary
    assert s["verdict"]["status"] == "NO DATA"
    assert s["phases"]["note"] == NO_RUNS and s["thermal"]["note"] == NO_ACCEL and s["history"]["note"] == NO_HISTORY
    paths = render(report, tmp_path)
    html = paths["html"].read_text()
    assert "No benchmark runs in this window" in html
    assert "No accelerator telemetry in this window" in html


def test_one_run_per_phase_gives_a_change_without_an_interval() -> None:
    runs = run_objects([_run("a", "hive0", "baseline", 800.0, 400.0), _run("b", "hive0", "stress", 760.0, 440.0)])
    rows, _notes = phase_rows(runs, None, None, ReportOptions())
    change = rows[1]["changes"]["itl_ms_p99"]
    assert change["pct"] == 10.0 and change["ci_low_pct"] is None
    assert change["verdict"] == "degraded (unconfirmed)"
    assert rows[1]["changes"]["output_tok_s"]["verdict"] == "degraded (unconfirmed)"


def test_repeated_runs_give_a_welch_interval_around_the_change() -> None:
    base = [_run(f"b{i}", "hive0", "baseline", 800.0 + i, 400.0 + i) for i in range(4)]
    stress = [_run(f"s{i}", "hive0", "stress", 700.0 + i, 480.0 + i) for i in range(4)]
    rows, _notes = phase_rows(run_objects(base + stress), None, None, ReportOptions())
    ch = rows[1]["changes"]["itl_ms_p99"]
    assert ch["ci_low_pct"] < ch["pct"] < ch["ci_high_pct"]
    assert ch["ci_low_pct"] > 0 and ch["verdict"] == "degraded"
    assert rows[1]["runs"] == 4


def test_antagonist_active_only_while_latency_rises_ranks_first() -> None:
    times = [T0.replace(minute=m, second=s) for m in range(10) for s in range(0, 60, 10)]
    on = [i % 6 >= 3 for i in range(len(times))]
    p99 = pl.DataFrame({"time": times, "group": "hive0", "itl_ms_p99": [60.0 if o else 40.0 for o in on]})
    act = pl.DataFrame(
        {
            "group": ["tt"] * len(times) + ["idle"] * len(times),
            "time": times * 2,
            "value": [95.0 if o else 0.0 for o in on] + [50.0 if i % 2 else 0.0 for i in range(len(times))],
            "unit": "%",
        }
    ).with_columns(pl.col("time").dt.cast_time_unit("ns"))
    ranked = antagonist_ranking(p99.with_columns(pl.col("time").dt.cast_time_unit("ns")), act, ReportOptions())
    assert [a["antagonist"] for a in ranked] == ["tt", "idle"]
    assert ranked[0]["itl_p99_effect_pct"] == 50.0 and ranked[0]["significant"]
    assert not ranked[1]["significant"]


def test_a_group_with_one_phase_keeps_its_values_without_changes() -> None:
    runs = run_objects([_run("n1", "hive0", "nightly", 800.0, 400.0), _run("n2", "hive0", "nightly", 820.0, 410.0)])
    rows, _notes = phase_rows(runs, None, None, ReportOptions())
    assert [(r["group"], r["phase"], r["baseline"], r["runs"]) for r in rows] == [("hive0", "nightly", "nightly", 2)]
    assert rows[0]["metrics"]["output_tok_s"] == round((800.0 * 820.0) ** 0.5, 3) and rows[0]["changes"] == {}


def test_a_run_record_that_is_not_a_run_is_left_out_and_said_so() -> None:
    notes: list[str] = []
    bad = {k: v for k, v in _run("x", "hive0", "stress", 1.0, 1.0).items() if k != "tool"}
    assert [r.run_id for r in run_objects([_run("a", "hive0", "baseline", 800.0, 400.0), bad], notes)] == ["a"]
    assert len(notes) == 1 and notes[0].startswith("run x left out of the phase table")


def test_an_error_in_the_analysis_fails_the_report(monkeypatch) -> None:
    import pytest

    from analysis import degradation

    def broken(*_a, **_k):
        raise RuntimeError("half-landed")

    monkeypatch.setattr(degradation, "phase_degradation", broken)
    data = _empty_data()
    data.runs = [_run("a", "hive0", "baseline", 800.0, 400.0), _run("b", "hive0", "stress", 760.0, 440.0)]
    data.run_objects = run_objects(data.runs)
    with pytest.raises(RuntimeError, match="half-landed"):
        build_report(data, generated_at=T0)


def test_ttft_attribution_and_the_knee_are_reported_apart_from_itl(sim_report) -> None:
    s = json.loads(sim_report["summary"].read_text())
    pd = s["prefill_decode"]
    assert pd["note"] == "ok"
    assert pd["ttft_antagonists"], "the simulated victim has per-request TTFTs"
    for a in pd["ttft_antagonists"]:
        assert {"ttft_p99_effect_pct", "ttft_p99_ci_low_pct", "ttft_p99_ci_high_pct", "q", "design"} <= set(a)
    for a in s["antagonists"]["items"]:
        assert "ttft_p99_effect_pct" not in a  # the ITL (decode) table stays as it was
    assert [k["victim"] for k in pd["knees"]] == sorted(k["victim"] for k in pd["knees"]) == ["hive0", "hive1"]
    knee = pd["knees"][0]
    assert {"found", "load", "load_ci_low", "load_ci_high", "p_value", "reason", "summary", "n_points"} <= set(knee)
    assert knee["found"] or knee["reason"]
    assert s["sources"]["prefill_decode"].startswith("analysis.analyze")


def test_live_traffic_is_reported_from_serving_metrics_without_benchmark_runs(tmp_path) -> None:
    from analysis.report import write_report
    from telemetry.store.factory import open_store
    from tests.analysis.alerts.serving_sim import scenario
    from tests.analysis.report.pagetext import read_page

    sc = scenario(minutes=45, itl_effect=0.3, seed=1, knee_load=15_000)
    store = open_store(tmp_path / "store")
    try:
        store.write("serving", sc.serving)
        store.write("tenant", sc.tenant)
        paths = write_report(store, sc.start, sc.end, tmp_path / "out", store_name="live")
    finally:
        store.close()
    s = json.loads(paths["summary"].read_text())
    items = s["antagonists"]["items"]
    assert [(a["victim"], a["antagonist"], a["source"], a["significant"]) for a in items] == [
        ("hive0", "batch1", "live", True)
    ]
    assert s["antagonists"]["note"] == "ok"
    assert [a["source"] for a in s["prefill_decode"]["ttft_antagonists"]] == ["live"]
    (knee,) = s["prefill_decode"]["knees"]
    assert knee["victim"] == "hive0" and knee["found"]
    html = paths["html"].read_text(encoding="utf-8")
    page = read_page(html)
    assert page.antagonists == [("hive0", "batch1", "yes")] and page.knee_victims == ["hive0"]
    assert "(live)" in html and 'id="fig-knee-0"' in html
