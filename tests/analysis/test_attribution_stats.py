"""Williams' test of two dependent correlations (`analysis.stats.dependent_corr_test`), the statistic behind
attribution's "cannot be told apart": right level on equal correlations, iid or autocorrelated, and power on
different ones."""

from __future__ import annotations

import math

import numpy as np

from analysis import stats
from analysis.stats import dependent_corr_test


def _pair(rng: np.random.Generator, n: int, b1: float, b2: float, rho: float = 0.0) -> tuple[np.ndarray, ...]:
    """x, and y1 = b1 x + e1, y2 = b2 x + e2 (unit noise); with ``rho`` every series is AR(1)."""

    def ar(e: np.ndarray) -> np.ndarray:
        out = np.empty_like(e)
        acc = 0.0
        for i, v in enumerate(e):
            acc = rho * acc + math.sqrt(1 - rho * rho) * v
            out[i] = acc
        return out

    x = ar(rng.normal(size=n))
    return x, b1 * x + ar(rng.normal(size=n)), b2 * x + ar(rng.normal(size=n))


def test_equal_correlations_are_rejected_about_five_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    p = np.array([dependent_corr_test(*_pair(rng, 120, 1.0, 1.0))[1] for _ in range(400)])
    assert 0.02 <= (p < 0.05).mean() <= 0.09


def test_autocorrelated_windows_do_not_inflate_the_rejections() -> None:
    # slowly moving windows (AR(1), 0.8): the effective n keeps the level near 5 % instead of several times it
    rng = np.random.default_rng(1)
    p = np.array([dependent_corr_test(*_pair(rng, 120, 1.0, 1.0, rho=0.8))[1] for _ in range(400)])
    assert (p < 0.05).mean() <= 0.10


def test_clearly_different_correlations_are_told_apart_with_the_sign() -> None:
    rng = np.random.default_rng(2)
    t, p = dependent_corr_test(*_pair(rng, 120, 2.0, 0.3))
    assert t > 0 and p < 1e-4
    t, p = dependent_corr_test(*_pair(rng, 120, 0.3, 2.0))
    assert t < 0 and p < 1e-4


def test_too_few_or_constant_series_give_no_answer() -> None:
    x = np.arange(6.0)
    assert all(math.isnan(v) for v in dependent_corr_test(x, x, x))
    x = np.arange(30.0)
    assert all(math.isnan(v) for v in dependent_corr_test(x, np.ones(30), x))


def test_blas_threads_pins_every_openblas_and_restores_it() -> None:
    """Analysis runs small matrices on one BLAS thread (more only burn CPU): inside the block every loaded OpenBLAS
    (numpy's and scipy's wheels each bundle one) runs on 1 thread, after it on as many as before; results are
    the same."""
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS too)

    libs = stats._openblas_libraries()
    assert libs, "numpy's wheel bundles OpenBLAS: it must be found in /proc/self/maps"
    before = [int(getattr(lib, pat % "get")()) for lib, pat in libs]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 6)), rng.normal(size=500)
    beta_default, _ = stats.ols(y, x)
    with stats.blas_threads(1):
        assert [int(getattr(lib, pat % "get")()) for lib, pat in libs] == [1] * len(libs)
        beta_one, _ = stats.ols(y, x)
    assert [int(getattr(lib, pat % "get")()) for lib, pat in libs] == before
    np.testing.assert_allclose(beta_one, beta_default, rtol=1e-10)
