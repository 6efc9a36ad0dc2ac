"""pgrl.stats against hand-computed values."""

import numpy as np
import pytest

from pgrl.errors import PGRLError
from pgrl.stats import bootstrap_ci, bootstrap_distribution, curve_band, iqm, iqm_weights


def test_iqm_divisible_by_four_is_mean_of_middle_half():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # order does not matter
    assert iqm([0, 0, 100, -100]) == pytest.approx(0.0)  # middle two: 0, 0
    assert iqm([1, 10, 100, 1000]) == pytest.approx(55.0)  # middle two: 10, 100


def test_iqm_fractional_weights_at_the_quartiles():
    # n = 5: x_(1) covers quantiles [0.2, 0.4) -> 0.15 inside [0.25, 0.75]; x_(2) 0.2; x_(3) 0.15.
    assert iqm_weights(5) == pytest.approx([0, 0.3, 0.4, 0.3, 0])
    assert iqm([1, 2, 4, 8, 16]) == pytest.approx((0.75 * 2 + 4 + 0.75 * 8) / 2.5)  # 4.6
    # n = 3: weights 1/12, 1/3, 1/12 of quantile mass -> 1/6, 2/3, 1/6
    assert iqm([0, 3, 60]) == pytest.approx(0 / 6 + 2 + 10)
    # n = 6: intervals of 1/6; x_(1) covers [1/6, 2/6) -> 1/12 inside; x_(2), x_(3) full 1/6; x_(4) 1/12
    assert iqm_weights(6) == pytest.approx([0, 1 / 6, 1 / 3, 1 / 3, 1 / 6, 0])
    assert iqm([0, 6, 12, 18, 24, 30]) == pytest.approx(1 + 4 + 6 + 4)


def test_iqm_small_and_vectorized():
    assert iqm([7.0]) == 7.0
    assert iqm([1.0, 3.0]) == pytest.approx(2.0)
    rows = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2, 2, 2, 2, 2, 2]])
    assert iqm(rows, axis=-1) == pytest.approx([4.5, 2.0])
    assert iqm(rows.T, axis=0) == pytest.approx([4.5, 2.0])
    with pytest.raises(PGRLError, match="at least one value"):
        iqm([])


def test_bootstrap_of_a_constant_is_that_constant():
    low, high = bootstrap_ci([3.5] * 6)
    assert low == pytest.approx(3.5) and high == pytest.approx(3.5)
    assert bootstrap_ci([3.5] * 6, statistic=iqm) == pytest.approx((3.5, 3.5))


def test_bootstrap_two_values_enumerated():
    # Resamples of [0, 1] (size 2): (0,0), (0,1), (1,0), (1,1) -> means 0, 0.5, 0.5, 1 with p = 1/4, 1/2, 1/4.
    dist = bootstrap_distribution([0.0, 1.0], n_resamples=20000, seed=1)
    assert set(np.unique(dist)) == {0.0, 0.5, 1.0}
    freqs = [np.mean(dist == v) for v in (0.0, 0.5, 1.0)]
    assert freqs == pytest.approx([0.25, 0.5, 0.25], abs=0.02)
    # 95%: the 2.5% and 97.5% quantiles fall in the atoms at 0 and 1.
    assert bootstrap_ci([0.0, 1.0], n_resamples=20000) == (0.0, 1.0)
    # 40%: the 30% and 70% quantiles both fall in the atom at 0.5 (cumulative 0.25 .. 0.75).
    assert bootstrap_ci([0.0, 1.0], confidence=0.4, n_resamples=20000) == (0.5, 0.5)


def test_bootstrap_deterministic_by_seed_and_statistic_without_axis():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)
    low, high = bootstrap_ci(values, statistic=lambda a: float(np.max(a)), n_resamples=500)
    assert low <= high <= 9.0
    with pytest.raises(PGRLError, match="confidence"):
        bootstrap_ci(values, confidence=95)


def test_curve_band_interpolates_on_the_shared_range():
    # Two seeds: y = x and y = x + 2, sampled at different x; the shared range is [1, 9].
    curves = [([0, 5, 10], [0, 5, 10]), ([1, 9], [3, 11])]
    grid, mean, low, high = curve_band(curves, n_points=5, n_resamples=4000)
    assert grid == pytest.approx([1, 3, 5, 7, 9])
    assert mean == pytest.approx(grid + 1)
    # bootstrap means of two seeds are grid, grid+1 or grid+2; the 95% band spans the two curves
    assert low == pytest.approx(grid) and high == pytest.approx(grid + 2)


def test_curve_band_one_seed_and_nans():
    grid, mean, low, high = curve_band([([0, 1, 2, 3], [float("nan"), 1.0, 2.0, 3.0])], n_points=3)
    assert grid == pytest.approx([1, 2, 3])
    assert mean == pytest.approx([1, 2, 3]) and low == pytest.approx(mean) and high == pytest.approx(mean)
    a = curve_band([([0, 1], [0, 1]), ([0, 1], [1, 2])], n_points=2, seed=5)
    b = curve_band([([0, 1], [0, 1]), ([0, 1], [1, 2])], n_points=2, seed=5)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
