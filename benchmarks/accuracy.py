"""Accuracy figures for the closing notes: M/M/c against Erlang C, and the calibrated fit.

    python benchmarks/accuracy.py [--replications 20] [--fit-replications 40] [--jobs 2]

1. The model reduced to M/M/c (``scenario=mmc``, the settings of tests/test_theory.py): the
   mean wait in queue (Wq) and mean number waiting (Lq) of the replications, with a 99 % CI,
   against Erlang C.
2. The calibrated baseline as users run it (each replication draws its ensemble member) up to
   the last target date, against every reading of seeds/targets.yaml: the interval, the mean,
   the 95 % predictive interval and the share of replications inside; last, the share of
   replications inside every chosen reading at once.

The test suite asserts on the same comparisons; this script prints the numbers.
"""

from __future__ import annotations

import argparse

from sim.config import load_config, to_params
from sim.params import SEEDS_DIR
from sim.queueing import mmc_wait
from sim.runner import run_replications
from sim.stats import mean_ci

# (servers, arrival rate per day, mean review days, horizon days, warm-up days), seed 11
MMC = [(1, 0.5, 1.0, 4000, 200), (3, 2.4, 1.0, 3000, 300), (5, 4.5, 1.0, 3000, 300)]
CALIBRATION_END = "2025-06-28"  # a day after the last target date


def theory(replications: int, jobs: int) -> None:
    print(f"M/M/c against Erlang C ({replications} replications, 99 % CI of the mean)")
    for c, rate, mean_days, horizon, warmup in MMC:
        params = to_params(load_config([
            "scenario=mmc", f"officials.count={c}", f"arrivals.rate_per_day={rate}",
            f"review.mean_days={mean_days}", f"horizon_days={horizon}",
            f"warmup_days={warmup}", "seed=11"]))
        runs = run_replications(params, replications, jobs=jobs, progress=False)
        expected = mmc_wait(c, rate, mean_days)
        for figure, key in (("Wq (days)", "mean_wait_days"), ("Lq", "mean_waiting")):
            value = expected["wq" if figure.startswith("Wq") else "lq"]
            mean, low, high = mean_ci([r.summary[key] for r in runs], level=0.99)
            verdict = "inside" if low <= value <= high else "OUTSIDE"
            print(f"  c={c} rho={rate * mean_days / c:.1f} {figure:9s} theory {value:6.3f}  "
                  f"simulated {mean:6.3f} [{low:.3f}, {high:.3f}]  {verdict}")


def fit(replications: int, jobs: int) -> None:
    from sim.studies.calibration import check_readings
    from sim.studies.history_matching import Settings
    from sim.studies.targets import load_targets, select_targets

    params = to_params(load_config([f"end_date={CALIBRATION_END}"]))
    targets = load_targets(SEEDS_DIR / "targets.yaml", params.start_date, params.end_date)
    chosen = [targets.index(t) for t in select_targets(targets)]
    check = check_readings(params, targets, chosen, replications, Settings(jobs=jobs))
    print(f"\nCalibrated baseline with its ensemble against every reading ({replications} "
          f"replications, seed {params.seed}; * = chosen)")
    for row in check["rows"]:
        print(f"  {'*' if row['chosen'] else ' '} {row['reading']:34s} [{row['low']}, "
              f"{row['high']}]  mean {row['mean']:10.4g}  95 % predictive "
              f"{row['predictive_low']:.4g}..{row['predictive_high']:.4g}  inside "
              f"{row['share_inside']:.2f}  implausibility {row['implausibility']:.2f} "
              f"{'met' if row['met'] else 'NOT MET'}")
    print(f"  every chosen reading inside at once: {check['share_all_inside']:.2f} of the "
          "replications")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=20, help="M/M/c replications (20)")
    ap.add_argument("--fit-replications", type=int, default=40,
                    help="replications of the calibrated baseline (40, as the calibration)")
    ap.add_argument("--jobs", type=int, default=2, help="processes (results do not depend on it)")
    args = ap.parse_args()
    theory(args.replications, args.jobs)
    fit(args.fit_replications, args.jobs)


if __name__ == "__main__":
    main()
