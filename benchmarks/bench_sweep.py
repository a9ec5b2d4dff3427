"""Wall time of a 16-job sweep with the joblib launcher against the basic launcher.

    python benchmarks/bench_sweep.py [--n-jobs 2] [--replications 2] [--end-date 2025-12-31]
                                     [--repeat 1] [--keep DIR] [-- extra overrides]

Runs the same sweep twice, as a user would (``python -m sim -m ...`` in a subprocess, each into
its own temporary sweep folder): once with Hydra's basic launcher (jobs one after the other,
each job's replications serially) and once with ``hydra/launcher=joblib`` and ``n_jobs``
processes (replications serially inside each job: one level of parallelism). Prints both wall
and CPU times, the speed-up (target on 2 cores: at least 1.7x), and checks that both sweeps give the
same numbers per point. The load average is printed too: other work on the machine skews
the figures.

Default sweep: baseline_2025 to the end of 2025, 2 replications a job, per-run plots on,
``officials.count`` 3..10 x ``green_channel.mode`` off/priority (16 jobs). These jobs are short
(about 5 s), so the fixed serial parts (Hydra start-up, the collection at the end) and any
slow-down of the cores when both are busy weigh on the ratio; ``--replications 10
--end-date 2026-06-30`` gives jobs of the size of a study (about 30 s). ``--repeat N`` times
the pair N times, alternating which launcher goes first, and prints every ratio and the median:
on a shared virtual machine one pair is not enough.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from sim.studies import sweeps

POINTS = ("officials.count=3,4,5,6,7,8,9,10", "green_channel.mode=off,priority")


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


def timed_pair(sweep: list[str], n_jobs: int, root: Path, joblib_first: bool) -> float:
    """Run the sweep with both launchers, print their times, check the numbers; the speed-up."""
    basic_dir, joblib_dir = root / "basic", root / "joblib"
    for d in (basic_dir, joblib_dir):
        shutil.rmtree(d, ignore_errors=True)
    runs = {"basic": ([], basic_dir),
            "joblib": (["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"], joblib_dir)}
    times = {}
    for name in (("joblib", "basic") if joblib_first else ("basic", "joblib")):
        extra, folder = runs[name]
        times[name] = timed_sweep([*extra, *sweep], folder)
    (t_basic, cpu_basic), (t_joblib, cpu_joblib) = times["basic"], times["joblib"]
    n = len(sweeps.expand_points(sweep)[0])
    print(f"  basic launcher:   wall {t_basic:7.1f} s ({t_basic / n:.2f} s a job), "
          f"CPU {cpu_basic:7.1f} s")
    print(f"  joblib, n_jobs={n_jobs}: wall {t_joblib:7.1f} s, CPU {cpu_joblib:7.1f} s "
          f"(CPU used per wall second: {cpu_joblib / t_joblib:.2f})")
    speedup = t_basic / t_joblib
    print(f"  speed-up: {speedup:.2f}x (target >= 1.7x on 2 cores)")
    used = cpu_joblib / t_joblib
    if used < 0.8 * min(n_jobs, os.cpu_count() or 1):
        print(f"  warning: the joblib sweep got {used:.2f} cores' worth of CPU, not {n_jobs}: "
              f"other work was running; the speed-up is not meaningful. Upper estimate for free "
              f"cores (its CPU time spread over {n_jobs} processes): "
              f"{t_basic / (cpu_joblib / n_jobs):.2f}x")
    a, b = (pd.read_csv(d / sweeps.SUMMARY_FILE).drop(columns=["job"]) for d in
            (basic_dir, joblib_dir))
    same = a.equals(b)
    print(f"  same numbers per point: {'yes' if same else 'NO'} ({len(a)} rows, "
          f"{int((a['status'] == 'ok').sum())} ok)")
    if not same:
        raise SystemExit(1)
    return speedup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-jobs", type=int, default=2, help="joblib processes (default 2)")
    ap.add_argument("--replications", type=int, default=2, help="replications a job (default 2)")
    ap.add_argument("--end-date", default="2025-12-31", help="end of each run (default 2025-12-31)")
    ap.add_argument("--repeat", type=int, default=1, help="time the pair N times (default 1)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the sweep folders of the last pair under this folder")
    ap.add_argument("overrides", nargs="*", help="extra overrides for both sweeps")
    args = ap.parse_args()
    if args.repeat < 1 or args.replications < 1 or args.n_jobs < 1:
        ap.error("--repeat, --replications and --n-jobs must be at least 1")

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    root.mkdir(parents=True, exist_ok=True)
    sweep = [f"end_date={args.end_date}", f"replications={args.replications}", *POINTS,
             *args.overrides]
    n = len(sweeps.expand_points(sweep)[0])
    print(f"sweep of {n} jobs: python -m sim -m {' '.join(sweep)}")
    speedups = []
    try:
        for i in range(args.repeat):
            print(f"pair {i + 1} of {args.repeat}; CPU cores: {os.cpu_count()}; load average "
                  f"before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            speedups.append(timed_pair(sweep, args.n_jobs, root, joblib_first=i % 2 == 1))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if len(speedups) > 1:
        print(f"speed-ups: {' '.join(f'{x:.2f}x' for x in speedups)}; median "
              f"{statistics.median(speedups):.2f}x, range {min(speedups):.2f}x to "
              f"{max(speedups):.2f}x (target >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main()
