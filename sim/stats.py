"""Statistics over independent replications, in one place: means, confidence intervals,
predictive intervals, bands over time, how many replications a figure needs, and the one rule
that keeps every interval inside its figure's possible range."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def figure_kind(figure: str) -> str:
    """'days', 'share' or 'count': what a figure (a dotted summary key or a column) measures."""
    name = figure.rsplit(".", 1)[-1]
    if "days" in name:
        return "days"
    if "share" in name or "utilisation" in name or "fraction" in name:
        return "share"
    return "count"


def figure_range(figure: str) -> tuple[float, float]:
    """The values a figure can take: a share in [0, 1], a count or a number of days >= 0."""
    return (0.0, 1.0) if figure_kind(figure) == "share" else (0.0, math.inf)


def within_range(value, figure: str):
    """An interval's bound (a number, None or an array) cut to the figure's possible range:
    a t interval around a mean near 0 or 1 reaches past it (no count below 0, no share above
    100 %). Every table and report that prints an interval uses this rule. Missing stays
    missing."""
    low, high = figure_range(figure)
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return np.clip(value, low, high)  # NaN stays NaN
    if isinstance(value, float) and math.isnan(value):
        return value
    return min(max(float(value), low), high)


def t_quantile(df: int, p: float) -> float:
    """Student t quantile. scipy.special is imported here, on first use: a run of one
    replication, which has no interval, never pays its import (about 0.2 s CPU)."""
    from scipy.special import stdtrit  # the t quantile, without importing scipy.stats

    return float(stdtrit(df, p))


def t_half_width(values: np.ndarray, level: float = 0.95, axis: int = 0) -> np.ndarray:
    """Half-width of the Student-t confidence interval of the mean along ``axis``."""
    n = values.shape[axis]
    if n < 2:
        return np.full(np.delete(values.shape, axis), np.nan)
    sd = values.std(axis=axis, ddof=1)
    return t_quantile(n - 1, 0.5 + level / 2) * sd / math.sqrt(n)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and confidence interval (low, high) of independent replications; NaNs ignored."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    half = float(t_half_width(x, level)) if len(x) > 1 else math.nan
    return mean, mean - half, mean + half


def band(matrix: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column mean and confidence band of a (replications x days) matrix."""
    matrix = np.asarray(matrix, dtype=float)
    mean = matrix.mean(axis=0)
    half = t_half_width(matrix, level, axis=0)
    return mean, mean - half, mean + half


def percentile_band(matrix: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Per-column predictive interval of a (replications x days) matrix: the (1 - level) / 2
    and (1 + level) / 2 percentiles over the rows (numpy's linear interpolation).

    Where one more replication would fall with probability ~ ``level``: unlike the band of the
    mean, it does not shrink as replications grow. NaN with fewer than two replications.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[0] < 2:
        empty = np.full(matrix.shape[1:], np.nan)
        return empty, empty.copy()
    low, high = np.percentile(matrix, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return low, high


def predictive_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Predictive interval (low, high) of independent replications' values; NaNs ignored,
    NaN with fewer than two defined values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    low, high = percentile_band(x, level)
    return float(low), float(high)


def replications_needed(values: Sequence[float], relative_precision: float,
                        level: float = 0.95) -> int:
    """Replications for the CI half-width to fall within ``relative_precision`` of the mean.

    Confidence-interval half-width method (Law & Kelton; Hoad et al.): from a pilot sample of
    n0 replications, the smallest n with t(n-1) * s / sqrt(n) <= relative_precision * |mean|.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        raise ValueError("need at least two pilot replications")
    mean, sd = abs(x.mean()), x.std(ddof=1)
    if sd == 0:
        return 2
    if mean == 0:
        raise ValueError("relative precision is undefined for a mean of zero")
    n = 2
    while t_quantile(n - 1, 0.5 + level / 2) * sd / math.sqrt(n) > relative_precision * mean:
        n += 1
        if n > 1_000_000:
            break
    return n
