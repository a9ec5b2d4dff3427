"""Streaming counters filled by the model: per-day, per-class tallies in flat lists.

Memory is fixed by (days x classes), never by the number of applications: time-averages
(applications waiting, officials busy) are recovered afterwards from per-day sums of event times
(see :func:`interval_area`), and wait quantiles from a log-binned histogram.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from sim.params import DESTINATIONS

APPROVED, DENIED, WITHDRAWN = 0, 1, 2
OUTCOMES = ("approved", "denied", "withdrawn")

# An application's class: destination x trusted x military x element group x renewal.
CLASS_DIMS = (("destination", DESTINATIONS), ("trusted", (False, True)),
              ("military", (False, True)), ("elements", ("april7", "october5")),
              ("renewal", (False, True)))
N_CLASSES = math.prod(len(v) for _, v in CLASS_DIMS)
# A segment: destination x trusted x military, the groups "who waits longest" compares. The
# class index keeps them in its leading digits, so a class's segment is ``cls >> SEGMENT_SHIFT``.
SEGMENT_DIMS = CLASS_DIMS[:3]
SEGMENT_SHIFT = 2
N_SEGMENTS = N_CLASSES >> SEGMENT_SHIFT

_BINS_PER_E = 400.0  # log-histogram resolution: quantiles good to 0.25 %
_BLOCK = 4096  # values a segment's histogram takes at a time (memory stays bounded)


def class_index(dest: int, trusted: bool, military: bool, group: int, renewal: bool) -> int:
    return (((dest * 2 + trusted) * 2 + military) * 2 + group) * 2 + renewal


def segment_labels(segment: int) -> dict[str, object]:
    """{destination, trusted, military} of a segment (see SEGMENT_SHIFT)."""
    labels = class_labels(segment << SEGMENT_SHIFT)
    return {name: labels[name] for name, _ in SEGMENT_DIMS}


def segment_name(segment: int) -> str:
    """A segment as a dotted-key-safe name: ``US_trusted_civilian``."""
    lab = segment_labels(segment)
    return (f"{lab['destination']}_{'trusted' if lab['trusted'] else 'untrusted'}_"
            f"{'military' if lab['military'] else 'civilian'}")


def class_labels(index: int) -> dict[str, object]:
    """Inverse of :func:`class_index`, as {dimension: value}."""
    out = {}
    for name, values in reversed(CLASS_DIMS):
        index, k = divmod(index, len(values))
        out[name] = values[k]
    return dict(reversed(list(out.items())))


@dataclass
class WaitHistogram:
    """Log-binned histogram of positive waits plus an exact count of zero waits."""

    zeros: int = 0
    bins: dict[int, int] = field(default_factory=dict)

    def add_block(self, x: np.ndarray) -> None:
        """Add values: a zero count below 1e-12, else bin floor(400 ln x), one numpy pass."""
        positive = x[x > 1e-12]
        self.zeros += len(x) - len(positive)
        keys, counts = np.unique(np.floor(np.log(positive) * _BINS_PER_E).astype(np.int64),
                                 return_counts=True)
        bins = self.bins
        for k, v in zip(keys.tolist(), counts.tolist(), strict=True):
            bins[k] = bins.get(k, 0) + v

    @property
    def n(self) -> int:
        return self.zeros + sum(self.bins.values())

    @classmethod
    def merged(cls, histograms) -> WaitHistogram:
        """One histogram pooling several (replications of one figure)."""
        out = cls()
        for h in histograms:
            out.zeros += h.zeros
            for k, v in h.bins.items():
                out.bins[k] = out.bins.get(k, 0) + v
        return out

    def quantile(self, q: float) -> float:
        """q-quantile, bin mid-point (relative error < 0.13 %); NaN when empty."""
        n = self.n
        if n == 0:
            return float("nan")
        rank = q * (n - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for k in sorted(self.bins):
            seen += self.bins[k]
            if rank < seen:
                return math.exp((k + 0.5) / _BINS_PER_E)
        return math.exp((max(self.bins) + 0.5) / _BINS_PER_E)


def _tally(hist: WaitHistogram, values: list[float]) -> None:
    """Move the values waiting in ``values`` into the histogram."""
    hist.add_block(np.array(values))
    values.clear()


class DayEvents:
    """Count and time-sum of events per day bucket (for interval areas and end-of-day counts)."""

    __slots__ = ("n", "s")

    def __init__(self, n_days: int):
        self.n = [0] * n_days
        self.s = [0.0] * n_days


def interval_area(starts: DayEvents, ends: DayEvents, boundaries: np.ndarray) -> np.ndarray:
    """Integral, up to the end of each day bucket, of the number of open intervals.

    ``boundaries[d]`` is the time at which bucket d ends (in the clock the event times use).

    Intervals open at start events and close at end events, both bucketed by day; a bucket's
    events lie before the boundary that follows it. F(B) = sum over starts (B - s) minus the
    same over ends, so no interval is walked day by day.
    """
    cs, ss = np.cumsum(starts.n), np.cumsum(starts.s)
    ce, se = np.cumsum(ends.n), np.cumsum(ends.s)
    return (boundaries * cs - ss) - (boundaries * ce - se)


class Recorder:
    """Everything the model writes down while it runs."""

    def classes_seen(self) -> list[int]:
        """Classes with at least one application, in index order."""
        return sorted(self.arrivals)

    def per_class(self, table: dict[int, list[int]], classes: list[int]) -> np.ndarray:
        """A (len(classes) x days) array from one of the per-class tables."""
        out = np.zeros((len(classes), self.n_days), dtype=np.int64)
        for i, cls in enumerate(classes):
            if cls in table:
                out[i] = table[cls]
        return out

    def __init__(self, n_days: int, warmup_days: int, keep_applications: bool,
                 cohort_day: int | None = None):
        self.n_days = n_days
        # Statistics cover applications submitted from the warm-up's end on; without a warm-up,
        # all of them, including an initial backlog submitted before the start.
        self.warmup = warmup_days if warmup_days > 0 else -math.inf
        # Cohort: applications pending at the end of cohort_day; decisions on them by day.
        self.cohort_day = cohort_day
        self._cohort_t = math.inf if cohort_day is None else cohort_day + 1.0
        self.cohort_out = [0] * n_days
        # Applications put on hold for ever, by day of acceptance (all, and the cohort's).
        self.held = [0] * n_days
        self.cohort_held = [0] * n_days
        # Per-class daily rows, created when a class first occurs: {class: [count per day]}.
        def row() -> list[int]:
            return [0] * n_days

        self.arrivals = defaultdict(row)
        self.outcomes = [defaultdict(row) for _ in OUTCOMES]
        self.late_add = defaultdict(row)  # due on this day (undone if decided in time)
        self.late_sub = defaultdict(row)  # decided late on this day
        self.queue_in = DayEvents(n_days)  # calendar time
        self.queue_out = DayEvents(n_days)
        self.review_in = DayEvents(n_days)  # working time, bucketed by calendar day
        self.review_out = DayEvents(n_days)
        self.rounds = [0] * N_CLASSES  # extra review rounds after a request for documents
        self.held_n = [0] * N_CLASSES  # put on hold for ever (military.policy=hold)
        # headline statistics over applications submitted after the warm-up
        self.wait_sum = [0.0] * N_CLASSES
        self.wait_n = [0] * N_CLASSES
        self.decided_n = [0] * N_CLASSES
        self.ttd_sum = [0.0] * N_CLASSES
        self.late_n = [0] * N_CLASSES
        # per segment only: the overall ones are their sums. Values wait in a short list per
        # segment and go into the histogram a block at a time (see finish)
        self.segment_waits = [WaitHistogram() for _ in range(N_SEGMENTS)]
        self.segment_ttd = [WaitHistogram() for _ in range(N_SEGMENTS)]  # times to decision
        self._new_waits = [[] for _ in range(N_SEGMENTS)]
        self._new_ttd = [[] for _ in range(N_SEGMENTS)]
        # applications still waiting for a first review at the end: their waits so far
        self.waiting_end_n = [0] * N_CLASSES
        self.waiting_end_sum = [0.0] * N_CLASSES
        self.waiting_end_max = [0.0] * N_CLASSES
        self.applications: list | None = [] if keep_applications else None

    def finish(self) -> Recorder:
        """The run is over: tally what is still waiting to go into the histograms."""
        for hists, new in ((self.segment_waits, self._new_waits),
                           (self.segment_ttd, self._new_ttd)):
            for hist, values in zip(hists, new, strict=True):
                if values:
                    _tally(hist, values)
        return self

    @property
    def wait_hist(self) -> WaitHistogram:
        """Waits for a first review after the warm-up, every segment together."""
        return WaitHistogram.merged(self.segment_waits)

    @property
    def ttd_hist(self) -> WaitHistogram:
        """Times to decision (approved or denied) after the warm-up, every segment together."""
        return WaitHistogram.merged(self.segment_ttd)

    def arrival(self, cls: int, t: float) -> None:
        self.arrivals[cls][int(t) if t > 0 else 0] += 1


    def queue_join(self, t: float) -> None:
        d = int(t)
        if d < self.n_days:
            self.queue_in.n[d] += 1
            self.queue_in.s[d] += t

    def queue_leave(self, t: float) -> None:
        d = int(t)
        if d < self.n_days:
            self.queue_out.n[d] += 1
            self.queue_out.s[d] += t

    def review(self, t_start: float, w_start: float, t_end: float, w_end: float) -> None:
        """A review occupying one official from working time w_start to w_end."""
        d, nd = int(t_start), self.n_days
        if d < nd:
            self.review_in.n[d] += 1
            self.review_in.s[d] += w_start
        d = int(t_end)
        if d < nd:
            self.review_out.n[d] += 1
            self.review_out.s[d] += w_end

    def accepted(self, cls: int, due: float) -> None:
        d = int(due)
        if d < self.n_days:
            self.late_add[cls][d] += 1

    def held_back(self, cls: int, t: float, submitted: float) -> None:
        """An application put on hold at t: pending for ever, never reviewed."""
        d = min(max(int(t), 0), self.n_days - 1)
        self.held[d] += 1
        self.held_n[cls] += 1
        if submitted < self._cohort_t:
            self.cohort_held[d] += 1

    def first_review(self, cls: int, submitted: float, wait: float) -> None:
        if submitted >= self.warmup:
            self.wait_sum[cls] += wait
            self.wait_n[cls] += 1
            new = self._new_waits[cls >> SEGMENT_SHIFT]
            new.append(wait)
            if len(new) == _BLOCK:
                _tally(self.segment_waits[cls >> SEGMENT_SHIFT], new)

    def still_waiting(self, cls: int, submitted: float, age: float) -> None:
        """At the end of the run: an application not yet reviewed, waiting for ``age`` days."""
        if submitted >= self.warmup:
            self.waiting_end_n[cls] += 1
            self.waiting_end_sum[cls] += age
            self.waiting_end_max[cls] = max(self.waiting_end_max[cls], age)

    def decided(self, cls: int, outcome: int, t: float, submitted: float, due: float) -> None:
        """An application leaves the pending stock (approved, denied or withdrawn) at t."""
        day = int(t)
        self.outcomes[outcome][cls][day] += 1
        if submitted < self._cohort_t <= t:
            self.cohort_out[day] += 1
        late = t > due
        if late:
            self.late_sub[cls][day] += 1
        elif due < self.n_days:
            self.late_add[cls][int(due)] -= 1
        if submitted >= self.warmup and outcome != WITHDRAWN:
            self.decided_n[cls] += 1
            self.ttd_sum[cls] += t - submitted
            if late:
                self.late_n[cls] += 1
            new = self._new_ttd[cls >> SEGMENT_SHIFT]
            new.append(t - submitted)
            if len(new) == _BLOCK:
                _tally(self.segment_ttd[cls >> SEGMENT_SHIFT], new)
