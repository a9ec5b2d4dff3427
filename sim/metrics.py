"""From the recorder's counters to tidy tables and headline figures (one place for both)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim import exports, policies
from sim.calendar import WorkingClock, calendar_note
from sim.clearance import clearance, cohort_days_to_clear
from sim.params import DESTINATIONS, CalendarKind, ClearanceBacklog, Config
from sim.policies import Regime, parse_date
from sim.recorder import (
    CLASS_DIMS,
    N_CLASSES,
    N_SEGMENTS,
    OUTCOMES,
    SEGMENT_SHIFT,
    Recorder,
    WaitHistogram,
    class_labels,
    interval_area,
    segment_name,
)

# Percentiles of waits and times to decision reported per segment ("who waits longest").
WAIT_PERCENTILES = (10, 25, 50, 75, 90)

GROUPINGS = {"destination": "destination", "trusted": "trusted", "military": "military",
             "elements": "elements", "renewal": "renewal"}


@dataclass
class RunResult:
    """One replication: the daily table, the per-class table, applications and headline figures."""

    daily: pd.DataFrame
    by_class: pd.DataFrame
    applications: pd.DataFrame | None
    summary: dict[str, Any]
    waits: WaitHistogram  # waits (submission to first review) after the warm-up
    # per segment (destination x trusted x military, by name): waits after the warm-up
    segment_waits: dict[str, WaitHistogram]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def tabulate(params: Config, rec: Recorder, clock: WorkingClock, regimes: list[Regime],
             n_days: int) -> RunResult:
    start = parse_date(params.start_date)
    dates = pd.date_range(start, periods=n_days, freq="D")
    days = np.arange(n_days)

    # Per-class arrays have one row per class seen (`classes`), one column per day.
    classes = rec.classes_seen()
    arrivals = rec.per_class(rec.arrivals, classes)
    outcomes = {name: rec.per_class(rec.outcomes[k], classes) for k, name in enumerate(OUTCOMES)}
    pending = np.cumsum(arrivals - sum(outcomes.values()), axis=1)
    # What customs would count: approvals leaving China after the shipping lag (sim/exports.py)
    renewal = np.array([class_labels(c)["renewal"] for c in classes], dtype=bool)
    shipped = exports.shipments(outcomes["approved"], renewal, params.exports).reshape(
        len(classes), n_days)
    late = np.cumsum(rec.per_class(rec.late_add, classes), axis=1) - np.cumsum(
        rec.per_class(rec.late_sub, classes), axis=1)

    # Time-averages from the per-day event sums; calendar time for the queue, working time
    # for the officials (who do not work on days off).
    cal_edges = np.arange(1, n_days + 1, dtype=float)
    queue_area = np.diff(interval_area(rec.queue_in, rec.queue_out, cal_edges), prepend=0.0)
    work_edges = clock.work_at_days(n_days + 1)
    busy = np.diff(interval_area(rec.review_in, rec.review_out, work_edges[1:]), prepend=0.0)
    working = np.diff(work_edges)
    regime_days = [r.day for r in regimes]
    counts = np.array([policies.officials_on_duty(r.params) for r in regimes])
    officials = counts[np.searchsorted(regime_days, days, side="right") - 1]
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
        "held": np.cumsum(rec.held),  # pending for ever (military.policy=hold)
        "shipments": shipped.sum(0),  # licensed shipments leaving China (sim/exports.py)
    })
    cohort = _cohort_remaining(rec, daily["pending"].to_numpy())
    if cohort is not None:
        daily["cohort_pending"] = cohort
        daily["cohort_held"] = np.cumsum(rec.cohort_held)

    by_class = _by_class_table(dates, classes, arrivals, outcomes, pending, late, shipped)
    apps = _applications_table(rec, clock, start) if rec.applications is not None else None

    w = params.warmup_days
    peak = int(np.argmax(daily["pending"].to_numpy())) if n_days else 0
    span = n_days - w
    wait_n = sum(rec.wait_n)
    decided = sum(rec.decided_n)
    waits, ttd = rec.wait_hist, rec.ttd_hist
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
        "p50_wait_days": waits.quantile(0.5),
        "p90_wait_days": waits.quantile(0.9),
        "mean_time_to_decision_days": _ratio(sum(rec.ttd_sum), decided),
        "p50_time_to_decision_days": ttd.quantile(0.5),
        "p90_time_to_decision_days": ttd.quantile(0.9),
        **_still_waiting(rec, range(N_CLASSES)),
        "utilisation": _ratio(busy[w:].sum(), capacity[w:].sum()),
        "mean_waiting": _ratio(queue_area[w:].sum(), span),
        "arrival_rate_per_day": _ratio(arrivals[:, w:].sum(), span),
        "reviews_started": wait_n,
        "decisions": decided,
        "share_decided_late": _ratio(sum(rec.late_n), decided),
        "share_decided_within_limit": _ratio(decided - sum(rec.late_n), decided),
        "past_statutory_limit_end": int(late.sum(0)[-1]) if n_days else 0,
        "extra_review_rounds": int(sum(rec.rounds)),
        "held_end": int(daily["held"].iloc[-1]) if n_days else 0,
        "calendar_note": _calendar_note(params, start, n_days),
        "clearance": clearance_summary(params, daily, rec.cohort_day),
        "by_group": _group_summaries(rec, classes, arrivals, outcomes, pending, late),
        "by_segment": _segment_summaries(params, rec, classes, arrivals, outcomes, pending,
                                         late),
        "export_index": _export_index(params, classes, shipped, n_days),
    }
    segment_waits = {segment_name(s): rec.segment_waits[s] for s in range(N_SEGMENTS)}
    return RunResult(daily, by_class, apps, summary, waits, segment_waits)


def _export_index(params: Config, classes, shipped: np.ndarray, n_days: int
                  ) -> dict[str, dict[str, float]]:
    """The monthly export index customs would show (sim/exports.py), in all and by
    destination."""
    dest = np.array([class_labels(c)["destination"] for c in classes])
    by_dest = {d: shipped[dest == d].sum(0) if len(classes) else np.zeros(n_days)
               for d in DESTINATIONS}
    total = shipped.sum(0) if len(classes) else np.zeros(n_days)
    return exports.index_table(params, n_days, total, by_dest)


def _calendar_note(params: Config, start: dt.date, n_days: int) -> str | None:
    """The working calendar's caveat for this run: None when official data covers it."""
    if params.calendar.kind != CalendarKind.china or not n_days:
        return None
    return calendar_note(start, start + dt.timedelta(days=n_days - 1))


def _cohort_remaining(rec: Recorder, pending: np.ndarray) -> np.ndarray | None:
    """Applications of the cohort still pending at each day's end (NaN before the cohort)."""
    d = rec.cohort_day
    if d is None:
        return None
    remaining = np.full(len(pending), np.nan)
    remaining[d:] = pending[d] - np.cumsum(rec.cohort_out)[d:]
    return remaining


def clearable(params: Config, daily: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """The backlog whose clearance is measured, and the cohort's part of it, per day.

    ``clearance.backlog=waiting``: applications waiting for an official. ``pending``: pending
    applications, less those held for ever unless ``clearance.count_held``. The cohort is
    followed until decided either way (less its held files unless counted).
    """
    leave_out = not params.clearance.count_held
    pending = daily["pending"].to_numpy(dtype=float)
    if leave_out:
        pending = pending - daily["held"].to_numpy(dtype=float)
    if params.clearance.backlog == ClearanceBacklog.waiting:
        pending = daily["waiting"].to_numpy(dtype=float)
    if "cohort_pending" not in daily:
        return pending, None
    cohort = daily["cohort_pending"].to_numpy(dtype=float)
    return pending, cohort - daily["cohort_held"].to_numpy(dtype=float) if leave_out else cohort


def clearance_summary(params: Config, daily: pd.DataFrame,
                      cohort_day: int | None) -> dict[str, Any]:
    """Peak, clearance date, days from the chosen policy event, and the cohort's clearing.

    Measured on :func:`clearable`: the peak here is that of the backlog that can be cleared.
    """
    c = params.clearance
    pending, cohort = clearable(params, daily)
    start = parse_date(params.start_date)

    def date(day: int | None) -> str | None:
        return None if day is None else (start + dt.timedelta(days=day)).isoformat()

    cl = clearance(pending, c.fraction_of_peak, c.level)
    out: dict[str, Any] = {
        "backlog": c.backlog,
        "held_counted": c.count_held,
        "threshold": cl.threshold,
        "cleared": cl.cleared_day is not None,
        "clearance_date": date(cl.cleared_day),
        "days_peak_to_clearance": None if cl.cleared_day is None else cl.cleared_day - cl.peak_day,
        # Cleared once is not cleared for good: a later staff cut or surge can refill it.
        **_after_clearance(pending, cl.threshold, cl.cleared_day, date),
    }
    event_day = _event_day(params)
    if event_day is not None:
        out.update(event=c.event, event_date=params.timeline[c.event].date,
                   days_event_to_clearance=(None if cl.cleared_day is None
                                            else cl.cleared_day - event_day))
    if cohort is not None and cohort_day is not None:
        out.update(cohort_date=date(cohort_day), cohort_size=int(cohort[cohort_day]),
                   **{f"cohort_days_to_clear_{q}pct": cohort_days_to_clear(
                       cohort, cohort_day, q / 100) for q in (50, 90, 100)})
    return out


def _days_to_clear(params: Config, pending: np.ndarray) -> dict[str, Any]:
    """Days from a pending curve's peak, and from the clearance event, to its clearance."""
    cl = clearance(pending, params.clearance.fraction_of_peak)
    out: dict[str, Any] = {"days_peak_to_clearance": None if cl.cleared_day is None
                           else cl.cleared_day - cl.peak_day}
    day = _event_day(params)
    if day is not None:
        out["days_event_to_clearance"] = None if cl.cleared_day is None else cl.cleared_day - day
    return out


def _event_day(params: Config) -> int | None:
    """Day index of the clearance event (``clearance.event``), or None without one."""
    c = params.clearance
    event = params.timeline.get(c.event) if c.event else None
    return None if event is None else (parse_date(event.date) - parse_date(params.start_date)).days


def _after_clearance(backlog: np.ndarray, threshold: float, cleared_day: int | None,
                     date) -> dict[str, Any]:
    """Whether the backlog stayed below the threshold after it first cleared, when it rose
    back to it, and the backlog at the end."""
    back = None
    if cleared_day is not None:
        above = np.flatnonzero(backlog[cleared_day:] >= threshold)
        back = int(cleared_day + above[0]) if len(above) else None
    return {"stayed_cleared": None if cleared_day is None else back is None,
            "back_above_threshold_date": date(back),
            "backlog_end": float(backlog[-1]) if len(backlog) else 0.0}


def _by_class_table(dates, classes, arrivals, outcomes, pending, late, shipped
                    ) -> pd.DataFrame:
    """Long format: one row per (date, class) for the classes that saw any application."""
    frames = []
    date_strings = dates.strftime("%Y-%m-%d")
    for i, c in enumerate(classes):
        frame = pd.DataFrame({"date": date_strings, **class_labels(c),
                              "arrivals": arrivals[i],
                              **{k: v[i] for k, v in outcomes.items()},
                              "pending": pending[i], "past_statutory_limit": late[i],
                              "shipments": shipped[i]})
        frames.append(frame)
    if not frames:
        columns = ["date", *[n for n, _ in CLASS_DIMS], "arrivals", *OUTCOMES, "pending",
                   "past_statutory_limit", "shipments"]
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def _group_summaries(rec: Recorder, classes, arrivals, outcomes, pending, late) -> dict[str, Any]:
    """Headline figures per destination, trusted/untrusted, civilian/military, ..."""
    labels = [class_labels(c) for c in classes]
    out: dict[str, Any] = {}
    for dim, values in CLASS_DIMS:
        out[dim] = {}
        for value in values:
            rows = [i for i, lab in enumerate(labels) if lab[dim] == value]
            idx = [classes[i] for i in rows]
            decided = sum(rec.decided_n[c] for c in idx)
            waits = sum(rec.wait_n[c] for c in idx)
            out[dim][str(value)] = {
                "arrivals": int(arrivals[rows].sum()),
                **{k: int(v[rows].sum()) for k, v in outcomes.items()},
                "pending_end": int(pending[rows, -1].sum()) if pending.shape[1] else 0,
                "decisions": decided,
                "mean_wait_days": _ratio(sum(rec.wait_sum[c] for c in idx), waits),
                "mean_time_to_decision_days": _ratio(sum(rec.ttd_sum[c] for c in idx), decided),
                **_still_waiting(rec, idx),
                "share_decided_late": _ratio(sum(rec.late_n[c] for c in idx), decided),
                "share_decided_within_limit": _ratio(
                    decided - sum(rec.late_n[c] for c in idx), decided),
                "past_statutory_limit_end": int(late[rows, -1].sum()) if late.shape[1] else 0,
                "extra_review_rounds": int(sum(rec.rounds[c] for c in idx)),
            }
    return out


def _segment_summaries(params: Config, rec: Recorder, classes, arrivals, outcomes, pending,
                       late) -> dict[str, Any]:
    """Headline figures per destination x trusted x military (every segment, so that every
    run has the same figures; zero and undefined where none came), named as
    ``US_trusted_civilian``: counts, waits and times to decision with percentiles, the share
    decided within the statutory limit, what is still pending or waiting at the end, and days to
    clearance of the group's own pending curve (below ``clearance.fraction_of_peak`` of its
    peak; held applications stay pending, so a held group never clears)."""
    out: dict[str, Any] = {}
    n_days = pending.shape[1]
    for seg in range(N_SEGMENTS):
        rows = [i for i, c in enumerate(classes) if c >> SEGMENT_SHIFT == seg]
        idx = [classes[i] for i in rows]
        decided = sum(rec.decided_n[c] for c in idx)
        started = sum(rec.wait_n[c] for c in idx)
        waits, ttd = rec.segment_waits[seg], rec.segment_ttd[seg]
        out[segment_name(seg)] = {
            "arrivals": int(arrivals[rows].sum()),
            **{k: int(v[rows].sum()) for k, v in outcomes.items()},
            "pending_end": int(pending[rows, -1].sum()) if pending.shape[1] else 0,
            "decisions": decided,
            "reviews_started": started,
            "mean_wait_days": _ratio(sum(rec.wait_sum[c] for c in idx), started),
            **{f"p{q}_wait_days": waits.quantile(q / 100) for q in WAIT_PERCENTILES},
            "mean_time_to_decision_days": _ratio(sum(rec.ttd_sum[c] for c in idx), decided),
            "p50_time_to_decision_days": ttd.quantile(0.5),
            "p90_time_to_decision_days": ttd.quantile(0.9),
            "share_decided_within_limit": _ratio(
                decided - sum(rec.late_n[c] for c in idx), decided),
            "past_statutory_limit_end": int(late[rows, -1].sum()) if late.shape[1] else 0,
            "held_end": sum(rec.held_n[c] for c in idx),
            **_still_waiting(rec, idx),
            **_days_to_clear(params, pending[rows].sum(0) if rows else np.zeros(n_days)),
        }
    return out


def _still_waiting(rec: Recorder, classes) -> dict[str, Any]:
    """Waits the headline mean leaves out: applications not yet reviewed at the end.

    ``mean_wait_days`` counts reviews that started; when the backlog grows, the longest waits
    are still running at the end. ``mean_wait_days_with_waiting`` adds them with their waits
    so far, so it is a lower bound on their eventual mean, and less biased.
    """
    n = sum(rec.waiting_end_n[c] for c in classes)
    age = sum(rec.waiting_end_sum[c] for c in classes)
    started = sum(rec.wait_n[c] for c in classes)
    return {
        "waiting_end": n,
        "mean_age_waiting_end_days": _ratio(age, n),
        "max_age_waiting_end_days": (max(rec.waiting_end_max[c] for c in classes) if n
                                     else float("nan")),
        "mean_wait_days_with_waiting": _ratio(sum(rec.wait_sum[c] for c in classes) + age,
                                              started + n),
    }


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
        "renews": [a.renews if a.renews >= 0 else None for a in apps],
        "statutory_due": [to_date(a.due) if math.isfinite(a.due) else None for a in apps],
        "submitted_day": submitted,
        "review_start_day": review_start,
        "decided_day": decided,
        "wait_days": review_start - submitted,
        "time_to_decision_days": decided - submitted,
        "working_days_to_decision": [
            clock.to_work(d) - clock.to_work(a) if not math.isnan(d) else math.nan
            for a, d in zip(accepted, decided, strict=True)],
        "decided_late": [a.decided > a.due if a.outcome >= 0 else None for a in apps],
    })
    return table
