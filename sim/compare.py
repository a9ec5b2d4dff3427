"""Command line: ``python -m sim.compare RUN_A RUN_B [RUN_C ...] [--out DIR] [--labels ...]``.

Paired differences between run folders under common random numbers: replication r of every
run used the same random streams (and the same ensemble member), so each run's figure minus
the first run's is taken replication by replication, then averaged with a 95 % t interval. The
runs must share the seed, the number of replications and the dates. Writes ``compare.csv``
(one row per figure and run) and ``report.html`` with the paired-difference bands of the
backlog. Exit status 0, or 2 for bad input (one line, nothing written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.validation import ConfigError

RUN_FILES = ("summary.json", "replications.csv", "pending_by_replication.csv")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as every tool refuses bad input
        print(f"error: {message} (python -m sim.compare RUN_A RUN_B [...] [--out DIR])",
              file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m sim.compare",
                description="Paired differences between run folders (common random numbers).")
    p.add_argument("runs", nargs="+", help="run folders; the first is the reference")
    p.add_argument("--out", default=None, help="output folder (default outputs/compare/...)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per run")
    return p


def load_run(folder: str) -> dict[str, Any]:
    """A finished run folder's summary, per-replication table and backlog per replication."""
    path = Path(folder)
    for name in RUN_FILES:
        if not (path / name).is_file():
            raise ConfigError("run", folder, f"no {name}: give a finished run folder of "
                                             "python -m sim (this version)")
    return {"folder": path, "summary": json.loads((path / "summary.json").read_text()),
            "replications": pd.read_csv(path / "replications.csv"),
            "pending": pd.read_csv(path / "pending_by_replication.csv")}


def check_pairable(runs: list[dict[str, Any]]) -> None:
    """Same seed, replications and dates: otherwise replication r is not paired with r."""
    first = runs[0]["summary"]
    for run in runs[1:]:
        s = run["summary"]
        for key in ("seed", "replications", "start_date", "end_date"):
            if s.get(key) != first.get(key):
                raise ConfigError("run", str(run["folder"]), f"its {key} ({s.get(key)}) differs "
                                  f"from the first run's ({first.get(key)}); paired differences "
                                  "need the same seed, replications and dates")


def differences(runs: list[dict[str, Any]], labels: list[str]) -> pd.DataFrame:
    """Per headline figure and run after the first: both means and the paired difference."""
    from sim.reports import HEADLINE
    from sim.stats import mean_ci

    base = runs[0]["replications"]
    rows = []
    for run, label in zip(runs[1:], labels[1:], strict=True):
        table = run["replications"]
        for key, words in HEADLINE:
            if key not in base or key not in table:
                continue
            a, b = base[key].to_numpy(float), table[key].to_numpy(float)
            mean, low, high = mean_ci(b - a)
            rows.append({"figure": words, "key": key, "against": f"{label} − {labels[0]}",
                         "reference": np.nanmean(a) if np.isfinite(a).any() else np.nan,
                         "other": np.nanmean(b) if np.isfinite(b).any() else np.nan,
                         "difference": mean, "ci95_low": low, "ci95_high": high,
                         "replications": int(np.isfinite(b - a).sum())})
    return pd.DataFrame(rows)


def pending_difference(base: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per day: mean paired difference of pending, and its 95 % interval."""
    from sim.stats import band

    columns = [c for c in base.columns if c != "date"]
    diff = other[columns].to_numpy(float) - base[columns].to_numpy(float)
    mean, low, high = band(diff.T)
    return pd.DataFrame({"mean": mean, "low": low, "high": high})


def params_of(summary: dict[str, Any]):
    """The typed parameters a run recorded in its summary.json."""
    from omegaconf import OmegaConf

    from sim.config import to_params
    from sim.params import Config

    return to_params(OmegaConf.merge(OmegaConf.structured(Config), summary["config"]))


def main(argv: list[str] | None = None) -> int:
    from sim import plotting, reports
    from sim.outputs import write_csv

    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        if len(args.runs) < 2:
            raise ConfigError("runs", " ".join(args.runs), "give at least two run folders")
        labels = args.labels or [Path(r).name for r in args.runs]
        if len(labels) != len(args.runs):
            raise ConfigError("--labels", " ".join(labels), f"give one per run "
                                                            f"({len(args.runs)})")
        runs = [load_run(r) for r in args.runs]
        check_pairable(runs)
        out = Path(args.out) if args.out else (
            Path("outputs/compare") / f"{dt.datetime.now():%Y-%m-%d/%H-%M-%S}")
        if out.exists() and not out.is_dir():
            raise ConfigError("--out", str(out), "is a file; give a folder")
    except ValueError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    table = differences(runs, labels)
    dates = runs[0]["pending"]["date"]
    figures = [plotting.difference_figure(params_of(run["summary"]), dates,
                                          pending_difference(runs[0]["pending"], run["pending"]),
                                          f"{label} − {labels[0]}")
               for run, label in zip(runs[1:], labels[1:], strict=True)]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "compare.csv", table)
    command = " ".join(["python -m sim.compare", *map(shlex.quote, argv)])
    reports.compare_report(out, labels, [r["summary"] for r in runs], table, figures, command)
    for row in table.itertuples(index=False):
        if row.key in ("peak_pending", "pending_end", "mean_wait_days",
                       "share_decided_within_limit"):
            print(f"{row.against}: {row.key} {row.difference:+.4g} "
                  f"[{row.ci95_low:+.4g}, {row.ci95_high:+.4g}]")
    print(f"report: open {out / 'report.html'} in a browser")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
