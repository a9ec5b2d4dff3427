"""The rare-earth licence mechanisms, one or more tests each; every test can fail."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sim.calendar import working_day_flags
from sim.config import load_config, to_params
from sim.model import DEDICATED, GREEN, LicenceModel, make_streams
from sim.runner import horizon_days, make_clock, simulate

# A loaded but small system: baseline_2025 with its surges and timeline removed.
# (A dict override merges, so each timeline event is dropped by name.)
QUIET = ["arrivals.surges=[]", "officials.schedule=[]", "intake.mean_working_days=0",
         "clearance.event=null", "officials.count=5", "arrivals.rate_per_day=100",
         "review.mean_hours=4",
         *[f"timeline.{e}=null" for e in ("geneva", "call", "london", "october_announced",
                                          "october_suspended", "us_hastened")],
         "incomplete.probability=0", "consultation.share=0", "licence.renewal_share=0",
         "classes.military_share=0", "decision.deny_probability=0",
         "officials.ramp.start_date=null", "queue.served_last=[]",
         "interagency.mean_working_days=0", "calibration.ensemble=false"]


def params(*overrides, base=("scenario=baseline_2025",)):
    return to_params(load_config([*base, *overrides]))


def apps_of(result) -> pd.DataFrame:
    assert result.applications is not None
    return result.applications


# -- working calendar ---------------------------------------------------------------------------
def test_calendar_follows_official_schedule():
    flags = working_day_flags(dt.date(2025, 9, 27), 16, "china")
    days = {dt.date(2025, 9, 27) + dt.timedelta(i): bool(f) for i, f in enumerate(flags)}
    assert days[dt.date(2025, 9, 28)]  # Sunday, official make-up working day
    assert not any(days[dt.date(2025, 10, d)] for d in range(1, 9))  # National Day holiday
    assert days[dt.date(2025, 10, 11)]  # Saturday, make-up working day
    assert not days[dt.date(2025, 10, 12)]  # ordinary Sunday


def test_reviews_end_only_on_working_days():
    p = params(*QUIET, "start_date=2025-09-01", "end_date=2025-11-30",
               "arrivals.rate_per_day=30", "officials.count=4", "review.mean_hours=6",
               "green_channel.mode=off", "output.applications=true")
    apps = apps_of(simulate(p))
    decided = pd.to_datetime(apps["decided"].dropna())
    working = dict(zip(pd.date_range("2025-09-01", "2025-11-30").date,
                       working_day_flags(dt.date(2025, 9, 1), 91, "china"), strict=True))
    assert all(working[d] for d in decided.dt.date), "a review ended on a day off"
    assert not (decided.dt.date == dt.date(2025, 10, 1)).any()
    sundays = decided[decided.dt.day_of_week == 6].dt.date
    assert set(sundays) == {dt.date(2025, 9, 28)}  # only the make-up Sunday
    assert (decided.dt.date == dt.date(2025, 10, 11)).sum() > 0  # make-up Saturday


def test_review_continues_on_next_working_day():
    """A 39-hour review started on a Friday ends, with 8-hour days, on the next Thursday (the
    fifth working day). Exactly 40 hours would end on the boundary between Thursday and Friday,
    which the clock puts on Friday 00:00."""
    p = params(*QUIET, "start_date=2025-03-07", "end_date=2025-03-31", "calendar.kind=china",
               "arrivals.rate_per_day=0", "initial_backlog.count=1",
               "review.distribution=fixed", "review.mean_hours=39",
               "officials.count=1", "output.applications=true")
    apps = apps_of(simulate(p))
    assert apps.loc[0, "review_start"] == "2025-03-07"
    assert apps.loc[0, "decided"] == "2025-03-13"  # Fri + Mon..Thu = 5 working days


# -- green channel ------------------------------------------------------------------------------
def _mean_wait(apps, mask):
    return apps.loc[mask, "wait_days"].mean()


@pytest.mark.parametrize("mode", ["priority", "dedicated"])
def test_trusted_wait_less_once_green_channel_opens(mode):
    # every_day calendar: waits in calendar days carry no weekend floor
    p = params(*QUIET, "end_date=2025-12-31", "calendar.kind=every_day",
               "arrivals.rate_per_day=7.6", "officials.count=6",
               "review.mean_hours=6", f"green_channel.mode={mode}",
               "green_channel.dedicated_officials=2", "green_channel.start_date=2025-06-10",
               "green_channel.destinations=[US,EU]", "green_channel.effort_multiplier=1.0",
               "output.applications=true")
    apps = apps_of(simulate(p))
    opens = (dt.date(2025, 6, 10) - dt.date(2025, 4, 4)).days
    eligible = apps["trusted"] & apps["destination"].isin(["US", "EU"])
    before = apps["review_start_day"] < opens  # reviewed before the channel opened
    after = apps["submitted_day"] >= opens
    served = apps["review_start_day"].notna()
    w = {(e, b): _mean_wait(apps, served & (eligible if e else ~eligible)
                            & (before if b else after))
         for e in (True, False) for b in (True, False)}
    # before: the same queue for everyone (within 25 %); after: trusted wait far less
    assert w[(True, True)] == pytest.approx(w[(False, True)], rel=0.25)
    assert w[(True, False)] < 0.3 * w[(False, False)]


def test_dedicated_officials_never_idle_while_trusted_work_waits():
    p = params(*QUIET, "end_date=2025-08-31", "arrivals.rate_per_day=45", "officials.count=5",
               "review.mean_hours=8", "green_channel.mode=dedicated",
               "green_channel.dedicated_officials=2", "green_channel.start_date=2025-05-01",
               "classes.trusted_share={US:0.5,EU:0.5,JP:0.5,KR:0.5,IN:0.5,other:0.5}",
               "green_channel.destinations=[US,EU,JP,KR,IN,other]")
    n = horizon_days(p)
    model = LicenceModel(p, make_streams(p.seed), make_clock(p, n), n)
    env, pool = model.env, model.pool
    env.process(model.timeline())
    env.process(model.base_arrivals())
    checked = 0
    while env.peek() < n:
        env.step()
        waiting_green = any(not a.withdrawn for a in pool.lanes[GREEN])
        assert not (pool.idle[DEDICATED] and waiting_green), f"idle at t={env.now}"
        checked += waiting_green
    assert checked > 1000  # the invariant was tested while trusted work was waiting
    assert pool.staff[DEDICATED] == 2


# -- military exclusion -------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["deny", "hold", "reject_at_intake"])
def test_military_never_approved(policy):
    p = params(*QUIET, "end_date=2025-07-31", "classes.military_share=0.3",
               f"military.policy={policy}", "output.applications=true")
    result = simulate(p)
    mil = result.summary["by_group"]["military"]["True"]
    assert mil["arrivals"] > 100
    assert mil["approved"] == 0
    apps = apps_of(result)
    military = apps[apps["military"]]
    if policy == "hold":
        assert mil["denied"] == 0 and (military["outcome"] == "pending").all()
        assert military["review_start"].isna().all()  # no official's time
    elif policy == "reject_at_intake":
        assert military["review_start"].isna().all()
        assert (military.loc[military["outcome"] != "pending", "outcome"] == "denied").all()
    else:
        decided = military[military["outcome"] != "pending"]
        assert (decided["outcome"] == "denied").all() and decided["review_start"].notna().all()
    held = result.daily["held"]  # counted day by day, without the applications table
    if policy == "hold":
        assert held.iloc[-1] == len(military) == result.summary["held_end"]
        assert held.is_monotonic_increasing
    else:
        assert (held == 0).all() and result.summary["held_end"] == 0
    assert result.summary["by_group"]["military"]["False"]["approved"] > 0


# -- renewals, incomplete files, withdrawal, backlog ----------------------------------------
def test_renewals_arrive_term_minus_lead_after_approval():
    p = params(*QUIET, "end_date=2026-03-31", "licence.renewal_share=0.5",
               "licence.term_days=120", "licence.renewal_lead_days=20", "officials.count=40",
               "output.applications=true")
    apps = apps_of(simulate(p)).set_index("id")
    renewals = apps[apps["renewal"]]
    assert len(renewals) > 100
    parents = apps.loc[renewals["renews"].astype(int)]
    assert (parents["outcome"] == "approved").all()
    np.testing.assert_allclose(renewals["submitted_day"].to_numpy(),
                               parents["decided_day"].to_numpy() + 100, atol=1e-9)
    approved_early = apps[(apps["outcome"] == "approved") & (apps["decided_day"] < 300)]
    share = len(renewals[renewals["submitted_day"] < 400]) / len(approved_early)
    assert share == pytest.approx(0.5, abs=0.1)


def test_renewals_keep_their_own_term_when_the_term_shortens():
    """Renewals wait in one line behind one timer while they fall due in order; a licence
    approved after the term shortened falls due before those already in line and is timed
    apart. Each still comes back term - lead after its own approval, under the term in force
    when it was approved."""
    p = params(*QUIET, "end_date=2026-03-31", "licence.renewal_share=1",
               "licence.term_days=200", "licence.renewal_lead_days=20", "officials.count=40",
               "output.applications=true",
               "+timeline.short={date:'2025-07-01',label:short,changes:{licence.term_days:60}}")
    apps = apps_of(simulate(p)).set_index("id")
    renewals = apps[apps["renewal"]]
    parents = apps.loc[renewals["renews"].astype(int)]
    short = (pd.to_datetime(p.start_date) + pd.to_timedelta(parents["decided_day"], "D")
             >= pd.Timestamp("2025-07-01")).to_numpy()
    assert short.sum() > 100 and (~short).sum() > 100  # both terms seen
    expected = parents["decided_day"].to_numpy() + np.where(short, 40, 180)
    np.testing.assert_allclose(renewals["submitted_day"].to_numpy(), expected, atol=1e-9)


def test_incomplete_files_come_back_and_are_counted():
    p = params(*QUIET, "end_date=2025-12-31", "incomplete.probability=0.5",
               "incomplete.response_mean_days=5", "officials.count=150",
               "output.applications=true")
    result = simulate(p)
    apps = apps_of(result)
    decided = apps[apps["outcome"] == "approved"]
    # rounds ~ geometric: mean p / (1 - p) = 1 (standard error ~ 1.4 / sqrt(n))
    assert decided["rounds"].mean() == pytest.approx(1.0, abs=5 * 1.42 / np.sqrt(len(decided)))
    assert result.summary["extra_review_rounds"] == apps["rounds"].sum()
    by_rounds = decided.groupby("rounds")["time_to_decision_days"].mean()
    assert by_rounds[0] < by_rounds[1] < by_rounds[2]  # each round adds the applicant's delay


def test_withdrawal_after_patience():
    p = params(*QUIET, "end_date=2025-09-30", "arrivals.rate_per_day=40", "officials.count=3",
               "withdrawal.patience_days=20", "output.applications=true")
    result = simulate(p)
    apps = apps_of(result)
    gone = apps[apps["outcome"] == "withdrawn"]
    assert len(gone) > 100
    assert gone["review_start"].isna().all()
    np.testing.assert_allclose(gone["decided_day"] - gone["submitted_day"], 20.0, atol=1e-9)
    served = apps[apps["review_start_day"].notna()]
    assert (served["wait_days"] <= 20 + 1e-9).all()
    assert result.summary["totals"]["withdrawn"] == len(gone)


def test_held_applications_are_left_out_of_clearance():
    # A backlog of 3,000 (a tenth of it military, held) worked off by 40 officials: the
    # civilian part clears, the held part never can.
    base = [*QUIET, "end_date=2025-08-31", "arrivals.rate_per_day=20",
            "initial_backlog.count=3000", "initial_backlog.max_waited_days=30",
            "officials.count=40", "green_channel.mode=off", "classes.military_share=0.1",
            "military.policy=hold", "clearance.backlog=pending"]
    result = simulate(params(*base))
    d, cl = result.daily, result.summary["clearance"]
    clearable = d["pending"] - d["held"]
    assert cl["held_counted"] is False
    assert 380 < d["held"].iloc[-1] < 620  # 0.1 x (3,000 + 20 a working day x 102), +-5 sd
    assert cl["threshold"] == pytest.approx(0.1 * clearable.max())
    day = (dt.date.fromisoformat(cl["clearance_date"]) - dt.date(2025, 4, 4)).days
    assert clearable.iloc[day] < cl["threshold"] <= clearable.iloc[:day].min()
    assert d.loc[day, "pending"] > cl["threshold"]  # counting the held, it would not clear
    counted = simulate(params(*base, "clearance.count_held=true")).summary["clearance"]
    assert counted["held_counted"] is True and counted["cleared"] is False
    assert counted["threshold"] == pytest.approx(0.1 * d["pending"].max())


def test_waits_still_running_at_the_end_are_reported():
    # Overloaded (about 10 reviews a day against 100 filings): most applications are still
    # waiting at the end, left out of the mean over started reviews. The figures on those
    # still waiting must match the applications table.
    p = params(*QUIET, "end_date=2025-05-31", "green_channel.mode=off",
               "output.applications=true")
    result = simulate(p)
    s, apps = result.summary, apps_of(result)
    n_days = s["days"]
    waiting = apps[apps["review_start_day"].isna() & (apps["outcome"] == "pending")]
    assert s["waiting_end"] == len(waiting) > 1000
    ages = n_days - waiting["submitted_day"]
    assert s["mean_age_waiting_end_days"] == pytest.approx(ages.mean())
    assert s["max_age_waiting_end_days"] == pytest.approx(ages.max())
    so_far = apps["review_start_day"].fillna(n_days) - apps["submitted_day"]
    assert s["mean_wait_days_with_waiting"] == pytest.approx(so_far.mean())
    us = waiting[waiting["destination"] == "US"]
    assert s["by_group"]["destination"]["US"]["waiting_end"] == len(us)


def test_start_from_a_backlog():
    p = params(*QUIET, "end_date=2025-06-30", "arrivals.rate_per_day=0",
               "initial_backlog.count=500", "initial_backlog.max_waited_days=60",
               "officials.count=5", "green_channel.mode=off", "output.applications=true")
    result = simulate(p)
    d = result.daily
    assert d.loc[0, "arrivals"] == 500 and d.loc[0, "pending"] == 500
    apps = apps_of(result)
    assert apps["submitted_day"].between(-60, 0).all()
    order = apps.sort_values("review_start_day", kind="stable")["submitted_day"]
    assert (np.diff(order) >= 0).all()  # oldest first
    assert d["pending"].is_monotonic_decreasing
    # waits count from submission, before the start included
    served = apps["review_start_day"].notna()
    assert result.summary["mean_wait_days"] == pytest.approx(apps.loc[served, "wait_days"].mean())


# -- arrivals and timeline ------------------------------------------------------------------
def test_surge_adds_its_expected_size():
    base = params(*QUIET, "end_date=2025-06-30", "arrivals.rate_per_day=10")
    surge = params(*QUIET, "end_date=2025-06-30", "arrivals.rate_per_day=10",
                   "arrivals.surges=[{start_date:'2025-04-07',size:3000,decay_days:5}]")
    extra = surge.arrivals and (simulate(surge).summary["totals"]["arrivals"]
                                - simulate(base).summary["totals"]["arrivals"])
    assert extra == pytest.approx(3000, abs=5 * np.sqrt(3000 + 2 * 10 * 60))


def test_timeline_changes_staffing_and_rates_on_the_date():
    p = params(*QUIET, "end_date=2025-07-31",
               "+timeline.more={date:'2025-06-02',label:more,changes:{officials.count:9,"
               "arrivals.rate_per_day:80}}")
    d = simulate(p).daily.set_index("date")
    assert d.loc["2025-06-01", "officials"] == 5 and d.loc["2025-06-02", "officials"] == 9
    work = d[d["working_day"] == 1]
    before = work.loc[:"2025-06-01", "arrivals"].iloc[5:].mean()
    after = work.loc["2025-06-02":, "arrivals"].mean()
    assert before == pytest.approx(100, rel=0.15) and after == pytest.approx(80, rel=0.15)


@pytest.mark.slow
def test_october_elements_only_while_controlled():
    base = simulate(params("end_date=2026-02-28"))
    expanded = simulate(params("scenario=october_expansion_not_suspended",
                               "end_date=2026-02-28", base=()))
    assert base.summary["by_group"]["elements"]["october5"]["arrivals"] == 0
    oct5 = expanded.by_class[expanded.by_class["elements"] == "october5"]
    first = oct5.loc[oct5["arrivals"] > 0, "date"].min()
    assert first == "2025-11-10"  # 11-08 is a Saturday, the first working day after is Monday


# -- accounting ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_conservation_every_day_every_class():
    p = params("end_date=2026-03-31", "withdrawal.patience_days=90", "initial_backlog.count=300",
               "initial_backlog.max_waited_days=30", "classes.military_share=0.05",
               "military.policy=deny")
    result = simulate(p)
    bc = result.by_class
    keys = ["destination", "trusted", "military", "elements", "renewal"]
    assert bc.groupby(keys).ngroups > 10
    for _, g in bc.groupby(keys):
        out = (g["approved"] + g["denied"] + g["withdrawn"]).cumsum()
        np.testing.assert_array_equal(g["arrivals"].cumsum(), out + g["pending"])
        assert (g["pending"] >= 0).all() and (g["past_statutory_limit"] <= g["pending"]).all()
    d = result.daily
    totals = bc.groupby("date")[["arrivals", "approved", "pending"]].sum()
    np.testing.assert_array_equal(totals["pending"].to_numpy(), d["pending"].to_numpy())
    assert result.summary["totals"]["withdrawn"] > 0


def test_statutory_limit_counts_match_applications():
    p = params(*QUIET, "end_date=2025-10-31", "officials.count=4", "output.applications=true")
    result = simulate(p)
    apps = apps_of(result)
    end = "2025-10-31"
    pending_past = ((apps["outcome"] == "pending") & (apps["statutory_due"] <= end)).sum()
    assert pending_past > 0
    assert result.daily["past_statutory_limit"].iloc[-1] == pending_past
    decided = apps[apps["outcome"].isin(["approved", "denied"])]
    assert result.summary["share_decided_late"] == pytest.approx(decided["decided_late"].mean())


@pytest.mark.slow
def test_scenarios_differ_in_the_expected_direction():
    base = simulate(params("end_date=2025-12-31")).summary
    more = simulate(params("scenario=more_officials", "end_date=2025-12-31", base=())).summary
    # (Not pending at the end: approving sooner brings the six-month renewals sooner.)
    assert more["peak_pending"] < base["peak_pending"]
    assert more["mean_wait_days"] < base["mean_wait_days"]
    # clears earlier: a date where the baseline has none (it did not clear), or before its date
    later, sooner = base["clearance"]["clearance_date"], more["clearance"]["clearance_date"]
    assert sooner is not None and (later is None or sooner < later)


# -- the light process and the handoff ------------------------------------------------------------
def test_steps_runs_a_path_as_simpy_would():
    """Steps starts the generator at once, resumes it with each event's value at the event's
    time, goes straight on past an event already processed, and ends quietly."""
    import simpy

    from sim.engine import Handoff, Steps

    env = simpy.Environment()
    seen = []
    done = env.timeout(0, value="old")
    env.run()  # `done` is processed: yielding it again must not wait

    def path():
        seen.append(("start", env.now))
        value = yield env.timeout(2.5, value="a")
        seen.append((value, env.now))
        value = yield done
        seen.append((value, env.now))
        handoff = Handoff()
        env.timeout(1.0).callbacks.append(lambda _: handoff.fire("taken"))
        value = yield handoff
        seen.append((value, env.now))

    Steps(path())
    assert seen == [("start", 0)]  # started at once, no start event
    env.run()
    assert seen == [("start", 0), ("a", 2.5), ("old", 2.5), ("taken", 3.5)]


def test_a_timer_fires_where_simpy_timeout_would():
    """Timers and SimPy timeouts mixed, at equal and different times, with a SimPy process
    and a light path waiting on them: they fire in the order SimPy's timeouts alone would
    (time, then creation), at their times; a negative delay is refused as SimPy refuses it."""
    import simpy

    from sim.engine import Steps, Timer

    def run(light: bool) -> list:
        env, fired = simpy.Environment(), []
        make = (lambda d: Timer(env, d)) if light else env.timeout
        for k, delay in enumerate([3.0, 1.0, 3.0, 0.0, 1.0, 2.5]):
            ev = make(delay) if k % 2 else env.timeout(delay)
            ev.callbacks.append(lambda _, k=k: fired.append((k, env.now)))

        def process():
            yield make(1.0)
            fired.append(("process", env.now))

        def path():
            yield make(2.5)
            fired.append(("path", env.now))

        env.process(process())
        Steps(path())
        env.run(until=10)
        return fired

    assert run(light=True) == run(light=False)
    assert [k for k, _ in run(light=True)][:2] == [3, 1]
    with pytest.raises(ValueError, match="Negative delay"):
        Timer(simpy.Environment(), -0.5)


def test_a_handoff_resumes_the_waiting_path_before_fire_returns():
    from sim.engine import Handoff, Steps

    handoff, order = Handoff(), []

    def waiting():
        order.append((yield handoff))

    Steps(waiting())
    handoff.fire(7)
    order.append("after fire")
    assert order == [7, "after fire"] and handoff.triggered and handoff.callbacks is None


@pytest.mark.slow
def test_a_run_leaves_no_reference_cycle_behind():
    """The model runs with the cyclic collector paused (engine.collector_paused): that is only
    sound if an application's path holds no reference cycle, so that reference counting frees
    every finished application. A run of every mechanism (intake, rounds, stages,
    consultation, renewals, withdrawal with its own patience, the dedicated lane, applications
    on hold) must leave no unreachable object while the model itself is still alive, and the
    collector must be back on after it."""
    import gc

    p = params("end_date=2025-08-31", "calibration.ensemble=false",
               "withdrawal.patience_days=40", "withdrawal.patience_distribution=exponential",
               "green_channel.mode=dedicated", "green_channel.dedicated_officials=2",
               "military.policy=hold", "licence.term_days=60", "licence.renewal_lead_days=10")
    n = horizon_days(p)
    gc.collect()
    model = LicenceModel(p, make_streams(p.seed), make_clock(p, n), n)
    rec = model.run()
    assert gc.isenabled()
    counts = [sum(r) for r in rec.outcomes[2].values()]  # withdrawn: the mechanism ran
    assert model._next_id > 20_000 and sum(counts) > 1_000 and sum(rec.held_n) > 0
    assert gc.collect() < 50, "the run left reference cycles: the paused collector leaks"
