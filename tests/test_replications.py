"""Replications, confidence bands, common random numbers, clearance metrics, API == CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import sim
from sim.clearance import clearance, cohort_days_to_clear
from sim.runner import run_replications
from sim.stats import band, mean_ci, replications_needed

# The replication machinery on the representative calibrated point (the ensemble's own tests
# are in test_ensemble.py), to the end of July: a second or so a replication.
SHORT = ["end_date=2025-07-31", "calibration.ensemble=false"]
# Statistical properties of the machinery on the M/M/c check scenario (c = 5, utilisation 0.9):
# well-behaved, light-tailed and fast.
MMC = ["scenario=mmc", "horizon_days=400", "warmup_days=50"]


@pytest.mark.slow
def test_same_results_for_any_number_of_jobs():
    one = sim.run(SHORT, replications=3, jobs=1)
    two = sim.run(SHORT, replications=3, jobs=2)
    pd.testing.assert_frame_equal(one.daily, two.daily)
    pd.testing.assert_frame_equal(one.by_class, two.by_class)
    assert json.dumps(one.summary, default=str) == json.dumps(two.summary, default=str)


@pytest.mark.slow
def test_replication_depends_only_on_seed_and_index():
    params = sim.to_params(sim.load_config(SHORT))
    alone = run_replications(params, n=1, first=2)[0]
    among = run_replications(params, n=3)[2]
    pd.testing.assert_frame_equal(alone.daily, among.daily)
    assert not run_replications(params, n=1, first=1)[0].daily.equals(alone.daily)


@pytest.mark.slow
def test_confidence_bands_shrink_as_replications_grow():
    params = sim.to_params(sim.load_config(MMC))
    runs = run_replications(params, n=16)
    pending = np.vstack([r.daily["pending"].to_numpy() for r in runs])
    width = {n: np.nanmean(np.subtract(*band(pending[:n])[2:0:-1])) for n in (4, 16)}
    assert width[16] < 0.7 * width[4]  # ~ sqrt(4/16) = 0.5, t quantile 3.18 vs 2.13


@pytest.mark.slow
def test_common_random_numbers_reduce_noise_of_differences():
    a = sim.to_params(sim.load_config(MMC))
    b = sim.to_params(sim.load_config([*MMC, "review.mean_days=0.95"]))
    n = 12
    ra = [r.summary["mean_wait_days"] for r in run_replications(a, n=n)]
    rb_crn = [r.summary["mean_wait_days"] for r in run_replications(b, n=n)]
    rb_ind = [r.summary["mean_wait_days"] for r in run_replications(b, n=n, first=1000)]
    crn = np.var(np.subtract(ra, rb_crn), ddof=1)
    independent = np.var(np.subtract(ra, rb_ind), ddof=1)
    assert crn < 0.5 * independent, (crn, independent)


@pytest.mark.slow
def test_summary_reports_mean_and_interval():
    res = sim.run(SHORT, replications=5)
    s = res.summary
    assert s["replications"] == 5
    values = [r.summary["mean_wait_days"] for r in res.runs]
    assert s["mean_wait_days"] == pytest.approx(np.mean(values))
    low, high, n = s["ci95"]["mean_wait_days"]
    assert n == 5 and low < s["mean_wait_days"] < high
    assert (low, high) == pytest.approx(mean_ci(values)[1:])
    d = res.daily
    assert (d["pending_low"] <= d["pending"]).all() and (d["pending"] <= d["pending_high"]).all()
    # conservation holds for the means too
    out = (d["approved"] + d["denied"] + d["withdrawn"]).cumsum()
    np.testing.assert_allclose(d["arrivals"].cumsum(), out + d["pending"], atol=1e-6)


# -- clearance metrics on hand-made series ------------------------------------------------------
def test_clearance_date_on_hand_made_series():
    series = np.array([0, 50, 100, 80, 40, 20, 9, 12, 5])
    c = clearance(series, fraction_of_peak=0.1)
    assert (c.peak, c.peak_day, c.threshold, c.cleared_day) == (100, 2, 10.0, 6)
    assert clearance(series, level=30).cleared_day == 5
    assert clearance(series, level=5).cleared_day is None  # 5 is not below 5


def test_backlog_that_never_clears_is_reported_as_such():
    rising = np.arange(100)
    assert clearance(rising).cleared_day is None
    flat_after_peak = np.array([0, 10, 10, 10])
    assert clearance(flat_after_peak).cleared_day is None
    # Three officials at 8 hours a review, no staff added: no clearing.
    res = sim.run(["end_date=2025-08-31", "officials.ramp.start_date=null", "officials.count=3",
                   "review.mean_hours=8"])
    cl = res.summary["clearance"]
    assert cl["cleared"] is False and cl["clearance_date"] is None
    assert cl["days_event_to_clearance"] is None


def test_cohort_days_to_clear():
    remaining = np.array([np.nan, np.nan, 10, 8, 5, 4, 1, 0])
    assert cohort_days_to_clear(remaining, 2, 0.5) == 2
    assert cohort_days_to_clear(remaining, 2, 0.9) == 4
    assert cohort_days_to_clear(remaining, 2, 1.0) == 5
    assert cohort_days_to_clear(np.array([3.0, 3.0]), 0, 0.5) is None


@pytest.mark.slow
def test_cohort_matches_applications():
    res = sim.run(["end_date=2025-09-30", "calibration.ensemble=false",
                   "output.applications=true"])
    apps = res.runs[0].applications
    d = res.daily.set_index("date")
    cohort = apps[(apps["submitted_day"] < 68) & ~(apps["decided_day"] < 68)]  # 06-10 is day 67
    assert d.loc["2025-06-10", "cohort_pending"] == len(cohort) == d.loc["2025-06-10", "pending"]
    still = (cohort["decided_day"].isna() | (cohort["decided_day"] >= 160)).sum()
    assert d.loc["2025-09-10", "cohort_pending"] == still  # 09-10 is day 159


def test_replications_needed():
    rng = np.random.default_rng(0)
    pilot = rng.normal(100, 10, size=10)
    n = replications_needed(pilot, 0.02)
    # t * s / sqrt(n) <= 2: with s ~ 10, n ~ (1.97 * 10 / 2)^2 ~ 97
    assert 60 < n < 160
    # +-50 %: n = 2 fails (t = 12.7, half-width ~ 60), n = 3 passes (t = 4.3, ~ 19)
    assert replications_needed(pilot, 0.5) == 3


# -- the API and the CLI agree --------------------------------------------------------------
@pytest.mark.slow
def test_api_and_cli_give_identical_numbers(tmp_path):
    overrides = ["scenario=no_green_channel", "officials.count=6", "end_date=2025-08-31",
                 "replications=2"]
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "sim", *overrides, f"hydra.run.dir={run_dir}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads((run_dir / "summary.json").read_text())
    api = sim.run(overrides)
    assert cli["totals"] == api.summary["totals"]
    assert cli["mean_wait_days"] == pytest.approx(api.summary["mean_wait_days"], rel=1e-12)
    from_cli = pd.read_csv(run_dir / "daily.csv")
    np.testing.assert_allclose(from_cli["pending"], api.daily["pending"], rtol=1e-5)


def test_progress_is_quiet_when_not_a_terminal(capfd):
    sim.run(["scenario=mmc", "horizon_days=200", "warmup_days=0"], replications=3, jobs=2)
    assert capfd.readouterr().err == ""


def test_ensemble_replications_use_their_members():
    from sim.ensemble import ensemble_members, member_index

    params = sim.to_params(sim.load_config(["end_date=2025-05-31", "calibration.ensemble=true"]))
    members = ensemble_members(params)
    runs = run_replications(params, n=2)
    for r, run in enumerate(runs):
        drawn = member_index(params.seed, r, len(members))
        assert run.summary["ensemble_member"] == drawn
        expected = members[drawn].get("officials.count", params.officials.count)
        assert run.daily["officials"].iloc[0] == expected
