"""The model reduced to textbook queues agrees with queueing theory: M/M/c (Erlang C, Little's
law), M/D/1 (Pollaczek-Khinchine), non-preemptive priority M/M/c (Cobham) and M/M/c with
exponential patience (Erlang A).

Each statistical check builds a 99 % Student-t confidence interval from the means of
independent replications (sim.stats.mean_ci) and asks the analytic value to lie inside it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.config import load_config, to_params
from sim.model import LicenceModel, make_streams
from sim.queueing import erlang_a, erlang_c, mmc_wait, priority_mmc_waits
from sim.runner import horizon_days, make_clock, run_replications
from sim.stats import mean_ci

REPLICATIONS = 20
# One worker runs this module, so that each module fixture's replications run once.
pytestmark = pytest.mark.xdist_group("theory")

# (servers, arrival rate per day, mean review days, horizon days, warm-up days)
SETTINGS = [
    (1, 0.5, 1.0, 4000, 200),  # utilisation 0.5
    (3, 2.4, 1.0, 3000, 300),  # utilisation 0.8
    (5, 4.5, 1.0, 3000, 300),  # utilisation 0.9
]


def mmc_params(c, rate, mean_days, horizon, warmup, seed=11):
    cfg = load_config(["scenario=mmc", f"officials.count={c}", f"arrivals.rate_per_day={rate}",
                       f"review.mean_days={mean_days}", f"horizon_days={horizon}",
                       f"warmup_days={warmup}", f"seed={seed}"])
    return to_params(cfg)


def test_erlang_c_known_values():
    # M/M/1: P(wait) = rho; M/M/2 with a = 1: C = 1/3 (hand calculation)
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert mmc_wait(1, 0.5, 1.0)["wq"] == pytest.approx(1.0)  # rho / (mu - lambda)


def _setting_id(s):
    return f"c{s[0]}_rho{s[1] * s[2] / s[0]:.1f}"


@pytest.fixture(scope="module", params=SETTINGS, ids=_setting_id)
def mmc_runs(request):
    c, rate, mean_days, horizon, warmup = request.param
    runs = run_replications(mmc_params(c, rate, mean_days, horizon, warmup), REPLICATIONS)
    return request.param, runs


@pytest.mark.slow
def test_mean_wait_matches_erlang_c(mmc_runs):
    (c, rate, mean_days, _, _), runs = mmc_runs
    theory = mmc_wait(c, rate, mean_days)
    _, low, high = mean_ci([r.summary["mean_wait_days"] for r in runs], level=0.99)
    assert low <= theory["wq"] <= high, (theory["wq"], low, high)


@pytest.mark.slow
def test_mean_number_waiting_matches_erlang_c(mmc_runs):
    (c, rate, mean_days, _, _), runs = mmc_runs
    theory = mmc_wait(c, rate, mean_days)
    _, low, high = mean_ci([r.summary["mean_waiting"] for r in runs], level=0.99)
    assert low <= theory["lq"] <= high, (theory["lq"], low, high)


@pytest.mark.slow
def test_utilisation_matches_offered_load(mmc_runs):
    (c, rate, mean_days, _, _), runs = mmc_runs
    _, low, high = mean_ci([r.summary["utilisation"] for r in runs], level=0.99)
    assert low <= rate * mean_days / c <= high


@pytest.mark.slow
def test_littles_law_on_simulated_data(mmc_runs):
    """Lq = lambda * Wq with all three measured in the same run (not the theory's values)."""
    _, runs = mmc_runs
    gaps = [r.summary["mean_waiting"] - r.summary["arrival_rate_per_day"]
            * r.summary["mean_wait_days"] for r in runs]
    _, low, high = mean_ci(gaps, level=0.99)
    assert low <= 0.0 <= high, (low, high)
    # and each replication individually within edge effects of the window (a few %)
    for r in runs:
        s = r.summary
        assert s["mean_waiting"] == pytest.approx(s["arrival_rate_per_day"] * s["mean_wait_days"],
                                                  rel=0.05)


@pytest.mark.slow
def test_conservation_every_day(mmc_runs):
    _, runs = mmc_runs
    for r in runs:
        d = r.daily
        decided = (d["approved"] + d["denied"] + d["withdrawn"]).cumsum()
        np.testing.assert_array_equal(d["arrivals"].cumsum(), decided + d["pending"])
        assert (d["pending"] == d["waiting"] + d["in_review"]).all()  # mmc: no other stage


# -- M/D/1: review.distribution=fixed ---------------------------------------------------------
def test_fixed_review_takes_exactly_the_mean():
    p = to_params(load_config(["scenario=mmc", "review.distribution=fixed", "review.mean_days=0.7",
                               "arrivals.rate_per_day=3", "horizon_days=60", "warmup_days=0",
                               "output.applications=true"]))
    runs = run_replications(p, 1, jobs=1)
    apps = runs[0].applications
    durations = (apps["decided_day"] - apps["review_start_day"]).dropna()
    assert len(durations) > 100
    np.testing.assert_allclose(durations, 0.7, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_md1_wait_matches_pollaczek_khinchine():
    """M/D/1 at utilisation 0.8: Wq = rho / (2 mu (1 - rho)) = 2 days (M/M/1 would give 4)."""
    rate, mean = 0.8, 1.0
    p = to_params(load_config(["scenario=mmc", "officials.count=1", "review.distribution=fixed",
                               f"arrivals.rate_per_day={rate}", f"review.mean_days={mean}",
                               "horizon_days=4000", "warmup_days=200", "seed=11"]))
    runs = run_replications(p, REPLICATIONS, jobs=2)
    rho = rate * mean
    theory = rho * mean / (2 * (1 - rho))
    _, low, high = mean_ci([r.summary["mean_wait_days"] for r in runs], level=0.99)
    assert low <= theory <= high, (theory, low, high)


# -- non-preemptive priority M/M/c: green_channel.mode=priority (Cobham) ---------------------
# configs/scenario/mmc_priority.yaml: c = 3, 2.55 arrivals a day, 1-day exponential review
# (utilisation 0.85); the high class is the green lane: trusted (0.55), civilian (0.9) files
# bound for US, EU or JP (0.6 of arrivals), so 0.297 of arrivals. Trusted KR files and trusted
# military files are in the low class.
PRIORITY_HIGH_SHARE = 0.6 * 0.55 * 0.9
PRIORITY_SERVERS, PRIORITY_RATE, PRIORITY_MEAN = 3, 2.55, 1.0


def test_priority_waits_known_values():
    # one class: Erlang C; equal service times: the load-weighted mean wait is FIFO's
    # (Kleinrock's conservation law), whatever the split
    assert priority_mmc_waits(3, [2.4], 1.0)[0] == pytest.approx(mmc_wait(3, 2.4, 1.0)["wq"])
    rates = [0.7, 1.1, 0.6]
    waits = priority_mmc_waits(3, rates, 1.0)
    assert waits == sorted(waits)
    assert sum(r * w for r, w in zip(rates, waits, strict=True)) / sum(rates) == pytest.approx(
        mmc_wait(3, sum(rates), 1.0)["wq"])
    # M/M/1, two classes, rho_1 = rho_2 = 0.25: W0 = 0.5, W1 = 0.5 / 0.75, W2 = 0.5 / 0.375
    assert priority_mmc_waits(1, [0.25, 0.25], 1.0) == pytest.approx([2 / 3, 4 / 3])


def _green_lane(apps):
    return apps["trusted"] & ~apps["military"] & apps["destination"].isin(["US", "EU", "JP"])


@pytest.fixture(scope="module")
def priority_runs():
    p = to_params(load_config(["scenario=mmc_priority", "output.applications=true", "seed=11"]))
    assert (p.officials.count, p.arrivals.rate_per_day, p.review.mean_days) == (
        PRIORITY_SERVERS, PRIORITY_RATE, PRIORITY_MEAN)
    return p, run_replications(p, REPLICATIONS, jobs=2)


def _per_class(p, runs):
    """Per replication: share of high-class arrivals, mean wait of each class (acceptance to
    first review start, files submitted after the warm-up whose review started)."""
    share, high, low = [], [], []
    for r in runs:
        apps = r.applications[r.applications["submitted_day"] >= p.warmup_days]
        green = _green_lane(apps)
        share.append(green.mean())
        high.append(apps.loc[green, "wait_days"].mean())
        low.append(apps.loc[~green, "wait_days"].mean())
    return share, high, low


def test_green_channel_open_from_the_first_day():
    p = to_params(load_config(["scenario=mmc_priority", "horizon_days=10", "warmup_days=0"]))
    n = horizon_days(p)
    model = LicenceModel(p, make_streams(p.seed), make_clock(p, n), n)
    assert model.green_open  # from day 0, not from the baseline's 2025-06-10


@pytest.mark.slow
def test_priority_class_share(priority_runs):
    p, runs = priority_runs
    share, _, _ = _per_class(p, runs)
    _, low, high = mean_ci(share, level=0.99)
    assert low <= PRIORITY_HIGH_SHARE <= high, (PRIORITY_HIGH_SHARE, low, high)


@pytest.mark.slow
def test_priority_waits_match_cobham(priority_runs):
    p, runs = priority_runs
    lam = PRIORITY_RATE
    theory = priority_mmc_waits(PRIORITY_SERVERS, [PRIORITY_HIGH_SHARE * lam,
                                                   (1 - PRIORITY_HIGH_SHARE) * lam], PRIORITY_MEAN)
    _, high_waits, low_waits = _per_class(p, runs)
    fifo = mmc_wait(PRIORITY_SERVERS, lam, PRIORITY_MEAN)["wq"]
    for name, waits, value in (("high", high_waits, theory[0]), ("low", low_waits, theory[1])):
        _, low, high = mean_ci(waits, level=0.99)
        assert low <= value <= high, (name, value, low, high)
        assert not low <= fifo <= high, (name, fifo, low, high)  # the check can tell FIFO apart


# -- M/M/c+M: exponential patience (Erlang A) -------------------------------------------------
# configs/scenario/mmc_abandonment.yaml: c = 3, 3 arrivals a day, 1-day exponential review
# (offered load 1 per official), mean patience 2 days: about 19 % withdraw.
ABANDON_SERVERS, ABANDON_RATE, ABANDON_MEAN, ABANDON_PATIENCE = 3, 3.0, 1.0, 2.0


def test_erlang_a_known_values():
    # patience for ever: Erlang C
    slow = erlang_a(3, 2.4, 1.0, 1e7)
    assert slow["wq_served"] == pytest.approx(mmc_wait(3, 2.4, 1.0)["wq"], rel=1e-4)
    assert slow["p_wait"] == pytest.approx(erlang_c(3, 2.4), rel=1e-4)
    # abandonment rate = service rate: the number in system is Poisson(a), as in M/M/inf
    a, c = 3.0, 4
    same = erlang_a(c, a, 1.0, 1.0)
    poisson = [math.exp(-a) * a**k / math.factorial(k) for k in range(80)]
    assert same["lq"] == pytest.approx(sum((k - c) * q for k, q in enumerate(poisson) if k > c))
    assert same["p_wait"] == pytest.approx(sum(poisson[c:]))
    # every arrival is served or abandons; the chain is truncated where its tail is negligible
    r = erlang_a(ABANDON_SERVERS, ABANDON_RATE, ABANDON_MEAN, ABANDON_PATIENCE)
    assert r["p_served"] + r["p_abandon"] == pytest.approx(1.0, abs=1e-12)
    assert r["tail_mass"] < 1e-14
    assert 0.1 < r["p_abandon"] < 0.3


def _abandonment_params(distribution="exponential", seed=11):
    p = to_params(load_config(["scenario=mmc_abandonment", f"seed={seed}",
                               f"withdrawal.patience_distribution={distribution}"]))
    assert (p.officials.count, p.arrivals.rate_per_day, p.review.mean_days,
            p.withdrawal.patience_days) == (ABANDON_SERVERS, ABANDON_RATE, ABANDON_MEAN,
                                            ABANDON_PATIENCE)
    return p


def _abandonment_measures(p, runs):
    """Per replication, after the warm-up: share of arrivals withdrawn (withdrawals / arrivals
    in the window), mean wait of the served (acceptance to review start, zero waits included)
    and the time-average number waiting."""
    w = p.warmup_days
    withdrawn = [r.daily["withdrawn"].iloc[w:].sum() / r.daily["arrivals"].iloc[w:].sum()
                 for r in runs]
    return {"p_abandon": withdrawn,
            "wq_served": [r.summary["mean_wait_days"] for r in runs],
            "lq": [r.summary["mean_waiting"] for r in runs]}


@pytest.fixture(scope="module")
def abandonment_runs():
    p = _abandonment_params()
    return p, run_replications(p, REPLICATIONS, jobs=2)


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["p_abandon", "wq_served", "lq"])
def test_exponential_patience_matches_erlang_a(abandonment_runs, measure):
    p, runs = abandonment_runs
    theory = erlang_a(ABANDON_SERVERS, ABANDON_RATE, ABANDON_MEAN, ABANDON_PATIENCE)[measure]
    _, low, high = mean_ci(_abandonment_measures(p, runs)[measure], level=0.99)
    assert low <= theory <= high, (measure, theory, low, high)


@pytest.mark.slow
def test_fixed_patience_is_not_erlang_a():
    """The same queue with everyone's patience exactly 2 days (M/M/c+D) withdraws far less:
    the Erlang A check above tells the two apart."""
    p = _abandonment_params("fixed")
    runs = run_replications(p, 10, jobs=2)
    theory = erlang_a(ABANDON_SERVERS, ABANDON_RATE, ABANDON_MEAN, ABANDON_PATIENCE)
    _, low, high = mean_ci(_abandonment_measures(p, runs)["p_abandon"], level=0.99)
    assert high < theory["p_abandon"], (theory["p_abandon"], low, high)
