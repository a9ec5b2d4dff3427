"""What China's customs would record: licensed shipments, and a monthly export index.

Customs counts magnets when they leave China; the model counts licences. This module is the
observation operator between them, one assumption per field of ``exports`` (ExportsConfig):

- An approved application is one shipment of the mean size; it leaves China
  ``shipping_lag_days`` after the approval. Tonnes a shipment cancel out of an index, so no
  size is assumed.
- A pending application is a shipment waiting: demand held up by the queue is deferred, not
  lost (lost demand is ``withdrawal``: a withdrawn application never ships). Pent-up filings
  (``arrivals.surges``) ship like any other, so their calibrated size says how much the April
  surge added to the year.
- A renewed licence carries ``renewal_weight`` of a shipment: 1, a repeat order on top of the
  steady filings; 0, it extends a licence whose goods already left.
- Only ``controlled_share`` of the pre-control tonnes needs a licence; the rest flows as before.
- Before the controls, and outside the licensed flow, exports follow China's working days (the
  Lunar New Year dip): a month's flow is its working days times the flow of one.
- ``demand_level``: the flow just before the controls against the reference level of the
  customs series (the reference year's monthly mean).

The index of month m, for one destination d or all of them:

    index = level * [(1 - s) * W_m / W_ref + s * S_m / (r_d * W_ref)]

W_m: working days of the month; W_ref: the reference year's working days / 12; r_d: the
steady filings to d a working day (``arrivals.rate_per_day`` times d's share), the model's own
pre-control flow; S_m: licensed shipments to d leaving in the month (before the start date, the
pre-control flow r_d on each working day). Customs' index of the month is its tonnes / (the
reference year's tonnes / 12), :mod:`sim.observations`.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np

from sim.calendar import working_day_flags
from sim.params import Config, ExportsConfig

REFERENCE_YEAR = 2024  # the customs series' pre-control reference level: its monthly mean


def shipments(approved: np.ndarray, renewal: np.ndarray, e: ExportsConfig) -> np.ndarray:
    """Shipments leaving China each day, per class: ``approved`` (classes, days) moved
    ``shipping_lag_days`` later, renewals weighted by ``renewal_weight``. Shipments due after
    the last day are not in the table (they leave after the run)."""
    approved = np.asarray(approved, dtype=float)
    weight = np.where(np.asarray(renewal, dtype=bool), e.renewal_weight, 1.0)[:, None]
    out = np.zeros_like(approved)
    lag = e.shipping_lag_days
    if lag < approved.shape[1]:
        out[:, lag:] = approved[:, :approved.shape[1] - lag] * weight
    return out


def month_end(month: str) -> dt.date:
    """The last day of ``YYYY-MM``."""
    first = dt.date.fromisoformat(f"{month}-01")
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


@lru_cache(maxsize=64)
def _flags(first: dt.date, n_days: int, kind: str) -> np.ndarray:
    flags = working_day_flags(first, n_days, kind)
    flags.setflags(write=False)
    return flags


def _flow_kind(params: Config) -> str:
    """The days the steady flow runs on: working days, or every day if filings are."""
    return str(params.calendar.kind) if params.arrivals.working_days_only else "every_day"


def reference_working_days(params: Config) -> float:
    """W_ref: working days of the reference year, a month."""
    first = dt.date(REFERENCE_YEAR, 1, 1)
    n = (dt.date(REFERENCE_YEAR + 1, 1, 1) - first).days
    return float(_flags(first, n, _flow_kind(params)).sum()) / 12.0


def destination_share(params: Config, destination: str | None) -> float:
    """The share of the steady filings bound for ``destination`` (None: all)."""
    if destination is None:
        return 1.0
    return float(params.classes.destination_shares.get(destination, 0.0))


def months_of(params: Config, n_days: int) -> list[str]:
    """The months an index is given for: from January of the start's year (the months before
    the controls show the pre-control level and its seasonality) to the last month the run
    covers to its end."""
    start = dt.date.fromisoformat(params.start_date)
    last = start + dt.timedelta(days=n_days - 1)
    out, y, m = [], start.year, 1
    while (y, m) <= (last.year, last.month):
        month = f"{y}-{m:02d}"
        if month_end(month) <= last:
            out.append(month)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def index_table(params: Config, n_days: int, total: np.ndarray,
                by_destination: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """{series: {month: index}} for all destinations together (``total``) and each one, from
    their daily licensed shipments."""
    months = months_of(params, n_days)
    series = {"total": (None, total), **{d: (d, v) for d, v in by_destination.items()}}
    return {name: dict(zip(months, (float(x) for x in monthly_index(params, months, v, dest)),
                           strict=True))
            for name, (dest, v) in series.items()}


def monthly_index(params: Config, months: list[str], daily_shipments: np.ndarray,
                  destination: str | None = None) -> np.ndarray:
    """The model's export index of each month ``YYYY-MM`` (module docstring) for one
    destination (None: all), from the run's daily licensed shipments to it (day 0 is
    ``start_date``). NaN for a month the run does not reach to its last day."""
    e = params.exports
    start = dt.date.fromisoformat(params.start_date)
    n_run = len(daily_shipments)
    rate = params.arrivals.rate_per_day * destination_share(params, destination)
    w_ref = reference_working_days(params)
    kind = _flow_kind(params)
    out = np.full(len(months), np.nan)
    if rate <= 0 or w_ref <= 0:
        return out
    for k, month in enumerate(months):
        first, last = dt.date.fromisoformat(f"{month}-01"), month_end(month)
        if (last - start).days >= n_run:
            continue
        n = (last - first).days + 1
        flags = _flags(first, n, kind)
        offset = (first - start).days  # day index of the month's first day in the run
        before = max(min(-offset, n), 0)  # the month's days before the start date
        licensed = rate * float(flags[:before].sum())
        if before < n:
            licensed += float(daily_shipments[offset + before:offset + n].sum())
        w_m = float(flags.sum())
        s = e.controlled_share
        out[k] = e.demand_level * ((1 - s) * w_m / w_ref + s * licensed / (rate * w_ref))
    return out
