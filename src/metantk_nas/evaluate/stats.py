"""Summary statistics of per-task accuracies, as the official ``mean_confidence_interval``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% confidence half-width ``sem · t_{0.975, n-1}`` (0 for a single value)."""
    from scipy import stats

    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values to summarise")
    if data.size == 1:
        return float(data[0]), 0.0
    return float(data.mean()), float(stats.sem(data) * stats.t.ppf(0.975, data.size - 1))
