"""Figures the notes quote about the calibrated baseline, with the command that makes them.

    python benchmarks/baseline_figures.py [--replications 20] [--jobs 2]

1. The green channel's effect: the baseline against `no_green_channel`, replication by
   replication under common random numbers (replication r uses the same random streams and the
   same ensemble member in both), as paired differences with a 95 % t-interval:
   trusted US-bound civilian applications filed from the London talks on (time from filing to
   decision), and the whole backlog (mean pending from the talks to the end of 2025, mean time
   to decision of every civilian decision).
2. How long Sep-Oct 2025 civilian approvals take from acceptance (working days): percentiles
   over every replication's decisions and the share within the 45-working-day limit, for all
   replications and apart for those whose backlog cleared by 2025-09-30 and those whose did
   not (the two regimes the ensemble holds).
"""

from __future__ import annotations

import argparse

import numpy as np

import sim
from sim.stats import mean_ci

LONDON, YEAR_END = "2025-06-10", "2025-12-31"
CLEARED_BY = "2025-09-30"  # the regimes: the waiting backlog cleared by then, or not


def per_replication(results) -> dict[str, np.ndarray]:
    """Per replication: the figures whose paired differences are reported."""
    out: dict[str, list[float]] = {"trusted_us_days": [], "all_civilian_days": [],
                                   "mean_pending_jun_dec": []}
    for run in results.runs:
        apps = run.applications
        done = apps[(apps["outcome"] != "pending") & ~apps["military"]]
        tus = done[(done["destination"] == "US") & done["trusted"]
                   & (done["submitted"] >= LONDON)]
        out["trusted_us_days"].append(float(tus["time_to_decision_days"].mean()))
        out["all_civilian_days"].append(float(done["time_to_decision_days"].mean()))
        d = run.daily
        window = d[(d["date"] >= LONDON) & (d["date"] <= YEAR_END)]
        out["mean_pending_jun_dec"].append(float(window["pending"].mean()))
    return {k: np.array(v) for k, v in out.items()}


def decision_times(runs, first: str = "2025-09-01", last: str = "2025-10-31") -> np.ndarray:
    """Working days from acceptance to decision of civilian approvals made in [first, last]."""
    parts = []
    for run in runs:
        apps = run.applications
        sel = apps[(apps["decided"] >= first) & (apps["decided"] <= last) & ~apps["military"]
                   & (apps["outcome"] == "approved")]
        parts.append(sel["working_days_to_decision"].to_numpy(dtype=float))
    return np.concatenate(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    common = ["output.applications=true", f"replications={args.replications}",
              f"jobs={args.jobs}"]
    base = sim.run(common)
    off = sim.run(["scenario=no_green_channel", *common])
    a, b = per_replication(base), per_replication(off)
    print(f"Green channel: baseline minus no_green_channel, {args.replications} paired "
          "replications (common random numbers and ensemble members), 95 % t-interval")
    print("| figure | baseline | no green channel | difference [95 % CI] |")
    print("|---|---|---|---|")
    for key, label in [("trusted_us_days", "trusted US civilian, filed from 06-10: days to "
                                           "decision"),
                       ("all_civilian_days", "every civilian decision: days to decision"),
                       ("mean_pending_jun_dec", "mean pending, 06-10 to 12-31")]:
        m, lo, hi = mean_ci(a[key] - b[key])
        print(f"| {label} | {np.nanmean(a[key]):.1f} | {np.nanmean(b[key]):.1f} | "
              f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}] |")
    print(f"\nSep-Oct 2025 civilian approvals, working days from acceptance to decision, "
          f"{args.replications} replications:")
    cleared = [(r.summary["clearance"]["clearance_date"] or "9999") <= CLEARED_BY
               for r in base.runs]
    groups = [("all replications", base.runs),
              (f"backlog cleared by {CLEARED_BY}", [r for r, c in zip(base.runs, cleared,
                                                                     strict=True) if c]),
              ("not cleared by then", [r for r, c in zip(base.runs, cleared, strict=True)
                                       if not c])]
    for label, runs in groups:
        if not runs:
            print(f"  {label}: none")
            continue
        x = decision_times(runs)
        q = np.percentile(x, [10, 25, 50, 75, 90])
        print(f"  {label} ({len(runs)}): p10 {q[0]:.1f}, p25 {q[1]:.1f}, median {q[2]:.1f}, "
              f"p75 {q[3]:.1f}, p90 {q[4]:.1f}; within 45 working days {(x <= 45).mean():.1%}")


if __name__ == "__main__":
    main()
