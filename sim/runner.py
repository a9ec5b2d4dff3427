"""Run the model: one replication (calendar, random streams, simulate, tabulate), and a
scenario's independent replications aggregated into :class:`sim.results.Results`.

Replication r depends on (seed, r) only: the same r sees the same random numbers in every
scenario (common random numbers), and results are identical whatever the number of
processes or the executor (:func:`sim.executor.parallel_iter`, the pool every study uses).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Iterator
from typing import Any

from sim import ensemble, keys, metrics
from sim.calendar import WorkingClock
from sim.executor import parallel_iter
from sim.metrics import RunResult
from sim.model import LicenceModel, make_streams
from sim.params import CalendarKind, Config, EventConfig, ExecutorConfig
from sim.policies import parse_date
from sim.results import Results, flatten_figures

# Working-calendar rows kept after the horizon so reviews running past it finish on real days.
_CALENDAR_TAIL_DAYS = 90
# Replications whose whole results replicate keeps by default (Results.runs): a hundred take
# 10 MB (mmc, 30 days) to 100 MB (the baseline over 2025); beyond, only what the tables need of
# each is kept.
KEEP_RUNS = 100


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
    """The working clock, covering any initial backlog's past and a tail after the horizon.

    Under ``calendar.kind=china`` years after the official data are estimated
    (sim.calendar.estimated_days_off); a run whose own days reach one warns. The tail alone
    does not warn: nothing after the horizon reaches the results."""
    start = parse_date(params.start_date)
    first_day = -math.ceil(params.initial_backlog.max_waited_days) - 1
    last = start + dt.timedelta(days=n_days + _CALENDAR_TAIL_DAYS)
    if params.calendar.kind == CalendarKind.china:
        from sim.calendar import warn_if_estimated

        warn_if_estimated(start, start + dt.timedelta(days=n_days - 1))
    return WorkingClock(start, first_day, (last - start).days - first_day, params.calendar.kind)


def simulate(params: Config, replication: int = 0,
             keep_applications: bool | None = None) -> RunResult:
    """One replication of the scenario; replication r uses streams from (seed, r) only."""
    n_days = horizon_days(params)
    clock = make_clock(params, n_days)
    keep = params.output.applications if keep_applications is None else keep_applications
    model = LicenceModel(params, make_streams(params.seed, replication), clock, n_days, keep,
                         cohort_day(params, n_days))
    recorder = model.run()
    return metrics.tabulate(params, recorder, clock, model.regimes, n_days)


@functools.cache
def figure_keys() -> frozenset[str]:
    """Every dotted key of summary.json's figures (the columns of replications.csv), from a
    few days of a small reference run with a cohort and an event set, so that every block is
    there: what an objective or a solver's target may name."""
    p = Config(name="reference", horizon_days=3, replications=1)
    p.clearance.cohort_date, p.clearance.event = p.start_date, "event"
    p.timeline = {"event": EventConfig(date=p.start_date, label="event")}
    return frozenset(flatten_figures(simulate(p).summary, booleans=True))


def run_replication(params: Config, replication: int,
                    members: list[dict[str, Any]] | None = None) -> RunResult:
    """Replication ``replication`` alone, exactly as a run of many replications runs it: with
    the ensemble member it draws when ``members`` are given (its index in the summary's
    ``ensemble_member``), else with ``params`` as they are. Replications 0..n-1 one by one
    give the rows of a run of n (:func:`iter_replications`)."""
    result = simulate(ensemble.replication_params(params, replication, members),
                      replication=replication)
    if members:
        result.summary["ensemble_member"] = ensemble.member_index(params.seed, replication,
                                                                  len(members))
    return result


def _run_one(args: tuple[Config, int, list[dict[str, Any]] | None]) -> RunResult:
    """Replication r, with its ensemble member's parameters when an ensemble is on (drawn
    here, in the worker: a task is the scenario's parameters, shared, not a copy of them)."""
    return run_replication(*args)


# Settings that change neither a replication's numbers nor what it is of: left out of the
# progress bar's label, which tells apart the runs of one notebook cell.
_NOT_IN_LABEL = ("replications", "jobs", "resume", "executor", "output", "objective")
_LABEL_CHARS = 70  # the label's changes, shortened beyond this (a bar fits a line)


def run_label(params: Config) -> str:
    """The progress bar's words for a run: the scenario and what the user set on it (the
    settings ``calibration.keep`` names, with their values), shortened to a few whole
    changes and how many more: e.g. ``baseline_2025 (officials.count=8, end_date=2025-08-31)``;
    the scenario's name alone when the user set nothing on it."""
    changes = []
    for key in dict.fromkeys(params.calibration.keep):
        if key.split(".")[0].startswith(_NOT_IN_LABEL):
            continue
        try:
            value = keys.plain(keys.get(params, key))
        except (KeyError, IndexError, ValueError, TypeError):
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        changes.append(f"{key}={text if len(text) <= 24 else text[:23] + '…'}")
    shown: list[str] = []
    for i, change in enumerate(changes):  # whole changes, then how many more
        if shown and len(", ".join([*shown, change])) > _LABEL_CHARS:
            shown.append(f"+{len(changes) - i} more")
            break
        shown.append(change)
    return f"{params.name} ({', '.join(shown)})" if shown else params.name


def iter_replications(params: Config, n: int | None = None, jobs: int | None = None,
                      first: int = 0, progress: bool | None = None,
                      executor: ExecutorConfig | None = None) -> Iterator[RunResult]:
    """Replications first..first+n-1 on ``jobs`` workers of ``executor`` (default
    ``params.executor``), each handed over as it comes, in order; order and numbers depend on
    neither. They run through :func:`sim.executor.parallel_iter`, the pool every study uses."""
    n = params.replications if n is None else n
    jobs = params.jobs if jobs is None else jobs
    members = ensemble.ensemble_members(params) if params.calibration.ensemble else None
    tasks = [(params, r, members) for r in range(first, first + n)]
    return parallel_iter(_run_one, tasks, jobs, desc=f"{run_label(params)}: replications",
                         progress=progress, unit="rep",
                         executor=params.executor if executor is None else executor)


def run_replications(params: Config, n: int | None = None, jobs: int | None = None,
                     first: int = 0, progress: bool | None = None,
                     executor: ExecutorConfig | None = None) -> list[RunResult]:
    """Replications first..first+n-1 as a list (:func:`iter_replications`)."""
    return list(iter_replications(params, n, jobs, first, progress, executor))


def replicate(params: Config, n: int | None = None, jobs: int | None = None,
              progress: bool | None = None, executor: ExecutorConfig | None = None,
              keep_runs: bool | None = None) -> Results:
    """Run a scenario's replications and aggregate each as it comes, so that memory grows by a
    few kilobytes a replication. ``keep_runs``: keep every replication's whole result too
    (``Results.runs``); by default when they are at most ``KEEP_RUNS`` (a look at single
    replications in a notebook) or when applications are written (applications.csv is made
    from them)."""
    n = params.replications if n is None else n
    if keep_runs is None:
        keep_runs = n <= KEEP_RUNS or params.output.applications
    return Results(params, iter_replications(params, n, jobs, progress=progress,
                                             executor=executor), keep_runs=keep_runs)
