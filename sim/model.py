"""The licence process as SimPy processes (an application's path: a generator of SimPy events,
run by :class:`sim.engine.Steps`).

An application is submitted, passes the intake check, waits for an official, is reviewed
(perhaps sent back for more documents and reviewed again), perhaps goes to other agencies for
consultation, and is decided. Approved licences expire after their term and some come back as
renewals. Officials work on the working calendar; policy levers are read from the current
parameters, which the timeline swaps at dated events.

This module imports SimPy and numpy only: it takes plain parameters and generators and returns
plain arrays (see :class:`sim.recorder.Recorder`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from itertools import accumulate

import numpy as np
import simpy

from sim import policies
from sim.calendar import WorkingClock
from sim.engine import Draws, Handoff, Steps, Timer, collector_paused
from sim.params import (
    DESTINATIONS,
    ELEMENT_GROUPS,
    Config,
    GreenChannelMode,
    MilitaryPolicy,
    PatienceDistribution,
    ReviewDistribution,
)
from sim.recorder import APPROVED, DENIED, SEGMENT_SHIFT, WITHDRAWN, Recorder

STREAMS = ("arrivals", "classes", "intake", "review", "incomplete", "consultation",
           "decision", "renewal", "backlog", "stages",
           "withdrawal")  # new streams go last: earlier ones keep
GREEN, REGULAR, LAST = 0, 1, 2  # queue lanes (LAST: destinations served after all others)
GENERAL, DEDICATED = 0, 1  # kinds of official


def make_streams(seed: int, replication: int = 0) -> dict[str, np.random.Generator]:
    """One independent generator per source of randomness, for replication ``replication``.

    The streams depend on (seed, replication) only, so replication r sees the same random
    numbers in every scenario and whichever worker runs it.
    """
    root = np.random.SeedSequence(seed, spawn_key=(replication,))
    return {name: np.random.Generator(np.random.PCG64(child))
            for name, child in zip(STREAMS, root.spawn(len(STREAMS)), strict=True)}


def _chance(draw: Draws, probability: float) -> bool:
    """A Bernoulli trial; certain outcomes use no random number (and cost nothing)."""
    if probability <= 0.0:
        return False
    return probability >= 1.0 or draw.uniform() < probability


class Application:
    __slots__ = ("id", "cls", "dest", "trusted", "military", "group", "renewal", "submitted",
                 "accepted", "due", "review_start", "decided", "outcome", "rounds", "withdrawn",
                 "event", "seq", "lane", "renews", "patience")

    def __init__(self, app_id, dest, trusted, military, group, renewal, submitted):
        self.id = app_id
        self.dest, self.trusted, self.military = dest, trusted, military
        self.group, self.renewal = group, renewal
        # recorder.class_index, inlined: this runs once per application
        self.cls = (((dest * 2 + trusted) * 2 + military) * 2 + group) * 2 + renewal
        self.submitted = submitted
        self.accepted = self.review_start = self.decided = math.nan
        self.outcome = -1
        self.due = math.inf
        self.rounds = 0
        self.withdrawn = False
        self.event = None
        self.seq = 0
        self.lane = REGULAR
        self.renews = -1  # id of the application whose licence this one renews
        self.patience = -1.0  # own patience / mean patience, once drawn (exponential only)


class OfficialPool:
    """Officials serving three FIFO lanes (green, regular, last); O(1) per request and release.

    Each kind of official has its lane order: with the green channel in `priority` mode
    everyone serves the green lane first; in `dedicated` mode dedicated officials serve the green
    lane first and help the regular lane when it is empty, general officials do the reverse.
    The last lane (destinations served last) is served only when the other two are empty.
    No review is interrupted. Withdrawn applications are dropped lazily when reached.
    """

    def __init__(self, env: simpy.Environment, recorder: Recorder):
        self.env, self.rec = env, recorder
        self.lanes = (deque(), deque(), deque())
        self.order = ((GREEN, REGULAR, LAST), (GREEN, REGULAR, LAST))
        self.idle = [0, 0]
        self.staff = [0, 0]
        self.target = [0, 0]
        self.n_waiting = 0
        self._seq = 0

    def configure(self, general: int, dedicated: int, mode: GreenChannelMode, lane_of) -> None:
        """Apply a new pool size and discipline; waiting applications are re-sorted by lane."""
        own_lane = mode == GreenChannelMode.dedicated
        self.order = ((REGULAR, GREEN, LAST), (GREEN, REGULAR, LAST)) if own_lane \
            else ((GREEN, REGULAR, LAST), (GREEN, REGULAR, LAST))
        waiting = sorted((a for lane in self.lanes for a in lane if not a.withdrawn),
                         key=lambda a: a.seq)
        for lane in self.lanes:
            lane.clear()
        for app in waiting:
            app.lane = lane_of(app)
            self.lanes[app.lane].append(app)
        self.target = [general, dedicated]
        for kind in (GENERAL, DEDICATED):
            surplus = self.staff[kind] - self.target[kind]
            if surplus > 0:  # idle officials leave now, busy ones after their review
                gone = min(surplus, self.idle[kind])
                self.idle[kind] -= gone
                self.staff[kind] -= gone
            for _ in range(-surplus):
                self.staff[kind] += 1
                self.release(kind)

    def take_idle(self, app: Application, lane: int) -> int | None:
        """The kind of an idle official who takes the application now, or None if all are busy.

        Work conservation: an idle official means every lane is empty, so no one is skipped.
        """
        app.lane = lane
        first = DEDICATED if lane == GREEN else GENERAL
        if self.idle[first]:
            self.idle[first] -= 1
            return first
        if self.idle[1 - first]:
            self.idle[1 - first] -= 1
            return 1 - first
        return None

    def join_queue(self, app: Application, lane: int) -> Handoff:
        """Queue in the lane: a handoff that fires with the official's kind, or None if the
        applicant withdraws first."""
        event = Handoff()
        app.lane = lane
        app.event = event
        self._seq += 1
        app.seq = self._seq
        self.lanes[lane].append(app)
        self.n_waiting += 1
        self.rec.queue_join(self.env.now)
        return event

    def release(self, kind: int) -> None:
        """An official of this kind is free: take the next application, retire, or idle."""
        if self.staff[kind] > self.target[kind]:
            self.staff[kind] -= 1
            return
        for lane in self.order[kind]:
            queue = self.lanes[lane]
            while queue:
                app = queue.popleft()
                if app.withdrawn:
                    continue
                self.n_waiting -= 1
                self.rec.queue_leave(self.env.now)
                app.event.fire(kind)
                return
        self.idle[kind] += 1

    def withdraw(self, app: Application) -> None:
        """The applicant gives up, if still waiting for an official."""
        if app.event is not None and not app.event.triggered and not app.withdrawn:
            app.withdrawn = True
            self.n_waiting -= 1
            self.rec.queue_leave(self.env.now)
            app.event.fire(None)


class LicenceModel:
    """One run of the licence process over the horizon."""

    def __init__(self, params: Config, streams: dict[str, np.random.Generator],
                 clock: WorkingClock, n_days: int, keep_applications: bool = False,
                 cohort_day: int | None = None):
        self.env = simpy.Environment()
        self.clock = clock
        self.n_days = n_days
        self.regimes = policies.build_regimes(params)
        self.p = params
        self.draws = {name: Draws(rng) for name, rng in streams.items()}
        self.rec = Recorder(n_days, params.warmup_days, keep_applications, cohort_day)
        self.pool = OfficialPool(self.env, self.rec)
        self.green_open = False
        self._next_id = 0
        self._renewals = deque()  # (due time, application renewed), in order of due time
        Steps(self.renewals_due())  # waits, without an event, for the first licence to renew
        self._apply(self.regimes[0])

    # -- parameters over time -------------------------------------------------------------
    def _apply(self, regime: policies.Regime) -> None:
        p = self.p = regime.params
        self.green_open = policies.green_channel_open(p, regime.day)
        self._dest_cum = list(accumulate(p.classes.destination_shares.get(d, 0.0)
                                         for d in DESTINATIONS))
        self._trusted = [p.classes.trusted_share.get(d, 0.0) for d in DESTINATIONS]
        mean = policies.mean_effort_working_days(p)
        # mean effort (working days) by lane, under the current rules
        regular = mean * policies.effort_factor(p, green=False)
        self._effort = (mean * policies.effort_factor(p, green=True), regular, regular)  # by lane
        r = p.review
        self._exponential_review = r.distribution == ReviewDistribution.exponential
        self._fixed_review = r.distribution == ReviewDistribution.fixed
        if r.distribution == ReviewDistribution.lognormal:
            self._ln_sigma = math.sqrt(math.log1p(r.cv**2))
            self._ln_mu = -0.5 * self._ln_sigma**2
        stage = p.interagency
        self._stage_mean = stage.mean_working_days
        if stage.mean_working_days > 0:
            self._st_sigma = math.sqrt(math.log1p(stage.cv**2))
            self._st_mu = math.log(stage.mean_working_days) - 0.5 * self._st_sigma**2
        self._regular_lane = [LAST if policies.served_last(p, d) else REGULAR
                              for d in DESTINATIONS]
        # The lane of each segment (destination x trusted x military: cls >> SEGMENT_SHIFT)
        # under this regime's rules, looked up once per regime, not worked out per application.
        self._segment_lane = [
            GREEN if self.green_open and policies.green_eligible(
                p, DESTINATIONS[d], bool(trusted), bool(military))
            else self._regular_lane[d]
            for d in range(len(DESTINATIONS)) for trusted in (0, 1) for military in (0, 1)]
        dedicated = policies.dedicated_officials(p)
        mode = p.green_channel.mode if self.green_open else GreenChannelMode.off
        self.pool.configure(policies.officials_on_duty(p) - dedicated, dedicated, mode,
                            self.lane_of)

    def timeline(self):
        for regime in self.regimes[1:]:
            yield Timer(self.env, regime.day - self.env.now)
            self._apply(regime)

    def lane_of(self, app: Application) -> int:
        """The lane an application joins under the current rules."""
        return self._segment_lane[app.cls >> SEGMENT_SHIFT]

    # -- arrivals ---------------------------------------------------------------------------
    def new_application(self, group: int, submitted: float, renewal_of=None) -> Application:
        if renewal_of is not None:
            a = renewal_of
            app = Application(self._next_id, a.dest, a.trusted, False, a.group, True, submitted)
            app.renews = a.id
        else:
            draw = self.draws["classes"]
            dest = min(bisect_right(self._dest_cum, draw.uniform() * self._dest_cum[-1]),
                       len(DESTINATIONS) - 1)
            share = self._trusted[dest]
            trusted = share > 0 and _chance(draw, share)
            share = self.p.classes.military_share
            military = share > 0 and _chance(draw, share)
            app = Application(self._next_id, dest, trusted, military, group, False, submitted)
        self._next_id += 1
        return app

    def submit(self, app: Application, accepted: bool = False) -> None:
        self.rec.arrival(app.cls, app.submitted)
        if self.rec.applications is not None:
            self.rec.applications.append(app)
        Steps(self.application(app, accepted))

    def _to_work(self, t, p):
        return self.clock.to_work(t) if p.arrivals.working_days_only else t

    def _to_cal(self, w, p):
        return self.clock.to_cal(w) if p.arrivals.working_days_only else w

    def base_arrivals(self):
        """Poisson arrivals, piecewise-constant rate per regime, in arrival-day time."""
        draw, env = self.draws["arrivals"], self.env
        ends = [r.day for r in self.regimes[1:]] + [self.n_days]
        for regime, end in zip(self.regimes, ends, strict=True):
            p = regime.params
            scale = p.arrivals.scale
            rates = (p.arrivals.rate_per_day * scale * p.controls.april7,
                     p.arrivals.october5_rate_per_day * scale * p.controls.october5)
            total = sum(rates)
            if total <= 0 or end <= regime.day:
                continue
            mean_gap = 1.0 / total
            to_cal = self.clock.to_cal if p.arrivals.working_days_only else None
            w, w_end = self._to_work(regime.day, p), self._to_work(end, p)
            while True:
                w += draw.exponential() * mean_gap
                if w >= w_end:
                    break
                t = to_cal(w) if to_cal else w
                yield Timer(env, t - env.now)
                group = 1 if rates[0] == 0 else 0 if rates[1] == 0 else int(
                    draw.uniform() * total >= rates[0])
                self.submit(self.new_application(group, t))

    def surge(self, size: float, decay: float, start: float, group: int):
        """Pent-up filings: intensity size/decay * exp(-(w - w0)/decay), drawn sequentially."""
        draw = self.draws["arrivals"]
        yield Timer(self.env, max(start - self.env.now, 0.0))
        p = self.p
        w0 = self._to_work(start, p)
        filed = 0.0  # cumulative intensity so far
        while True:
            filed += draw.exponential()
            if filed >= size:
                return
            w = w0 - decay * math.log1p(-filed / size)
            t = self._to_cal(w, p)
            if t >= self.n_days:
                return
            yield Timer(self.env, t - self.env.now)
            self.submit(self.new_application(group, t))

    def initial_backlog(self) -> None:
        """Applications already accepted and waiting at the start, oldest first."""
        b = self.p.initial_backlog
        waited = np.sort(self.draws["backlog"].rng.random(b.count) * b.max_waited_days)[::-1]
        for w in waited.tolist():
            app = self.new_application(0, -w)
            self.submit(app, accepted=True)

    def renewal(self, app: Application, t: float) -> None:
        """The licence approved for ``app`` comes back for renewal at ``t``.

        Licences run for months: a timer per licence would keep thousands of entries in the
        event queue, which every other event pays for. Renewals due in order (the usual case:
        same term, later approval) wait in one line behind a single timer instead."""
        line = self._renewals
        if line and t < line[-1][0]:  # due before the last in line (a shorter term since)
            Steps(self._renew_at(app, t))
            return
        line.append((t, app))
        if not self._renewals_woken.triggered:  # the line was empty: its process waits
            self._renewals_woken.fire(None)

    def _renew_at(self, app: Application, t: float):
        yield Timer(self.env, t - self.env.now)
        self._renewed(app, t)

    def _renewed(self, app: Application, t: float) -> None:
        self.submit(self.new_application(app.group, t, renewal_of=app))

    def renewals_due(self):
        """The line of renewals: each is submitted when due, the first in line timed."""
        line, env = self._renewals, self.env
        while True:
            if not line:
                self._renewals_woken = Handoff()
                yield self._renewals_woken
            t, app = line[0]
            yield Timer(env, t - env.now)
            line.popleft()
            self._renewed(app, t)

    # -- the application's path --------------------------------------------------------------
    def application(self, app: Application, accepted: bool):
        env, p, clock = self.env, self.p, self.clock
        if not accepted and p.intake.mean_working_days > 0:
            delay = p.intake.mean_working_days * self.draws["intake"].exponential()
            yield Timer(env, clock.after(env.now, delay) - env.now)
        app.accepted = accepted_at = app.submitted if accepted else env.now
        limit = self.p.statutory.working_days
        app.due = clock.after(accepted_at, limit)
        self.rec.accepted(app.cls, app.due)

        if app.military:
            policy = self.p.military.policy
            if policy == MilitaryPolicy.reject_at_intake:
                return self.decide(app, DENIED)
            if policy == MilitaryPolicy.hold:
                self.rec.held_back(app.cls, env.now, app.submitted)
                return  # in limbo: pending for ever, no official's time spent

        while True:
            lane = self._segment_lane[app.cls >> SEGMENT_SHIFT]
            official = self.pool.take_idle(app, lane)
            if official is None:
                official = yield self.queue_for_official(app, lane)
                if official is None:
                    return self.decide(app, WITHDRAWN)
            yield Timer(env, self.review(app))
            self.pool.release(official)
            p = self.p
            if p.incomplete.probability <= 0 or not _chance(self.draws["incomplete"],
                                                            p.incomplete.probability):
                break
            app.rounds += 1  # more documents requested; the applicant answers, then requeues
            self.rec.rounds[app.cls] += 1
            yield Timer(env, p.incomplete.response_mean_days
                        * self.draws["incomplete"].exponential())

        if self._stage_mean > 0:  # other agencies' review and sign-off: elapsed, no official
            delay = math.exp(self._st_mu + self._st_sigma * self.draws["stages"].normal())
            yield Timer(env, clock.after(env.now, delay) - env.now)
        p = self.p
        if p.consultation.share > 0 and not app.military and _chance(
                self.draws["consultation"], p.consultation.share):
            delay = p.consultation.mean_working_days * self.draws["consultation"].exponential()
            yield Timer(env, clock.after(env.now, delay) - env.now)
        p = self.p
        denied = app.military or (p.decision.deny_probability > 0 and _chance(
            self.draws["decision"], p.decision.deny_probability))
        self.decide(app, DENIED if denied else APPROVED)

    def queue_for_official(self, app: Application, lane: int) -> Handoff:
        """All officials are busy: queue in the lane. The handoff fires with the kind of
        official who takes the application, or None if the applicant withdraws first."""
        event = self.pool.join_queue(app, lane)
        w = self.p.withdrawal
        patience = w.patience_days
        if patience is not None:
            if w.patience_distribution == PatienceDistribution.exponential:
                # the application's own patience (in units of the current mean), drawn the
                # first time it has to wait and kept for later rounds
                if app.patience < 0:
                    app.patience = self.draws["withdrawal"].exponential()
                patience *= app.patience
            Timer(self.env, max(app.submitted + patience - self.env.now, 0.0)).callbacks.append(
                lambda _: self.pool.withdraw(app))
        return event

    def review(self, app: Application) -> float:
        """Occupy the official for the review: returns its duration in calendar days."""
        now, clock = self.env.now, self.clock
        draw = self.draws["review"]
        if self._exponential_review:
            x = draw.exponential()
        elif self._fixed_review:
            x = 1.0  # exactly the mean effort: no random number
        else:
            x = math.exp(self._ln_mu + self._ln_sigma * draw.normal())
        effort = self._effort[app.lane] * x
        w0, start, end = clock.span(now, effort)
        if app.rounds == 0:
            app.review_start = start
            self.rec.first_review(app.cls, app.submitted, start - app.submitted)
        self.rec.review(start, w0, end, w0 + effort)
        return end - now

    def decide(self, app: Application, outcome: int) -> None:
        now = self.env.now
        self.rec.decided(app.cls, outcome, now, app.submitted, app.due)
        app.decided, app.outcome = now, outcome
        lic = self.p.licence
        if outcome == APPROVED and lic.renewal_share > 0:
            t = now + lic.term_days - lic.renewal_lead_days
            if t < self.n_days and _chance(self.draws["renewal"], lic.renewal_share):
                self.renewal(app, t)

    # -- run ------------------------------------------------------------------------------------
    def run(self) -> Recorder:
        env = self.env
        env.process(self.timeline())
        if self.p.initial_backlog.count:
            self.initial_backlog()
        env.process(self.base_arrivals())
        start = policies.parse_date(self.p.start_date)
        for s in self.p.arrivals.surges:
            day = (policies.parse_date(s.start_date) - start).days
            regime = self.regimes[bisect_right([r.day for r in self.regimes], max(day, 0)) - 1]
            group = ELEMENT_GROUPS.index(s.elements)
            controlled = (regime.params.controls.april7, regime.params.controls.october5)[group]
            # A surge before the start is already in the initial backlog, if anywhere.
            if controlled and s.size > 0 and 0 <= day < self.n_days:
                env.process(self.surge(s.size, s.decay_days, day, group))
        with collector_paused():
            env.run(until=self.n_days)
        for lane in self.pool.lanes:  # censored waits: still waiting for a first review
            for app in lane:
                if not app.withdrawn and app.rounds == 0:
                    self.rec.still_waiting(app.cls, app.submitted, self.n_days - app.submitted)
        return self.rec.finish()
