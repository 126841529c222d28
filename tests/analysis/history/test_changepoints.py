"""Change points on short literal series with known answers (Otava-style split + merge)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.history.changepoints import change_points, energy_split, robust_z, ttest_pvalue


def test_a_clear_step_is_found_at_its_index() -> None:
    x = [1.0, 1.02, 0.99, 1.01, 1.0, 0.98, 1.01, 1.0, 2.0, 2.01, 1.99, 2.02, 2.0, 1.98]
    (cp,) = change_points(x, max_pvalue=0.001)
    assert cp.index == 8
    assert cp.mean_before == pytest.approx(1.00125)
    assert cp.magnitude == pytest.approx(1.0, abs=0.02)
    assert cp.n_before == 8 and cp.n_after == 6


def test_two_steps_are_both_found() -> None:
    x = [0.0] * 6 + [1.0] * 6 + [3.0] * 6
    x = list(np.asarray(x) + np.tile([0.01, -0.01, 0.0], 6))
    assert [c.index for c in change_points(x)] == [6, 12]


def test_noise_without_a_step_gives_none() -> None:
    rng = np.random.default_rng(3)
    assert change_points(rng.normal(0, 1, 60), window_len=30) == []


def test_min_magnitude_drops_a_significant_but_small_step() -> None:
    x = [0.0, 0.001, -0.001, 0.0, 0.001, -0.001, 0.01, 0.011, 0.009, 0.01, 0.011, 0.009]
    assert [c.index for c in change_points(x)] == [6]
    assert change_points(x, min_magnitude=0.05) == []


def test_a_shift_in_the_last_point_is_not_a_change_point_yet() -> None:
    x = [1.0, 1.01, 0.99, 1.0, 1.01, 0.99, 1.0, 5.0]
    assert change_points(x) == []


def test_short_series_gives_none() -> None:
    assert change_points([1.0, 2.0, 3.0]) == []


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        change_points([1.0, float("nan"), 1.0, 1.0, 2.0, 2.0])


def test_energy_split_finds_the_mean_shift() -> None:
    tau, q = energy_split(np.array([0.0, 0.1, 0.0, 0.1, 5.0, 5.1, 5.0]))  # type: ignore[misc]
    assert tau == 4 and q > 0


def test_ttest_of_identical_constant_segments_is_one_and_of_different_is_zero() -> None:
    assert ttest_pvalue(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 1.0
    assert ttest_pvalue(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == 0.0


def test_robust_z_flags_the_outlier_only() -> None:
    z = robust_z(np.array([0.080, 0.081, 0.079, 0.080, 0.082, 0.100]))
    assert abs(z[-1]) > 3.5
    assert np.all(np.abs(z[:-1]) < 3.5)
