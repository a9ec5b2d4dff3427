"""Backlog-clearance metrics on a pending-applications series (one value per day)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Clearance:
    peak: float
    peak_day: int
    threshold: float
    cleared_day: int | None  # None: the backlog never fell below the threshold


def clearance(pending: np.ndarray, fraction_of_peak: float = 0.1,
              level: float | None = None) -> Clearance:
    """Peak of the backlog and the first day after it when the backlog is below a threshold.

    The threshold is ``level`` when given, otherwise ``fraction_of_peak`` times the peak. A
    backlog that never falls below it within the series is reported as not cleared (None),
    never as the last day.
    """
    pending = np.asarray(pending, dtype=float)
    if len(pending) == 0:
        return Clearance(0.0, 0, 0.0, None)
    peak_day = int(np.argmax(pending))
    peak = float(pending[peak_day])
    threshold = float(level) if level is not None else fraction_of_peak * peak
    below = np.flatnonzero(pending[peak_day + 1:] < threshold)
    return Clearance(peak, peak_day, threshold,
                     int(peak_day + 1 + below[0]) if len(below) else None)


def cohort_days_to_clear(remaining: np.ndarray, cohort_day: int, share: float) -> int | None:
    """Days after ``cohort_day`` until at most (1 - share) of the cohort is still pending."""
    remaining = np.asarray(remaining, dtype=float)
    size = remaining[cohort_day]
    if size <= 0:
        return 0
    done = np.flatnonzero(remaining[cohort_day:] <= (1 - share) * size + 1e-9)
    return int(done[0]) if len(done) else None
