"""Independent replications of a scenario and the statistics computed over them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from sim.metrics import RunResult
from sim.params import Config
from sim.runner import simulate


def run_replications(params: Config, n: int, first: int = 0) -> list[RunResult]:
    """Replications first..first+n-1; replication r depends on (seed, r) only."""
    return [simulate(params, replication=r) for r in range(first, first + n)]


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (low, high) of independent replications."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half
