"""Time of the full calibration (target: 30 minutes) or the three-origin hindcast (target:
60 minutes) on this machine, per wave and in all.

    python benchmarks/bench_calibration.py [--jobs 2] [--hindcast] [extra overrides ...]

Runs `python -m sim.calibrate` (the committed default settings, no install), or with
`--hindcast` `python -m sim.hindcast`, into a temporary folder as a whole process, then prints
the wall and CPU time of each wave and of the whole run: the figures the speed targets are
about.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--hindcast", action="store_true", help="time python -m sim.hindcast")
    ap.add_argument("overrides", nargs="*", help="extra calibrate.* or hindcast.* overrides")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        tool = "sim.hindcast" if args.hindcast else "sim.calibrate"
        cmd = [sys.executable, "-m", tool, f"calibrate.match.jobs={args.jobs}",
               f"hydra.run.dir={out}", *args.overrides]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        for line in proc.stderr.splitlines():
            if re.match(r"wave \d+: \d+ points", line) or line.startswith(
                    ("after", "check", "origin")):
                print(line)
        print("\n".join(proc.stdout.splitlines()[:-1]))
    print(f"whole process: {wall:.0f} s wall ({wall / 60:.1f} min), "
          f"{usage.ru_utime + usage.ru_stime:.0f} s CPU over all processes")


if __name__ == "__main__":
    main()
