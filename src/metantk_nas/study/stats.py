"""Rank correlations and their bootstrap intervals, in plain numpy (no scipy at run time).

A proxy is judged by how well its ranking of architectures agrees with their trained accuracy, as in
Mellor et al. (NASWOT, ICML 2021) and Abdelfattah et al. (Zero-Cost Proxies, ICLR 2021): Kendall's τ and
Spearman's ρ over architectures. A NaN on either side makes a correlation NaN (as scipy's default
``nan_policy="propagate"``); infinite values are ranked as the largest or smallest (a singular kernel's
``-inf`` NASWOT score is a valid, if extreme, ranking).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

_Statistic = Callable[[np.ndarray, np.ndarray], float]


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float64 vectors of one length (paired values of the same architectures)."""
    xs, ys = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"paired values differ in length: {xs.size} and {ys.size}")
    return xs, ys


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span (the ranks Spearman's ρ correlates).

    Ties are found by equality of sorted neighbours, not by their difference, so equal infinities tie.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(data, kind="mergesort")
    ordered = data[order]
    boundaries = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [data.size]))
    ranks = np.empty(data.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i − v_j) for every pair, by comparison (a difference of equal infinities would be NaN)."""
    column = values[:, None]
    return (column > values).astype(np.int64) - (column < values).astype(np.int64)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b (Kendall 1945, "The treatment of ties in ranking problems"): the tie-corrected τ.

    τ_b = (P − Q) / sqrt((n0 − n1)(n0 − n2)), P and Q the concordant and discordant pairs, n0 = n(n−1)/2, n1
    and n2 the pairs tied in x and in y. τ-b rather than τ-a because proxies tie (params, FLOPs, a −inf
    NASWOT) and ties must not count as disagreement. O(n²) in memory and time: fine for a few hundred
    architectures. NaN when either side is constant (no pair to order) or holds a NaN.
    """
    xs, ys = _pair(x, y)
    if xs.size < 2 or np.isnan(xs).any() or np.isnan(ys).any():
        return float("nan")
    sx, sy = _signs(xs), _signs(ys)
    # Over all ordered pairs every unordered pair counts twice, in numerator and denominator alike.
    untied = float(np.sum(sx * sx)) * float(np.sum(sy * sy))
    if untied == 0.0:
        return float("nan")
    return float(np.sum(sx * sy) / np.sqrt(untied))


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: the Pearson correlation of the average ranks (:func:`average_ranks`), so ties are handled
    as scipy's ``spearmanr`` handles them. NaN when either side is constant or holds a NaN."""
    xs, ys = _pair(x, y)
    if xs.size < 2 or np.isnan(xs).any() or np.isnan(ys).any():
        return float("nan")
    rx, ry = average_ranks(xs), average_ranks(ys)
    rx -= rx.mean()
    ry -= ry.mean()
    scale = float(np.sqrt(np.sum(rx * rx) * np.sum(ry * ry)))
    if scale == 0.0:
        return float("nan")
    return float(np.clip(np.sum(rx * ry) / scale, -1.0, 1.0))


def bootstrap_interval(x: Sequence[float], y: Sequence[float], statistic: _Statistic, *, resamples: int = 2000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y)`` over architectures (Efron & Tibshirani 1993, "An
    Introduction to the Bootstrap", ch. 13).

    Each replicate draws n (x, y) pairs with replacement, so an architecture's score and accuracy stay
    together: the interval says how much the correlation depends on which architectures were sampled.
    Replicates where the statistic is undefined (NaN: a resample of one repeated architecture is constant)
    are left out. The indices come from ``np.random.default_rng(seed)`` alone, so two calls with one seed
    and one n resample the same architectures: intervals of different proxies are paired.

    Returns:
        (low, high): the (1 − level)/2 and (1 + level)/2 percentiles; (nan, nan) when no replicate is defined.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), not {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, not {resamples}")
    xs, ys = _pair(x, y)
    if xs.size == 0:
        return float("nan"), float("nan")
    indices = np.random.default_rng(seed).integers(0, xs.size, size=(resamples, xs.size))
    replicates = np.array([statistic(xs[index], ys[index]) for index in indices], dtype=np.float64)
    if np.isnan(replicates).all():
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(replicates, [tail, 100.0 - tail])
    return float(low), float(high)
