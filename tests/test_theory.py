"""The model reduced to M/M/c agrees with queueing theory (Erlang C, Little's law)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config import load_config, to_params
from sim.queueing import erlang_c, mmc_wait
from sim.runner import run_replications
from sim.stats import mean_ci

REPLICATIONS = 20

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
