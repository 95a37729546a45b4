"""Small statistics used by the claim checks."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval ``(mean, low, high)`` over seeds."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def paired_diff_ci(a, b, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and CI of ``a - b`` paired by seed."""
    return mean_ci(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), confidence)


def bonferroni_z(alpha: float, k: int) -> float:
    """Two-sided z threshold that keeps the family-wise error of ``k`` tests at ``alpha``."""
    return float(stats.norm.ppf(1 - alpha / (2 * k)))
