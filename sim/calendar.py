"""Working calendar: maps simulation time (calendar days from start_date) to working time.

Officials work only on working days. A working day is one unit of *working time*; within a
working day, work progresses uniformly, so a review that is not finished at the end of a working
day continues on the next one, and no review can end on a day off. Under ``kind=every_day`` the
two clocks coincide (used for textbook M/M/c checks).

Under ``kind=china`` a year comes from the official schedule in the ``chinese-calendar`` package
while the package has it (:func:`china_calendar_years`). The State Council announces a year's
schedule only in November or December of the year before, so a later year is *estimated*
(:func:`estimated_days_off`): weekends off; the statutory holidays (2024 revision of the
national holidays regulation) with the breaks every schedule since 2025 has given around them,
the Spring Festival from its eve to its seventh day, 1-5 May and 1-7 October; New Year's Day,
Qingming, the Dragon Boat and Mid-Autumn festivals one day each, or the next weekday when that
day is already off; the lunar dates from the ``holidays`` package. Make-up working days are not
known in advance and are left out: the rule gives 2025 and 2026 exactly as published except
their make-up working weekends (5 and 6 days) and one bridge day (2026-01-02), so an estimated
year has about five working days too few. A run may reach at most :data:`MAX_ESTIMATED_YEARS`
estimated years; when it does, it warns (:func:`warn_if_estimated`) and its summary quotes
:func:`calendar_note`.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import warnings
from bisect import bisect_right

import numpy as np


def working_day_flags(first: dt.date, n_days: int, kind: str) -> np.ndarray:
    """1 for each working day in ``n_days`` days from ``first``, else 0.

    ``kind="china"`` follows China's State Council schedule (weekends and statutory holidays
    off, make-up working days on) as published in the maintained ``chinese-calendar`` package,
    and the estimate rule (:func:`estimated_days_off`) for years after its data.
    """
    if kind == "every_day":
        return np.ones(n_days, dtype=np.int8)
    import chinese_calendar

    last_official = china_calendar_years()[1]

    def working(d: dt.date) -> bool:
        if d.year <= last_official:
            return chinese_calendar.is_workday(d)
        return d.weekday() < 5 and d not in estimated_days_off(d.year)

    days = (first + dt.timedelta(days=i) for i in range(n_days))
    return np.fromiter((working(d) for d in days), dtype=np.int8, count=n_days)


# Years after the official data that a run may reach: the estimate drifts further from what
# the State Council will publish the further ahead it goes (the 2024 revision changed the
# holidays themselves), and the questions asked are of the next year or two.
MAX_ESTIMATED_YEARS = 2


@functools.cache
def china_calendar_years() -> tuple[int, int]:
    """First and last year the installed holiday data covers."""
    import chinese_calendar

    years = sorted({d.year for d in chinese_calendar.holidays})
    return years[0], years[-1]


def _festival(lunar, name: str) -> dt.date:
    """First day of a festival in the ``holidays`` package's China calendar (English names)."""
    days = lunar.get_named(name, lookup="exact")
    if not days:  # a renamed holiday in another version of the package: fail loudly
        import holidays

        raise RuntimeError(f"holidays {holidays.__version__}: no {name!r} in China's calendar")
    return min(days)


@functools.cache
def estimated_days_off(year: int) -> frozenset[dt.date]:
    """Weekdays and weekend days off in ``year`` under the estimate rule (see the module's
    docstring); every other weekday is a working day and no weekend day is."""
    import holidays

    lunar = holidays.China(years=year, observed=False, language="en_US")
    spring = _festival(lunar, "Chinese New Year (Spring Festival)")
    # The golden-week breaks: the Spring Festival from its eve to its seventh day, May 1-5 and
    # October 1-7, as in every schedule since the 2024 revision (2025, 2026).
    off = {spring + dt.timedelta(days=k) for k in range(-1, 7)}
    off |= {dt.date(year, 5, day) for day in range(1, 6)}
    off |= {dt.date(year, 10, day) for day in range(1, 8)}
    # One-day holidays: on a weekend or inside a break, the next working weekday is off instead
    # (2026: Qingming on Sunday 5 April, Monday off; 2025: Mid-Autumn inside National Day,
    # 8 October off).
    for day in (dt.date(year, 1, 1), _festival(lunar, "Tomb-Sweeping Day"),
                _festival(lunar, "Dragon Boat Festival"), _festival(lunar, "Mid-Autumn Festival")):
        while day.weekday() >= 5 or day in off:
            day += dt.timedelta(days=1)
        off.add(day)
    return frozenset(off)


def estimated_years(first: dt.date, last: dt.date) -> list[int]:
    """The years of ``first``..``last`` that ``kind=china`` estimates (after the data)."""
    last_official = china_calendar_years()[1]
    return [y for y in range(first.year, last.year + 1) if y > last_official]


def _years_text(years: list[int]) -> str:
    if len(years) == 1:
        return str(years[0])
    return f"{', '.join(map(str, years[:-1]))} and {years[-1]}"


def calendar_note(first: dt.date, last: dt.date) -> str | None:
    """One sentence saying which years of a ``calendar.kind=china`` run from ``first`` to
    ``last`` are estimated rather than official, or None when the data covers them all."""
    years = estimated_years(first, last)
    if not years:
        return None
    import chinese_calendar

    official = china_calendar_years()[1]
    return (f"Working days in {_years_text(years)} are estimated, not official: "
            f"chinese-calendar {chinese_calendar.__version__} has China's schedule up to "
            f"{official} only, so weekends, the statutory holidays and the usual breaks (Spring "
            f"Festival eve to its seventh day, 1-5 May, 1-7 October) are off and no make-up "
            f"working day is on (about five working days a year too few).")


class EstimatedCalendarWarning(UserWarning):
    """A run reaches years whose working calendar is estimated, not official."""


def warn_if_estimated(first: dt.date, last: dt.date) -> None:
    """Warn (:class:`EstimatedCalendarWarning`, with :func:`calendar_note`'s sentence) when a
    ``calendar.kind=china`` run from ``first`` to ``last`` reaches an estimated year."""
    note = calendar_note(first, last)
    if note is not None:
        warnings.warn(f"calendar.kind=china: {note}", EstimatedCalendarWarning, stacklevel=3)


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
        return self._wday[k] + (w - k) if k >= 0 else float(self._wday[0])

    def after(self, t: float, work: float) -> float:
        """Calendar time at which ``work`` working days after calendar time ``t`` are done:
        ``to_cal(to_work(t) + work)`` in one call, the same arithmetic (every delay of the
        model's officials and agencies goes through here)."""
        if self.identity:
            return t + work
        day = math.floor(t)
        i = day - self.first_day
        if i < 0:
            w = 0.0
        elif i >= self.n_days:
            w = self.n_working + (t - self.first_day - self.n_days)
        else:
            w = self._cum[i] + ((t - day) if self._is_working[i] else 0.0)
        w += work
        k = math.floor(w)
        if k >= self.n_working:
            return self.first_day + self.n_days + (w - self.n_working)
        return self._wday[k] + (w - k) if k >= 0 else float(self._wday[0])

    def span(self, t: float, work: float) -> tuple[float, float, float]:
        """Work of ``work`` working days taken up at calendar time ``t``: its start in working
        time and its calendar start and end (every review)."""
        if self.identity:
            return t, t, t + work
        w = self.to_work(t)
        return w, self.to_cal(w), self.to_cal(w + work)

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
