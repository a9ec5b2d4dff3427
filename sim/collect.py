"""Command line: ``python -m sim.collect DIR [--figure F] [--keys K1 K2] [--no-plots]``.

Collects a finished, failed or interrupted sweep folder (``python -m sim -m ...``) into
``DIR/sweep_summary.csv``, ``DIR/report.html`` and comparison plots (see
:mod:`sim.studies.sweep_collect`), and lists every failed and missing job. Exit status: 0
when every job of the sweep finished, 1 when any job failed or is missing, 2 when DIR is not
a sweep folder or an option is wrong.
"""

from __future__ import annotations

import argparse
import sys

from sim.studies.sweep_collect import collect, heatmap_keys
from sim.studies.sweeps import DEFAULT_FIGURE, FIGURES, load_sweep


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as every tool refuses bad input
        print(f"error: {message} (python -m sim.collect DIR [--figure F] [--keys K1 K2] "
              "[--no-plots])", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m sim.collect",
        description="Collect a sweep folder into sweep_summary.csv and comparison plots.")
    p.add_argument("folder", help="the sweep folder (hydra.sweep.dir), holding multirun.yaml")
    p.add_argument("--figure", default=DEFAULT_FIGURE, choices=FIGURES, metavar="F",
                   help=f"figure of the heat map (default {DEFAULT_FIGURE}; one of the table's "
                        f"figures: {', '.join(FIGURES)})")
    p.add_argument("--keys", nargs=2, metavar=("Y_KEY", "X_KEY"), default=None,
                   help="the two swept keys of the heat map (default: the first two)")
    p.add_argument("--no-plots", action="store_true", help="write the table only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from sim.reports import sweep_report

    try:
        if args.keys:  # the heat map's keys must be swept keys: refused before anything is written
            heatmap_keys(load_sweep(args.folder), args.keys)
        sweep = collect(args.folder, figure=args.figure, keys=args.keys,
                        plots=not args.no_plots)
        report = sweep_report(sweep, sweep.table())
    except (FileNotFoundError, ValueError) as err:  # not a sweep folder, or a damaged one
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder that cannot be written (read-only, full)
        print(f"error: folder={args.folder!r}: cannot be written ({err.strerror or err}); "
              "nothing in it changed", file=sys.stderr)
        return 2
    print(f"report: open {report} in a browser")
    return 0 if sweep.complete else 1


if __name__ == "__main__":
    from sim.run_folder import run_interruptible

    sys.exit(run_interruptible(main, "interrupted: the collection stopped; rerun the same command"))
