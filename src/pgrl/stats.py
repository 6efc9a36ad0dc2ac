"""Statistics for comparing runs across seeds: IQM, percentile bootstrap, curve bands.

Few seeds make noisy means, so reports give the interquartile mean (robust to one bad seed)
with a bootstrap confidence interval, and learning curves with a bootstrap band across seeds.

IQM convention.  The sorted sample ``x_(0) <= ... <= x_(n-1)`` is read as a distribution in
which value ``x_(i)`` covers the quantile interval ``[i/n, (i+1)/n)``.  The IQM is the mean of
that distribution over the quantiles ``[0.25, 0.75]``: each value is weighted by how much of its
interval lies inside, so a value that straddles a quartile counts with a fractional weight.
For n divisible by 4 this is exactly ``scipy.stats.trim_mean(x, 0.25)`` (the middle n/2 values);
for other n, scipy drops whole values (``int(0.25 n)`` at each end) while this keeps the
straddling ones with their fraction.  Example, n = 5: the weights are 0.75, 1, 0.75 on the 2nd,
3rd and 4th values (divided by 2.5), so ``iqm([1, 2, 4, 8, 16]) = (1.5 + 4 + 6) / 2.5 = 4.6``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pgrl.errors import PGRLError


def iqm_weights(n: int) -> np.ndarray:
    """Weights (summing to 1) of the sorted values of an n-sample in its interquartile mean."""
    if n < 1:
        raise PGRLError("the interquartile mean needs at least one value; got an empty sample")
    edges = np.arange(n + 1) / n
    overlap = np.clip(np.minimum(edges[1:], 0.75) - np.maximum(edges[:-1], 0.25), 0.0, None)
    return overlap / overlap.sum()


def iqm(values, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean along ``axis`` (fractional weights at the quartiles; see the module doc)."""
    x = np.sort(np.asarray(values, dtype=float), axis=axis)
    weights = iqm_weights(x.shape[axis])
    out = np.tensordot(np.moveaxis(x, axis, -1), weights, axes=([-1], [0]))
    return float(out) if np.ndim(out) == 0 else out


def _apply(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """statistic over the last axis of ``samples`` [..., n]; vectorized when it takes ``axis``."""
    try:
        return np.asarray(statistic(samples, axis=-1), dtype=float)
    except TypeError:
        return np.apply_along_axis(statistic, -1, samples).astype(float)


def bootstrap_distribution(
    values, statistic: Callable = np.mean, n_resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """``statistic`` of ``n_resamples`` resamples (with replacement, same size) of ``values``."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise PGRLError("bootstrap needs at least one value; got an empty sample")
    if n_resamples < 1:
        raise PGRLError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, x.size, size=(n_resamples, x.size))
    return _apply(statistic, x[indices])


def bootstrap_ci(
    values,
    statistic: Callable = np.mean,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap ``confidence`` interval (low, high) of ``statistic``; the same seed gives the same interval.

    ``statistic(array, axis=-1)`` is called once on all resamples (np.mean, np.median, ``iqm``);
    a statistic without an ``axis`` argument is applied resample by resample.
    """
    if not 0.0 < confidence < 1.0:
        raise PGRLError(f"confidence must be between 0 and 1, got {confidence}")
    dist = bootstrap_distribution(values, statistic, n_resamples, seed)
    alpha = 1.0 - confidence
    low, high = np.quantile(dist, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)


def curve_band(
    curves: Sequence[tuple[Sequence[float], Sequence[float]]],
    n_points: int = 100,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve across seeds and its percentile-bootstrap band: (grid, mean, low, high), each [n_points].

    Each seed's (x, y) curve (x increasing; NaN points are dropped) is linearly interpolated onto
    a common grid spanning the x range every seed covers (from the largest first x to the smallest
    last x), so no curve is extrapolated.  Seeds are resampled with replacement, all grid points
    at once.  With one seed the band is the curve itself.
    """
    cleaned = []
    for x, y in curves:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        if keep.any():
            cleaned.append((x[keep], y[keep]))
    if not cleaned:
        raise PGRLError("curve_band needs at least one curve with finite points")
    start = max(x[0] for x, _ in cleaned)
    stop = min(x[-1] for x, _ in cleaned)
    if stop < start:  # the curves do not overlap: fall back to the union
        start, stop = min(x[0] for x, _ in cleaned), max(x[-1] for x, _ in cleaned)
    grid = np.linspace(start, stop, n_points)
    ys = np.stack([np.interp(grid, x, y) for x, y in cleaned])  # [S, G]
    mean = ys.mean(axis=0)
    if not 0.0 < confidence < 1.0:
        raise PGRLError(f"confidence must be between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, ys.shape[0], size=(n_resamples, ys.shape[0]))  # [R, S]
    resampled_means = ys[indices].mean(axis=1)  # [R, G]
    alpha = 1.0 - confidence
    low, high = np.quantile(resampled_means, [alpha / 2, 1.0 - alpha / 2], axis=0)
    return grid, mean, low, high
