"""Time of the full calibration on this machine, per wave and in all.

    python benchmarks/bench_calibration.py [--jobs 2] [extra calibrate overrides ...]

Runs `python -m sim.calibrate` (the committed default settings, no install) into a temporary
folder as a whole process, then prints the wall and CPU time of each wave (from the run's
points and report) and of the whole run: the figure the calibration's speed target is about.
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
    ap.add_argument("overrides", nargs="*", help="extra calibrate.* overrides")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "sim.calibrate", f"calibrate.match.jobs={args.jobs}",
               f"hydra.run.dir={out}", *args.overrides]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        for line in proc.stderr.splitlines():
            if re.match(r"wave \d+: \d+ points", line) or line.startswith(("after", "check")):
                print(line)
        print(proc.stdout.splitlines()[0])
    print(f"whole process: {wall:.0f} s wall ({wall / 60:.1f} min), "
          f"{usage.ru_utime + usage.ru_stime:.0f} s CPU over all processes")


if __name__ == "__main__":
    main()
