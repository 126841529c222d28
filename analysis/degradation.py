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

Structure (after Apache Otava's typed results and separate testers): one tester per method (`WelchTester`,
`BootstrapTester`, `SummaryOnly`; `choose_tester` picks one from the data a metric has on both sides) returns
an `Estimate`; `compare` makes it a `Comparison` (one metric of one `PhasePair`), `with_q_values` adds the
q-values and verdicts, and `phase_degradation` assembles the frame.

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
from dataclasses import dataclass, field, replace
from typing import ClassVar, NamedTuple, Protocol

import numpy as np
import polars as pl

from analysis import stats
from analysis.align import by_run_chunks
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
        return {"throughput": self.throughput_pct, "p50": self.p50_pct, "p99": self.p99_pct, "share": self.goodput_pct}[
            kind
        ]


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
        row = {
            "run_id": r.run_id,
            "group": r.group or "",
            "phase": r.phase or "",
            "node": getattr(r, "node", ""),
            "start": start,
            "end": end,
            "timing": getattr(r, "timing", "summary_only"),
        }
        for m in RUNS_SCHEMA:
            if m not in row:
                v = s.get(m)
                row[m] = None if v is None or not math.isfinite(float(v)) else float(v)
        rows.append(row)
    if not rows:
        return pl.DataFrame(schema=RUNS_SCHEMA)
    return pl.DataFrame(rows, schema=RUNS_SCHEMA)


_TPOT = pl.when(pl.col("output_tokens") > 1).then(
    (pl.col("e2e_ms") - pl.col("ttft_ms")) / (pl.col("output_tokens") - 1)
)
"""A request's time per output token after the first (null with one token or none)."""


def _good(slo_ttft: float | None, slo_tpot: float | None) -> pl.Expr:
    """A request within the goodput SLOs (None: no bound), on requests with a ``_tpot`` column."""
    good = pl.lit(True)
    if slo_ttft is not None:
        good = good & (pl.col("ttft_ms") <= slo_ttft)
    if slo_tpot is not None:
        good = good & (pl.col("_tpot").is_null() | (pl.col("_tpot") <= slo_tpot))
    return good


def has_rows(frame: pl.DataFrame | pl.LazyFrame) -> bool:
    """Whether ``frame`` (eager, or lazy such as a scan of per-run token files: counted, not read) has a row."""
    if isinstance(frame, pl.LazyFrame):
        return bool(frame.select(pl.len()).collect().item())
    return frame.height > 0


def _per_run_from_requests(
    requests: pl.DataFrame,
    slo_ttft: float | None,
    slo_tpot: float | None,
    tokens: pl.DataFrame | pl.LazyFrame | None = None,
    run_itl: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per-run metrics recomputed from per-request data (numpy-linear percentiles, as the tools do); ITL from
    ``run_itl`` when given (run_id, itl_ms_p50, itl_ms_p99 of the runs' tokens: `analysis.align.TokenAggregates`),
    else from ``tokens`` when given, else from the requests' ``itl_ms`` lists."""
    ok = requests.filter(pl.col("error").is_null() & pl.col("ttft_ms").is_not_null()).with_columns(_TPOT.alias("_tpot"))
    good = _good(slo_ttft, slo_tpot)
    agg = ok.group_by("run_id").agg(
        pl.col("ttft_ms").quantile(0.5, "linear").alias("ttft_ms_p50"),
        pl.col("ttft_ms").quantile(0.99, "linear").alias("ttft_ms_p99"),
        pl.col("_tpot").quantile(0.5, "linear").alias("tpot_ms_p50"),
        pl.col("_tpot").quantile(0.99, "linear").alias("tpot_ms_p99"),
        pl.col("e2e_ms").quantile(0.5, "linear").alias("e2e_ms_p50"),
        pl.col("e2e_ms").quantile(0.99, "linear").alias("e2e_ms_p99"),
        *(
            []
            if tokens is not None or run_itl is not None or "itl_ms" not in ok.columns
            else [
                pl.col("itl_ms").explode().quantile(0.5, "linear").alias("itl_ms_p50"),
                pl.col("itl_ms").explode().quantile(0.99, "linear").alias("itl_ms_p99"),
            ]
        ),
        pl.col("output_tokens").fill_null(0).sum().cast(pl.Float64).alias("_out"),
        (good.cast(pl.Float64).mean() * 100.0).alias("goodput_pct"),
        pl.len().cast(pl.Int64).alias("n_samples"),
    )
    if run_itl is not None:
        itl = run_itl.select(pl.col("run_id").cast(pl.String), "itl_ms_p50", "itl_ms_p99")
        agg = agg.join(itl, on="run_id", how="left")
    elif tokens is not None:

        def itl_of_runs(part: pl.LazyFrame) -> pl.DataFrame:
            return (
                part.filter(pl.col("itl_ms").is_not_null())
                .group_by("run_id")
                .agg(
                    pl.col("itl_ms").quantile(0.5, "linear").alias("itl_ms_p50"),
                    pl.col("itl_ms").quantile(0.99, "linear").alias("itl_ms_p99"),
                )
                .with_columns(pl.col("run_id").cast(pl.String))
                .collect()
            )

        # a few whole runs at a time: a week of tokens (10^8) never sits in memory at once
        agg = agg.join(by_run_chunks(tokens.select("run_id", "itl_ms"), itl_of_runs), on="run_id", how="left")
    tot = requests.group_by("run_id").agg(pl.len().cast(pl.Int64).alias("_all"))
    return (
        agg.join(tot, on="run_id", how="left")
        .with_columns((pl.col("goodput_pct") * pl.col("n_samples") / pl.col("_all")).alias("goodput_pct"))
        .drop("_all")
    )


def run_metrics(
    runs: pl.DataFrame,
    requests: pl.DataFrame | None = None,
    *,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    tokens: pl.DataFrame | pl.LazyFrame | None = None,
    run_itl: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per-run values of every metric in `METRICS` (columns run_id, group, phase, <metrics>, n_samples,
    per_request). Runs with per-request data are recomputed from it (output_tok_s = output tokens / run
    duration); summary-only runs keep their printed numbers (goodput null). ``run_itl``: the runs' ITL quantiles
    already computed from ``tokens`` (`analysis.align.TokenAggregates.runs`): the tokens are then not read."""
    base = runs.select(
        "run_id",
        "group",
        "phase",
        "start",
        "end",
        "duration_s",
        "total_output_tokens",
        *[m for m in METRIC_NAMES if m != "goodput_pct"],
    )
    if requests is None or requests.height == 0:
        return base.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("goodput_pct"),
            pl.lit(None, dtype=pl.Int64).alias("n_samples"),
            pl.lit(False).alias("per_request"),
        )
    per = _per_run_from_requests(requests, slo_ttft_ms, slo_tpot_ms, tokens, run_itl)
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
    return joined.select(
        "run_id",
        "group",
        "phase",
        "start",
        "end",
        *cols,
        "n_samples",
        pl.col("_out").is_not_null().alias("per_request"),
    )


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


def _window_grid(runs: pl.DataFrame, window_s: float) -> tuple[pl.DataFrame, np.ndarray]:
    """The runs' windows numbered in one sequence: per run (``run_id``) its first window ``_k``, start ``_t0``
    (ns) and number of windows ``_nw``; and the seconds of each window (the last one of a run is partial)."""
    offsets, secs = {}, []
    k = 0
    for rid, st, en in zip(runs["run_id"], runs["start"], runs["end"], strict=True):
        dur = (en - st).total_seconds() if (st is not None and en is not None) else window_s
        nw = max(1, math.ceil(dur / window_s))
        offsets[rid] = (k, int(st.timestamp() * 1e9) if st is not None else 0, nw)
        secs.extend([window_s] * (nw - 1) + [max(dur - (nw - 1) * window_s, 1e-9)])
        k += nw
    off = pl.DataFrame(
        {
            "run_id": list(offsets),
            "_k": [v[0] for v in offsets.values()],
            "_t0": [v[1] for v in offsets.values()],
            "_nw": [v[2] for v in offsets.values()],
        }
    )
    return off, np.asarray(secs, dtype=float)


def _window_of(window_s: float) -> pl.Expr:
    """The grid window (`_window_grid`, joined) a row's ``time`` falls in, clipped to its run's windows."""
    w_ns = int(window_s * 1e9)
    return pl.col("_k") + ((pl.col("time").cast(pl.Int64) - pl.col("_t0")) // w_ns).clip(0, pl.col("_nw") - 1)


def _emitted_tokens(
    ok: pl.DataFrame, tokens: pl.DataFrame | None, off: pl.DataFrame, window_s: float, n: int
) -> np.ndarray:
    """Output tokens per window: by emission time with per-token data, else with the request that started there."""
    out = np.zeros(n)
    if tokens is None:
        np.add.at(out, ok["_win"].to_numpy(), ok["output_tokens"].fill_null(0).to_numpy().astype(float))
        return out
    count = pl.col("tokens") if "tokens" in tokens.columns else pl.lit(1)
    te = tokens.join(off, on="run_id", how="inner").select(
        _window_of(window_s).alias("_w"), count.cast(pl.Float64).alias("_n")
    )
    np.add.at(out, te["_w"].to_numpy(), te["_n"].to_numpy())
    return out


def _itl_hist(ok: pl.DataFrame, tokens: pl.DataFrame | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Window histogram of ITLs, each in the window its request started in (per-token data, else ``itl_ms`` lists)."""
    if tokens is None:
        ex = ok.select("_win", "itl_ms").explode("itl_ms").drop_nulls()
        return stats.window_hist(ex["itl_ms"].to_numpy(), ex["_win"].to_numpy(), n)
    t = (
        tokens.filter(pl.col("itl_ms").is_not_null())
        .select("run_id", "request_index", "itl_ms")
        .join(ok.select("run_id", "request_index", "_win"), on=["run_id", "request_index"], how="inner")
    )
    return stats.window_hist(t["itl_ms"].to_numpy(), t["_win"].to_numpy(), n)


def _side(
    requests: pl.DataFrame,
    tokens: pl.DataFrame | pl.LazyFrame | None,
    runs: pl.DataFrame,
    window_s: float,
    slo_ttft: float | None,
    slo_tpot: float | None,
) -> _Side:
    """``runs``' windows with their tokens, seconds, latency histograms, good and all requests."""
    run_ids = runs["run_id"].to_list()
    off, secs = _window_grid(runs, window_s)
    n = len(secs)
    req = (
        requests.filter(pl.col("run_id").is_in(run_ids))
        .join(off, on="run_id", how="inner")
        .with_columns(_window_of(window_s).alias("_win"))
    )
    ok = req.filter(pl.col("error").is_null() & pl.col("ttft_ms").is_not_null()).with_columns(_TPOT.alias("_tpot"))
    if tokens is not None and has_rows(tokens):
        tokens = tokens.filter(pl.col("run_id").is_in(run_ids)).with_columns(pl.col("run_id").cast(pl.String))
        tokens = tokens.collect() if isinstance(tokens, pl.LazyFrame) else tokens
    else:
        tokens = None
    win_ok = ok["_win"].to_numpy()
    hists = {
        name: stats.window_hist(ok[col].to_numpy().astype(float), win_ok, n)
        for name, col in (("ttft", "ttft_ms"), ("tpot", "_tpot"), ("e2e", "e2e_ms"))
    }
    hists["itl"] = _itl_hist(ok, tokens if tokens is not None and tokens.height else None, n)
    good, count = np.zeros(n), np.zeros(n)
    np.add.at(good, win_ok, ok.select(_good(slo_ttft, slo_tpot).cast(pl.Float64)).to_series().to_numpy())
    np.add.at(count, req["_win"].to_numpy(), 1.0)
    return _Side(n, _emitted_tokens(ok, tokens, off, window_s, n), secs, hists, good, count)


def _replicates(side: _Side, metric: str, counts: np.ndarray) -> np.ndarray:
    """Metric value of each bootstrap replicate (``counts``: replicates x windows)."""
    if metric == "output_tok_s":
        return (counts @ side.tokens) / np.maximum(counts @ side.seconds, 1e-9)
    if metric == "goodput_pct":
        return 100.0 * (counts @ side.good) / np.maximum(counts @ side.count, 1e-9)
    name, _, q = metric.split("_")
    hist, edges = side.hists[name]
    return stats.hist_quantiles(counts @ hist, edges, int(q[1:]) / 100.0)


@dataclass
class WindowSides:
    """The window-bootstrap sides of one group's phases, each built on first use and then kept. ``runs``: run_id,
    phase, start, end; ``requests`` / ``tokens``: their per-request / per-token data (tokens optional)."""

    requests: pl.DataFrame
    tokens: pl.DataFrame | pl.LazyFrame | None
    runs: pl.DataFrame
    window_s: float
    slo_ttft_ms: float | None
    slo_tpot_ms: float | None
    built: dict[str, _Side] = field(default_factory=dict, init=False, repr=False)

    def of(self, phase: str) -> _Side:
        if phase not in self.built:
            runs = self.runs.filter(pl.col("phase") == phase)
            self.built[phase] = _side(
                self.requests, self.tokens, runs, self.window_s, self.slo_ttft_ms, self.slo_tpot_ms
            )
        return self.built[phase]


# ------------------------------------------------------------------------------------------------ results


def central_value(values: np.ndarray) -> float:
    """A phase's value of a metric from its runs' (positive) values: the one run's value, else the geometric mean."""
    return float(values[0]) if len(values) == 1 else float(np.exp(np.mean(np.log(values))))


@dataclass(frozen=True)
class Estimate:
    """A tester's answer for one metric: the ratio new / baseline, its interval and p-values (NaN: none) and how far
    to trust it. ``note`` is added to the metric's own note (the goodput SLOs), or stands alone (``own_note``)."""

    ratio: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    p: float = math.nan
    p_check: float = math.nan
    confidence: str = "none"
    note: str = ""
    own_note: bool = False


@dataclass(frozen=True)
class Comparison:
    """One metric of one phase against its baseline phase: values, change, interval (percent), p, q, verdict.

    Values are None where there are none (no interval, no test, the metric missing on one side: method "none").
    """

    metric: MetricSpec
    threshold_pct: float
    n_runs_baseline: int
    n_runs: int
    method: str
    confidence: str
    note: str
    baseline_value: float | None = None
    value: float | None = None
    change_pct: float | None = None
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    p_value: float | None = None
    p_check: float | None = None
    q_value: float | None = None
    verdict: str = "inconclusive"

    def harm_interval(self) -> tuple[float, float]:
        """The interval as harm (the change in the bad direction); NaN without one."""
        lo, hi = self.ci_low_pct, self.ci_high_pct
        if lo is None or hi is None:
            return math.nan, math.nan
        return (-hi, -lo) if self.metric.higher_is_better else (lo, hi)


@dataclass(frozen=True)
class PhasePair:
    """The phases a block of comparisons sets side by side; ``n_samples``: the phase's requests (None: summaries)."""

    group: str
    phase: str
    baseline_phase: str
    n_samples: int | None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _pct(ratio: float) -> float | None:
    return 100.0 * (ratio - 1.0) if math.isfinite(ratio) else None


# ------------------------------------------------------------------------------------------------ testers


class Tester(Protocol):
    """One method of comparing a metric's per-run values (positive, >= 1 per side) between two phases."""

    method: str

    def estimate(self, metric: MetricSpec, base: np.ndarray, new: np.ndarray) -> Estimate: ...


@dataclass(frozen=True)
class WelchTester:
    """K >= 2 runs per side: ratio of geometric means, Welch-t interval on the logs, Mann–Whitney as the check."""

    level: float = 0.95
    method: ClassVar[str] = "runs_welch"

    def estimate(self, metric: MetricSpec, base: np.ndarray, new: np.ndarray) -> Estimate:
        res = stats.welch_log_ratio(base, new, self.level)
        confidence = "high" if min(len(base), len(new)) >= 5 else "medium"
        return Estimate(res.ratio, res.ci_low, res.ci_high, res.p, res.p_check, confidence)


@dataclass
class BootstrapTester:
    """Fewer runs but per-request data: a circular block bootstrap over time windows of each phase (low confidence:
    windows are not independent runs). Draws from ``rng`` in call order, so a table is reproducible per seed."""

    sides: WindowSides
    baseline_phase: str
    phase: str
    rng: np.random.Generator
    n_boot: int = 1000
    level: float = 0.95
    method: ClassVar[str] = "window_bootstrap"

    def estimate(self, metric: MetricSpec, base: np.ndarray, new: np.ndarray) -> Estimate:
        ratio = central_value(new) / central_value(base)
        note = (
            f"one run per phase: block bootstrap over {self.sides.window_s:g} s windows (low confidence, under-covers)"
        )
        lr = self.log_ratios(metric.name)
        if len(lr) < 20:
            return Estimate(ratio, confidence="low", note=note)
        d = math.log(ratio)
        centred = d + (lr - np.median(lr))
        a = (1 - self.level) / 2
        lo, hi = (math.exp(x) for x in np.quantile(centred, [a, 1 - a]))
        return Estimate(ratio, lo, hi, stats.bootstrap_z_pvalue(d, lr), confidence="low", note=note)

    def log_ratios(self, metric: str) -> np.ndarray:
        """Finite log(new / baseline) of the metric over ``n_boot`` replicates."""
        b, n = self.sides.of(self.baseline_phase), self.sides.of(self.phase)
        cb = stats.bootstrap_counts(b.n_windows, self.n_boot, stats.block_length(b.n_windows), self.rng)
        cn = stats.bootstrap_counts(n.n_windows, self.n_boot, stats.block_length(n.n_windows), self.rng)
        with np.errstate(divide="ignore", invalid="ignore"):
            lr = np.log(_replicates(n, metric, cn)) - np.log(_replicates(b, metric, cb))
        return lr[np.isfinite(lr)]


@dataclass(frozen=True)
class SummaryOnly:
    """One printed summary per phase: the change only, never an invented interval."""

    method: ClassVar[str] = "summary_only"

    def estimate(self, metric: MetricSpec, base: np.ndarray, new: np.ndarray) -> Estimate:
        return Estimate(central_value(new) / central_value(base), note=NO_PER_RUN, own_note=True)


class PhaseTesters(NamedTuple):
    """The testers of one phase comparison, one per method."""

    welch: Tester
    bootstrap: Tester
    summary: Tester


def choose_tester(testers: PhaseTesters, n_base: int, n_new: int, per_request: bool) -> Tester:
    """The method the data allows: Welch with >= 2 runs per side, else the bootstrap with per-request data on
    both phases, else the summaries only."""
    if n_base >= 2 and n_new >= 2:
        return testers.welch
    return testers.bootstrap if per_request else testers.summary


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


def compare(
    metric: MetricSpec, base: np.ndarray, new: np.ndarray, tester: Tester, *, threshold_pct: float, note: str = ""
) -> Comparison:
    """``tester``'s comparison of one metric's per-run values (positive, >= 1 per side); no q, no verdict yet."""
    est = tester.estimate(metric, base, new)
    return Comparison(
        metric=metric, threshold_pct=threshold_pct, n_runs_baseline=len(base), n_runs=len(new),
        method=tester.method, confidence=est.confidence,
        note=est.note if est.own_note else "; ".join(x for x in (note, est.note) if x),
        baseline_value=central_value(base), value=central_value(new), change_pct=100.0 * (est.ratio - 1.0),
        ci_low_pct=_pct(est.ci_low), ci_high_pct=_pct(est.ci_high), p_value=_finite(est.p),
        p_check=_finite(est.p_check),
    )  # fmt: skip


def judged(c: Comparison, q: float, q_max: float) -> Comparison:
    """``c`` with its q-value (NaN: none) and verdict (see the module docstring)."""
    q_value = float(q) if math.isfinite(q) else None
    if c.change_pct is None:
        return replace(c, q_value=q_value)
    harm = -c.change_pct if c.metric.higher_is_better else c.change_pct
    lo, hi = c.harm_interval()
    return replace(c, q_value=q_value, verdict=_verdict(harm, lo, hi, q, c.threshold_pct, q_max))


def with_q_values(comparisons: Sequence[Comparison], q_max: float) -> list[Comparison]:
    """Benjamini–Hochberg over the comparisons of one phase pair, then each one's verdict."""
    qs = stats.bh([math.nan if c.p_value is None else c.p_value for c in comparisons])
    return [judged(c, q, q_max) for c, q in zip(comparisons, qs, strict=True)]


def _positive(values: pl.Series) -> np.ndarray:
    v = values.drop_nulls().to_numpy()
    return v[v > 0]


def _phase_comparisons(
    b_met: pl.DataFrame,
    n_met: pl.DataFrame,
    testers: PhaseTesters,
    per_request: bool,
    th: Thresholds,
    goodput_note: str,
) -> list[Comparison]:
    """Every metric present on either side, baseline ``b_met`` against ``n_met`` (`run_metrics` rows)."""
    out = []
    for spec in METRICS:
        bv, nv = _positive(b_met[spec.name]), _positive(n_met[spec.name])
        thr = th.for_kind(spec.kind)
        if len(bv) == 0 or len(nv) == 0:
            if len(bv) or len(nv):
                out.append(Comparison(spec, thr, len(bv), len(nv), "none", "none", "metric missing on one side"))
            continue
        tester = choose_tester(testers, len(bv), len(nv), per_request)
        out.append(
            compare(spec, bv, nv, tester, threshold_pct=thr, note=goodput_note if spec.name == "goodput_pct" else "")
        )
    return with_q_values(out, th.q)


def _ordered_phases(runs: pl.DataFrame, phase_order: Sequence[str] | None) -> list[str]:
    """A group's phases by start time, those named in ``phase_order`` first and in its order."""
    phases = runs.sort("start", nulls_last=True)["phase"].unique(maintain_order=True).to_list()
    if phase_order:
        phases = [p for p in phase_order if p in phases] + [p for p in phases if p not in phase_order]
    return phases


def _baselines(
    runs: pl.DataFrame, baseline: str | Mapping[str, str] | None, phase_order: Sequence[str] | None
) -> dict[str, str]:
    out = {}
    for group in runs["group"].unique(maintain_order=True).to_list():
        phases = _ordered_phases(runs.filter(pl.col("group") == group), phase_order)
        b = baseline.get(group) if isinstance(baseline, Mapping) else baseline
        if b is None or b not in phases:
            b = phases[0] if phases else None
        if b is not None:
            out[group] = b
    return out


PHASE_VALUE_COLUMNS: dict[str, pl.DataType] = {
    "group": pl.String(), "phase": pl.String(), "metric": pl.String(), "value": pl.Float64(), "n_runs": pl.Int64(),
}  # fmt: skip


def phase_values(
    runs: pl.DataFrame, requests: pl.DataFrame | None = None, tokens: pl.DataFrame | pl.LazyFrame | None = None
) -> pl.DataFrame:
    """Per (group, phase, metric) of every phase, the baseline included and a group with one phase only: the
    value `phase_degradation` compares (`central_value` of the runs' positive `run_metrics`, recomputed from
    per-request data where the runs have it) and the number of runs it comes from (`PHASE_VALUE_COLUMNS`).
    ``goodput_pct`` is left out: it depends on the SLOs of a comparison."""
    if runs.height == 0:
        return pl.DataFrame(schema=PHASE_VALUE_COLUMNS)
    has_req = requests is not None and requests.height > 0
    tok = tokens if has_req and tokens is not None and has_rows(tokens) else None
    metrics = run_metrics(runs, requests if has_req else None, tokens=tok)
    rows = []
    for (group, phase), part in metrics.group_by("group", "phase", maintain_order=True):
        for spec in METRICS:
            if spec.name == "goodput_pct":
                continue
            v = _positive(part[spec.name])
            if len(v):
                rows.append({"group": group, "phase": phase, "metric": spec.name, "value": central_value(v),
                             "n_runs": len(v)})  # fmt: skip
    return pl.DataFrame(rows, schema=PHASE_VALUE_COLUMNS)


@dataclass(frozen=True)
class _Slos:
    """Goodput SLOs (None: not known yet) and the note that says where they came from."""

    ttft_ms: float | None
    tpot_ms: float | None
    note: str = ""


def _goodput_slos(slos: _Slos, group: str, base_requests: pl.DataFrame) -> _Slos:
    """The goodput SLOs of one group: the configured ones, else the p90 of that group's own baseline requests
    (each group against its own baseline: hives serving different models have different latencies). An SLO that
    can be neither configured nor measured (no successful baseline request) stays None: no goodput then."""
    if slos.ttft_ms is not None and slos.tpot_ms is not None:
        return slos
    ok = base_requests.filter(pl.col("error").is_null())
    ttft, tpot = slos.ttft_ms, slos.tpot_ms
    if ttft is None and ok.height:
        ttft = _finite(ok["ttft_ms"].quantile(0.9, "linear"))
    if tpot is None and ok.height:
        tpot = _finite(ok.select(_TPOT.quantile(0.9, "linear")).item())
    if ttft is None or tpot is None:
        return _Slos(
            ttft,
            tpot,
            f"no goodput for {group}: its baseline has no successful request to set an SLO "
            "from (configure --slo-ttft-ms / --slo-tpot-ms)",
        )
    return _Slos(
        ttft,
        tpot,
        f"goodput SLOs: TTFT <= {ttft:.0f} ms, TPOT <= {tpot:.1f} ms (the {group} baseline's p90 where not configured)",
    )


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else None


@dataclass(frozen=True)
class _Group:
    """One group's runs and their per-request data (None: summaries only)."""

    name: str
    baseline: str
    runs: pl.DataFrame
    requests: pl.DataFrame | None
    tokens: pl.DataFrame | pl.LazyFrame | None  # the group's tokens, for `run_metrics`
    all_tokens: pl.DataFrame | pl.LazyFrame | None  # every group's, for the bootstrap sides (which filter them by run)
    run_itl: pl.DataFrame | None = None  # the group's runs' ITL quantiles from its tokens, when computed already


def _group(
    name: str,
    baseline: str,
    runs: pl.DataFrame,
    requests: pl.DataFrame | None,
    tokens: pl.DataFrame | pl.LazyFrame | None,
    run_itl: pl.DataFrame | None = None,
) -> _Group:
    g_runs = runs.filter(pl.col("group") == name)
    ids = g_runs["run_id"].to_list()
    g_req = requests.filter(pl.col("run_id").is_in(ids)) if requests is not None else None
    with_tokens = g_req is not None and tokens is not None and has_rows(tokens)
    g_tok = tokens.filter(pl.col("run_id").is_in(ids)) if with_tokens else None
    g_itl = run_itl.filter(pl.col("run_id").is_in(ids)) if with_tokens and run_itl is not None else None
    return _Group(name, baseline, g_runs, g_req, g_tok, tokens, g_itl)


def _group_comparisons(
    g: _Group, slos: _Slos, th: Thresholds, rng: np.random.Generator, phase_order: Sequence[str] | None
) -> list[tuple[PhasePair, Comparison]]:
    """Every non-baseline phase of group ``g`` against its baseline, phases in order."""
    metrics = run_metrics(
        g.runs, g.requests, slo_ttft_ms=slos.ttft_ms, slo_tpot_ms=slos.tpot_ms, tokens=g.tokens, run_itl=g.run_itl
    )
    b_met = metrics.filter(pl.col("phase") == g.baseline)
    sides = None
    if g.requests is not None:
        sides = WindowSides(g.requests, g.all_tokens, g.runs, th.bootstrap_window_s, slos.ttft_ms, slos.tpot_ms)
    out = []
    for phase in _ordered_phases(g.runs, phase_order):
        if phase == g.baseline:
            continue
        n_met = metrics.filter(pl.col("phase") == phase)
        per_request = bool(b_met["per_request"].all() and n_met["per_request"].all())
        pair = PhasePair(g.name, phase, g.baseline, int(n_met["n_samples"].fill_null(0).sum()) if per_request else None)
        # without requests no metric is per-request, so the bootstrap slot is never chosen
        bootstrap = (
            SummaryOnly() if sides is None else BootstrapTester(sides, g.baseline, phase, rng, th.n_boot, th.level)
        )
        testers = PhaseTesters(welch=WelchTester(th.level), bootstrap=bootstrap, summary=SummaryOnly())
        out += [(pair, c) for c in _phase_comparisons(b_met, n_met, testers, per_request, th, slos.note)]
    return out


def _row(pair: PhasePair, c: Comparison) -> dict[str, object]:
    """One row of the phase table (`PHASE_COLUMNS`)."""
    return {"group": pair.group, "phase": pair.phase, "baseline_phase": pair.baseline_phase, "metric": c.metric.name,
            "side": c.metric.side, "unit": c.metric.unit, "higher_is_better": c.metric.higher_is_better,
            "baseline_value": c.baseline_value, "value": c.value, "change_pct": c.change_pct,
            "ci_low_pct": c.ci_low_pct, "ci_high_pct": c.ci_high_pct, "p_value": c.p_value, "p_check": c.p_check,
            "q_value": c.q_value, "threshold_pct": c.threshold_pct, "n_runs_baseline": c.n_runs_baseline,
            "n_runs": c.n_runs, "n_samples": pair.n_samples, "method": c.method, "confidence": c.confidence,
            "verdict": c.verdict, "note": c.note}  # fmt: skip


def phase_degradation(
    runs: pl.DataFrame,
    requests: pl.DataFrame | None = None,
    tokens: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    baseline: str | Mapping[str, str] | None = None,
    phase_order: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    thresholds: Thresholds | None = None,
    run_itl: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The phase table: every metric of every non-baseline phase against the group's baseline.

    ``runs``: `runs_frame` (one row per run: run_id, group, phase, start, end, summary metrics).
    ``requests`` / ``tokens``: the requests / tokens layouts of those runs (optional; enable per-request metrics,
    goodput and the window bootstrap). ``baseline``: the baseline phase name (or per group); default: the
    group's first phase (``phase_order``, else by start time). ``run_itl``: per run of ``tokens`` its ITL
    quantiles already computed (run_id, itl_ms_p50, itl_ms_p99: `analysis.align.TokenAggregates.runs`), so the
    per-run ITL reads no token. Returns `PHASE_COLUMNS`, phases in order.
    """
    th = thresholds or Thresholds()
    if runs.height == 0:
        return pl.DataFrame(schema=PHASE_COLUMNS)
    if groups:
        runs = runs.filter(pl.col("group").is_in(list(groups)))
        if runs.height == 0:
            raise ConfigError(f"no benchmark runs of group(s) {list(groups)}")
    if requests is not None and requests.height == 0:
        requests = None
    configured = _Slos(th.slo_ttft_ms, th.slo_tpot_ms)
    rng = np.random.default_rng(th.seed)
    rows: list[tuple[PhasePair, Comparison]] = []
    for name, bphase in _baselines(runs, baseline, phase_order).items():
        g = _group(name, bphase, runs, requests, tokens, run_itl)
        slos = configured
        if g.requests is not None:
            base_ids = g.runs.filter(pl.col("phase") == bphase)["run_id"].to_list()
            slos = _goodput_slos(configured, name, g.requests.filter(pl.col("run_id").is_in(base_ids)))
        rows += _group_comparisons(g, slos, th, rng, phase_order)
    if not rows:
        return pl.DataFrame(schema=PHASE_COLUMNS)
    return pl.DataFrame([_row(p, c) for p, c in rows], schema=PHASE_COLUMNS)


def headline(table: pl.DataFrame) -> pl.DataFrame:
    """The rows an SRE reads first: output tok/s, p99 TTFT, p99 ITL, goodput per phase."""
    return table.filter(pl.col("metric").is_in(["output_tok_s", "ttft_ms_p99", "itl_ms_p99", "goodput_pct"]))
