"""Peak memory of a run against its number of replications: what one more replication costs.

    python benchmarks/bench_memory.py [--replications 500 2000 8000] [--large] [--jobs 1]
                                      [-- extra overrides]

Runs ``python -m sim scenario=mmc horizon_days=30 warmup_days=0 replications=N
output.plots=false`` (run folder in a temporary folder) as a child process for each N and
prints its peak RSS (``os.wait4``'s ``ru_maxrss``: with ``--jobs`` above 1, the largest of the
run's and its workers', which hold one replication at a time) and its wall and CPU times (the
workers' included), then the slope: MiB per 1,000 replications, a least-squares line through
the points. ``--large`` adds N = 10,000 and 20,000 (a run the input checks refuse is shown as
refused, with their reason). Figures only, no assertions.

Memory is flat in N: sim.results keeps a few numbers a replication (its figures and daily
series go to a temporary file, a block of replications at a time), replications.csv is
written a block of rows at a time and pending_by_replication.csv a line at a time
(sim.outputs). What is left grows by a few hundred bytes a replication, and only for a
moment: one daily figure of every replication (replications x days) while its bands are
computed, and the runner's list of tasks. On the reference machine: 130, 131, 135, 138 and
138 MiB for 500, 2,000, 8,000, 10,000 and 20,000 replications (0.4 MiB per 1,000); before,
134, 195, 461, 544 and 903 MiB (40 KiB a replication).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # the sim next to this script
# mmc's warm-up (500 days) is longer than 30 days: none here
CASE = ("scenario=mmc", "horizon_days=30", "warmup_days=0", "output.plots=false")


def child(args: list[str]) -> tuple[float, float, float] | str:
    """Run ``python <args>``: its peak RSS (MiB), wall and CPU seconds (os.wait4), or the last
    line it wrote on stderr when it failed."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status):
            err.seek(0)
            lines = err.read().decode().strip().splitlines()
            return lines[-1] if lines else f"exit status {os.waitstatus_to_exitcode(status)}"
    return usage.ru_maxrss / 1024, wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, nargs="+", default=[500, 2000, 8000])
    ap.add_argument("--large", action="store_true", help="add 10,000 and 20,000 replications")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="more overrides for every run (after --)")
    args = ap.parse_args()
    counts = sorted(set(args.replications) | ({10_000, 20_000} if args.large else set()))
    extra = [*CASE, f"jobs={args.jobs}", *args.overrides]
    print(f"bench_memory: sim in {ROOT}, Python {sys.version.split()[0]}, "
          f"python -m sim {' '.join(extra)} replications=N")
    print(f"  {'replications':>12}{'peak RSS (MiB)':>16}{'wall (s)':>10}{'CPU (s)':>10}")
    done = {}  # replications: peak RSS
    for n in counts:
        with tempfile.TemporaryDirectory() as out:
            found = child(["-m", "sim", *extra, f"replications={n}", f"hydra.run.dir={out}"])
        if isinstance(found, str):
            print(f"  {n:>12,}  refused or failed: {found}", flush=True)
            continue
        peak, wall, cpu = found
        done[n] = peak
        print(f"  {n:>12,}{peak:>16.0f}{wall:>10.1f}{cpu:>10.1f}", flush=True)
    if len(done) > 1:
        slope = np.polyfit(list(done), list(done.values()), 1)[0] * 1000
        print(f"  slope: {slope:.1f} MiB per 1,000 replications "
              f"({slope * 1024 / 1000:.1f} KiB per replication)")


if __name__ == "__main__":
    main()
