"""Statistics shared by the analysis modules: pure numpy / scipy, no frames, no I/O.

- `welch_log_ratio`: CI of a ratio of geometric means from per-run values (Welch t on logs) plus the
  Mann–Whitney check; the method for K >= 2 runs per phase (analysis-methods.md §4).
- `block_bootstrap_indices`: circular block bootstrap over time windows (one run; marked low confidence).
- `window_hist`, `hist_quantiles`: per-window log histograms; a bootstrap replicate's quantile comes from a
  weighted sum of window histograms (vectorised: one matrix product for all replicates).
- `bh`: Benjamini–Hochberg q-values that tolerate NaN.
- `ols`, `hac_se`: least squares with Newey–West standard errors (autocorrelated windows).
- `circular_shift_pvalues`: permutation p-values that keep autocorrelation (shift the regressor in time).
- `segment_shuffle_pvalue`: randomisation p for a randomised on/off schedule (its segments re-arranged).
- `robust_z`: median / MAD standardisation.
- `dependent_corr_test`: Williams' t, is one signal more correlated with x than another (attribution's
  "cannot be told apart").
- `blas_threads`: run a block with the BLAS libraries (OpenBLAS) on ``n`` threads, restoring them after.

Every matrix here is small (windows x a few regressors): on such sizes a multi-threaded BLAS spends more CPU
starting and spinning its threads than on the work (measured: `np.linalg.lstsq` of 5,438 x 10 at 13 ms CPU with
the default threads on a loaded 2-core box, 0.3 ms on one thread), so `analysis.analyze` runs with one.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

HIST_REL_WIDTH = 0.005  # bins of the window histograms: 0.5 % wide on a log scale


def _openblas_libraries() -> list[tuple[ctypes.CDLL, str]]:
    """(library, symbol prefix) of every OpenBLAS loaded in this process (numpy and scipy bundle one each), read
    from ``/proc/self/maps`` (what threadpoolctl does); empty where there is none or no /proc."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    paths = dict.fromkeys(
        line.split(None, 5)[-1].strip() for line in maps.splitlines() if "openblas" in line.lower() and "/" in line
    )
    out = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_NOLOAD if hasattr(ctypes, "RTLD_NOLOAD") else 0)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                name = f"{prefix}_get_num_threads{suffix}"
                if hasattr(lib, name):
                    out.append((lib, f"{prefix}_%s_num_threads{suffix}"))
                    break
            else:
                continue
            break
    return out


_BLAS_LOCK = threading.Lock()


@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Run the block with every loaded OpenBLAS on ``n`` threads, then restore each one's previous count (a no-op
    where no OpenBLAS is loaded). Process-wide while it runs: concurrent callers in threads share one setting."""
    with _BLAS_LOCK:
        libs = _openblas_libraries()
        before = []
        for lib, pattern in libs:
            before.append(int(getattr(lib, pattern % "get")()))
            getattr(lib, pattern % "set")(ctypes.c_int(n))
    try:
        yield
    finally:
        with _BLAS_LOCK:
            for (lib, pattern), count in zip(libs, before, strict=True):
                getattr(lib, pattern % "set")(ctypes.c_int(count))


@dataclass(frozen=True)
class RatioTest:
    """A comparison of a metric between two phases, as a ratio (new / baseline).

    ``ratio`` = point estimate; ``ci_low`` / ``ci_high`` its interval (NaN when there is none); ``p`` the
    primary test's p-value (NaN when there is none), ``p_check`` the robust check's (Mann–Whitney).
    """

    ratio: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    p: float = math.nan
    p_check: float = math.nan


def welch_log_ratio(base: np.ndarray, new: np.ndarray, level: float = 0.95) -> RatioTest:
    """Ratio of geometric means new / base with a Welch-t CI on the difference of mean logs.

    Needs >= 2 positive values per side for an interval; with fewer, only the ratio is returned.
    The Mann–Whitney U p-value (two-sided) is the robust check.
    """
    b = np.log(np.asarray(base, dtype=float))
    n = np.log(np.asarray(new, dtype=float))
    b, n = b[np.isfinite(b)], n[np.isfinite(n)]
    if len(b) == 0 or len(n) == 0:
        return RatioTest(math.nan)
    d = float(n.mean() - b.mean())
    if len(b) < 2 or len(n) < 2:
        return RatioTest(math.exp(d))
    vb, vn = b.var(ddof=1) / len(b), n.var(ddof=1) / len(n)
    se = math.sqrt(vb + vn)
    if se == 0:
        return RatioTest(math.exp(d), math.exp(d), math.exp(d), 0.0 if d else 1.0, math.nan)
    df = (vb + vn) ** 2 / ((vb**2) / (len(b) - 1) + (vn**2) / (len(n) - 1))
    t = sps.t.ppf(0.5 + level / 2, df)
    p = float(sps.ttest_ind(n, b, equal_var=False).pvalue)
    p_mw = float(sps.mannwhitneyu(n, b, alternative="two-sided").pvalue)
    return RatioTest(math.exp(d), math.exp(d - t * se), math.exp(d + t * se), p, p_mw)


def block_length(n_windows: int) -> int:
    """Block length for the window bootstrap: n^(1/3), at least 1 (a rule of thumb; see docs/analysis.md)."""
    return max(1, round(n_windows ** (1 / 3)))


def block_bootstrap_indices(n: int, n_boot: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` window indices of a circular block bootstrap (blocks of ``block`` windows)."""
    if n == 0:
        return np.zeros((n_boot, 0), dtype=np.int64)
    k = -(-n // block)
    starts = rng.integers(0, n, size=(n_boot, k))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return idx.reshape(n_boot, -1)[:, :n]


def bootstrap_counts(n: int, n_boot: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` how often each window is drawn in each replicate (float, for matrix products)."""
    idx = block_bootstrap_indices(n, n_boot, block, rng)
    out = np.zeros((n_boot, n))
    np.add.at(out, (np.repeat(np.arange(n_boot), idx.shape[1]), idx.reshape(-1)), 1.0)
    return out


def window_hist(
    values: np.ndarray, window: np.ndarray, n_windows: int, rel_width: float = HIST_REL_WIDTH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window histograms of positive ``values`` on a log grid spanning their range.

    Returns ``(hist, edges_log)``: ``hist`` is ``(n_windows, bins)`` counts, ``edges_log`` the log bin edges.
    A bootstrap replicate's histogram is then ``counts @ hist`` (see `bootstrap_counts`).
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    v, w = np.log(v[ok]), np.asarray(window)[ok]
    if len(v) == 0:
        return np.zeros((n_windows, 1)), np.array([0.0, rel_width])
    lo, hi = float(v.min()), float(v.max())
    bins = max(1, int(np.ceil((hi - lo) / rel_width)) + 1)
    b = np.minimum(((v - lo) / rel_width).astype(np.int64), bins - 1)
    hist = np.zeros((n_windows, bins))
    np.add.at(hist, (w, b), 1.0)
    return hist, lo + rel_width * np.arange(bins + 1)


def hist_quantiles(hist: np.ndarray, edges_log: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` (0..1) of each row of ``hist`` (counts on ``edges_log``), at the bin's log-centre."""
    h = np.atleast_2d(hist)
    c = np.cumsum(h, axis=1)
    tot = c[:, -1]
    k = (c < (q * tot)[:, None]).sum(axis=1)
    k = np.clip(k, 0, h.shape[1] - 1)
    centre = (edges_log[:-1] + edges_log[1:]) / 2
    return np.where(tot > 0, np.exp(centre[k]), np.nan)


def bootstrap_z_pvalue(estimate: float, replicates: np.ndarray) -> float:
    """Two-sided p of 'no change' from a normal approximation: z = estimate / (IQR of replicates / 1.349).
    Robust to a few wild replicates and not floored at 1 / n_boot."""
    x = np.asarray(replicates, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 10:
        return math.nan
    q1, q3 = np.quantile(x, [0.25, 0.75])
    se = (q3 - q1) / 1.349
    if se <= 0:
        return 0.0 if estimate else 1.0
    return float(2 * sps.norm.sf(abs(estimate) / se))


def bh(p: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini–Hochberg q-values; NaN p-values stay NaN and do not count."""
    arr = np.asarray(p, dtype=float)
    out = np.full(arr.shape, np.nan)
    ok = np.isfinite(arr)
    if ok.any():
        out[ok] = sps.false_discovery_control(np.clip(arr[ok], 0, 1), method="bh")
    return out


def robust_z(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """(x - median) / (1.4826 MAD) with median and MAD from ``ref`` (default ``x``); NaN-aware."""
    r = x if ref is None else ref
    med = np.nanmedian(r)
    mad = 1.4826 * np.nanmedian(np.abs(r - med))
    if not np.isfinite(mad) or mad == 0:
        mad = np.nanstd(r) or 1.0
    return (x - med) / mad


def ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients and residuals of y on x (x includes the intercept column if wanted)."""
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return beta, y - x @ beta


def hac_cov(x: np.ndarray, resid: np.ndarray, lags: int | None = None) -> np.ndarray:
    """Newey–West (Bartlett) covariance of OLS coefficients; ``lags`` default n^(1/3).

    The long-run covariance ``S = sum_{|l| <= lags} w_l Gamma_l`` (Bartlett weights ``w_l = 1 - |l| / (lags + 1)``,
    ``Gamma_l`` the lag-l autocovariance of ``u = x * resid``) is ``v' u`` with ``v`` = ``u`` filtered by the
    triangular kernel ``w``, and a triangular kernel is two box filters of length ``lags + 1`` (running sums): O(n k)
    instead of one n x k x k product per lag (a week of 2 s windows: 34 lags)."""
    n, k = x.shape
    lags = max(1, round(n ** (1 / 3))) if lags is None else lags
    xtx_inv = np.linalg.pinv(x.T @ x)
    u = x * resid[:, None]
    if lags >= n:  # the sum stops at lag n - 1 but the weights keep lags + 1: not a whole triangle
        s = u.T @ u
        for lag in range(1, n):
            w = 1 - lag / (lags + 1)
            g = u[lag:].T @ u[:-lag]
            s += w * (g + g.T)
        return xtx_inv @ s @ xtx_inv
    m = lags + 1
    pad = np.zeros((n + 2 * (m - 1), k))
    pad[:n] = u
    tri = _running_sum(_running_sum(pad, m), m)  # tri_{t+m-1} = sum_{|l| < m} (m - |l|) u_{t+l}
    v = tri[m - 1 : m - 1 + n] / m
    s = v.T @ u
    s = (s + s.T) / 2  # symmetric by construction, up to rounding
    return xtx_inv @ s @ xtx_inv


def _running_sum(a: np.ndarray, m: int, block: int = 256) -> np.ndarray:
    """``out_t = a_{t-m+1} + ... + a_t`` along axis 0 (zeros before the start), as differences of cumulative sums
    restarted every ``block`` rows: each sum spans ``block + m`` rows, not all of them, so rounding stays that of a
    few hundred additions."""
    n, k = a.shape
    nb = -(-n // block)
    padded = np.zeros((m + nb * block, k))
    padded[m : m + n] = a
    rows = np.arange(nb)[:, None] * block + np.arange(block + m)[None, :]
    c = np.cumsum(padded[rows], axis=1)
    return (c[:, m:, :] - c[:, :-m, :]).reshape(nb * block, k)[:n]


def circular_shift_pvalues(
    y: np.ndarray,
    blocks: list[np.ndarray],
    controls: np.ndarray,
    n_shifts: int | None = None,
    rng: np.random.Generator | None = None,
    min_shift: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sided circular-shift permutation p-values, one per block of regressors (autocorrelation kept).

    Block j's statistic is the sum of its coefficients in the joint regression of ``y`` on ``controls`` and all
    blocks (Frisch–Waugh–Lovell: ``ry`` = y residualised on controls and the other blocks, ``rx`` = block j
    residualised likewise; the effect of sustained activity, positive = ``y`` rises with it). The null
    distribution circularly shifts ``rx`` in time by every offset in ``min_shift .. n - min_shift`` (exhaustive;
    the Gram matrix of a circular shift is unchanged and all cross-products come from one FFT per column), which
    breaks its alignment with ``y`` but keeps its autocorrelation. With ``n_shifts`` (and ``rng``) a random
    subset of the offsets is used instead. Returns ``(effect, rss_drop, p)`` per block,
    p = (1 + #{null >= effect}) / (1 + #shifts).
    """
    n = len(y)
    k = len(blocks)
    eff = np.full(k, np.nan)
    drop_out = np.full(k, np.nan)
    pval = np.full(k, np.nan)
    if n < 8 or k == 0:
        return eff, drop_out, pval
    ms = min(max(1, min_shift), n // 2)
    offsets = np.arange(ms, n - ms + 1)
    if n_shifts is not None and rng is not None and n_shifts < len(offsets):
        offsets = rng.choice(offsets, size=n_shifts, replace=False)
    for j in range(k):
        others = [b for i, b in enumerate(blocks) if i != j]
        z = np.column_stack([controls, *others]) if others else controls
        q, _ = np.linalg.qr(z)
        ry = y - q @ (q.T @ y)
        xj = blocks[j]
        rx = xj - q @ (q.T @ xj)
        g = rx.T @ rx
        g_inv = np.linalg.pinv(g + 1e-12 * np.trace(g) * np.eye(g.shape[0]))
        # c[s, a] = sum_t rx[(t - s) mod n, a] * ry[t]  (rx shifted forward by s), for every s, by FFT
        fy = np.fft.rfft(ry)
        fx = np.fft.rfft(rx, axis=0)
        c = np.fft.irfft(np.conj(fx) * fy[:, None], n=n, axis=0)  # (n, m)
        b = c @ g_inv  # (n, m) coefficients per shift
        e = b.sum(axis=1)
        d = np.einsum("sa,sa->s", b, c)
        eff[j], drop_out[j] = float(e[0]), float(d[0])
        null = e[offsets % n]
        pval[j] = (1 + np.sum(null >= e[0] - 1e-12 * abs(e[0]))) / (1 + len(null))
    return eff, drop_out, pval


def _segments(a: np.ndarray) -> list[np.ndarray]:
    """``a`` cut into maximal runs of equal values."""
    cut = np.flatnonzero(np.diff(a) != 0) + 1
    return np.split(a, cut)


def segment_shuffle_pvalue(
    y: np.ndarray,
    blocks: list[np.ndarray],
    j: int,
    controls: np.ndarray,
    n_perm: int,
    rng: np.random.Generator,
) -> float:
    """One-sided randomisation p of block ``j`` when it is a randomised on/off schedule (one column, 0/1).

    The statistic is the sum of block ``j``'s coefficients in the joint regression of ``y`` on ``controls`` and
    all blocks (as `circular_shift_pvalues`). The null re-arranges the schedule: its maximal on / off segments
    are put in a random order (same segments, same total on-time; ``y`` and its autocorrelation untouched),
    which approximates re-drawing the randomised plan. A circular shift offers only n - 2 * min_shift
    arrangements, too few to reach p < 0.05 on a short run; segment orders number in the thousands from about
    eight segments on. p = (1 + #{null >= effect}) / (1 + n_perm).
    """
    x = np.asarray(blocks[j], dtype=float)
    if x.ndim != 2 or x.shape[1] != 1:
        raise ValueError("segment_shuffle_pvalue: the schedule block must be one column")
    a = x[:, 0]
    segs = _segments(a)
    if len(segs) < 3:
        return math.nan
    others = [b for i, b in enumerate(blocks) if i != j]
    z = np.column_stack([controls, *others]) if others else controls
    q, _ = np.linalg.qr(z)
    ry = y - q @ (q.T @ y)

    def stat(col: np.ndarray) -> float:
        rx = col - q @ (q.T @ col)
        den = float(rx @ rx)
        return float(rx @ ry) / den if den > 1e-12 else math.nan

    e0 = stat(a)
    if not math.isfinite(e0):
        return math.nan
    null = np.empty(n_perm)
    for i in range(n_perm):
        order = rng.permutation(len(segs))
        null[i] = stat(np.concatenate([segs[k] for k in order]))
    null = null[np.isfinite(null)]
    return float((1 + np.sum(null >= e0 - 1e-12 * abs(e0))) / (1 + len(null)))


def _lag1(x: np.ndarray) -> float:
    x = x - x.mean()
    den = float(x @ x)
    return float(x[1:] @ x[:-1]) / den if den > 0 else 0.0


def dependent_corr_test(x: np.ndarray, y1: np.ndarray, y2: np.ndarray) -> tuple[float, float]:
    """Williams' t for two dependent correlations sharing a variable: does ``x`` correlate more with ``y1`` than
    with ``y2`` (Williams 1959, as recommended by Steiger 1980, Psychological Bulletin 87: 245-251)? Returns
    ``(t, p)``, two-sided, positive t = stronger with ``y1``. Windows are autocorrelated, so n is the effective
    sample size ``n (1 - r_x r_d) / (1 + r_x r_d)`` (Bartlett), r_x and r_d the lag-1 autocorrelations of ``x`` and
    of the difference of the standardised ``y1`` and ``y2``. NaN where fewer than 8 complete rows or a constant."""
    ok = np.isfinite(x) & np.isfinite(y1) & np.isfinite(y2)
    x, y1, y2 = x[ok], y1[ok], y2[ok]
    if len(x) < 8 or min(np.std(x), np.std(y1), np.std(y2)) == 0:
        return math.nan, math.nan
    r = np.corrcoef(np.vstack([x, y1, y2]))
    r12, r13, r23 = float(r[0, 1]), float(r[0, 2]), float(r[1, 2])
    z1, z2 = (y1 - y1.mean()) / np.std(y1), (y2 - y2.mean()) / np.std(y2)
    rho = _lag1(x) * _lag1(z1 - z2)
    n = max(len(x) * (1 - rho) / (1 + rho), 5.0) if rho > -1 else float(len(x))
    det = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    den = 2 * (n - 1) / (n - 3) * det + rbar**2 * (1 - r23) ** 3
    if den <= 0:
        return math.nan, math.nan
    t = (r12 - r13) * math.sqrt((n - 1) * (1 + r23) / den)
    return float(t), float(2 * sps.t.sf(abs(t), n - 3))
