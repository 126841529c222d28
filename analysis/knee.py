"""The TTFT knee: the load beyond which time to first token rises sharply (pure: frames in, a `Knee` out).

Prefill is compute-bound: while the engine keeps up, TTFT grows slowly with the prefill work in flight; past
its capacity requests queue for prefill and TTFT climbs steeply (seed 004: "when batch size x input length exceeded
thresholds, TTFT rose sharply"). The load is concurrency x input length: ``requests_running x prompt_tokens_mean``
per window for live serving data, ``running_requests x (prefill_tokens / requests_started)`` for benchmark windows,
or a benchmark sweep's concurrency x input tokens per run (`with_load` adds the column).

Method (`ttft_knee`): a continuous two-segment (hinge) regression ``ttft = a + b*load + c*max(0, load - k)``,
``k`` searched over the observed loads leaving at least ``min_side`` points on each side (least squares).

- **Is there a knee?** The sup-F statistic of the hinge against one straight line, its p-value from a wild
  bootstrap under the straight line (block sign flips in time order: windows are autocorrelated; the sup over
  ``k`` makes the plain F-test anti-conservative, Davies 1987 / Hansen 1996). A knee is reported when p < ``alpha``
  and the rise is sharp: the slope above at least ``min_slope_ratio`` times the slope below (or the slope below
  not positive), and the fitted TTFT at the largest load at least ``min_rise_pct`` % above the lower segment's
  extrapolation. Otherwise "no knee" with the reason.
- **Where?** The 95 % interval of ``k`` and of the slope above from a block bootstrap of the points (refitting
  ``k`` in each replicate).

Public API::

    from analysis.knee import Knee, ttft_knee, with_load
    knee = ttft_knee(with_load(windows))          # windows: the victim window table (live or benchmark)
    knee.found, knee.load, knee.load_ci_low, knee.load_ci_high, knee.reason, knee.to_dict()
    knee.predict(np.array([...]))                  # the fitted TTFT (ms) at these loads
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import polars as pl

from analysis import stats

MIN_POINTS = 12
MIN_SIDE = 4
MAX_CANDIDATES = 120
N_BOOT = 400


@dataclass(frozen=True)
class Knee:
    """A TTFT knee (``found``) or why there is none (``reason``). Loads are in ``load_col``'s unit (concurrency x
    tokens); slopes in ms per load unit. ``load`` and the fit are filled whenever a hinge could be fitted, so a
    figure can draw the best hinge even when it is not a knee."""

    found: bool
    reason: str
    n_points: int
    load_col: str
    ttft_col: str
    load: float | None = None
    load_ci_low: float | None = None
    load_ci_high: float | None = None
    ttft_at_knee_ms: float | None = None
    intercept_ms: float | None = None
    slope_below_ms_per_load: float | None = None
    slope_above_ms_per_load: float | None = None
    slope_above_ci_low: float | None = None
    slope_above_ci_high: float | None = None
    rise_pct: float | None = None
    p_value: float | None = None
    line_intercept_ms: float | None = None
    line_slope_ms_per_load: float | None = None

    def predict(self, load: np.ndarray) -> np.ndarray:
        """The fitted TTFT (ms) at ``load``: the hinge when one was fitted, else the straight line (NaN without)."""
        x = np.asarray(load, dtype=float)
        if self.load is not None and self.intercept_ms is not None and self.slope_below_ms_per_load is not None:
            c = (self.slope_above_ms_per_load or 0.0) - self.slope_below_ms_per_load
            return self.intercept_ms + self.slope_below_ms_per_load * x + c * np.maximum(0.0, x - self.load)
        if self.line_intercept_ms is not None and self.line_slope_ms_per_load is not None:
            return self.line_intercept_ms + self.line_slope_ms_per_load * x
        return np.full(x.shape, np.nan)

    def summary(self) -> str:
        """One line: where the knee is (with its interval and the slopes), or why there is none."""
        if not self.found:
            return f"no knee: {self.reason}"
        return (
            f"TTFT knee at load {self.load:,.0f} (95 % CI {self.load_ci_low:,.0f} to {self.load_ci_high:,.0f}): "
            f"{self.ttft_col} rises {self.slope_above_ms_per_load:.3g} ms per unit above it vs "
            f"{self.slope_below_ms_per_load:.3g} below (p = {self.p_value:.3g}, {self.n_points} points)"
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in asdict(self).items():
            out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
        out["summary"] = self.summary()
        return out


# ------------------------------------------------------------------------------------------------ the load


def with_load(windows: pl.DataFrame, out_col: str = "load") -> pl.DataFrame:
    """``windows`` plus ``out_col`` = concurrency x input length, from what the frame has (first match wins):

    - live serving windows: ``requests_running * prompt_tokens_mean``;
    - benchmark windows (`analysis.align.victim_windows`): ``running_requests * prefill_tokens / requests_started``
      (mean in-flight requests x mean input tokens of the requests whose prefill ended in the window);
    - benchmark runs: ``concurrency * input_tokens_mean`` (or ``input_tokens``).

    Null where a factor is null (never 0 for unknown). A frame with none of these is returned with a null column.
    """
    cols = set(windows.columns)
    if {"requests_running", "prompt_tokens_mean"} <= cols:
        expr = pl.col("requests_running").cast(pl.Float64) * pl.col("prompt_tokens_mean").cast(pl.Float64)
    elif {"running_requests", "prefill_tokens", "requests_started"} <= cols:
        mean_in = pl.when(pl.col("requests_started") > 0).then(
            pl.col("prefill_tokens").cast(pl.Float64) / pl.col("requests_started").cast(pl.Float64)
        )
        expr = pl.col("running_requests").cast(pl.Float64) * mean_in
    elif "concurrency" in cols and ({"input_tokens_mean", "input_tokens"} & cols):
        isl = "input_tokens_mean" if "input_tokens_mean" in cols else "input_tokens"
        expr = pl.col("concurrency").cast(pl.Float64) * pl.col(isl).cast(pl.Float64)
    else:
        expr = pl.lit(None, dtype=pl.Float64)
    return windows.with_columns(expr.alias(out_col))


# ------------------------------------------------------------------------------------------------ the fit


def _hinge_rss(x: np.ndarray, y: np.ndarray, ks: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of ``y`` on (1, x, max(0, x - k)) for every candidate ``k`` and every weight column.

    ``y``: (n, B) or (n,); ``w``: (n, B) weights (bootstrap counts) or (n, 1). Returns rss (K, B) and beta
    (K, B, 3). Closed form through the 3x3 normal equations, batched over K x B."""
    if y.ndim == 1:
        y = y[:, None]
    if w.shape[1] != y.shape[1]:
        w, y = (
            np.broadcast_to(w, (w.shape[0], max(w.shape[1], y.shape[1]))),
            np.broadcast_to(y, (y.shape[0], max(w.shape[1], y.shape[1]))),
        )
    h = np.maximum(0.0, x[:, None] - ks[None, :])  # (n, K)
    s1 = w.sum(axis=0)  # (B,)
    sx = x @ w
    sxx = (x * x) @ w
    sh = h.T @ w  # (K, B)
    sxh = (x[:, None] * h).T @ w
    shh = (h * h).T @ w
    wy = w * y  # (n, B)
    sy = wy.sum(axis=0)
    sxy = x @ wy
    shy = h.T @ wy  # (K, B)
    syy = (y * wy).sum(axis=0)
    k_, b_ = sh.shape
    a = np.empty((k_, b_, 3, 3))
    a[..., 0, 0] = s1[None, :]
    a[..., 0, 1] = a[..., 1, 0] = sx[None, :]
    a[..., 1, 1] = sxx[None, :]
    a[..., 0, 2] = a[..., 2, 0] = sh
    a[..., 1, 2] = a[..., 2, 1] = sxh
    a[..., 2, 2] = shh
    rhs = np.empty((k_, b_, 3))
    rhs[..., 0] = sy[None, :]
    rhs[..., 1] = sxy[None, :]
    rhs[..., 2] = shy
    a = a + np.eye(3) * 1e-12 * np.maximum(1.0, np.abs(a).max(axis=(-1, -2), keepdims=True))
    beta = np.linalg.solve(a, rhs[..., None])[..., 0]
    rss = syy[None, :] - (beta * rhs).sum(axis=-1)
    return np.maximum(rss, 0.0), beta


def _line_rss(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OLS of each column of ``y`` (n, B) on (1, x): rss (B,), intercept (B,), slope (B,)."""
    xm = x.mean()
    dx = x - xm
    sxx = float(dx @ dx) or 1.0
    slope = dx @ (y - y.mean(axis=0)) / sxx
    icept = y.mean(axis=0) - slope * xm
    resid = y - icept[None, :] - slope[None, :] * x[:, None]
    return (resid * resid).sum(axis=0), icept, slope


def _candidates(x_sorted: np.ndarray, min_side: int, max_candidates: int) -> np.ndarray:
    lo, hi = x_sorted[min_side - 1], x_sorted[-min_side]
    inner = np.unique(x_sorted[(x_sorted >= lo) & (x_sorted < hi)])
    if inner.size > max_candidates:
        inner = np.unique(np.quantile(inner, np.linspace(0, 1, max_candidates)))
    return inner


def ttft_knee(
    windows: pl.DataFrame,
    load_col: str = "load",
    ttft_col: str = "ttft_ms_p99",
    *,
    alpha: float = 0.05,
    min_slope_ratio: float = 2.0,
    min_rise_pct: float = 25.0,
    min_points: int = MIN_POINTS,
    min_side: int = MIN_SIDE,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Knee:
    """The load beyond which ``ttft_col`` rises sharply (method in the module docstring), or "no knee".

    ``windows``: one row per window (or per run) with ``load_col`` and ``ttft_col``; rows where either is null or
    not finite are left out; rows are taken in ``window_start`` order when the frame has one (block bootstrap)."""
    for c in (load_col, ttft_col):
        if c not in windows.columns:
            return Knee(False, f"no {c} column in the windows", 0, load_col, ttft_col)
    f = windows
    if "window_start" in f.columns:
        f = f.sort("window_start")
    f = f.select(pl.col(load_col).cast(pl.Float64).alias("x"), pl.col(ttft_col).cast(pl.Float64).alias("y"))
    f = f.filter(pl.col("x").is_finite() & pl.col("y").is_finite())
    x, y = f["x"].to_numpy().astype(float), f["y"].to_numpy().astype(float)
    n = x.size
    base = Knee(False, "", n, load_col, ttft_col)
    if n < max(min_points, 2 * min_side + 2):
        return _with(base, reason=f"too few windows with both {load_col} and {ttft_col} ({n} < {min_points})")
    xs = np.sort(x)
    if xs[-1] - xs[0] <= 1e-9 * max(abs(xs[-1]), 1.0):
        return _with(base, reason=f"the load never changed ({load_col} = {xs[0]:g} throughout)")
    rss_line, icept, slope = _line_rss(x, y[:, None])
    base = _with(base, line_intercept_ms=float(icept[0]), line_slope_ms_per_load=float(slope[0]))
    ks = _candidates(xs, min_side, MAX_CANDIDATES)
    if ks.size == 0:
        return _with(base, reason=f"too few distinct loads to place a knee with {min_side} points on each side")
    ones = np.ones((n, 1))
    rss_k, beta_k = _hinge_rss(x, y, ks, ones)
    j = int(np.argmin(rss_k[:, 0]))
    k_hat = float(ks[j])
    a0, b0, c0 = (float(v) for v in beta_k[j, 0])
    rss_h = float(rss_k[j, 0])
    sup_f = (float(rss_line[0]) - rss_h) / max(rss_h / max(n - 3, 1), 1e-300)
    rng = np.random.default_rng(seed)
    block = stats.block_length(n)
    # wild bootstrap under the straight line: Rademacher signs per block of consecutive windows
    fit_line = icept[0] + slope[0] * x
    res_line = y - fit_line
    n_blocks = -(-n // block)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_blocks, n_boot))
    y0 = fit_line[:, None] + res_line[:, None] * np.repeat(signs, block, axis=0)[:n]
    rss0_line, _, _ = _line_rss(x, y0)
    rss0_k, _ = _hinge_rss(x, y0, ks, ones)
    rss0_h = rss0_k.min(axis=0)
    f0 = (rss0_line - rss0_h) / np.maximum(rss0_h / max(n - 3, 1), 1e-300)
    p = float((1 + np.sum(f0 >= sup_f)) / (1 + n_boot))
    # where: block bootstrap of the points, k refitted in each replicate
    counts = stats.bootstrap_counts(n, n_boot, block, rng).T  # (n, B)
    rss_b, beta_b = _hinge_rss(x, y, ks, counts)
    jb = rss_b.argmin(axis=0)
    k_b = ks[jb]
    above_b = beta_b[jb, np.arange(n_boot), 1] + beta_b[jb, np.arange(n_boot), 2]
    k_lo, k_hi = (float(v) for v in np.quantile(k_b, [0.025, 0.975]))
    s_lo, s_hi = (float(v) for v in np.quantile(above_b, [0.025, 0.975]))
    above = b0 + c0
    at_knee = a0 + b0 * k_hat
    x_max = float(xs[-1])
    lower_ext = a0 + b0 * x_max
    hinge_max = lower_ext + c0 * (x_max - k_hat)
    rise = 100.0 * (hinge_max - lower_ext) / abs(lower_ext) if abs(lower_ext) > 1e-12 else math.inf
    fitted = _with(
        base,
        load=k_hat,
        load_ci_low=k_lo,
        load_ci_high=k_hi,
        ttft_at_knee_ms=at_knee,
        intercept_ms=a0,
        slope_below_ms_per_load=b0,
        slope_above_ms_per_load=above,
        slope_above_ci_low=s_lo,
        slope_above_ci_high=s_hi,
        rise_pct=rise,
        p_value=p,
    )
    sharp = above > 0 and (b0 <= 0 or above >= min_slope_ratio * b0)
    if p >= alpha:
        why = f"one straight line fits as well as a bend (sup-F p = {p:.3g} >= {alpha:g})"
    elif not sharp:
        why = (
            f"the slope above the best bend ({above:.3g} ms per unit) is under {min_slope_ratio:g}x the slope below "
            f"({b0:.3g}): TTFT bends but does not rise sharply"
        )
    elif rise < min_rise_pct:
        why = f"TTFT at the largest load is only {rise:.0f} % above the trend below the bend (< {min_rise_pct:g} %)"
    else:
        return _with(fitted, found=True, reason="")
    return _with(fitted, reason=why)


def _with(k: Knee, **changes: object) -> Knee:
    return replace(k, **changes)  # type: ignore[arg-type]


__all__ = ["Knee", "ttft_knee", "with_load"]
