"""Phase degradation: how much slower is a group in each phase than in its baseline, and how sure are we.

Public API (pure, frames in, frames out)::

    runs = runs_frame(list_of_Run)                      # one row per run: tags, times, summary metrics
    table = phase_degradation(runs, requests, tokens, baseline="baseline", thresholds=Thresholds())

Method per (group, phase, metric), chosen by the data there is (analysis-methods.md §4, §6a):

- ``runs_welch`` -- K >= 2 runs on both sides with per-run values: ratio of geometric means, CI = exp of a
  Welch-t CI on the difference of mean logs, Mann–Whitney U as the robust check (``p_check``); confidence
  ``high`` with >= 5 runs per side, else ``medium``.
- ``window_bootstrap`` -- fewer runs but per-request data (and per-token times for ITL): a circular block
  bootstrap over 10 s windows of each side (a request goes with the window it started in, with all its
  tokens; throughput counts tokens in the window they were emitted in), the CI = the percentiles of the
  replicates' log ratios re-centred on the exact point estimate, p from a normal approximation with a robust
  (IQR) bootstrap standard error; confidence ``low`` (it under-covers: windows are not independent runs).
- ``summary_only`` -- one printed summary per phase (seed 000): the change only, ``ci_*`` / ``p`` / ``q`` null,
  note "no per-run uncertainty". Never an invented interval.

q-values: Benjamini–Hochberg over the metrics of one (group, phase) comparison. Verdict (harm = the change in
the bad direction): ``degraded`` when q < ``thresholds.q`` and the CI excludes no change and the harm is at
least the practical threshold; ``improved`` likewise the other way; ``equivalent`` when the whole CI lies
within +-threshold; else ``inconclusive`` (always so without a CI).

Output columns of `phase_degradation` (`PHASE_COLUMNS`): group, phase, baseline_phase, metric, side
(throughput | prefill | decode | e2e | goodput), unit, higher_is_better, baseline_value, value, change_pct,
ci_low_pct, ci_high_pct, p_value, p_check, q_value, threshold_pct, n_runs_baseline, n_runs, n_samples,
method, confidence, verdict, note. ``change_pct`` = 100 * (value / baseline_value - 1) (geometric means
with K >= 2 runs); for seed 000 exactly the printed numbers' ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis import stats
from telemetry.errors import ConfigError

TIME_DTYPE = pl.Datetime("ns", "UTC")


@dataclass(frozen=True)
class MetricSpec:
    """One phase-table metric: its column, the side of serving it shows, and which way is better."""

    name: str
    side: str
    unit: str
    higher_is_better: bool
    kind: str  # throughput | p50 | p99 | share


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("output_tok_s", "throughput", "tok/s", True, "throughput"),
    MetricSpec("ttft_ms_p50", "prefill", "ms", False, "p50"),
    MetricSpec("ttft_ms_p99", "prefill", "ms", False, "p99"),
    MetricSpec("tpot_ms_p50", "decode", "ms", False, "p50"),
    MetricSpec("tpot_ms_p99", "decode", "ms", False, "p99"),
    MetricSpec("itl_ms_p50", "decode", "ms", False, "p50"),
    MetricSpec("itl_ms_p99", "decode", "ms", False, "p99"),
    MetricSpec("e2e_ms_p50", "e2e", "ms", False, "p50"),
    MetricSpec("e2e_ms_p99", "e2e", "ms", False, "p99"),
    MetricSpec("goodput_pct", "goodput", "%", True, "share"),
)
METRIC_NAMES = tuple(m.name for m in METRICS)

PHASE_COLUMNS: dict[str, pl.DataType] = {
    "group": pl.String(),
    "phase": pl.String(),
    "baseline_phase": pl.String(),
    "metric": pl.String(),
    "side": pl.String(),
    "unit": pl.String(),
    "higher_is_better": pl.Boolean(),
    "baseline_value": pl.Float64(),
    "value": pl.Float64(),
    "change_pct": pl.Float64(),
    "ci_low_pct": pl.Float64(),
    "ci_high_pct": pl.Float64(),
    "p_value": pl.Float64(),
    "p_check": pl.Float64(),
    "q_value": pl.Float64(),
    "threshold_pct": pl.Float64(),
    "n_runs_baseline": pl.Int64(),
    "n_runs": pl.Int64(),
    "n_samples": pl.Int64(),
    "method": pl.String(),
    "confidence": pl.String(),
    "verdict": pl.String(),
    "note": pl.String(),
}

NO_PER_RUN = "no per-run uncertainty: one summary per phase, so no interval can be computed"


@dataclass(frozen=True)
class Thresholds:
    """Practical-significance thresholds (percent change) and test settings.

    ``slo_ttft_ms`` / ``slo_tpot_ms``: goodput SLOs; None = the baseline phase's p90 of that metric (said so in
    the note). ``bootstrap_window_s``: window length of the within-run bootstrap.
    """

    throughput_pct: float = 3.0
    p50_pct: float = 3.0
    p99_pct: float = 5.0
    goodput_pct: float = 3.0
    q: float = 0.05
    level: float = 0.95
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    n_boot: int = 1000
    bootstrap_window_s: float = 10.0
    seed: int = 0

    def for_kind(self, kind: str) -> float:
        return {"throughput": self.throughput_pct, "p50": self.p50_pct, "p99": self.p99_pct,
                "share": self.goodput_pct}[kind]


# ------------------------------------------------------------------------------------------------ runs


RUNS_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "group": pl.String(),
    "phase": pl.String(),
    "node": pl.String(),
    "start": TIME_DTYPE,
    "end": TIME_DTYPE,
    "timing": pl.String(),
    **{m: pl.Float64() for m in METRIC_NAMES if m != "goodput_pct"},
    "duration_s": pl.Float64(),
    "total_output_tokens": pl.Float64(),
}


def runs_frame(runs: Sequence[object]) -> pl.DataFrame:
    """One row per `analysis.ingest.model.Run`: run_id, group, phase, node, start, end, timing, the printed /
    computed summary metrics in canonical names (`RUNS_SCHEMA`)."""
    rows = []
    for r in runs:
        s = dict(getattr(r, "summary", {}) or {})
        start = getattr(r, "start", None)
        end = getattr(r, "end", None)
        if end is None and start is not None and s.get("duration_s"):
            from datetime import timedelta

            end = start + timedelta(seconds=float(s["duration_s"]))
        row = {"run_id": r.run_id, "group": r.group or "", "phase": r.phase or "", "node": getattr(r, "node", ""),
               "start": start, "end": end, "timing": getattr(r, "timing", "summary_only")}
        for m in RUNS_SCHEMA:
            if m not in row:
                v = s.get(m)
                row[m] = None if v is None or not math.isfinite(float(v)) else float(v)
        rows.append(row)
    if not rows:
        return pl.DataFrame(schema=RUNS_SCHEMA)
    return pl.DataFrame(rows, schema=RUNS_SCHEMA)


def _per_run_from_requests(requests: pl.DataFrame, slo_ttft: float | None, slo_tpot: float | None,
                           tokens: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per-run metrics recomputed from per-request data (numpy-linear percentiles, as the tools do); ITL from
    ``tokens`` when given, else from the requests' ``itl_ms`` lists."""
    ok = requests.filter(pl.col("error").is_null() & pl.col("ttft_ms").is_not_null())
    tpot = pl.when(pl.col("output_tokens") > 1).then(
        (pl.col("e2e_ms") - pl.col("ttft_ms")) / (pl.col("output_tokens") - 1))
    ok = ok.with_columns(tpot.alias("_tpot"))
    good = pl.lit(True)
    if slo_ttft is not None:
        good = good & (pl.col("ttft_ms") <= slo_ttft)
    if slo_tpot is not None:
        good = good & (pl.col("_tpot").is_null() | (pl.col("_tpot") <= slo_tpot))
    agg = ok.group_by("run_id").agg(
        pl.col("ttft_ms").quantile(0.5, "linear").alias("ttft_ms_p50"),
        pl.col("ttft_ms").quantile(0.99, "linear").alias("ttft_ms_p99"),
        pl.col("_tpot").quantile(0.5, "linear").alias("tpot_ms_p50"),
        pl.col("_tpot").quantile(0.99, "linear").alias("tpot_ms_p99"),
        pl.col("e2e_ms").quantile(0.5, "linear").alias("e2e_ms_p50"),
        pl.col("e2e_ms").quantile(0.99, "linear").alias("e2e_ms_p99"),
        *([] if tokens is not None or "itl_ms" not in ok.columns else [
            pl.col("itl_ms").explode().quantile(0.5, "linear").alias("itl_ms_p50"),
            pl.col("itl_ms").explode().quantile(0.99, "linear").alias("itl_ms_p99")]),
        pl.col("output_tokens").fill_null(0).sum().cast(pl.Float64).alias("_out"),
        (good.cast(pl.Float64).mean() * 100.0).alias("goodput_pct"),
        pl.len().cast(pl.Int64).alias("n_samples"),
    )
    if tokens is not None:
        itl = tokens.lazy().filter(pl.col("itl_ms").is_not_null()).group_by("run_id").agg(
            pl.col("itl_ms").quantile(0.5, "linear").alias("itl_ms_p50"),
            pl.col("itl_ms").quantile(0.99, "linear").alias("itl_ms_p99")).with_columns(
            pl.col("run_id").cast(pl.String)).collect()
        agg = agg.join(itl, on="run_id", how="left")
    tot = requests.group_by("run_id").agg(pl.len().cast(pl.Int64).alias("_all"))
    return agg.join(tot, on="run_id", how="left").with_columns(
        (pl.col("goodput_pct") * pl.col("n_samples") / pl.col("_all")).alias("goodput_pct")
    ).drop("_all")


def run_metrics(runs: pl.DataFrame, requests: pl.DataFrame | None = None, *, slo_ttft_ms: float | None = None,
                slo_tpot_ms: float | None = None, tokens: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per-run values of every metric in `METRICS` (columns run_id, group, phase, <metrics>, n_samples,
    per_request). Runs with per-request data are recomputed from it (output_tok_s = output tokens / run
    duration); summary-only runs keep their printed numbers (goodput null)."""
    base = runs.select("run_id", "group", "phase", "start", "end", "duration_s", "total_output_tokens",
                       *[m for m in METRIC_NAMES if m != "goodput_pct"])
    if requests is None or requests.height == 0:
        return base.with_columns(pl.lit(None, dtype=pl.Float64).alias("goodput_pct"),
                                 pl.lit(None, dtype=pl.Int64).alias("n_samples"),
                                 pl.lit(False).alias("per_request"))
    per = _per_run_from_requests(requests, slo_ttft_ms, slo_tpot_ms, tokens)
    dur = pl.coalesce(pl.col("duration_s"), (pl.col("end") - pl.col("start")).dt.total_nanoseconds() / 1e9)
    joined = base.join(per, on="run_id", how="left", suffix="_req")
    cols = []
    for m in METRIC_NAMES:
        if m == "output_tok_s":
            cols.append(pl.when(pl.col("_out").is_not_null()).then(pl.col("_out") / dur).otherwise(pl.col(m)).alias(m))
        elif m == "goodput_pct":
            cols.append(pl.col(m))
        else:
            cols.append(pl.coalesce(pl.col(f"{m}_req"), pl.col(m)).alias(m))
    return joined.select("run_id", "group", "phase", "start", "end", *cols, "n_samples",
                         pl.col("_out").is_not_null().alias("per_request"))


# ------------------------------------------------------------------------------------------------ bootstrap


@dataclass
class _Side:
    """Per-window sufficient statistics of one side (all its runs), for the window bootstrap."""

    n_windows: int
    tokens: np.ndarray  # output tokens emitted in each window (without token times: of requests started in it)
    seconds: np.ndarray  # seconds of each window
    hists: dict[str, tuple[np.ndarray, np.ndarray]]  # metric value kind -> (hist, edges)
    good: np.ndarray
    count: np.ndarray
    run_of_window: np.ndarray


def _side(requests: pl.DataFrame, tokens: pl.DataFrame | None, runs: pl.DataFrame, window_s: float,
          slo_ttft: float | None, slo_tpot: float | None) -> _Side:
    w_ns = int(window_s * 1e9)
    run_ids = runs["run_id"].to_list()
    offsets, secs, run_of = {}, [], []
    k = 0
    for rid, st, en in zip(runs["run_id"], runs["start"], runs["end"], strict=True):
        dur = (en - st).total_seconds() if (st is not None and en is not None) else window_s
        nw = max(1, math.ceil(dur / window_s))
        offsets[rid] = (k, int(st.timestamp() * 1e9) if st is not None else 0, nw)
        last = dur - (nw - 1) * window_s
        secs.extend([window_s] * (nw - 1) + [max(last, 1e-9)])
        run_of.extend([rid] * nw)
        k += nw
    n = k
    req = requests.filter(pl.col("run_id").is_in(run_ids))
    off = pl.DataFrame({"run_id": list(offsets), "_k": [v[0] for v in offsets.values()],
                        "_t0": [v[1] for v in offsets.values()], "_nw": [v[2] for v in offsets.values()]})
    req = req.join(off, on="run_id", how="inner").with_columns(
        (pl.col("_k") + ((pl.col("time").cast(pl.Int64) - pl.col("_t0")) // w_ns).clip(0, pl.col("_nw") - 1))
        .alias("_win")
    )
    ok = req.filter(pl.col("error").is_null() & pl.col("ttft_ms").is_not_null()).with_columns(
        pl.when(pl.col("output_tokens") > 1).then(
            (pl.col("e2e_ms") - pl.col("ttft_ms")) / (pl.col("output_tokens") - 1)).alias("_tpot"))
    win_ok = ok["_win"].to_numpy()
    tok = np.zeros(n)
    if tokens is not None and tokens.height:
        tokens = tokens.filter(pl.col("run_id").is_in(run_ids)).with_columns(pl.col("run_id").cast(pl.String))
        # throughput: tokens by emission time (the window they were emitted in)
        te = tokens.filter(pl.col("run_id").is_in(run_ids)).join(off, on="run_id", how="inner").select(
            (pl.col("_k") + ((pl.col("time").cast(pl.Int64) - pl.col("_t0")) // w_ns).clip(0, pl.col("_nw") - 1))
            .alias("_w"), (pl.col("tokens") if "tokens" in tokens.columns else pl.lit(1)).cast(pl.Float64).alias("_n"))
        np.add.at(tok, te["_w"].to_numpy(), te["_n"].to_numpy())
    else:
        np.add.at(tok, win_ok, ok["output_tokens"].fill_null(0).to_numpy().astype(float))
    hists = {}
    for name, col in (("ttft", "ttft_ms"), ("tpot", "_tpot"), ("e2e", "e2e_ms")):
        vals = ok[col].to_numpy().astype(float)
        hists[name] = stats.window_hist(vals, win_ok, n)
    if tokens is not None and tokens.height:
        t = tokens.filter(pl.col("run_id").is_in(run_ids) & pl.col("itl_ms").is_not_null()).select(
            "run_id", "request_index", "itl_ms").join(ok.select("run_id", "request_index", "_win"),
                                                       on=["run_id", "request_index"], how="inner")
        hists["itl"] = stats.window_hist(t["itl_ms"].to_numpy(), t["_win"].to_numpy(), n)
    else:
        ex = ok.select("_win", "itl_ms").explode("itl_ms").drop_nulls()
        hists["itl"] = stats.window_hist(ex["itl_ms"].to_numpy(), ex["_win"].to_numpy(), n)
    good_expr = pl.lit(True)
    if slo_ttft is not None:
        good_expr = good_expr & (pl.col("ttft_ms") <= slo_ttft)
    if slo_tpot is not None:
        good_expr = good_expr & (pl.col("_tpot").is_null() | (pl.col("_tpot") <= slo_tpot))
    good = np.zeros(n)
    np.add.at(good, win_ok, ok.select(good_expr.cast(pl.Float64)).to_series().to_numpy())
    count = np.zeros(n)
    np.add.at(count, req["_win"].to_numpy(), 1.0)
    return _Side(n, tok, np.asarray(secs, dtype=float), hists, good, count, np.asarray(run_of))


def _replicates(side: _Side, metric: str, counts: np.ndarray) -> np.ndarray:
    """Metric value of each bootstrap replicate (``counts``: replicates x windows)."""
    if metric == "output_tok_s":
        return (counts @ side.tokens) / np.maximum(counts @ side.seconds, 1e-9)
    if metric == "goodput_pct":
        return 100.0 * (counts @ side.good) / np.maximum(counts @ side.count, 1e-9)
    name, _, q = metric.split("_")
    hist, edges = side.hists[name]
    return stats.hist_quantiles(counts @ hist, edges, int(q[1:]) / 100.0)


# ------------------------------------------------------------------------------------------------ table


def _verdict(harm: float, lo: float, hi: float, q: float, thr: float, qmax: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if math.isfinite(q) and q < qmax and lo > 0 and harm >= thr:
        return "degraded"
    if math.isfinite(q) and q < qmax and hi < 0 and -harm >= thr:
        return "improved"
    if lo > -thr and hi < thr:
        return "equivalent"
    return "inconclusive"


def _baselines(runs: pl.DataFrame, baseline: str | Mapping[str, str] | None,
               phase_order: Sequence[str] | None) -> dict[str, str]:
    out = {}
    for group in runs["group"].unique(maintain_order=True).to_list():
        phases = runs.filter(pl.col("group") == group).sort("start", nulls_last=True)["phase"].unique(
            maintain_order=True).to_list()
        if phase_order:
            phases = [p for p in phase_order if p in phases] + [p for p in phases if p not in phase_order]
        b = baseline.get(group) if isinstance(baseline, Mapping) else baseline
        if b is None or b not in phases:
            b = phases[0] if phases else None
        if b is not None:
            out[group] = b
    return out


def central_value(values: np.ndarray) -> float:
    """A phase's value of a metric from its runs' (positive) values: the one run's value, else the geometric mean."""
    return float(values[0]) if len(values) == 1 else float(np.exp(np.mean(np.log(values))))


PHASE_VALUE_COLUMNS: dict[str, pl.DataType] = {
    "group": pl.String(), "phase": pl.String(), "metric": pl.String(), "value": pl.Float64(), "n_runs": pl.Int64(),
}  # fmt: skip


def phase_values(runs: pl.DataFrame, requests: pl.DataFrame | None = None,
                 tokens: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per (group, phase, metric) of every phase, the baseline included and a group with one phase only: the
    value `phase_degradation` compares (`central_value` of the runs' positive `run_metrics`, recomputed from
    per-request data where the runs have it) and the number of runs it comes from (`PHASE_VALUE_COLUMNS`).
    ``goodput_pct`` is left out: it depends on the SLOs of a comparison."""
    if runs.height == 0:
        return pl.DataFrame(schema=PHASE_VALUE_COLUMNS)
    has_req = requests is not None and requests.height > 0
    tok = tokens if has_req and tokens is not None and tokens.height else None
    metrics = run_metrics(runs, requests if has_req else None, tokens=tok)
    rows = []
    for (group, phase), part in metrics.group_by("group", "phase", maintain_order=True):
        for spec in METRICS:
            if spec.name == "goodput_pct":
                continue
            v = part[spec.name].drop_nulls().to_numpy()
            v = v[v > 0]
            if len(v):
                rows.append({"group": group, "phase": phase, "metric": spec.name, "value": central_value(v),
                             "n_runs": len(v)})  # fmt: skip
    return pl.DataFrame(rows, schema=PHASE_VALUE_COLUMNS)


def phase_degradation(
    runs: pl.DataFrame,
    requests: pl.DataFrame | None = None,
    tokens: pl.DataFrame | None = None,
    *,
    baseline: str | Mapping[str, str] | None = None,
    phase_order: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    thresholds: Thresholds | None = None,
) -> pl.DataFrame:
    """The phase table: every metric of every non-baseline phase against the group's baseline.

    ``runs``: `runs_frame` (one row per run: run_id, group, phase, start, end, summary metrics).
    ``requests`` / ``tokens``: the requests / tokens layouts of those runs (optional; enable per-request metrics,
    goodput and the window bootstrap). ``baseline``: the baseline phase name (or per group); default: the
    group's first phase (``phase_order``, else by start time). Returns `PHASE_COLUMNS`, phases in order.
    """
    th = thresholds or Thresholds()
    if runs.height == 0:
        return pl.DataFrame(schema=PHASE_COLUMNS)
    if groups:
        runs = runs.filter(pl.col("group").is_in(list(groups)))
        if runs.height == 0:
            raise ConfigError(f"no benchmark runs of group(s) {list(groups)}")
    has_req = requests is not None and requests.height > 0
    bases = _baselines(runs, baseline, phase_order)
    slo_ttft, slo_tpot, slo_note = th.slo_ttft_ms, th.slo_tpot_ms, ""
    rng = np.random.default_rng(th.seed)
    rows: list[dict] = []
    for group, bphase in bases.items():
        g_runs = runs.filter(pl.col("group") == group)
        g_req = requests.filter(pl.col("run_id").is_in(g_runs["run_id"].to_list())) if has_req else None
        base_runs = g_runs.filter(pl.col("phase") == bphase)
        if has_req and (slo_ttft is None or slo_tpot is None):
            b_req = g_req.filter(pl.col("run_id").is_in(base_runs["run_id"].to_list()) & pl.col("error").is_null())
            tp = b_req.filter(pl.col("output_tokens") > 1).select(
                ((pl.col("e2e_ms") - pl.col("ttft_ms")) / (pl.col("output_tokens") - 1)).quantile(0.9, "linear"))
            if slo_ttft is None and b_req.height:
                slo_ttft = float(b_req["ttft_ms"].quantile(0.9, "linear"))
            if slo_tpot is None and tp.height:
                slo_tpot = float(tp.item())
            slo_note = (f"goodput SLOs: TTFT <= {slo_ttft:.0f} ms, TPOT <= {slo_tpot:.1f} ms "
                        f"(the {group} baseline's p90 where not configured)")
        g_tok = tokens.filter(pl.col("run_id").is_in(g_runs["run_id"].to_list())) if (
            has_req and tokens is not None and tokens.height) else None
        metrics = run_metrics(g_runs, g_req, slo_ttft_ms=slo_ttft, slo_tpot_ms=slo_tpot, tokens=g_tok)
        phases = g_runs.sort("start", nulls_last=True)["phase"].unique(maintain_order=True).to_list()
        if phase_order:
            phases = [p for p in phase_order if p in phases] + [p for p in phases if p not in phase_order]
        b_met = metrics.filter(pl.col("phase") == bphase)
        b_side = None
        for phase in phases:
            if phase == bphase:
                continue
            n_met = metrics.filter(pl.col("phase") == phase)
            per_request = bool(b_met["per_request"].all() and n_met["per_request"].all())
            n_side = None
            block = []
            for spec in METRICS:
                bv = b_met[spec.name].drop_nulls().to_numpy()
                nv = n_met[spec.name].drop_nulls().to_numpy()
                bv, nv = bv[bv > 0], nv[nv > 0]
                row = {"group": group, "phase": phase, "baseline_phase": bphase, "metric": spec.name,
                       "side": spec.side, "unit": spec.unit, "higher_is_better": spec.higher_is_better,
                       "threshold_pct": th.for_kind(spec.kind), "n_runs_baseline": len(bv), "n_runs": len(nv),
                       "n_samples": int(n_met["n_samples"].fill_null(0).sum()) if per_request else None,
                       "note": slo_note if spec.name == "goodput_pct" else ""}
                if len(bv) == 0 and len(nv) == 0:
                    continue
                if len(bv) == 0 or len(nv) == 0:
                    block.append({**row, "method": "none", "confidence": "none", "verdict": "inconclusive",
                                  "note": "metric missing on one side"})
                    continue
                bval, nval = central_value(bv), central_value(nv)
                ratio = nval / bval
                lo = hi = p = p_check = math.nan
                if len(bv) >= 2 and len(nv) >= 2:
                    res = stats.welch_log_ratio(bv, nv, th.level)
                    ratio, lo, hi, p, p_check = res.ratio, res.ci_low, res.ci_high, res.p, res.p_check
                    method = "runs_welch"
                    confidence = "high" if min(len(bv), len(nv)) >= 5 else "medium"
                elif per_request:
                    if b_side is None:
                        b_side = _side(g_req, tokens, g_runs.filter(pl.col("phase") == bphase),
                                       th.bootstrap_window_s, slo_ttft, slo_tpot)
                    if n_side is None:
                        n_side = _side(g_req, tokens, g_runs.filter(pl.col("phase") == phase),
                                       th.bootstrap_window_s, slo_ttft, slo_tpot)
                    cb = stats.bootstrap_counts(b_side.n_windows, th.n_boot, stats.block_length(b_side.n_windows), rng)
                    cn = stats.bootstrap_counts(n_side.n_windows, th.n_boot, stats.block_length(n_side.n_windows), rng)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        lr = np.log(_replicates(n_side, spec.name, cn)) - np.log(_replicates(b_side, spec.name, cb))
                    lr = lr[np.isfinite(lr)]
                    method, confidence = "window_bootstrap", "low"
                    if len(lr) >= 20:
                        d = math.log(ratio)
                        centred = d + (lr - np.median(lr))
                        a = (1 - th.level) / 2
                        lo, hi = (math.exp(x) for x in np.quantile(centred, [a, 1 - a]))
                        p = stats.bootstrap_z_pvalue(d, lr)
                    row["note"] = (row["note"] + "; " if row["note"] else "") + (
                        "one run per phase: block bootstrap over "
                        f"{th.bootstrap_window_s:g} s windows (low confidence, under-covers)")
                else:
                    method, confidence = "summary_only", "none"
                    row["note"] = NO_PER_RUN
                sign = 1.0 if spec.higher_is_better else -1.0
                change = 100.0 * (ratio - 1.0)
                block.append({**row, "baseline_value": bval, "value": nval, "change_pct": change,
                              "ci_low_pct": 100.0 * (lo - 1.0) if math.isfinite(lo) else None,
                              "ci_high_pct": 100.0 * (hi - 1.0) if math.isfinite(hi) else None,
                              "p_value": p if math.isfinite(p) else None,
                              "p_check": p_check if math.isfinite(p_check) else None,
                              "method": method, "confidence": confidence, "_sign": sign})
            qs = stats.bh([r.get("p_value") if r.get("p_value") is not None else math.nan for r in block])
            for r, q in zip(block, qs, strict=True):
                r["q_value"] = float(q) if math.isfinite(q) else None
                if "_sign" in r:
                    sign = r.pop("_sign")
                    harm = -sign * r["change_pct"]
                    lo_pct, hi_pct = r["ci_low_pct"], r["ci_high_pct"]
                    h_lo = -sign * (hi_pct if sign > 0 else lo_pct) if lo_pct is not None else math.nan
                    h_hi = -sign * (lo_pct if sign > 0 else hi_pct) if hi_pct is not None else math.nan
                    r["verdict"] = _verdict(harm, h_lo, h_hi, q, r["threshold_pct"], th.q)
                rows.append(r)
    if not rows:
        return pl.DataFrame(schema=PHASE_COLUMNS)
    return pl.DataFrame([{k: r.get(k) for k in PHASE_COLUMNS} for r in rows], schema=PHASE_COLUMNS)


def headline(table: pl.DataFrame) -> pl.DataFrame:
    """The rows an SRE reads first: output tok/s, p99 TTFT, p99 ITL, goodput per phase."""
    return table.filter(pl.col("metric").is_in(["output_tok_s", "ttft_ms_p99", "itl_ms_p99", "goodput_pct"]))
