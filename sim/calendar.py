"""Working calendar: maps simulation time (calendar days from start_date) to working time.

Officials work only on working days. A working day is one unit of *working time*; within a
working day, work progresses uniformly, so a review that is not finished at the end of a working
day continues on the next one, and no review can end on a day off. Under ``kind=every_day`` the
two clocks coincide (used for textbook M/M/c checks).
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_right

import numpy as np


def working_day_flags(first: dt.date, n_days: int, kind: str) -> np.ndarray:
    """1 for each working day in ``n_days`` days from ``first``, else 0.

    ``kind="china"`` follows China's State Council schedule (weekends and statutory holidays
    off, make-up working days on) as published in the maintained ``chinese-calendar`` package.
    """
    if kind == "every_day":
        return np.ones(n_days, dtype=np.int8)
    import chinese_calendar

    days = (first + dt.timedelta(days=i) for i in range(n_days))
    return np.fromiter((chinese_calendar.is_workday(d) for d in days), dtype=np.int8,
                       count=n_days)


def china_calendar_years() -> tuple[int, int]:
    """First and last year the installed holiday data covers."""
    import chinese_calendar

    years = sorted({d.year for d in chinese_calendar.holidays})
    return years[0], years[-1]


class WorkingClock:
    """Converts calendar time ``t`` (days since start, may be negative) to working time ``w``.

    ``w`` counts working days since the first calendar day in the table; both directions are
    O(1) table look-ups, so the conversion can sit in the hot path of the model.
    """

    def __init__(self, start: dt.date, first_day: int, n_days: int, kind: str):
        self.start = start
        self.first_day = first_day  # calendar day (relative to start) of the table's row 0
        self.n_days = n_days
        self.identity = kind == "every_day"
        flags = working_day_flags(start + dt.timedelta(days=first_day), n_days, kind)
        self.flags = flags
        self._is_working = flags.astype(bool).tolist()
        self._cum = np.concatenate(([0], np.cumsum(flags))).tolist()  # working days before row
        self._wday = (np.flatnonzero(flags) + first_day).tolist()  # calendar day of k-th w.d.
        self.n_working = len(self._wday)

    def to_work(self, t: float) -> float:
        """Working time reached at calendar time ``t``."""
        if self.identity:
            return t
        i = math.floor(t) - self.first_day
        if i < 0:
            return 0.0
        if i >= self.n_days:
            return self.n_working + (t - self.first_day - self.n_days)
        return self._cum[i] + ((t - math.floor(t)) if self._is_working[i] else 0.0)

    def to_cal(self, w: float) -> float:
        """Earliest calendar time at which working time ``w`` is reached."""
        if self.identity:
            return w
        k = math.floor(w)
        if k >= self.n_working:
            # Past the table (beyond the horizon): any later time will do.
            return self.first_day + self.n_days + (w - self.n_working)
        return self._wday[max(k, 0)] + (w - k if k >= 0 else 0.0)

    def work_at_days(self, n: int) -> np.ndarray:
        """Working time at the start of calendar days 0..n-1."""
        if self.identity:
            return np.arange(n, dtype=float)
        return np.array([self.to_work(d) for d in range(n)], dtype=float)

    def is_working(self, day: int) -> bool:
        """Whether calendar day ``day`` (relative to start) is a working day."""
        return self.identity or self._is_working[day - self.first_day]

    def working_days_between(self, day_from: int, day_to: int) -> int:
        """Number of working days in calendar days [day_from, day_to)."""
        if self.identity:
            return day_to - day_from
        return self._cum[day_to - self.first_day] - self._cum[day_from - self.first_day]

    def next_working_day(self, day: int) -> int:
        """First working calendar day >= ``day``."""
        if self.identity:
            return day
        k = bisect_right(self._wday, day - 1)
        return self._wday[k] if k < self.n_working else day
