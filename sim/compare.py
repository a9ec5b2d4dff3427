"""Command line: ``python -m sim.compare RUN_A RUN_B [RUN_C ...] [hydra.run.dir=DIR]
[--labels ...]``.

The output folder is given as every tool takes it, ``hydra.run.dir=DIR`` (``--out DIR`` is
the same, kept for older commands); default ``outputs/compare/<date>/<time>/``.

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
        print(f"error: {message} (python -m sim.compare RUN_A RUN_B [...] "
              "[hydra.run.dir=DIR])", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m sim.compare",
                description="Paired differences between run folders (common random numbers).")
    p.add_argument("runs", nargs="+", help="run folders; the first is the reference")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="the output folder, as hydra.run.dir=DIR (default outputs/compare/...)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per run")
    return p


# the most rows of a run's tables read here: a run over the calendar's whole range (44,444 days)
# and 100,000 replications is far below it; a larger file is not a run folder of this project
_MAX_FILE_BYTES = 2 * 1024**3


def load_run(folder: str) -> dict[str, Any]:
    """A finished run folder's summary, per-replication table and backlog per replication;
    :class:`ConfigError` (one line) for a folder that is not one, or is damaged."""
    path = Path(folder)
    for name in RUN_FILES:
        if not (path / name).is_file():
            raise ConfigError("run", folder, f"no {name}: give a finished run folder of "
                                             "python -m sim (this version)")
        if (path / name).stat().st_size > _MAX_FILE_BYTES:
            raise ConfigError("run", folder, f"{name} is larger than any run writes "
                                             f"({_MAX_FILE_BYTES // 1024**3} GiB)")
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError("run", folder, f"summary.json cannot be read ({_first_line(err)}); "
                                         "rerun the run") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
        raise ConfigError("run", folder, "summary.json is not a run's summary (a mapping "
                                         "with its config); rerun the run")
    tables = {}
    for key, name in (("replications", "replications.csv"),
                      ("pending", "pending_by_replication.csv")):
        try:
            tables[key] = pd.read_csv(path / name)
        except (OSError, ValueError, UnicodeError) as err:
            raise ConfigError("run", folder, f"{name} cannot be read ({_first_line(err)}); "
                                             "rerun the run") from None
    pending = tables["pending"]
    columns = [c for c in pending.columns if c != "date"]
    if "date" not in pending or not columns \
            or not all(pd.api.types.is_numeric_dtype(pending[c]) for c in columns):
        raise ConfigError("run", folder, "pending_by_replication.csv is damaged (a date column "
                                         "and one numeric column per replication expected)")
    for column in tables["replications"].columns:  # a number column with a cell of text
        values = tables["replications"][column]
        if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce")
            if numbers.notna().any() and (numbers.isna() & values.notna()).any():
                raise ConfigError("run", folder, f"replications.csv is damaged: column {column}"
                                                 " holds numbers and text; rerun the run")
    run = {"folder": path, "summary": summary, **tables}
    try:
        run["params"] = params_of(summary)
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        raise ConfigError("run", folder, f"summary.json's config is not a valid configuration "
                                         f"({_first_line(err)})") from None
    return run


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def check_pairable(runs: list[dict[str, Any]]) -> None:
    """Same seed, replications and dates, and tables of the same shape: otherwise replication
    r is not paired with r."""
    first = runs[0]
    for run in runs[1:]:
        s = run["summary"]
        for key in ("seed", "replications", "start_date", "end_date"):
            if s.get(key) != first["summary"].get(key):
                raise ConfigError("run", str(run["folder"]), f"its {key} ({s.get(key)!r}) "
                                  f"differs from the first run's ({first['summary'].get(key)!r});"
                                  " paired differences need the same seed, replications and "
                                  "dates")
        for key, name in (("pending", "pending_by_replication.csv"),
                          ("replications", "replications.csv")):
            if run[key].shape[0] != first[key].shape[0] or (
                    key == "pending" and list(run[key].columns) != list(first[key].columns)):
                raise ConfigError("run", str(run["folder"]), f"its {name} has "
                                  f"{run[key].shape[0]} rows and {run[key].shape[1]} columns, "
                                  f"the first run's {first[key].shape[0]} and "
                                  f"{first[key].shape[1]}: damaged, or not the same dates")
    for run in runs:
        if run["replications"].shape[0] != run["pending"].shape[1] - 1:
            raise ConfigError("run", str(run["folder"]), "replications.csv and "
                              "pending_by_replication.csv disagree on the number of "
                              "replications: damaged; rerun the run")


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
            a, b = _numbers(base[key]), _numbers(table[key])
            mean, low, high = mean_ci(b - a)
            rows.append({"figure": words, "key": key, "against": f"{label} − {labels[0]}",
                         "reference": np.nanmean(a) if np.isfinite(a).any() else np.nan,
                         "other": np.nanmean(b) if np.isfinite(b).any() else np.nan,
                         "difference": mean, "ci95_low": low, "ci95_high": high,
                         "replications": int(np.isfinite(b - a).sum())})
    return pd.DataFrame(rows)


def _numbers(column: pd.Series) -> np.ndarray:
    """A column as floats; a cell that is not a number (a damaged file) counts as missing."""
    return pd.to_numeric(column, errors="coerce").to_numpy(float)


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


RUN_DIR = "hydra.run.dir"


def parse(argv: list[str]) -> tuple[argparse.Namespace, str]:
    """The arguments, with the output folder from ``hydra.run.dir=DIR`` (as every tool takes
    it) or ``--out DIR``; and the name of the setting it came from (for a refusal)."""
    given = [a.split("=", 1)[1] for a in argv if a.startswith(RUN_DIR + "=")]
    args = parser().parse_args([a for a in argv if not a.startswith(RUN_DIR + "=")])
    if len(given) > 1 or (given and args.out is not None and args.out != given[0]):
        raise ConfigError(RUN_DIR, given[-1], "give the output folder once (hydra.run.dir=DIR, "
                                              "or --out DIR)")
    if given:
        if not given[0].strip():
            raise ConfigError(RUN_DIR, given[0], "must name a folder")
        args.out = given[0]
        return args, RUN_DIR
    return args, "--out"


def main(argv: list[str] | None = None) -> int:
    from sim import plotting, reports, run_folder
    from sim.outputs import write_csv

    argv = sys.argv[1:] if argv is None else argv
    try:
        args, setting = parse(argv)
    except ValueError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
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
        out = run_folder.claim(out, "compare", setting)
    except ValueError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    table = differences(runs, labels)
    dates = runs[0]["pending"]["date"]
    figures = [plotting.difference_figure(run["params"], dates,
                                          pending_difference(runs[0]["pending"], run["pending"]),
                                          f"{label} − {labels[0]}")
               for run, label in zip(runs[1:], labels[1:], strict=True)]
    command = " ".join(["python -m sim.compare", *map(shlex.quote, argv)])
    try:  # beside an earlier comparison, swapped in once complete
        stage = run_folder.staging(out)
        write_csv(stage / "compare.csv", table)
        reports.compare_report(stage, labels, [r["summary"] for r in runs], table, figures,
                               command)
        run_folder.commit(out, "compare", "report.html")
    except OSError as err:
        run_folder.discard(out)
        print(f"error: could not write {out} ({err.strerror or err}); an earlier comparison "
              "there stays as it was", file=sys.stderr)
        return 1
    for row in table.itertuples(index=False):
        if row.key in ("peak_pending", "pending_end", "mean_wait_days",
                       "share_decided_within_limit"):
            print(f"{row.against}: {row.key} {row.difference:+.4g} "
                  f"[{row.ci95_low:+.4g}, {row.ci95_high:+.4g}]")
    print(f"report: open {out / 'report.html'} in a browser")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    from sim.run_folder import run_interruptible

    sys.exit(run_interruptible(main, "interrupted: the comparison stopped; an earlier one "
                                     "in its folder stays as it was; rerun the same command"))
