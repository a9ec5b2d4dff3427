"""Run the model once: build the calendar and random streams, simulate, tabulate."""

from __future__ import annotations

import datetime as dt
import math

from sim import metrics
from sim.calendar import WorkingClock
from sim.model import LicenceModel, make_streams
from sim.params import Config
from sim.policies import parse_date

# Working-calendar rows kept after the horizon so reviews running past it finish on real days.
_CALENDAR_TAIL_DAYS = 90


def horizon_days(params: Config) -> int:
    """Number of simulated calendar days (end_date inclusive, or horizon_days)."""
    if params.end_date is not None:
        return (parse_date(params.end_date) - parse_date(params.start_date)).days + 1
    return int(params.horizon_days)


def cohort_day(params: Config, n_days: int) -> int | None:
    """Day index of clearance.cohort_date, or None when unset or outside the horizon."""
    if params.clearance.cohort_date is None:
        return None
    day = (parse_date(params.clearance.cohort_date) - parse_date(params.start_date)).days
    return day if 0 <= day < n_days else None


def make_clock(params: Config, n_days: int) -> WorkingClock:
    """The working clock, covering any initial backlog's past and a tail after the horizon."""
    start = parse_date(params.start_date)
    first_day = -math.ceil(params.initial_backlog.max_waited_days) - 1
    last = start + dt.timedelta(days=n_days + _CALENDAR_TAIL_DAYS)
    if params.calendar.kind == "china":
        from sim.calendar import china_calendar_years

        last = min(last, dt.date(china_calendar_years()[1], 12, 31))
    return WorkingClock(start, first_day, (last - start).days - first_day, params.calendar.kind)


def simulate(params: Config, replication: int = 0,
             keep_applications: bool | None = None) -> metrics.RunResult:
    """One replication of the scenario; replication r uses streams from (seed, r) only."""
    n_days = horizon_days(params)
    clock = make_clock(params, n_days)
    keep = params.output.applications if keep_applications is None else keep_applications
    model = LicenceModel(params, make_streams(params.seed, replication), clock, n_days, keep,
                         cohort_day(params, n_days))
    recorder = model.run()
    return metrics.tabulate(params, recorder, clock, model.regimes, n_days)


def parallel_map(fn, tasks: list, jobs: int = 1, desc: str = "", progress: bool | None = None,
                 unit: str = "task") -> list:
    """``[fn(t) for t in tasks]`` in ``jobs`` local processes, in order; the one pool every
    study uses. Results do not depend on ``jobs``: each task carries its own seed. A progress
    bar shows on a terminal (stderr) or in a notebook, never in a log file."""
    import sys
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    show = (sys.stderr.isatty() or _in_notebook()) if progress is None else progress
    out = []
    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=not show or len(tasks) < 2,
              file=sys.stderr) as bar:
        if jobs <= 1 or len(tasks) < 2:
            for task in tasks:
                out.append(fn(task))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
                for result in pool.map(fn, tasks):
                    out.append(result)
                    bar.update()
    return out


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (tqdm.auto then draws a notebook bar)."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
