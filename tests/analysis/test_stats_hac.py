"""`analysis.stats.hac_cov`: the Newey-West covariance computed with running sums (a triangular kernel is two box
filters) equals the textbook sum of weighted lag autocovariances, for every lag count (seeded data)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.stats import hac_cov


def _textbook(x: np.ndarray, resid: np.ndarray, lags: int) -> np.ndarray:
    n = len(x)
    xtx_inv = np.linalg.pinv(x.T @ x)
    u = x * resid[:, None]
    s = u.T @ u
    for lag in range(1, min(lags, n - 1) + 1):
        w = 1 - lag / (lags + 1)
        g = u[lag:].T @ u[:-lag]
        s += w * (g + g.T)
    return xtx_inv @ s @ xtx_inv


@pytest.mark.parametrize(("n", "k", "lags"), [(3000, 6, None), (700, 3, 1), (300, 2, 299), (6, 2, 10), (1, 1, 3)])
def test_hac_cov_equals_the_sum_of_weighted_lag_autocovariances(n: int, k: int, lags: int | None) -> None:
    rng = np.random.default_rng(n)
    x = np.column_stack([np.ones(n), rng.normal(200.0, 30.0, (n, k - 1))])
    ar = np.convolve(rng.normal(size=n + 20), np.full(20, 0.3))[20 : n + 20]  # autocorrelated errors
    y = x @ rng.normal(size=k) + ar
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    want = _textbook(x, resid, lags if lags is not None else max(1, round(n ** (1 / 3))))
    np.testing.assert_allclose(hac_cov(x, resid, lags), want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
