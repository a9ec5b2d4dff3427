"""From the recorder's counters to tidy tables and headline figures (one place for both)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.calendar import WorkingClock
from sim.params import Config
from sim.policies import Regime, parse_date
from sim.recorder import CLASS_DIMS, N_CLASSES, OUTCOMES, Recorder, class_labels, interval_area

GROUPINGS = {"destination": "destination", "trusted": "trusted", "military": "military",
             "elements": "elements", "renewal": "renewal"}


@dataclass
class RunResult:
    """One replication: the daily table, the per-class table, applications and headline figures."""

    daily: pd.DataFrame
    by_class: pd.DataFrame
    applications: pd.DataFrame | None
    summary: dict[str, Any]


def _per_class(values: list, n_days: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(N_CLASSES, n_days)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def tabulate(params: Config, rec: Recorder, clock: WorkingClock, regimes: list[Regime],
             n_days: int) -> RunResult:
    start = parse_date(params.start_date)
    dates = pd.date_range(start, periods=n_days, freq="D")
    days = np.arange(n_days)

    arrivals = _per_class(rec.arrivals, n_days)
    outcomes = {name: _per_class(rec.outcomes[k], n_days) for k, name in enumerate(OUTCOMES)}
    pending = np.cumsum(arrivals - sum(outcomes.values()), axis=1)
    late = np.cumsum(_per_class(rec.late_add, n_days), axis=1) - np.cumsum(
        _per_class(rec.late_sub, n_days), axis=1)

    # Time-averages from the per-day event sums; calendar time for the queue, working time
    # for the officials (who do not work on days off).
    cal_edges = np.arange(1, n_days + 1, dtype=float)
    queue_area = np.diff(interval_area(rec.queue_in, rec.queue_out, cal_edges), prepend=0.0)
    work_edges = np.array([clock.to_work(d) for d in range(n_days + 1)])
    busy = np.diff(interval_area(rec.review_in, rec.review_out, work_edges[1:]), prepend=0.0)
    working = np.diff(work_edges)
    regime_days = [r.day for r in regimes]
    officials = np.array([regimes[np.searchsorted(regime_days, d, side="right") - 1]
                          .params.officials.count for d in days])
    capacity = officials * working
    with np.errstate(invalid="ignore", divide="ignore"):
        utilisation = np.where(capacity > 0, busy / capacity, np.nan)

    waiting = np.cumsum(rec.queue_in.n) - np.cumsum(rec.queue_out.n)
    in_review = np.cumsum(rec.review_in.n) - np.cumsum(rec.review_out.n)
    daily = pd.DataFrame({
        "date": dates.strftime("%Y-%m-%d"),
        "day": days,
        "working_day": working.astype(int),
        "officials": officials,
        "arrivals": arrivals.sum(0),
        "approved": outcomes["approved"].sum(0),
        "denied": outcomes["denied"].sum(0),
        "withdrawn": outcomes["withdrawn"].sum(0),
        "pending": pending.sum(0),
        "waiting": waiting,
        "in_review": in_review,
        "mean_waiting": queue_area,
        "utilisation": utilisation,
        "past_statutory_limit": late.sum(0),
    })

    by_class = _by_class_table(dates, arrivals, outcomes, pending, late)
    apps = _applications_table(rec, clock, start) if rec.applications is not None else None

    w = params.warmup_days
    peak = int(np.argmax(daily["pending"].to_numpy())) if n_days else 0
    span = n_days - w
    wait_n = sum(rec.wait_n)
    decided = sum(rec.decided_n)
    summary = {
        "scenario": params.name,
        "start_date": params.start_date,
        "end_date": (start + dt.timedelta(days=n_days - 1)).isoformat(),
        "days": n_days,
        "warmup_days": w,
        "totals": {"arrivals": int(arrivals.sum()),
                   **{k: int(v.sum()) for k, v in outcomes.items()}},
        "pending_end": int(pending.sum(0)[-1]) if n_days else 0,
        "peak_pending": int(daily["pending"].iloc[peak]) if n_days else 0,
        "peak_pending_date": daily["date"].iloc[peak] if n_days else None,
        "mean_wait_days": _ratio(sum(rec.wait_sum), wait_n),
        "p50_wait_days": rec.wait_hist.quantile(0.5),
        "p90_wait_days": rec.wait_hist.quantile(0.9),
        "mean_time_to_decision_days": _ratio(sum(rec.ttd_sum), decided),
        "utilisation": _ratio(busy[w:].sum(), capacity[w:].sum()),
        "mean_waiting": _ratio(queue_area[w:].sum(), span),
        "arrival_rate_per_day": _ratio(arrivals[:, w:].sum(), span),
        "reviews_started": wait_n,
        "decisions": decided,
        "share_decided_late": _ratio(sum(rec.late_n), decided),
        "past_statutory_limit_end": int(late.sum(0)[-1]) if n_days else 0,
        "extra_review_rounds": int(sum(rec.rounds)),
        "by_group": _group_summaries(rec, arrivals, outcomes, pending, late),
    }
    return RunResult(daily, by_class, apps, summary)


def _by_class_table(dates, arrivals, outcomes, pending, late) -> pd.DataFrame:
    """Long format: one row per (date, class) for the classes that saw any application."""
    active = np.flatnonzero(arrivals.sum(1))
    frames = []
    for c in active:
        frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), **class_labels(int(c)),
                              "arrivals": arrivals[c],
                              **{k: v[c] for k, v in outcomes.items()},
                              "pending": pending[c], "past_statutory_limit": late[c]})
        frames.append(frame)
    if not frames:
        columns = ["date", *[n for n, _ in CLASS_DIMS], "arrivals", *OUTCOMES, "pending",
                   "past_statutory_limit"]
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def _group_summaries(rec: Recorder, arrivals, outcomes, pending, late) -> dict[str, Any]:
    """Headline figures per destination, trusted/untrusted, civilian/military, ..."""
    labels = [class_labels(c) for c in range(N_CLASSES)]
    out: dict[str, Any] = {}
    for dim, values in CLASS_DIMS:
        out[dim] = {}
        for value in values:
            idx = [c for c in range(N_CLASSES) if labels[c][dim] == value]
            decided = sum(rec.decided_n[c] for c in idx)
            waits = sum(rec.wait_n[c] for c in idx)
            out[dim][str(value)] = {
                "arrivals": int(arrivals[idx].sum()),
                **{k: int(v[idx].sum()) for k, v in outcomes.items()},
                "pending_end": int(pending[idx, -1].sum()) if pending.shape[1] else 0,
                "mean_wait_days": _ratio(sum(rec.wait_sum[c] for c in idx), waits),
                "mean_time_to_decision_days": _ratio(sum(rec.ttd_sum[c] for c in idx), decided),
                "share_decided_late": _ratio(sum(rec.late_n[c] for c in idx), decided),
                "past_statutory_limit_end": int(late[idx, -1].sum()) if late.shape[1] else 0,
                "extra_review_rounds": int(sum(rec.rounds[c] for c in idx)),
            }
    return out


def _applications_table(rec: Recorder, clock: WorkingClock, start: dt.date) -> pd.DataFrame:
    apps = rec.applications
    labels = [class_labels(a.cls) for a in apps]

    def to_date(t: float) -> str | None:
        return None if math.isnan(t) else (start + dt.timedelta(days=math.floor(t))).isoformat()

    decided = np.array([a.decided for a in apps], dtype=float)
    accepted = np.array([a.accepted for a in apps], dtype=float)
    review_start = np.array([a.review_start for a in apps], dtype=float)
    submitted = np.array([a.submitted for a in apps], dtype=float)
    table = pd.DataFrame({
        "id": [a.id for a in apps],
        **{name: [lab[name] for lab in labels] for name, _ in CLASS_DIMS},
        "submitted": [to_date(t) for t in submitted],
        "review_start": [to_date(t) for t in review_start],
        "decided": [to_date(t) for t in decided],
        "outcome": [OUTCOMES[a.outcome] if a.outcome >= 0 else "pending" for a in apps],
        "rounds": [a.rounds for a in apps],
        "submitted_day": submitted,
        "review_start_day": review_start,
        "decided_day": decided,
        "wait_days": review_start - submitted,
        "time_to_decision_days": decided - submitted,
        "working_days_to_decision": [
            clock.to_work(d) - clock.to_work(a) if not math.isnan(d) else math.nan
            for a, d in zip(accepted, decided, strict=True)],
        "past_statutory_limit": [a.decided > a.due if a.outcome >= 0 else None for a in apps],
    })
    return table
