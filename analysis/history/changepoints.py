"""Change points in a short series, in the style of Apache Otava (Hunter): E-divisive split + Student t-test.

Fleming et al., "Hunter: Using Change Point Detection to Hunt for Performance Regressions", ICPE 2023
(arXiv 2301.03034), and ``otava/analysis.py``:

1. **Split.** Slide windows of ``window_len`` points (half-overlapping) over the series. Inside each window,
   bisect recursively at the split that maximises the energy-distance divergence of Matteson & James (E-divisive
   means); keep a split whose Student t-test (pooled variance) between the two sides has p < 10 × ``max_pvalue`` ("weak" change
   points).
2. **Merge.** Re-test every weak change point against its neighbours (the segments between the change points
   before and after it); drop the weakest (largest p, then smallest magnitude) while any has p ≥ ``max_pvalue``
   or |magnitude| < ``min_magnitude``.

Pure: numbers in, `ChangePoint` values out; no I/O, no randomness (the t-test makes it deterministic, unlike the
permutation test of the original E-divisive). ``magnitude`` is ``mean_after - mean_before`` on the input's scale:
feed log values and it is a log-ratio (the caller sets ``min_magnitude`` from the measured run-to-run noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ChangePoint:
    """A shift of the mean at ``index`` (the first point of the new segment), with its t-test."""

    index: int
    mean_before: float
    mean_after: float
    std_before: float
    std_after: float
    n_before: int
    n_after: int
    pvalue: float

    @property
    def magnitude(self) -> float:
        """``mean_after - mean_before`` (a log-ratio when the series is on log scale)."""
        return self.mean_after - self.mean_before


def ttest_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Student t-test p-value of mean(a) == mean(b), pooled variance (as Hunter / Otava): robust to a
    short segment whose few points happen to agree. One point against a segment is a prediction-interval test.
    0 / 1 for constant samples that differ / agree."""
    na, nb = len(a), len(b)
    if na < 1 or nb < 1 or na + nb < 3:
        return 1.0
    diff = float(np.mean(b) - np.mean(a))
    ssa = float(np.sum((a - np.mean(a)) ** 2))
    ssb = float(np.sum((b - np.mean(b)) ** 2))
    df = na + nb - 2
    s2 = (ssa + ssb) / df
    if s2 <= 0:
        return 0.0 if abs(diff) > 1e-15 else 1.0
    t = diff / np.sqrt(s2 * (1.0 / na + 1.0 / nb))
    return float(2.0 * stats.t.sf(abs(t), df))


welch_pvalue = ttest_pvalue  # the name earlier versions used


def _segment_stats(x: np.ndarray, lo: int, mid: int, hi: int) -> ChangePoint:
    a, b = x[lo:mid], x[mid:hi]
    return ChangePoint(
        index=mid,
        mean_before=float(np.mean(a)),
        mean_after=float(np.mean(b)),
        std_before=float(np.std(a, ddof=1)) if len(a) > 1 else 0.0,
        std_after=float(np.std(b, ddof=1)) if len(b) > 1 else 0.0,
        n_before=len(a),
        n_after=len(b),
        pvalue=ttest_pvalue(a, b),
    )


def energy_split(x: np.ndarray, min_size: int = 2) -> tuple[int, float] | None:
    """The split ``tau`` of ``x`` maximising the E-divisive statistic ``m·n/(m+n) · (2E|X-Y| - E|X-X'| - E|Y-Y'|)``.

    Returns ``(tau, statistic)`` or None when ``x`` is too short for two segments of ``min_size``.
    """
    n = len(x)
    if n < 2 * min_size:
        return None
    d = np.abs(x[:, None] - x[None, :])
    best: tuple[int, float] | None = None
    for tau in range(min_size, n - min_size + 1):
        m, k = tau, n - tau
        xy = d[:tau, tau:].mean()
        xx = d[:tau, :tau].sum() / (m * (m - 1)) if m > 1 else 0.0
        yy = d[tau:, tau:].sum() / (k * (k - 1)) if k > 1 else 0.0
        q = m * k / n * (2 * xy - xx - yy)
        if best is None or q > best[1]:
            best = (tau, float(q))
    return best


def _bisect(x: np.ndarray, lo: int, hi: int, weak_p: float, min_size: int, out: set[int]) -> None:
    found = energy_split(x[lo:hi], min_size)
    if found is None:
        return
    tau = lo + found[0]
    if ttest_pvalue(x[lo:tau], x[tau:hi]) >= weak_p:
        return
    out.add(tau)
    _bisect(x, lo, tau, weak_p, min_size, out)
    _bisect(x, tau, hi, weak_p, min_size, out)


def change_points(
    values: Sequence[float] | np.ndarray,
    *,
    window_len: int = 30,
    max_pvalue: float = 0.001,
    min_magnitude: float = 0.0,
    min_size: int = 2,
) -> list[ChangePoint]:
    """Change points of ``values`` (Otava's split + merge, see the module docstring), sorted by index.

    ``min_size`` points at least on each side, so a shift in the last point is not a change point yet (the
    same-night check in `analysis.history.regression` covers it). Null / NaN values must be dropped by the caller.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2 * min_size:
        return []
    if not np.all(np.isfinite(x)):
        raise ValueError("change_points: values must be finite (drop nulls first)")
    window_len = max(window_len, 2 * min_size)
    weak_p = min(1.0, 10.0 * max_pvalue)
    weak: set[int] = set()
    step = max(1, window_len // 2)
    start = 0
    while True:
        end = min(n, start + window_len)
        _bisect(x, start, end, weak_p, min_size, weak)
        if end >= n:
            break
        start += step
    cps = sorted(weak)
    while cps:
        bounds = [0, *cps, n]
        tested = [_segment_stats(x, bounds[i], bounds[i + 1], bounds[i + 2]) for i in range(len(cps))]
        failing = [
            (cp.pvalue, -abs(cp.magnitude), i)
            for i, cp in enumerate(tested)
            if cp.pvalue >= max_pvalue or abs(cp.magnitude) < min_magnitude
        ]
        if not failing:
            return tested
        del cps[max(failing)[2]]
    return []


def robust_z(values: np.ndarray) -> np.ndarray:
    """Iglewicz–Hoaglin modified z-score ``0.6745 (x - median) / MAD`` (0 where MAD is 0 and x is the median)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return x
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if mad == 0:
        dev = x - med
        return np.where(dev == 0, 0.0, np.sign(dev) * np.inf)
    return 0.6745 * (x - med) / mad
