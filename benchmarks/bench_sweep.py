"""Wall time of a 16-job sweep with the joblib launcher against the basic launcher.

    python benchmarks/bench_sweep.py [--n-jobs 2] [--keep DIR] [-- extra overrides]

Runs the same sweep twice, as a user would (``python -m sim -m ...`` in a subprocess, each into
its own temporary sweep folder): once with Hydra's basic launcher (jobs one after the other,
each job's replications serially) and once with ``hydra/launcher=joblib`` and ``n_jobs``
processes (replications serially inside each job: one level of parallelism). Prints both wall
and CPU times, the speed-up (target on 2 cores: at least 1.7x), and checks that both sweeps give the
same numbers per point. The load average is printed too: other work on the machine skews
the figures.

Default sweep: baseline_2025 to the end of 2025, 2 replications a job, per-run plots on,
``officials.count`` 3..10 x ``green_channel.mode`` off/priority (16 jobs).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from sim import sweeps

POINTS = ("officials.count=3,4,5,6,7,8,9,10", "green_channel.mode=off,priority")
SETTINGS = ("end_date=2025-12-31", "replications=2")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_sweep(overrides: list[str], folder: Path) -> tuple[float, float]:
    """Wall time and CPU time (all processes of the sweep) in seconds."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = sweeps.run_sweep(overrides, folder)
    elapsed, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-3000:]}")
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-jobs", type=int, default=2, help="joblib processes (default 2)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep both sweep folders under this folder")
    ap.add_argument("overrides", nargs="*", help="extra overrides for both sweeps")
    args = ap.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    root.mkdir(parents=True, exist_ok=True)
    sweep = [*SETTINGS, *POINTS, *args.overrides]
    n = len(sweeps.expand_points(sweep)[0])
    print(f"sweep of {n} jobs: python -m sim -m {' '.join(sweep)}")
    print(f"CPU cores: {os.cpu_count()}; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        basic_dir, joblib_dir = root / "basic", root / "joblib"
        t_basic, cpu_basic = timed_sweep(sweep, basic_dir)
        print(f"basic launcher:   wall {t_basic:7.1f} s ({t_basic / n:.2f} s a job), "
              f"CPU {cpu_basic:7.1f} s")
        t_joblib, cpu_joblib = timed_sweep(["hydra/launcher=joblib",
                                            f"hydra.launcher.n_jobs={args.n_jobs}", *sweep],
                                           joblib_dir)
        print(f"joblib, n_jobs={args.n_jobs}: wall {t_joblib:7.1f} s, CPU {cpu_joblib:7.1f} s "
              f"(CPU used per wall second: {cpu_joblib / t_joblib:.2f})")
        print(f"speed-up: {t_basic / t_joblib:.2f}x (target >= 1.7x on 2 cores)")
        used = cpu_joblib / t_joblib
        if used < 0.8 * min(args.n_jobs, os.cpu_count() or 1):
            print(f"warning: the joblib sweep got {used:.2f} cores' worth of CPU, not "
                  f"{args.n_jobs}: other work was running; the speed-up is not meaningful. Upper "
                  f"estimate for free cores (its CPU time spread over {args.n_jobs} "
                  f"processes): {t_basic / (cpu_joblib / args.n_jobs):.2f}x")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        a, b = (pd.read_csv(d / sweeps.SUMMARY_FILE).drop(columns=["job"]) for d in
                (basic_dir, joblib_dir))
        same = a.equals(b)
        print(f"same numbers per point: {'yes' if same else 'NO'} ({len(a)} rows, "
              f"{int((a['status'] == 'ok').sum())} ok)")
        if not same:
            raise SystemExit(1)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
