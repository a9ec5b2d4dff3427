"""The levers the credible baseline added: staffing ramp and scale, destinations served last,
the elapsed inter-agency stage, and their one-line refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import policies
from sim.config import ConfigError, load_config, to_params
from sim.runner import simulate
from tests.test_process import QUIET


def params(*overrides):
    return to_params(load_config(["scenario=baseline_2025", *QUIET, *overrides]))


def staff_by_day(p) -> np.ndarray:
    return simulate(p).daily["officials"].to_numpy()


# -- staffing -----------------------------------------------------------------------------------
def test_ramp_climbs_in_weekly_steps_from_the_pool_in_force():
    p = params("end_date=2025-07-31", "officials.count=5", "officials.ramp.start_date=2025-06-10",
               "officials.ramp.days=28", "officials.ramp.count=45")
    staff = staff_by_day(p)
    day = (policies.parse_date("2025-06-10") - policies.parse_date(p.start_date)).days
    assert (staff[:day + 7] == 5).all()  # the first step comes a week after the start
    steps = [int(staff[day + 7 * k]) for k in range(1, 5)]
    assert steps == [15, 25, 35, 45]
    assert (staff[day + 28:] == 45).all()


def test_ramp_of_zero_days_is_one_step():
    p = params("end_date=2025-06-30", "officials.ramp.start_date=2025-06-10",
               "officials.ramp.days=0", "officials.ramp.count=30")
    staff = staff_by_day(p)
    day = (policies.parse_date("2025-06-10") - policies.parse_date(p.start_date)).days
    assert staff[day - 1] == 5 and (staff[day:] == 30).all()


def test_scale_multiplies_every_staffing_level():
    """A sweep over officials.scale moves the whole horizon, not only the first regime."""
    ramp = ("end_date=2025-07-31", "officials.ramp.start_date=2025-06-10",
            "officials.ramp.days=14", "officials.ramp.count=40",
            "officials.schedule=[{date:'2025-05-01',count:6}]")
    one, two = staff_by_day(params(*ramp)), staff_by_day(params(*ramp, "officials.scale=2"))
    assert set(one) == {5, 6, 23, 40}  # the ramp starts from the schedule's 6
    assert np.array_equal(two, 2 * one)


def test_scale_keeps_at_least_one_official():
    p = params("officials.count=1", "officials.scale=0.2")
    assert policies.officials_on_duty(p) == 1


# -- destinations served last -------------------------------------------------------------------
def test_destination_served_last_waits_behind_all_others():
    """An overloaded pool serves no US-bound file while others wait; once the timeline lifts
    the rule, US files are served in turn (FIFO with the rest)."""
    p = params("end_date=2025-06-30", "arrivals.rate_per_day=150", "officials.count=3",
               "review.mean_hours=8", "queue.served_last=[US]", "output.applications=true",
               "+timeline.lift={date:'2025-05-20',label:lift,changes:{queue.served_last:[]}}")
    apps = simulate(p).applications
    reviewed = apps[apps["review_start"].notna()]  # ISO dates: compared as strings
    # From the second week: on the first day officials are idle and take whatever comes.
    before = reviewed[reviewed["review_start"].between("2025-04-11", "2025-05-19")]
    after = reviewed[reviewed["review_start"] >= "2025-06-10"]
    # Before the lift the queue never empties (3 officials, 1 review a day each, 150 filings),
    # so US files get no review at all.
    assert len(before) > 60 and (before["destination"] == "US").sum() == 0
    us_share = p.classes.destination_shares["US"]
    n = len(after)
    share = (after["destination"] == "US").mean()
    # After it, US files (the oldest in the queue) are served: at least their share of arrivals.
    assert share > us_share - 4 * math.sqrt(us_share * (1 - us_share) / n)


# -- the inter-agency stage ---------------------------------------------------------------------
def test_interagency_stage_takes_elapsed_time_without_officials():
    """With idle officials, the time from acceptance to decision is the stage's lognormal
    delay (plus minutes of review): its mean matches within 4 standard errors."""
    mean, cv = 12.0, 0.5
    p = params("end_date=2025-08-31", "officials.count=200", "review.mean_hours=0.1",
               f"interagency.mean_working_days={mean}", f"interagency.cv={cv}",
               "output.applications=true")
    apps = simulate(p).applications
    done = apps[apps["outcome"] == "approved"]
    x = done["working_days_to_decision"].to_numpy()
    se = mean * cv / math.sqrt(len(x))
    effort = 0.1 / 8
    assert len(x) > 3000
    assert abs(x.mean() - mean) < 4 * se + 2 * effort + 1.0  # +1: decisions land on whole days
    assert np.median(x) > 0.5 * mean  # never a matter of hours
    res = simulate(params("end_date=2025-08-31", "officials.count=200", "review.mean_hours=0.1"))
    assert res.summary["utilisation"] < 0.05  # the stage used none of the officials' time


def test_clearance_is_measured_on_the_applications_waiting_for_an_official():
    """With an elapsed stage, pending never falls below the files in normal processing
    (filings a working day times working days in process: about 100 x 20 here), so the
    default measures the backlog waiting for an official; `pending` stays above 10 % of its
    peak."""
    base = ("end_date=2025-09-30", "initial_backlog.count=8000", "officials.count=30",
            "review.mean_hours=0.5", "interagency.mean_working_days=20", "green_channel.mode=off")
    waiting = simulate(params(*base))
    cl, d = waiting.summary["clearance"], waiting.daily
    assert cl["backlog"] == "waiting" and cl["cleared"]
    assert cl["threshold"] == pytest.approx(0.1 * d["waiting"].max())
    day = (policies.parse_date(cl["clearance_date"]) - policies.parse_date("2025-04-04")).days
    assert d["waiting"].iloc[day] < cl["threshold"]
    assert d["pending"].iloc[-60:].min() > 1000  # the files in process
    pending = simulate(params(*base, "clearance.backlog=pending")).summary["clearance"]
    assert pending["backlog"] == "pending" and not pending["cleared"]


# -- one-line refusals -----------------------------------------------------------------------------
@pytest.mark.parametrize("override, key", [
    ("officials.scale=0", "officials.scale"),
    ("officials.scale=nan", "officials.scale"),
    ("officials.scale=inf", "officials.scale"),
    ("officials.ramp.days=-3", "officials.ramp.days"),
    ("officials.ramp.count=0", "officials.ramp.count"),
    ("officials.ramp.start_date=June", "officials.ramp.start_date"),
    ("interagency.mean_working_days=-1", "interagency.mean_working_days"),
    ("interagency.mean_working_days=inf", "interagency.mean_working_days"),
    ("interagency.cv=0", "interagency.cv"),
    ("queue.served_last=[Mars]", "queue.served_last"),
    ("clearance.backlog=queue", "clearance.backlog"),
    ("calibration.keep=[no.such]", "calibration.keep"),
])
def test_new_levers_refuse_bad_values_in_one_line(override, key):
    with pytest.raises(ConfigError) as err:
        params(override)
    text = str(err.value)
    assert text.startswith(f"{key}=") and "\n" not in text
